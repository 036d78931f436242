"""Accuracy from delayed labels, every stage a real process: a model trained by a TrainingJob serves on the
real tritonserver; requests with known ids go through its agent, which logs them to MinIO; labels arrive
later as CSV files under an S3 prefix; the monitoring Job (from the <isvc>-drift CronJob, on the local
runtime) joins them with the logged predictions and the operator reports status.performance, the
PerformanceDegraded condition and the gauges, and retrains on degradation."""

from __future__ import annotations

import io
import urllib.request
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from kubeview import condition, kubectl_json
from mlcycle.localdev.cluster import service_backend
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import CLASSES, FEATURES, iris_like_csv, storage_secret, training_job
from mlcycle.localdev.traffic import infer_once
from waiting import wait_for

pytestmark = pytest.mark.e2e

REQUESTS = 120
THRESHOLD = 0.7


def status_of(cluster, ns) -> dict:
    return (kubectl_json(cluster, "inferenceservice", "quality", "-n", ns) or {}).get("status") or {}


def retrains(cluster, ns) -> list[dict]:
    return kubectl_json(cluster, "trainingjobs", "-n", ns, "-l", "mlcycle.io/inferenceservice=quality")["items"]


def run_check(cluster, ns, name: str) -> dict:
    """A Job from the CronJob, by hand (its schedule is yearly); the status once the operator has read it."""
    cluster.kubectl_run("create", "job", "--from=cronjob/quality-drift", name, "-n", ns)
    return wait_for(lambda: (s := status_of(cluster, ns)).get("performance", {}).get("job") == name and s,
                    f"the performance result of check {name}", timeout=300)


def logged_predictions(minio, ns: str, version: str) -> dict[str, int]:
    """request id -> the class the model answered (the largest output), read back from the agent's logs."""
    client, found = minio.client(), {}
    for obj in client.list_objects("logs", prefix=f"quality/{ns}/quality/{version}/", recursive=True):
        table = pq.read_table(io.BytesIO(client.get_object("logs", obj.object_name).read()))
        for rid, output in zip(table.column("request_id").to_pylist(), table.column("output__0").to_pylist(),
                               strict=True):
            found[rid] = int(np.argmax(output))
    return found


def put_labels(minio, ns: str, name: str, labels: dict[str, str]) -> None:
    """A CSV of delayed labels as a labelling team would drop it: request id and true species."""
    data = ("request_id,species\n" + "".join(f"{rid},{species}\n" for rid, species in labels.items())).encode()
    minio.client().put_object("labels", f"{ns}/{name}", io.BytesIO(data), len(data))


def direct_accuracy(predicted: dict[str, int], labels: dict[str, str]) -> float:
    """Accuracy over the logged requests that have a label, computed here without the check's code."""
    scored = [predicted[rid] == CLASSES.index(species) for rid, species in labels.items() if rid in predicted]
    return sum(scored) / len(scored)


def gauge(operator, name: str, **labels) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") and ",".join(sorted(line[len(name) + 1:line.index("}")].split(","))) == wanted:
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def ns(cluster, crds, operator):
    name = f"perf-{uuid.uuid4().hex[:6]}"
    cluster.kubectl_run("create", "namespace", name)
    yield name
    cluster.kubectl_run("delete", "inferenceservices.mlcycle.io,trainingjobs.mlcycle.io,modelversions.mlcycle.io",
                        "--all", "-n", name, "--wait=true", "--timeout=90s", check=False)
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


