"""`mlcycle drift` as its CronJob's pod runs it: a process configured by env, against a real MinIO, on
Parquet request logs written in the serving agent's layout and a reference profile made by the trainer's code."""

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mlcycle.api.inferenceservice import InferenceServiceSpec
from mlcycle.clients import s3
from mlcycle.inferenceservice import cronjob, drift_status
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import storage_secret
from mlcycle.workloads import trainer
from mlcycle.workloads.dataset import load_examples
from waiting import wait_for

pytestmark = pytest.mark.e2e

FEATURES = ["x1", "x2", "x3", "c"]
START = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def training_data(rows: int, seed: int = 0) -> np.ndarray:
    """Three continuous features on different scales and a categorical one (codes 0-3)."""
    rng = np.random.default_rng(seed)
    return np.column_stack([
        rng.normal(50, 6, rows), rng.normal(0, 1, rows), rng.exponential(2.0, rows),
        rng.choice(4, rows, p=[0.4, 0.3, 0.2, 0.1]),
    ]).astype(np.float32)


def traffic(rows: int, seed: int, shifted: bool) -> np.ndarray:
    """Requests: like the training data, or with x1 moved by one standard deviation and c's mix changed."""
    data = training_data(rows, seed)
    if shifted:
        rng = np.random.default_rng(seed + 100)
        data[:, 0] += 6.0
        data[:, 3] = rng.choice(4, rows, p=[0.1, 0.2, 0.3, 0.4])
    return data


def log_batch(rows: np.ndarray, first_time: datetime, version: str, names=FEATURES) -> bytes:
    """One Parquet file as the agent writes it: a row per input row, features plus request metadata."""
    n = len(rows)
    columns = {name: pa.array(rows[:, i], pa.float32()) for i, name in enumerate(names)}
    columns |= {
        "request_id": pa.array([str(uuid.uuid4()) for _ in range(n)]),
        "row": pa.array(np.zeros(n, np.int32)),
        "timestamp": pa.array([first_time + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "model_version": pa.array([version] * n),
        "latency_ms": pa.array(np.full(n, 1.5), pa.float64()),
        "status": pa.array([200] * n, pa.int32()),
        "output__0": pa.array(rows[:, 0] * 0.1, pa.float32()),
    }
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def write_logs(minio, bucket: str, logs: str, data: np.ndarray, files: int, version: str = "iris-v1",
               names=FEATURES) -> None:
    """`files` batches over consecutive hours under <logs>/<YYYY-MM-DD>/<HH>/<batch-id>.parquet."""
    for i, part in enumerate(np.array_split(data, files)):
        at = START + timedelta(hours=i)
        key = f"{s3.parse_s3_uri(logs)[1]}{at:%Y-%m-%d}/{at:%H}/{uuid.uuid4().hex}.parquet"
        s3.upload_bytes(minio.client(), bucket, key, log_batch(part, at, version, names))


def put_profile(minio, bucket: str, rows: int = 5000) -> str:
    """The reference_profile.json `mlcycle train` would write for this training data (its own code path:
    CSV -> examples -> profile), next to where the model would be."""
    data = training_data(rows, seed=1)
    lines = [",".join([*FEATURES, "label"])]
    lines += [",".join(f"{v:g}" for v in row) + f",{'ab'[i % 2]}" for i, row in enumerate(data)]
    with tempfile.TemporaryDirectory() as scratch:
        csv = Path(scratch) / "train.csv"
        csv.write_text("\n".join(lines) + "\n")
        examples = load_examples(str(csv), label="label", label_as_text=True)
    doc = trainer.examples_profile(examples, seed=0)
    key = "models/iris/run1/reference_profile.json"
    s3.upload_bytes(minio.client(), bucket, key, json.dumps(doc).encode())
    return f"s3://{bucket}/{key}"


def run_drift(minio, tmp_path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    log = tmp_path / "termination-log"
    full = {**os.environ, "MLCYCLE_S3_ENDPOINT": minio.endpoint, "AWS_ACCESS_KEY_ID": minio.access_key,
            "AWS_SECRET_ACCESS_KEY": minio.secret_key, "MLCYCLE_TERMINATION_LOG": str(log),
            "MLCYCLE_DRIFT_TITLE": "shop/iris", "MLCYCLE_DRIFT_MODEL_VERSION": "iris-v1", **env}
    result = subprocess.run([sys.executable, "-m", "mlcycle.cli", "drift"], env=full, capture_output=True,
                            text=True, timeout=300)
    assert len(log.read_bytes()) < 4096
    return result, json.loads(log.read_text())


def read(minio, uri: str) -> bytes:
    return s3.read_bytes(minio.client(), *s3.parse_s3_uri(uri))


@pytest.mark.parametrize(("reference_rows", "methods"), [(5000, {"wasserstein", "jensenshannon"}),
                                                        (800, {"ks", "chi2"})], ids=["distances", "tests"])
def test_shifted_features_are_named_and_the_reports_are_in_minio(minio, bucket, tmp_path, reference_rows, methods):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(3000, seed=2, shifted=True), files=4)
    reference = put_profile(minio, bucket, reference_rows)

    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs, MLCYCLE_DRIFT_REFERENCE=reference,
                                MLCYCLE_DRIFT_WINDOW="2000")

    assert result.returncode == 0, result.stderr
    assert "read the newest 2000 of 2000 rows" in result.stdout and "result: DriftDetected" in result.stdout
    assert message["result"] == "DriftDetected" and message["windowRows"] == 2000
    assert sorted(message["driftedFeatures"]) == ["c", "x1"]  # and not x2, x3
    assert {f["method"] for f in message["features"].values()} == methods
    assert message["share"] == 0.5 and message["reportUri"].startswith(f"s3://{bucket}/logs/shop/iris/drift/")
    page = read(minio, message["reportUri"]).decode()
    assert page.count("data:image/png;base64,") == 4 and "Drift detected" in page
    assert not re.findall(r"""(?:src|href)=['"](?!data:)|<script|<link|url\(""", page)  # opens offline
    report = json.loads(read(minio, message["reportUri"].replace("report.html", "report.json")))
    assert report["result"] == "DriftDetected" and report["window"]["rows"] == 2000
    assert report["window"]["to"] == "2026-11-26T21:12:29Z"  # the newest row: 21:00 + 749 s
    x1 = report["features"]["x1"]
    assert x1["drifted"] and x1["current"]["mean"] == pytest.approx(x1["reference"]["mean"] + 6, abs=0.6)


def test_unshifted_traffic_is_no_drift(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(2000, seed=3, shifted=False), files=2)
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs,
                                MLCYCLE_DRIFT_REFERENCE=put_profile(minio, bucket), MLCYCLE_DRIFT_WINDOW="2000")
    assert result.returncode == 0, result.stderr
    assert message["result"] == "NoDrift" and message["driftedFeatures"] == []


