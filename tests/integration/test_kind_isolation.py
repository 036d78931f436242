"""Slow work of one kind never delays another kind's reconciles. Here the slow work is real: ModelVersions whose
storage endpoint accepts connections and never answers (a hung or firewalled S3), so every periodic re-check of
their artifacts hangs in a HEAD request, while TrainingJobs are created."""

from __future__ import annotations

import json
import socket
import threading

import yaml

from mlcycle.api.labels import VERIFICATION_ANNOTATION
from mlcycle.localdev.sample import storage_secret
from mlcycle.modelversion.verification import fingerprint
from modelversion_artifacts import model_version
from waiting import wait_for

VERSIONS = 24  # more than kopf's 16 workers: were the re-checks on kopf's pool, they would hold all of it
TRAININGJOBS = 10


def _apply(cluster, objects):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                                  "items": objects}))


def _verified(mv: dict) -> dict:
    """A version as the operator leaves it once verified: the record with the artifact's ETag, which the
    periodic re-check (every 5 s in the test operator) compares with a HEAD request."""
    record = {"for": fingerprint(mv["spec"]["artifact"], mv["spec"]["signature"]), "etag": "0123"}
    mv["metadata"]["annotations"] = {VERIFICATION_ANNOTATION: json.dumps(record)}
    return mv


def _jobs(cluster, namespace) -> set[str]:
    out = cluster.kubectl_run("get", "jobs", "-n", namespace, "-o", "json").stdout
    return {j["metadata"]["name"] for j in json.loads(out)["items"]}


def test_hung_storage_rechecks_of_many_versions_do_not_delay_trainingjobs(cluster, operator, namespace):
    listener = socket.create_server(("127.0.0.1", 0), backlog=256)
    held: list[socket.socket] = []

    def accept_and_never_answer():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=accept_and_never_answer, daemon=True).start()
    try:
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        _apply(cluster, [storage_secret("s3", namespace, endpoint, "key", "secret")] + [
            _verified(model_version(f"m{i}-v1", namespace, f"m{i}", 1, f"s3://models/m{i}/1/model.pt"))
            for i in range(VERSIONS)])
        wait_for(lambda: len(held) >= 4, what="re-checks hanging on the storage endpoint")

        _apply(cluster, [{"apiVersion": "mlcycle.io/v1alpha1", "kind": "TrainingJob",
                          "metadata": {"name": f"tj{i}", "namespace": namespace},
                          "spec": {"trainer": {"task": "classification", "labelColumn": "label"},
                                   "dataset": {"uri": "s3://data/train.csv"}, "output": {"uri": "s3://models/x"},
                                   "storage": {"secretRef": {"name": "s3"}}, "runPolicy": {"suspend": True}}}
                         for i in range(TRAININGJOBS)])
        # Minutes (the storage client's timeouts) were the re-checks holding the workers TrainingJobs need.
        wait_for(lambda: _jobs(cluster, namespace) >= {f"tj{i}" for i in range(TRAININGJOBS)}, timeout=30,
                 interval=0.2, what="every TrainingJob's Job while storage hangs")
        assert len(held) >= 4  # the re-checks were still hanging meanwhile: the slow work was real
    finally:
        listener.close()
        for conn in held:
            conn.close()
