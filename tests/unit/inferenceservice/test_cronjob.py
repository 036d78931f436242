import json

import pytest

from factories import inferenceservice_spec
from mlcycle.inferenceservice import cronjob

pytestmark = pytest.mark.unit

ARTIFACT = "s3://models/iris/train-1/ab12cd34/model.pt"


def desired(spec=None, **kwargs):
    return cronjob.desired_cronjob("iris", "shop", "uid-1", spec or inferenceservice_spec(),
                                   served_version="iris-v3", artifact_uri=ARTIFACT, **kwargs)


def env_of(obj) -> dict:
    container = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_cronjob_runs_mlcycle_drift_on_the_spec_schedule_one_at_a_time(monkeypatch):
    monkeypatch.setenv("MLCYCLE_IMAGE", "registry.local/mlcycle:dev")
    obj = desired()
    assert obj["metadata"]["name"] == "iris-drift" and obj["metadata"]["namespace"] == "shop"
    assert obj["metadata"]["ownerReferences"] == [{
        "apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService", "name": "iris", "uid": "uid-1",
        "controller": True, "blockOwnerDeletion": True}]
    spec = obj["spec"]
    assert spec["schedule"] == "@hourly" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == spec["failedJobsHistoryLimit"] == 3
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and "nodeSelector" not in pod and "tolerations" not in pod
    container = pod["containers"][0]
    assert container["image"] == "registry.local/mlcycle:dev" and container["command"] == ["mlcycle", "drift"]
    assert container["terminationMessagePath"] == "/dev/termination-log"


def test_the_check_reads_the_served_versions_logs_and_the_profile_next_to_its_artifact():
    env = env_of(desired())
    assert env["MLCYCLE_DRIFT_LOGS"] == "s3://logs/requests/shop/iris/iris-v3/"
    assert env["MLCYCLE_DRIFT_REFERENCE"] == "s3://models/iris/train-1/ab12cd34/reference_profile.json"
    assert env["MLCYCLE_DRIFT_REPORTS"] == "s3://logs/requests/shop/iris/drift/"
    assert (env["MLCYCLE_DRIFT_WINDOW"], env["MLCYCLE_DRIFT_METHOD"], env["MLCYCLE_DRIFT_SHARE"]) == ("500", "auto",
                                                                                                       "0.5")
    assert "MLCYCLE_DRIFT_THRESHOLD" not in env and "MLCYCLE_DRIFT_FEATURES" not in env
    assert env["MLCYCLE_TERMINATION_LOG"] == "/dev/termination-log"


def test_storage_credentials_come_from_the_secret_by_reference():
    env = env_of(desired())
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3-creds", "key": "secretKey"}}
    assert env["MLCYCLE_S3_ENDPOINT"] == {"secretKeyRef": {"name": "s3-creds", "key": "endpoint"}}


def test_an_explicit_reference_method_threshold_and_features_are_passed_on():
    spec = inferenceservice_spec(monitoring={"drift": {
        "schedule": "*/15 * * * *", "reference": "s3://data/ref/", "method": "ks", "threshold": 0.01,
        "driftShare": 0.3, "features": ["a", "b,c"]}})
    env = env_of(desired(spec))
    assert env["MLCYCLE_DRIFT_REFERENCE"] == "s3://data/ref/"
    assert (env["MLCYCLE_DRIFT_METHOD"], env["MLCYCLE_DRIFT_THRESHOLD"], env["MLCYCLE_DRIFT_SHARE"]) == ("ks", "0.01",
                                                                                                          "0.3")
    assert json.loads(env["MLCYCLE_DRIFT_FEATURES"]) == ["a", "b,c"]


def test_pods_select_and_tolerate_a_node_only_when_the_caller_places_them():
    toleration = {"key": "mlcycle.io/local-runtime", "operator": "Exists", "effect": "NoSchedule"}
    obj = desired(node_selector={"mlcycle.io/local-runtime": "true"}, tolerations=[toleration])
    pod = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"mlcycle.io/local-runtime": "true"} and pod["tolerations"] == [toleration]


def test_no_cronjob_without_drift_monitoring():
    assert desired(inferenceservice_spec(monitoring=None, retrain=None)) is None


def test_long_names_stay_short_enough_for_the_jobs_the_cronjob_creates():
    long_name = "a-very-long-inference-service-name-for-the-fraud-model"
    name = cronjob.cronjob_name(long_name)
    assert len(name) <= 52 and name.endswith("-drift") and name == cronjob.cronjob_name(long_name)
    assert name != cronjob.cronjob_name(long_name + "x")


def test_the_jobs_and_pods_of_the_check_are_found_by_the_service_label():
    obj = desired()
    selector = dict(kv.split("=") for kv in cronjob.job_selector("iris").split(","))
    assert selector.items() <= obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"].items()
    assert selector.items() <= obj["spec"]["jobTemplate"]["metadata"]["labels"].items()


def test_performance_monitoring_passes_its_inputs_to_the_same_check():
    spec = inferenceservice_spec(monitoring={"drift": {"schedule": "@hourly"}, "performance": {
        "labels": "s3://labels/iris/", "metric": "f1", "threshold": 0.7, "window": "7d", "labelColumn": "species",
        "classes": ["setosa", "versicolor"]}})
    env = env_of(desired(spec))
    assert {k: v for k, v in env.items() if k.startswith("MLCYCLE_PERF_")} == {
        "MLCYCLE_PERF_LABELS": "s3://labels/iris/", "MLCYCLE_PERF_METRIC": "f1", "MLCYCLE_PERF_THRESHOLD": "0.7",
        "MLCYCLE_PERF_WINDOW": "7d", "MLCYCLE_PERF_MIN_LABELLED_ROWS": "100", "MLCYCLE_PERF_ID_COLUMN": "request_id",
        "MLCYCLE_PERF_LABEL_COLUMN": "species", "MLCYCLE_PERF_CLASSES": '["setosa", "versicolor"]'}
    assert not any(k.startswith("MLCYCLE_PERF_") for k in env_of(desired()))
