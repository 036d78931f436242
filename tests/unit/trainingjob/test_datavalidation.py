import json

import pytest
from pydantic import ValidationError

from factories import trainingjob_spec as spec
from mlcycle.api.trainingjob import TrainingJobSpec
from mlcycle.conditions import find
from mlcycle.trainingjob import datavalidation
from mlcycle.trainingjob.manifests import desired_job
from mlcycle.trainingjob.status import training_status

EXPECTATIONS = {"columns": [{"name": "sepal_length", "min": 0, "max": 10}], "minRows": 10}


def validating(**drift) -> TrainingJobSpec:
    dv = EXPECTATIONS | ({"drift": drift} if drift else {})
    return spec(dataValidation=dv, registerModel={"name": "iris"})


def mv(name, aliases, dataset=None, model="iris"):
    return {"metadata": {"name": name}, "spec": {"modelName": model, "source": {"dataset": dataset} if dataset else {}},
            "status": {"aliases": aliases}}


def test_the_drift_reference_is_the_dataset_in_the_alias_holders_lineage_with_its_format():
    versions = [mv("iris-v1", []), mv("iris-v2", ["champion"], {"uri": "s3://data/old/part.parquet",
                                                                  "digest": "sha256:" + "a" * 64}),
                mv("other-v1", ["champion"], {"uri": "s3://x/y.csv"}, model="other")]
    ref = datavalidation.drift_reference(validating(againstAlias="champion"), versions)
    assert ref == {"alias": "champion", "model": "iris", "modelVersion": "iris-v2", "uri": "s3://data/old/part.parquet",
                   "format": "parquet", "digest": "sha256:" + "a" * 64}
    # A prefix has no extension: the job's own format.
    versions = [mv("iris-v2", ["champion"], {"uri": "s3://data/old/"})]
    assert datavalidation.drift_reference(validating(againstAlias="champion"), versions)["format"] == "csv"


def test_without_a_holder_or_a_lineage_the_drift_check_is_skipped_and_says_why():
    assert datavalidation.drift_reference(validating(againstAlias="champion"), [mv("iris-v1", [])])["skipped"] == (
        "no version of model iris holds alias champion yet")
    ref = datavalidation.drift_reference(validating(againstAlias="champion"), [mv("iris-v1", ["champion"])])
    assert ref["skipped"] == "the lineage of iris-v1 names no dataset (spec.source.dataset)"
    assert datavalidation.drift_reference(validating(), []) is None


def test_drift_needs_a_model():
    with pytest.raises(ValidationError, match="drift needs a model"):
        spec(dataValidation={"drift": {"againstAlias": "champion"}})
    assert spec(dataValidation={"drift": {"againstAlias": "champion", "model": "iris"}}).data_validation.drift


def test_every_worker_validates_first_in_the_mlcycle_image_and_bad_data_fails_the_job_at_once():
    reference = {"alias": "champion", "model": "iris", "skipped": "none yet"}
    job = desired_job("iris", "ns", "0123456789", validating(againstAlias="champion").model_copy(
        update={"image": "user/trainer:1", "command": ["python", "train.py"], "workers": 2}),
        "ghcr.io/mlcycle/mlcycle:1", "ghcr.io/mlcycle/mlcycle:1", reference)
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["name"] == "validate-data" and init["image"] == "ghcr.io/mlcycle/mlcycle:1"
    assert pod["containers"][0]["image"] == "user/trainer:1"
    assert init["command"] == ["mlcycle", "validate-data"]
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert json.loads(env["MLCYCLE_DATA_VALIDATION"])["columns"][0]["name"] == "sepal_length"
    assert env["MLCYCLE_OUTPUT_URI"] == "s3://models/iris/01234567"
    assert "nvidia.com/gpu" not in json.dumps(init["resources"])
    assert datavalidation.job_reference(job) == reference
    assert job["spec"]["podFailurePolicy"]["rules"][0] == {"action": "FailJob", "onExitCodes": {
        "containerName": "validate-data", "operator": "In", "values": [3]}}