def test_too_few_rows_is_insufficient_data_not_no_drift(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(300, seed=4, shifted=True), files=2)
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs,
                                MLCYCLE_DRIFT_REFERENCE=put_profile(minio, bucket), MLCYCLE_DRIFT_WINDOW="1000")
    assert result.returncode == 0, result.stderr
    assert message["result"] == "InsufficientData" and "only 300 logged row(s)" in message["message"]
    assert "driftedFeatures" not in message and message["windowRows"] == 300
    assert "Insufficient data" in read(minio, message["reportUri"]).decode()


def test_no_logs_yet_is_insufficient_data(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs,
                                MLCYCLE_DRIFT_REFERENCE=put_profile(minio, bucket))
    assert message["result"] == "InsufficientData" and f"no request logs under {logs}" in message["message"]


def test_a_feature_missing_from_the_logs_is_named(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(1000, seed=5, shifted=False)[:, :3], files=1, names=FEATURES[:3])
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs,
                                MLCYCLE_DRIFT_REFERENCE=put_profile(minio, bucket))
    assert message["result"] == "InsufficientData" and "feature(s) ['c'] are not in the request logs" in message[
        "message"]


def test_a_missing_reference_profile_names_what_is_missing(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(1000, seed=6, shifted=True), files=1)
    missing = f"s3://{bucket}/models/iris/handmade/reference_profile.json"
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs, MLCYCLE_DRIFT_REFERENCE=missing)
    assert result.returncode == 0, result.stderr
    assert message["result"] == "ReferenceMissing" and f"reference profile {missing} does not exist" in message[
        "message"]


