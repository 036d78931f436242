"""An unexpected exception in a handler is reported on the resource and retried until it heals: here artifact
verification cannot write its temp file (the operator's download folder is not a folder; the tests run as root,
which permission bits would not stop)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import yaml

from argocd_lua import health, record
from mlcycle.clients import s3
from mlcycle.localdev.sample import storage_secret
from modelversion_artifacts import model_version, torchscript_bytes
from waiting import wait_for


def _apply(cluster, obj):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(obj))


def _get(cluster, name, namespace) -> dict:
    r = cluster.kubectl_run("get", "modelversion.mlcycle.io", name, "-n", namespace, "-o", "json")
    return json.loads(r.stdout)


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def _metric(operator, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_an_unwritable_temp_dir_is_reported_on_the_version_and_it_recovers(cluster, operator, minio, bucket,
                                                                           namespace):
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key))
    uri = f"s3://{bucket}/iris/1/model.pt"
    s3.upload_bytes(minio.client(), bucket, "iris/1/model.pt", torchscript_bytes())
    downloads = Path(operator.env["MLCYCLE_ARTIFACT_DIR"])
    failures_before = _metric(operator, "mlcycle_handler_failures_total")
    shutil.rmtree(downloads)
    downloads.write_text("not a directory")
    try:
        _apply(cluster, model_version("iris-v1", namespace, "iris", 1, uri))
        failing = wait_for(lambda: (mv := _get(cluster, "iris-v1", namespace)) and
                           _condition(mv, "Synced").get("status") == "False" and mv, what="Synced=False")
        synced = _condition(failing, "Synced")
        assert synced["reason"] == "ReconcileError"
        assert "NotADirectoryError" in synced["message"] and str(downloads) in synced["message"]
        assert "retrying in" in synced["message"]
        assert failing["status"]["phase"] != "Ready"
        assert health("ModelVersion", failing) == {"status": "Degraded", "message": synced["message"]}
        record(failing, "synced-false")
        # Retried with backoff (2 s, 4 s, ...): the failure counter goes on rising while the folder stays broken,
        # one attempt at a time, not in a storm of attempts triggered by the failure's own status write.
        failures = wait_for(lambda: (n := _metric(operator, "mlcycle_handler_failures_total") - failures_before)
                            >= 3 and n, what="a third failed attempt")
        assert failures <= 4
        reasons = json.loads(cluster.kubectl_run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        assert any(e["reason"] == "ReconcileError" and e["type"] == "Warning" for e in reasons)
    finally:
        downloads.unlink()
        downloads.mkdir()
    ready = wait_for(lambda: (mv := _get(cluster, "iris-v1", namespace)) and
                     mv.get("status", {}).get("phase") == "Ready" and mv, what="Ready after the fix", timeout=180)
    assert _condition(ready, "Synced")["status"] == "True"
    assert operator.healthy()
    cluster.kubectl_run("delete", "modelversion.mlcycle.io", "iris-v1", "-n", namespace, "--wait=true",
                        "--timeout=60s")
