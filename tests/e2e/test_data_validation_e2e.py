"""spec.dataValidation for real: the operator puts `mlcycle validate-data` in front of the training container
as an init container, the local runtime runs it against the dataset in MinIO, a failure ends the job before any
training container starts, and both outcomes leave their JSON and HTML reports in MinIO."""

from __future__ import annotations

import io
import json

import yaml

from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from modelversion_artifacts import model_version, torchscript_bytes
from waiting import wait_for

OUT_OF_RANGE = 25.0  # no iris is 25 cm long


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def finished(cluster, name, namespace):
    tj = get_json(cluster, "trainingjob", name, "-n", namespace) or {}
    return tj if (tj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None


def expectations() -> dict:
    return {"columns": [
        {"name": "sepal_length", "type": "number", "min": 0, "max": 12, "maxMissing": 0},
        {"name": "petal_width", "type": "number", "min": 0, "max": 5},
        {"name": "species", "type": "string", "allowedValues": ["setosa", "versicolor", "virginica"]},
    ], "minRows": 100, "allowExtraColumns": True}


def with_sepal_length(data: bytes, every: int, value: float) -> tuple[bytes, int]:
    """The CSV with sepal_length set to `value` in every `every`-th data row; returns it and how many rows."""
    lines = data.decode().splitlines()
    changed = 0
    for i in range(1, len(lines)):
        if i % every == 0:
            lines[i] = ",".join([f"{value}", *lines[i].split(",")[1:]])
            changed += 1
    return ("\n".join(lines) + "\n").encode(), changed


def put(minio, key: str, data: bytes) -> None:
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", key, io.BytesIO(data), len(data))


def read_object(minio, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return minio.client().get_object(bucket, key).read()


def test_a_column_out_of_range_fails_the_job_before_any_training_container_runs(
        cluster, crds, operator, local_runtime, minio, namespace):
    data, changed = with_sepal_length(iris_like_csv(rows_per_class=100), every=8, value=OUT_OF_RANGE)
    put(minio, "dv-bad/iris.csv", data)
    rows = len(data.decode().splitlines()) - 1
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = training_job("dv-bad", namespace, "s3", epochs=1, node_selector=RUNTIME_LABEL, model="dvbad")
    tj["spec"]["dataset"]["uri"] = "s3://datasets/dv-bad/iris.csv"
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    tj["spec"]["dataValidation"] = expectations()
    # A user image's command (here one that would fail loudly): validation runs in front of it all the same.
    del tj["spec"]["trainer"]
    tj["spec"]["command"] = ["python", "-c", "raise SystemExit('the training container ran')"]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))

    tj = wait_for(lambda: finished(cluster, "dv-bad", namespace), "dv-bad to fail", timeout=300)
    status = tj["status"]
    assert status["phase"] == "Failed", status.get("message")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DataValidationFailed", status["message"]
    share = f"{100 * changed / rows:.3g}%"
    assert "sepal_length" in status["message"] and share in status["message"], status["message"]
    validated = next(c for c in status["conditions"] if c["type"] == "DataValidated")
    assert validated["status"] == "False" and validated["reason"] == "DataValidationFailed"
    dv = status["dataValidation"]
    assert dv["result"] == "DataValidationFailed" and dv["rows"] == rows
    assert [f["expectation"] for f in dv["failures"]] == ["range(sepal_length)"]
    assert dv["failures"][0]["column"] == "sepal_length"
    assert f"{share} of values outside [0, 12] ({changed} of {rows}" in dv["failures"][0]["message"]

    # No training container ever ran: the job failed on its first pod (the pod failure policy, not a retry),
    # whose trainer never left PodInitializing.
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "mlcycle.io/trainingjob=dv-bad")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    init = pods[0]["status"]["initContainerStatuses"][0]
    assert init["name"] == "validate-data" and init["state"]["terminated"]["exitCode"] == 3
    trainer = pods[0]["status"]["containerStatuses"][0]
    assert trainer["name"] == "trainer" and trainer["restartCount"] == 0 and not trainer.get("lastState")
    assert set(trainer["state"]) == {"waiting"}, trainer["state"]
    assert "the training container ran" not in json.dumps(status)

    # The report says the same, in MinIO next to the job's output.
    assert dv["reportUri"].startswith(f"s3://models/dvbad/dv-bad/{tj['metadata']['uid'][:8]}/data-validation/")
    doc = json.loads(read_object(minio, dv["reportUri"].replace("report.html", "report.json")))
    assert doc["result"] == "DataValidationFailed" and doc["failures"] == ["range(sepal_length)"]
    assert b"Data validation failed" in read_object(minio, dv["reportUri"])