def test_without_data_validation_the_pod_is_unchanged():
    job = desired_job("iris", "ns", "0123456789", spec())
    assert "initContainers" not in job["spec"]["template"]["spec"] and "podFailurePolicy" not in job["spec"]


def pod(message: str | None, exit_code: int = 3, phase: str = "Failed"):
    terminated = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}
    if message is not None:
        terminated["message"] = message
    return {"metadata": {"name": "iris-0", "annotations": {}}, "status": {
        "phase": phase,
        "initContainerStatuses": [{"name": "validate-data", "state": {"terminated": terminated}}],
        "containerStatuses": [{"name": "trainer", "state": {"waiting": {"reason": "PodInitializing"}}}]}}


FAILED = {"dataValidation": {
    "result": "DataValidationFailed", "message": "1 of 3 expectations failed: sepal_length: 12% of values outside",
    "rows": 300, "expectations": 3, "reportUri": "s3://models/iris/01234567/data-validation/report.html",
    "failures": [{"expectation": "range(sepal_length)", "column": "sepal_length", "message": "12% outside"},
                 {"expectation": 5, "message": "not a name"}]}}


def test_the_validation_result_is_read_from_the_init_containers_termination_message():
    result = datavalidation.validation_result([pod(json.dumps(FAILED))])
    assert result["result"] == "DataValidationFailed" and result["rows"] == 300
    assert result["failures"] == [{"expectation": "range(sepal_length)", "column": "sepal_length",
                                   "message": "12% outside"}]  # what the schema would refuse is left out
    passed = json.dumps({"dataValidation": {"result": "Passed", "message": "3 expectations met"}})
    assert datavalidation.validation_result([pod(passed, 0, "Running"), pod(json.dumps(FAILED))])["result"] == (
        "DataValidationFailed")
    assert datavalidation.validation_result([pod("a log tail"), pod(None)]) is None


def failed_job():
    return {"spec": {}, "status": {"failed": 1, "startTime": "t", "conditions": [
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "Container validate-data ..."}]}}


def test_a_job_failed_by_validation_says_so_with_the_failing_expectations():
    s = training_status(validating(), 1, failed_job(), [pod(json.dumps(FAILED))], None)
    assert s["phase"] == "Failed"
    assert find(s["conditions"], "Ready")["reason"] == "DataValidationFailed"
    assert "sepal_length: 12% of values outside" in s["message"] and "report.html" in s["message"]
    validated = find(s["conditions"], "DataValidated")
    assert validated["status"] == "False" and validated["reason"] == "DataValidationFailed"
    assert s["dataValidation"]["failures"][0]["expectation"] == "range(sepal_length)"


def test_data_validated_is_unknown_until_validation_ran_then_true_and_kept():
    s = training_status(validating(), 1, {"spec": {}, "status": {"active": 1}}, [], None)
    assert find(s["conditions"], "DataValidated")["status"] == "Unknown"
    passed = pod(json.dumps({"dataValidation": {"result": "Passed", "message": "3 expectations met"}}), 0, "Running")
    s = training_status(validating(), 1, {"spec": {}, "status": {"active": 1}}, [passed], s)
    assert find(s["conditions"], "DataValidated")["status"] == "True"
    s = training_status(validating(), 1, {"spec": {}, "status": {"active": 1}}, [], s)  # the pod is gone
    assert s["dataValidation"]["result"] == "Passed"
    assert find(training_status(spec(), 1, None, [], None)["conditions"], "DataValidated") is None


def test_a_validation_that_could_not_run_fails_with_its_own_reason():
    message = json.dumps({"error": {"reason": "DatasetNotFound", "message": "dataset not found: s3://data/x.csv"}})
    j = failed_job()
    j["status"]["conditions"][0]["reason"] = "BackoffLimitExceeded"
    s = training_status(validating(), 1, j, [pod(message, 1)], None)
    assert find(s["conditions"], "Ready")["reason"] == "DatasetNotFound" and "s3://data/x.csv" in s["message"]
