"""The whole loop, every stage a real process: train v1 on data A → serve it → shifted traffic through the
Service, logged by the agents to MinIO → the drift check (a Job from the <isvc>-drift CronJob) finds the
shifted features → a TrainingJob retrains on data B → v2 passes its gates, takes the alias → progressive
rollout → promoted; predictions now come from v2. The cooldown holds across an operator restart."""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from kubeview import condition, kubectl_json
from mlcycle.localdev.cluster import service_backend
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import (
    FEATURES,
    SHIFT,
    feature_rows,
    iris_like_csv,
    shifted_csv,
    storage_secret,
    training_job,
)
from mlcycle.localdev.traffic import Client, infer_once
from waiting import wait_for


def rows_of(data: bytes) -> np.ndarray:
    return np.array(feature_rows(data), dtype=np.float32)


def status_of(cluster, ns) -> dict:
    return (kubectl_json(cluster, "inferenceservice", "loop", "-n", ns) or {}).get("status") or {}


def retrains(cluster, ns) -> list[dict]:
    return kubectl_json(cluster, "trainingjobs", "-n", ns, "-l", "mlcycle.io/inferenceservice=loop")["items"]


def logged_rows(minio, ns: str, version: str) -> int:
    client = minio.client()
    total = 0
    for obj in client.list_objects("logs", prefix=f"serving/{ns}/loop/{version}/", recursive=True):
        data = client.get_object("logs", obj.object_name).read()
        total += pq.read_metadata(io.BytesIO(data)).num_rows
    return total


def run_drift_check(cluster, ns, name: str) -> dict:
    cluster.kubectl_run("create", "job", "--from=cronjob/loop-drift", name, "-n", ns)
    return wait_for(lambda: (s := status_of(cluster, ns)).get("drift", {}).get("job") == name and s,
                    f"the result of drift check {name}", timeout=300)


@pytest.fixture
def ns(cluster, crds, operator):
    name = f"loop-{uuid.uuid4().hex[:6]}"
    cluster.kubectl_run("create", "namespace", name)
    yield name
    cluster.kubectl_run("delete", "inferenceservices.mlcycle.io,trainingjobs.mlcycle.io,modelversions.mlcycle.io",
                        "--all", "-n", name, "--wait=true", "--timeout=90s", check=False)
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


def test_drift_retrains_gates_rolls_out_and_promotes_the_new_version(cluster, operator, local_runtime, minio, ns):
    started = time.monotonic()
    data_a = iris_like_csv(rows_per_class=60)
    data_b = shifted_csv(iris_like_csv(rows_per_class=60, seed=11))
    for bucket in ("datasets", "models", "logs"):
        minio.make_bucket(bucket)
    for key, data in ((f"{ns}/a.csv", data_a), (f"{ns}/b.csv", data_b)):
        minio.client().put_object("datasets", key, io.BytesIO(data), len(data))

    def trainer(name: str, dataset: str) -> dict:
        tj = training_job(name, ns, "s3", epochs=15, node_selector=RUNTIME_LABEL, model="loop")
        tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
        tj["spec"]["dataset"]["uri"] = f"s3://datasets/{ns}/{dataset}"
        tj["spec"]["registerModel"]["aliases"] = ["production"]
        return tj

    isvc = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "loop",
                                                                                          "namespace": ns},
            "spec": {"model": {"name": "loop", "alias": "production"}, "runtime": {"backend": "python"},
                     "resources": {"cpu": "100m", "memory": "1Gi"}, "storage": {"secretRef": {"name": "s3"}},
                     "nodeSelector": RUNTIME_LABEL, "tolerations": [RUNTIME_TOLERATION],
                     "logging": {"destination": "s3://logs/serving", "sampleRate": 1},
                     "monitoring": {"drift": {"schedule": "0 0 1 1 *", "method": "psi", "threshold": 0.25,
                                              "windowSize": 200}},
                     "retrain": {"policy": "Auto", "cooldown": "1h", "template": trainer("x", "b.csv")["spec"]},
                     "rollout": {"steps": [{"weight": 50, "pause": "5s"}],
                                 "analysis": {"interval": "5s", "successRateMin": 0.95, "minRequests": 5}}}}
    secret = storage_secret("s3", ns, minio.endpoint, minio.access_key, minio.secret_key)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, trainer("train-a", "a.csv"), isvc]))

    # v1, trained on A, serves.
    wait_for(lambda: status_of(cluster, ns).get("phase") == "Ready", "v1 serving", timeout=600)
    v1 = status_of(cluster, ns)["servedModelVersion"]
    address = service_backend(cluster, "loop", ns)
    print(f"\n[{time.monotonic() - started:.0f}s] {v1} serving")

    # The world shifts: traffic now looks like B. The agents log every request.
    traffic = rows_of(data_b)
    answers = [infer_once(address, traffic[i % len(traffic)], "loop") for i in range(260)]
    assert all(code == 200 and version == v1 for version, code in answers)
    wait_for(lambda: logged_rows(minio, ns, v1) >= 260, "260 logged rows in MinIO", timeout=60)

    drifted = run_drift_check(cluster, ns, "check-1")
    print(f"[{time.monotonic() - started:.0f}s] drift: {drifted['drift']}")
    assert drifted["drift"]["result"] == "DriftDetected", drifted["drift"]
    assert set(drifted["drift"]["driftedFeatures"]) == set(SHIFT)
    message = condition(drifted, "DriftDetected")["message"]
    assert all(f in message for f in SHIFT) and not any(f in message for f in FEATURES if f not in SHIFT)
    assert drifted["drift"]["reportUri"].startswith(f"s3://logs/serving/{ns}/loop/drift/")

    # One retrain, on B, labelled with the report that caused it.
    job = wait_for(lambda: retrains(cluster, ns), "the retrain TrainingJob")[0]
    assert job["spec"]["dataset"]["uri"] == f"s3://datasets/{ns}/b.csv"
    assert condition(status_of(cluster, ns), "RetrainTriggered")["status"] == "True"

    # The cooldown is kept in status: a restarted operator seeing drift again starts nothing more.
    operator.restart()
    again = run_drift_check(cluster, ns, "check-2")
    assert again["drift"]["result"] == "DriftDetected"
    waiting = condition(again, "RetrainTriggered")
    assert waiting["status"] == "False" and waiting["reason"] == "Cooldown", waiting
    assert len(retrains(cluster, ns)) == 1

    # v2 passes its gates, takes the alias, rolls out with traffic flowing, and is promoted.
    client = Client(cluster, "loop", ns, traffic, model="loop")
    promoted = wait_for(lambda: (s := status_of(cluster, ns)).get("servedModelVersion") not in (None, v1)
                        and (s.get("rollout") or {}).get("phase") == "Promoted" and s, "v2 promoted", timeout=600)
    sent, failed = client.close()
    v2 = promoted["servedModelVersion"]
    mv = kubectl_json(cluster, "modelversion", v2, "-n", ns)
    assert mv["spec"]["source"]["trainingJob"] == job["metadata"]["name"]
    assert mv["status"]["phase"] == "Ready" and "production" in mv["status"]["aliases"]
    assert failed == 0, f"{failed} of {sent} requests failed during the rollout"
    version, code = infer_once(service_backend(cluster, "loop", ns), traffic[0], "loop")
    assert (version, code) == (v2, 200)
    print(f"[{time.monotonic() - started:.0f}s] the whole loop: {v1} → drift → {job['metadata']['name']} → {v2} "
          f"promoted; {sent} requests during the rollout, {failed} failed")