def test_a_clean_dataset_passes_trains_and_leaves_its_reports_in_minio(
        cluster, crds, operator, local_runtime, minio, namespace):
    data = iris_like_csv(rows_per_class=100)
    put(minio, "dv-good/iris.csv", data)
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = training_job("dv-good", namespace, "s3", epochs=5, node_selector=RUNTIME_LABEL, model="dvgood")
    tj["spec"]["dataset"]["uri"] = "s3://datasets/dv-good/iris.csv"
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    tj["spec"]["dataValidation"] = expectations() | {"drift": {"againstAlias": "champion"}}
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))

    tj = wait_for(lambda: finished(cluster, "dv-good", namespace), "dv-good to finish", timeout=600)
    status = tj["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    validated = next(c for c in status["conditions"] if c["type"] == "DataValidated")
    assert validated["status"] == "True" and validated["reason"] == "Passed", validated
    dv = status["dataValidation"]
    assert dv["result"] == "Passed" and "failures" not in dv and dv["rows"] == 300
    assert dv["expectations"] == 11  # rows, 3 present, 3 types, 1 missing, 2 ranges, 1 allowed values

    doc = json.loads(read_object(minio, dv["reportUri"].replace("report.html", "report.json")))
    assert doc["result"] == "Passed" and doc["dataset"]["rows"] == 300
    assert {e["result"] for e in doc["expectations"]} == {"passed", "skipped"}
    # No version holds the alias yet: the drift comparison is skipped, and the report says why.
    drift = next(e for e in doc["expectations"] if e["expectation"] == "drift(champion)")
    assert drift["result"] == "skipped" and "no version of model dvgood holds alias champion" in drift["message"]
    page = read_object(minio, dv["reportUri"]).decode()
    assert "Data validated" in page and "range(sepal_length)" in page and "data:image/png;base64," in page


def test_drift_against_the_data_that_trained_the_champion_fails_a_shifted_dataset(
        cluster, crds, operator, local_runtime, minio, namespace):
    clean = iris_like_csv(rows_per_class=100)
    lines = clean.decode().splitlines()
    shifted = "\n".join([lines[0]] + [",".join([*(f"{float(v) + 3:.2f}" for v in line.split(",")[:4]),
                                                line.split(",")[4]]) for line in lines[1:]]) + "\n"
    put(minio, "dv-ref/iris.csv", clean)
    put(minio, "dv-shift/iris.csv", shifted.encode())
    artifact = torchscript_bytes()
    minio.client().put_object("models", "dvdrift/v1/model.pt", io.BytesIO(artifact), len(artifact))
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    # The champion: a version whose lineage names the clean data.
    champion = model_version("dvdrift-v1", namespace, "dvdrift", 1, "s3://models/dvdrift/v1/model.pt",
                             aliases=["champion"], source={"dataset": {"uri": "s3://datasets/dv-ref/iris.csv"}})
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, champion]))
    wait_for(lambda: "champion" in ((get_json(cluster, "modelversion", "dvdrift-v1", "-n", namespace) or {})
                                    .get("status") or {}).get("aliases", []),
             "dvdrift-v1 to hold the alias champion", timeout=180)

    tj = training_job("dv-drift", namespace, "s3", epochs=1, node_selector=RUNTIME_LABEL, model="dvdrift")
    tj["spec"]["dataset"]["uri"] = "s3://datasets/dv-shift/iris.csv"
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    tj["spec"]["dataValidation"] = {"drift": {"againstAlias": "champion"}}
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(tj))

    tj = wait_for(lambda: finished(cluster, "dv-drift", namespace), "dv-drift to fail", timeout=300)
    status = tj["status"]
    assert status["phase"] == "Failed", status.get("message")
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "DataValidationFailed"
    (failure,) = status["dataValidation"]["failures"]
    assert failure["expectation"] == "drift(champion)"
    assert failure["message"].startswith("4 of 4 drifted (100%) against the data of champion: ")
    doc = json.loads(read_object(minio, status["dataValidation"]["reportUri"].replace("report.html", "report.json")))
    assert doc["reference"]["modelVersion"] == "dvdrift-v1"
    assert doc["reference"]["uri"] == "s3://datasets/dv-ref/iris.csv" and doc["reference"]["rows"] == 300
    assert sorted(doc["drift"]["driftedColumns"]) == ["petal_length", "petal_width", "sepal_length", "sepal_width"]
