"""TrainingJobs train for real: the operator writes the pods, the local runtime runs them from their own
command, args and env, the trainer reads the dataset from MinIO and writes the artifact back, and the
operator registers a ModelVersion."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import yaml

from dataset_formats import as_format
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from waiting import Recorder, wait_for

PHASE_ORDER = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2}


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.fixture
def sample_data(minio):
    data = iris_like_csv(rows_per_class=100)
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    return data


def finished(cluster, name, namespace):
    tj = get_json(cluster, "trainingjob", name, "-n", namespace) or {}
    status = tj.get("status") or {}
    done = status.get("phase") == "Failed" or (status.get("phase") == "Succeeded" and status.get("modelVersionRef"))
    return tj if done else None


@pytest.mark.parametrize("workers", [1, 2], ids=["single-worker", "ddp-2-workers-gloo"])
def test_trainingjob_trains_for_real_and_registers_a_model_version(
        cluster, crds, operator, local_runtime, minio, sample_data, namespace, kube_api, workers):
    name = f"iris-{workers}w"
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = training_job(name, namespace, "s3", workers=workers, epochs=15, node_selector=RUNTIME_LABEL,
                      model=f"iris{workers}")
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    with Recorder(kube_api, "mlcycle.io", "v1alpha1", namespace, "trainingjobs") as written:
        cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
        tj = wait_for(lambda: finished(cluster, name, namespace), f"{name} to finish", timeout=600)
        wait_for(lambda: written.statuses(name) and written.statuses(name)[-1].get("modelVersionRef"),
                 what="the last status write to be watched")
    status = tj["status"]
    # Every status write, in order: a phase only moves forward (never Running -> Pending while the Job counts
    # a finished worker).
    phases = [s["phase"] for s in written.statuses(name) if s.get("phase")]
    assert [PHASE_ORDER[p] for p in phases] == sorted(PHASE_ORDER[p] for p in phases), phases
    assert phases[-1] == "Succeeded" and "Running" in phases
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["metrics"]["val_accuracy"] >= 0.8
    assert status["workers"]["succeeded"] == workers

    # The artifact in MinIO is exactly what the status says.
    bucket, key = status["artifact"]["uri"].removeprefix("s3://").split("/", 1)
    blob = minio.client().get_object(bucket, key).read()
    assert f"sha256:{hashlib.sha256(blob).hexdigest()}" == status["artifact"]["digest"]
    assert len(blob) == status["artifact"]["size"]

    mv = get_json(cluster, "modelversion", status["modelVersionRef"]["name"], "-n", namespace)
    assert mv["spec"]["modelName"] == f"iris{workers}" and mv["spec"]["version"] == 1
    assert mv["spec"]["artifact"]["digest"] == status["artifact"]["digest"]
    assert mv["spec"]["source"]["trainingJob"] == name
    assert mv["spec"]["source"]["dataset"] == {"uri": "s3://datasets/iris/iris.csv",
                                               "digest": f"sha256:{hashlib.sha256(sample_data).hexdigest()}"}
    assert status["artifact"]["uri"].startswith(f"s3://models/iris{workers}/{name}/{tj['metadata']['uid'][:8]}/")
    assert mv["spec"]["signature"]["inputs"][0]["shape"][-1] == 4
    assert "ownerReferences" not in mv["metadata"]  # the registry entry outlives the job
    # The operator records that it wrote this artifact (what lets deletionPolicy: Delete remove it).
    mv = wait_for(lambda: (m := get_json(cluster, "modelversion", mv["metadata"]["name"], "-n", namespace))
                  and (m.get("status") or {}).get("registeredBy") and m, what="status.registeredBy")
    assert mv["status"]["registeredBy"] == {"name": name, "uid": tj["metadata"]["uid"]}

    # ... and the registry verifies it: the version ends Ready with the artifact's digest.
    mv = wait_for(lambda: (m := get_json(cluster, "modelversion", mv["metadata"]["name"], "-n", namespace))
                  and (m.get("status") or {}).get("phase") in ("Ready", "Rejected", "Failed") and m,
                  what="the ModelVersion to be verified", timeout=180)
    assert mv["status"]["phase"] == "Ready", mv["status"].get("message")
    assert mv["status"]["verifiedDigest"] == status["artifact"]["digest"]


def test_missing_dataset_fails_with_the_cause_named(cluster, crds, operator, local_runtime, minio, namespace):
    minio.make_bucket("datasets")
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = training_job("nodata", namespace, "s3", epochs=1, node_selector=RUNTIME_LABEL)
    tj["spec"]["dataset"]["uri"] = "s3://datasets/does-not-exist.csv"
    tj["spec"]["runPolicy"] = {"backoffLimit": 0}
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
    tj = wait_for(lambda: finished(cluster, "nodata", namespace), "nodata to fail", timeout=300)
    assert tj["status"]["phase"] == "Failed"
    ready = next(c for c in tj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DatasetNotFound"
    assert "does-not-exist.csv" in tj["status"]["message"]
    assert operator.healthy()


def test_bad_credentials_fail_with_storage_auth_failed(cluster, crds, operator, local_runtime, minio, sample_data,
                                                       namespace):
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, "wrong-secret")
    tj = training_job("badcreds", namespace, "s3", epochs=1, node_selector=RUNTIME_LABEL)
    tj["spec"]["runPolicy"] = {"backoffLimit": 0}
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
    tj = wait_for(lambda: finished(cluster, "badcreds", namespace), "badcreds to fail", timeout=300)
    ready = next(c for c in tj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "StorageAuthFailed"
    assert "wrong-secret" not in json.dumps(tj)  # secrets never reach status


def test_registration_takes_the_next_free_name_when_its_version_name_is_taken(
        cluster, crds, operator, local_runtime, minio, sample_data, namespace):
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    # Someone else's version already has the name `race-v1` (for another model, so it is not counted).
    squatter = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
                "metadata": {"name": "race-v1", "namespace": namespace},
                "spec": {"modelName": "other", "version": 1, "storage": {"secretRef": {"name": "s3"}},
                         "artifact": {"uri": "s3://models/other/model.pt", "format": "torchscript"}}}
    tj = training_job("race", namespace, "s3", epochs=2, node_selector=RUNTIME_LABEL, model="race")
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, squatter, tj]))
    tj = wait_for(lambda: finished(cluster, "race", namespace), "race to finish", timeout=300)
    assert tj["status"]["modelVersionRef"] == {"name": "race-v2"}
    mv = get_json(cluster, "modelversion", "race-v2", "-n", namespace)
    assert mv["spec"]["modelName"] == "race" and mv["spec"]["version"] == 2
    assert mv["metadata"]["labels"]["mlcycle.io/trainingjob"] == "race"



@pytest.mark.parametrize(("fmt", "formats"), [("parquet", ["onnx"]), ("jsonl", ["torchscript", "onnx"])])
def test_columnar_datasets_train_and_register_the_first_export_format(
        cluster, crds, operator, local_runtime, minio, namespace, fmt, formats):
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    data = as_format(iris_like_csv(rows_per_class=100), fmt)
    minio.client().put_object("datasets", f"iris-{fmt}/part-0.{fmt}", io.BytesIO(data), len(data))
    name = f"iris-{fmt}"
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = training_job(name, namespace, "s3", epochs=15, node_selector=RUNTIME_LABEL, model=name)
    tj["spec"]["dataset"] = {"uri": f"s3://datasets/iris-{fmt}/", "format": fmt}
    tj["spec"]["trainer"]["exportFormats"] = formats
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))

    tj = wait_for(lambda: finished(cluster, name, namespace), f"{name} to finish", timeout=600)
    status = tj["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["metrics"]["val_accuracy"] >= 0.8
    first = {"onnx": "model.onnx", "torchscript": "model.pt"}[formats[0]]
    assert status["artifact"]["uri"].endswith(f"/{first}")
    run = status["artifact"]["uri"].rsplit("/", 1)[0].removeprefix("s3://models/")
    written = {o.object_name.rsplit("/", 1)[-1] for o in minio.client().list_objects("models", f"{run}/")}
    assert {"model.onnx", "signature.json"} <= written and ("model.pt" in written) == ("torchscript" in formats)

    mv = wait_for(lambda: (m := get_json(cluster, "modelversion", status["modelVersionRef"]["name"], "-n", namespace))
                  and (m.get("status") or {}).get("phase") in ("Ready", "Rejected", "Failed") and m,
                  what="the ModelVersion to be verified", timeout=180)
    assert mv["spec"]["artifact"]["format"] == formats[0]
    assert mv["status"]["phase"] == "Ready", mv["status"].get("message")
    assert mv["status"]["verifiedDigest"] == status["artifact"]["digest"]
    verified = next(c for c in mv["status"]["conditions"] if c["type"] == "ArtifactVerified")
    assert ("ONNX parses" in verified["message"]) == (formats[0] == "onnx"), verified["message"]
