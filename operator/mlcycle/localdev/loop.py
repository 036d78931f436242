"""The second half of `mlcycle dev`: Monitor → Retrain → Deploy on the sample, every step for real and printed.

The world shifts (petals grow, sample.SHIFT): shifted requests go through the Service and the agents log them
to MinIO; a drift check (a Job from the `iris-drift` CronJob) finds the shifted features and writes its report;
the operator retrains on the shifted data (spec.retrain, Auto); the new version passes its gates, takes the
alias, rolls out progressively with traffic flowing, and is promoted.
"""

from __future__ import annotations

import json
import time

from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev import sample, traffic

NAMESPACE = "mlcycle-sample"


def _status(cluster: cluster_mod.Cluster) -> dict:
    out = cluster.kubectl_run("get", "inferenceservice", "iris", "-n", NAMESPACE, "-o", "json", check=False).stdout
    return (json.loads(out) if out else {}).get("status") or {}


def _wait(predicate, what: str, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def close_the_loop(cluster: cluster_mod.Cluster, minio_client, follow_training, timeout: float = 900) -> str:
    """Drive the loop once; returns the version serving at the end. `follow_training(name)` prints a
    TrainingJob's progress until it has registered its version."""
    started = time.monotonic()
    served = _status(cluster)["servedModelVersion"]
    shifted = sample.feature_rows(sample.shifted_csv(sample.iris_like_csv(seed=11)))
    address = cluster_mod.service_backend(cluster, "iris", NAMESPACE)
    print(f"[loop] the world shifts ({', '.join(f'{k} +{v}' for k, v in sample.SHIFT.items())}): 300 requests "
          f"to {served} through the Service", flush=True)
    answered = [traffic.infer_once(address, shifted[i % len(shifted)]) for i in range(300)]
    print(f"[loop] {sum(1 for _, code in answered if code == 200)} of 300 answered; the agents log them to "
          f"s3://logs/serving/{NAMESPACE}/iris/{served}/", flush=True)
    _wait(lambda: traffic.logged_rows(minio_client, "logs", f"serving/{NAMESPACE}/iris/{served}/") >= 300,
          "300 logged rows", 60)

    check = f"iris-drift-{int(time.time())}"
    cluster.kubectl_run("create", "job", "--from=cronjob/iris-drift", check, "-n", NAMESPACE)
    print(f"[loop] drift check: kubectl create job --from=cronjob/iris-drift {check}", flush=True)
    status = _wait(lambda: (s := _status(cluster)).get("drift", {}).get("job") == check and s, "the drift check",
                   300)
    drift = status["drift"]
    print(f"[loop] {drift['result']}: {drift.get('message')}", flush=True)
    print(f"[loop] report: {drift.get('reportUri')} (and report.json beside it)", flush=True)
    if drift["result"] != "DriftDetected":
        return served

    job = _wait(lambda: (_status(cluster).get("retrain") or {}).get("trainingJobRef", {}).get("name"),
                "the retrain TrainingJob", 60)
    print(f"[loop] retraining: TrainingJob {job} on the shifted data (spec.retrain, policy Auto)", flush=True)
    client = traffic.Client(cluster, "iris", NAMESPACE, shifted)  # traffic for the rollout's analysis
    try:
        follow_training(job)
        seen = None
        while time.monotonic() - started < timeout:
            status = _status(cluster)
            rollout = status.get("rollout") or {}
            shown = (rollout.get("phase"), rollout.get("message"), status.get("servedModelVersion"))
            if shown != seen and shown[0]:
                seen = shown
                print(f"[loop] rollout {shown[0]}: {shown[1]} (serving {shown[2]})", flush=True)
            if status.get("servedModelVersion") != served and rollout.get("phase") == "Promoted":
                break
            if rollout.get("phase") == "Aborted" and rollout.get("candidate") != served:
                break
            time.sleep(1)
    finally:
        sent, failed = client.close()
    now = _status(cluster).get("servedModelVersion")
    version, _ = traffic.infer_once(cluster_mod.service_backend(cluster, "iris", NAMESPACE), shifted[0])
    print(f"[loop] {sent} requests during the rollout, {failed} failed; {version} answers now", flush=True)
    print(f"[loop] closed in {time.monotonic() - started:.0f}s: {served} → drift → {job} → {now}", flush=True)
    return now