def test_reference_data_in_parquet_instead_of_a_profile(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    write_logs(minio, bucket, logs, traffic(1500, seed=7, shifted=True), files=3)
    data = training_data(4000, seed=8)
    table = pa.table({name: data[:, i] for i, name in enumerate(FEATURES)} | {"label": np.zeros(4000)})
    out = io.BytesIO()
    pq.write_table(table, out)
    s3.upload_bytes(minio.client(), bucket, "datasets/reference/part-0.parquet", out.getvalue())
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=logs, MLCYCLE_DRIFT_WINDOW="1500",
                                MLCYCLE_DRIFT_REFERENCE=f"s3://{bucket}/datasets/reference/",
                                MLCYCLE_DRIFT_METHOD="psi")
    assert result.returncode == 0, result.stderr
    assert message["result"] == "DriftDetected" and sorted(message["driftedFeatures"]) == ["c", "x1"]


def test_bad_credentials_fail_with_a_message_that_names_no_secret(minio, bucket, tmp_path):
    result, message = run_drift(minio, tmp_path, MLCYCLE_DRIFT_LOGS=f"s3://{bucket}/logs/x/",
                                MLCYCLE_DRIFT_REFERENCE=f"s3://{bucket}/ref.json",
                                AWS_SECRET_ACCESS_KEY="wrong-secret-value")
    assert result.returncode == 1
    assert message["result"] == "Failed" and "wrong-secret-value" not in json.dumps(message)


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_a_manual_run_of_the_cronjob_checks_in_a_pod_and_the_operator_reads_its_result(
        cluster, crds, local_runtime, minio, bucket, namespace):
    """The CronJob the operator would write, on the real apiserver; `kubectl create job --from=cronjob/...`;
    the pod runs `mlcycle drift` on the local runtime; its termination message becomes status.drift."""
    destination = f"s3://{bucket}/requests"
    isvc = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {"model": {"name": "iris", "alias": "production"}, "logging": {"destination": destination},
                     "monitoring": {"drift": {"schedule": "0 0 1 1 *", "windowSize": 2000}},
                     "storage": {"secretRef": {"name": "s3"}}}}
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, isvc]))
    created = get_json(cluster, "inferenceservice", "iris", "-n", namespace)
    write_logs(minio, bucket, cronjob.logs_prefix(destination, namespace, "iris", "iris-v1"),
               traffic(3000, seed=9, shifted=True), files=3)
    profile_uri = put_profile(minio, bucket)
    artifact = profile_uri.replace("reference_profile.json", "model.pt")

    spec = InferenceServiceSpec.model_validate(created["spec"])
    desired = cronjob.desired_cronjob("iris", namespace, created["metadata"]["uid"], spec, served_version="iris-v1",
                                      artifact_uri=artifact, node_selector=RUNTIME_LABEL,
                                      tolerations=[RUNTIME_TOLERATION])
    cluster.kubectl_run("apply", "--server-side", "-f", "-", input=json.dumps(desired))
    cluster.kubectl_run("create", "job", "--from=cronjob/iris-drift", "iris-drift-manual", "-n", namespace)

    job = wait_for(lambda: (j := get_json(cluster, "job", "iris-drift-manual", "-n", namespace))
                   and drift_status.latest_finished_job([j]), "the drift Job to finish", timeout=300)
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "job-name=iris-drift-manual")["items"]
    seen = drift_status.observe(None, job, pods, spec.monitoring.drift.method)
    assert seen.drift["result"] == "DriftDetected", seen.drift["message"]
    assert sorted(seen.drift["driftedFeatures"]) == ["c", "x1"] and seen.drift["windowRows"] == 2000
    named = seen.condition["message"].removeprefix("drifted: ").split(";")[0].split(", ")
    assert seen.condition["status"] == "True" and sorted(named) == ["c", "x1"]
    assert seen.drift["reportUri"].startswith(f"s3://{bucket}/requests/{namespace}/iris/drift/")
    assert b"data:image/png;base64," in read(minio, seen.drift["reportUri"])
    assert drift_status.latest_finished_job(
        get_json(cluster, "jobs", "-n", namespace, "-l", cronjob.job_selector("iris"))["items"]) is not None
