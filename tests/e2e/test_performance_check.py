"""The performance half of `mlcycle drift` as its CronJob's pod runs it: a process configured by env,
against a real MinIO, on Parquet request logs in the serving agent's layout and label files as they arrive.
(The whole path through a served model and the operator: test_performance_monitoring.py.)"""

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.clients import s3
from mlcycle.workloads import agent_log
from waiting import wait_for

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC)


def log_requests(minio, bucket: str, logs: str, at: datetime, outputs: np.ndarray, ids: list[str],
                 rows_per_request: int = 1, status: int = 200) -> None:
    """One Parquet object written by the agent's own code (agent_log.log_objects) for these requests."""
    entries = []
    for i, rid in enumerate(ids):
        part = slice(i * rows_per_request, (i + 1) * rows_per_request)
        entries.append(agent_log.make_entry(rid, int(at.timestamp() * 1e6) + i, "iris-v1", 1.0, status,
                                            np.ones((rows_per_request, 2), np.float32),
                                            {"OUTPUT__0": outputs[part].astype(np.float32)}))
    for key, table in agent_log.log_objects(entries, s3.parse_s3_uri(logs)[1], ["x1", "x2"]):
        s3.upload_bytes(minio.client(), bucket, key, agent_log.parquet_bytes(table))


def put_parquet(minio, bucket: str, key: str, columns: dict) -> None:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    s3.upload_bytes(minio.client(), bucket, key, out.getvalue())


def run_check(minio, tmp_path, bucket: str, logs: str, **perf: str) -> tuple[subprocess.CompletedProcess, dict]:
    profile = {"version": 1, "rows": 3, "features": {}}  # no features: drift says ReferenceMissing, perf goes on
    s3.upload_bytes(minio.client(), bucket, "models/ref.json", json.dumps(profile).encode())
    log = tmp_path / "termination-log"
    env = {**os.environ, "MLCYCLE_S3_ENDPOINT": minio.endpoint, "AWS_ACCESS_KEY_ID": minio.access_key,
           "AWS_SECRET_ACCESS_KEY": minio.secret_key, "MLCYCLE_TERMINATION_LOG": str(log),
           "MLCYCLE_DRIFT_LOGS": logs, "MLCYCLE_DRIFT_REFERENCE": f"s3://{bucket}/models/ref.json",
           **{f"MLCYCLE_PERF_{k.upper()}": v for k, v in perf.items()}}
    result = subprocess.run([sys.executable, "-m", "mlcycle.cli", "drift"], env=env, capture_output=True,
                            text=True, timeout=300)
    return result, json.loads(log.read_text())


def test_parquet_labels_of_batched_requests_score_the_regression_error_of_the_window(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    predicted = np.array([[1.0], [2.0], [3.0], [4.0], [10.0], [20.0]])
    log_requests(minio, bucket, logs, NOW - timedelta(minutes=5), predicted[:4], ["r1", "r2"], rows_per_request=2)
    log_requests(minio, bucket, logs, NOW - timedelta(hours=3), predicted[4:], ["old-1", "old-2"])  # outside
    log_requests(minio, bucket, logs, NOW - timedelta(minutes=4), np.array([[9.0]]), ["failed"], status=500)
    put_parquet(minio, bucket, "labels/day-1.parquet",
                {"rid": ["r1", "r1", "r2", "old-1", "failed"], "row": [0, 1, 1, 0, 0],
                 "y": [1.5, 2.0, 6.0, 0.0, 0.0]})
    result, message = run_check(minio, tmp_path, bucket, logs, labels=f"s3://{bucket}/labels/", metric="mae",
                                threshold="0.5", window="1h", min_labelled_rows="3", id_column="rid",
                                row_column="row", label_column="y")
    assert result.returncode == 0, result.stderr
    perf = message["performance"]
    # r1 rows 0 and 1, r2 row 1 (prediction 4, label 6): errors 0.5, 0, 2; r2 row 0 has no label.
    assert perf["value"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert (perf["result"], perf["labelledRows"], perf["windowRows"], perf["coverage"]) == (
        "PerformanceDegraded", 3, 4, 0.75)
    report = json.loads(s3.read_bytes(minio.client(), *s3.parse_s3_uri(perf["reportUri"])))
    assert report["value"] == perf["value"] and report["labels"] == f"s3://{bucket}/labels/"
    assert message["result"] == "ReferenceMissing"  # the drift result stands beside it


def test_a_later_csv_corrects_an_earlier_label_and_too_few_labels_are_insufficient_data(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])  # predicted classes 0, 1, 0
    log_requests(minio, bucket, logs, NOW - timedelta(minutes=2), scores, ["a", "b", "c"])
    s3.upload_bytes(minio.client(), bucket, "labels/1.csv", b"request_id,label\na,cat\nb,cat\nc,cat\n")
    result, message = run_check(minio, tmp_path, bucket, logs, labels=f"s3://{bucket}/labels/",
                                metric="accuracy", threshold="0.5", classes='["cat", "dog"]', min_labelled_rows="3")
    assert message["performance"]["value"] == pytest.approx(2 / 3)
    assert message["performance"]["result"] == "WithinThreshold"

    first = s3.list_objects(minio.client(), bucket, "labels/")[0][1]
    s3.upload_bytes(minio.client(), bucket, "labels/0-corrections.csv", b"request_id,label\na,dog\nc,dog\n")
    # Written later, though its name sorts first: its labels win.
    assert wait_for(lambda: s3.list_objects(minio.client(), bucket, "labels/")[0][1] > first, "a later write")
    result, message = run_check(minio, tmp_path, bucket, logs, labels=f"s3://{bucket}/labels/",
                                metric="accuracy", threshold="0.5", classes='["cat", "dog"]', min_labelled_rows="3")
    assert message["performance"]["value"] == 0.0 and message["performance"]["result"] == "PerformanceDegraded"

    result, message = run_check(minio, tmp_path, bucket, logs, labels=f"s3://{bucket}/labels/",
                                metric="accuracy", threshold="0.5", classes='["cat", "dog"]', min_labelled_rows="4")
    perf = message["performance"]
    assert perf["result"] == "InsufficientData" and "value" not in perf
    assert "3 of 3 logged prediction(s) labelled (100%); accuracy needs at least 4" in perf["message"]


def test_unreadable_labels_fail_the_performance_check_naming_the_cause(minio, bucket, tmp_path):
    logs = f"s3://{bucket}/logs/shop/iris/iris-v1/"
    log_requests(minio, bucket, logs, NOW - timedelta(minutes=2), np.array([[0.1, 0.9]]), ["a"])
    s3.upload_bytes(minio.client(), bucket, "labels/x.csv", b"id,truth\na,1\n")
    result, message = run_check(minio, tmp_path, bucket, logs, labels=f"s3://{bucket}/labels/", metric="f1",
                                threshold="0.5")
    assert result.returncode == 0, result.stderr
    perf = message["performance"]
    assert perf["result"] == "Failed" and "Column 'request_id'" in perf["message"]
    assert f"s3://{bucket}/labels/x.csv" in perf["message"]