def test_delayed_labels_give_the_live_accuracy_and_a_degradation_retrains(cluster, operator, local_runtime, minio,
                                                                          ns):
    for bucket in ("datasets", "models", "logs", "labels"):
        minio.make_bucket(bucket)
    data = iris_like_csv(rows_per_class=60)
    minio.client().put_object("datasets", f"{ns}/a.csv", io.BytesIO(data), len(data))
    tj = training_job("train-a", ns, "s3", epochs=15, node_selector=RUNTIME_LABEL, model="quality")
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    tj["spec"]["dataset"]["uri"] = f"s3://datasets/{ns}/a.csv"
    tj["spec"]["registerModel"]["aliases"] = ["production"]
    isvc = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "quality", "namespace": ns},
            "spec": {"model": {"name": "quality", "alias": "production"}, "runtime": {"backend": "python"},
                     "resources": {"cpu": "100m", "memory": "1Gi"}, "storage": {"secretRef": {"name": "s3"}},
                     "nodeSelector": RUNTIME_LABEL, "tolerations": [RUNTIME_TOLERATION],
                     "logging": {"destination": "s3://logs/quality", "sampleRate": 1},
                     # Drift only when every feature drifts: this test is about the labels.
                     "monitoring": {"drift": {"schedule": "0 0 1 1 *", "windowSize": 50, "driftShare": 1.0},
                                    "performance": {"labels": f"s3://labels/{ns}/", "labelColumn": "species",
                                                    "classes": CLASSES, "metric": "accuracy",
                                                    "threshold": THRESHOLD, "window": "1h",
                                                    "minLabelledRows": 40}},
                     "retrain": {"policy": "Auto", "cooldown": "1h", "template": tj["spec"]}}}
    secret = storage_secret("s3", ns, minio.endpoint, minio.access_key, minio.secret_key)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj, isvc]))

    wait_for(lambda: status_of(cluster, ns).get("phase") == "Ready", "the model serving", timeout=600)
    version = status_of(cluster, ns)["servedModelVersion"]
    address = service_backend(cluster, "quality", ns)

    # Requests with ids the labelling team will know them by; their true species is known here.
    fresh = iris_like_csv(rows_per_class=REQUESTS // 3, seed=21).decode().splitlines()[1:]
    truth = {f"order-{i:04d}": line.split(",")[len(FEATURES)] for i, line in enumerate(fresh)}
    for i, line in enumerate(fresh):
        row = [float(v) for v in line.split(",")[:len(FEATURES)]]
        assert infer_once(address, row, "quality", request_id=f"order-{i:04d}") == (version, 200)
    predicted = wait_for(lambda: (p := logged_predictions(minio, ns, version)) and len(p) >= REQUESTS and p,
                         f"{REQUESTS} logged requests in MinIO", timeout=60)
    assert set(predicted) == set(truth)

    # Few labels so far: no verdict, no number, no retrain.
    first = dict(list(truth.items())[:10])
    put_labels(minio, ns, "labels-1.csv", first)
    early = run_check(cluster, ns, "check-1")
    assert early["performance"]["result"] == "InsufficientData", early["performance"]
    assert early["performance"]["labelledRows"] == 10 and early["performance"]["windowRows"] == REQUESTS
    assert "value" not in early["performance"]
    unknown = condition(early, "PerformanceDegraded")
    assert (unknown["status"], unknown["reason"]) == ("Unknown", "InsufficientData")
    assert "10 of 120 logged prediction(s) labelled (8%)" in unknown["message"]
    assert retrains(cluster, ns) == []

    # The rest arrive: the live accuracy is the accuracy over the same rows, computed directly.
    put_labels(minio, ns, "labels-2.csv", dict(list(truth.items())[10:]))
    scored = run_check(cluster, ns, "check-2")["performance"]
    expected = direct_accuracy(predicted, truth)
    assert expected >= THRESHOLD, f"the model itself is poor ({expected}); the test needs a good one"
    assert scored["result"] == "WithinThreshold", scored
    assert scored["value"] == pytest.approx(expected, abs=1e-12)
    assert (scored["labelledRows"], scored["coverage"]) == (REQUESTS, 1.0)
    assert condition(status_of(cluster, ns), "PerformanceDegraded")["status"] == "False"
    assert wait_for(lambda: gauge(operator, "mlcycle_performance_value", namespace=ns, inferenceservice="quality",
                                  metric="accuracy") == pytest.approx(expected), "the accuracy gauge")
    assert gauge(operator, "mlcycle_performance_label_coverage", namespace=ns, inferenceservice="quality") == 1.0
    assert retrains(cluster, ns) == []

    # Corrections arrive for most requests (the world changed: what was right is now wrong): a later file's
    # label wins, the accuracy falls below the threshold, and a retrain starts.
    corrected = {rid: CLASSES[(CLASSES.index(species) + 1) % 3] for rid, species in list(truth.items())[:90]}
    put_labels(minio, ns, "labels-3-corrections.csv", corrected)
    degraded = run_check(cluster, ns, "check-3")
    now_true = truth | corrected
    expected = direct_accuracy(predicted, now_true)
    assert degraded["performance"]["result"] == "PerformanceDegraded", degraded["performance"]
    assert degraded["performance"]["value"] == pytest.approx(expected, abs=1e-12) and expected < THRESHOLD
    flagged = condition(degraded, "PerformanceDegraded")
    assert flagged["status"] == "True" and f"accuracy {expected:.4g} below the threshold {THRESHOLD:g}" in flagged[
        "message"] and "120 of 120 logged prediction(s) labelled (100%)" in flagged["message"]
    job = wait_for(lambda: retrains(cluster, ns), "the retrain TrainingJob")[0]
    assert job["spec"]["dataset"]["uri"] == f"s3://datasets/{ns}/a.csv"
    retrain = wait_for(lambda: status_of(cluster, ns).get("retrain"), "status.retrain")
    assert retrain["reason"] == "PerformanceDegraded" and retrain["trainingJobRef"]["name"] == job["metadata"]["name"]
    assert condition(status_of(cluster, ns), "RetrainTriggered")["status"] == "True"
    report = degraded["performance"]["reportUri"]
    assert report.startswith(f"s3://logs/quality/{ns}/quality/drift/") and report.endswith("/performance.json")
    assert job["metadata"]["labels"]["mlcycle.io/drift-report"] == report.split("/")[-2]
