"""The Argo CD health checks on the live objects of a real run, one per phase: TrainingJobs that train, fail,
are suspended and resumed; ModelVersions that are verified, fail verification and are rejected by a gate. Every
status the operator writes is seen (a watch), and the Lua answers the health the phase means.

With MLCYCLE_ARGOCD_TESTDATA=<dir> the objects are written there, one per kind and phase: that is how
charts/mlcycle/argocd/testdata were recorded (tests/unit/test_argocd.py runs the scripts on them)."""

from __future__ import annotations

import io
import threading

import yaml
from kubernetes import client, watch

from argocd_lua import health, record
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from modelversion_artifacts import model_version, torchscript_bytes
from waiting import wait_for

EXPECTED = {
    "TrainingJob": {"Pending": "Progressing", "Running": "Progressing", "Succeeded": "Healthy",
                    "Failed": "Degraded", "Suspended": "Suspended"},
    "ModelVersion": {"Verifying": "Progressing", "Ready": "Healthy", "Failed": "Degraded", "Rejected": "Degraded"},
}
STALE = "generation-not-observed"  # a spec change the operator has not seen yet


def test_argocd_health_of_every_phase_on_live_objects(cluster, crds, operator, local_runtime, minio, kube_api,
                                                      namespace):
    seen: dict[tuple[str, str], dict] = {}  # (kind, phase) -> the first object seen in it
    lock, stop = threading.Lock(), threading.Event()

    def watch_phases(plural: str):
        api = client.CustomObjectsApi(kube_api)
        for event in watch.Watch().stream(api.list_namespaced_custom_object, "mlcycle.io", "v1alpha1", namespace,
                                          plural, timeout_seconds=900):
            obj = event["object"]
            status = obj.get("status") or {}
            if status.get("phase"):
                stale = status.get("observedGeneration", 0) < obj["metadata"]["generation"]
                with lock:
                    seen.setdefault((obj["kind"], STALE if stale else status["phase"]), obj)
            if stop.is_set():
                return

    for plural in ("trainingjobs", "modelversions"):
        threading.Thread(target=watch_phases, args=(plural,), daemon=True).start()

    data = iris_like_csv(rows_per_class=60)
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    s3 = minio.make_bucket(f"argocd-{namespace}")
    minio.client().put_object(s3, "m.pt", io.BytesIO(model := torchscript_bytes()), len(model))
    uri = f"s3://{s3}/m.pt"

    def job(name, **spec):
        tj = training_job(name, namespace, "s3", epochs=3, node_selector=RUNTIME_LABEL, model="argocd")
        tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
        tj["spec"].update(spec)
        return tj

    nodata = job("nodata", runPolicy={"backoffLimit": 0})
    nodata["spec"]["dataset"]["uri"] = "s3://datasets/missing.csv"
    gate = {"thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.99}]}
    objects = [storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key),
               job("trains"), nodata, job("paused", runPolicy={"suspend": True}),
               model_version("digest-v1", namespace, "digest", 1, uri,
                             artifact={"uri": uri, "format": "torchscript", "digest": "sha256:" + "0" * 64}),
               model_version("gated-v1", namespace, "gated", 1, uri, metrics={"accuracy": 0.5}, validation=gate)]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        wait_for(lambda: ("TrainingJob", "Suspended") in seen, what="the suspended job")
        cluster.kubectl_run("patch", "trainingjob", "paused", "-n", namespace, "--type=merge",
                            "-p", '{"spec":{"runPolicy":{"suspend":false}}}')  # a generation the operator must see
        wanted = {(kind, phase) for kind, phases in EXPECTED.items() for phase in phases} | {("TrainingJob", STALE)}
        wait_for(lambda: wanted <= set(seen), what=f"every phase (missing {wanted - set(seen)})", timeout=600,
                 interval=1)
    finally:
        stop.set()
    with lock:
        observed = dict(seen)

    for (kind, phase), obj in sorted(observed.items()):
        expected = "Progressing" if phase == STALE else EXPECTED[kind][phase]
        assert health(kind, obj)["status"] == expected, (kind, phase, obj.get("status"))
        record(obj, phase.lower())
