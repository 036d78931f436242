from datetime import UTC, datetime, timedelta

import pytest

from factories import inferenceservice_spec
from mlcycle.inferenceservice import retrain

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 20, 30, tzinfo=UTC)
REPORT = "s3://logs/requests/shop/iris/drift/20261126T201500Z/report.html"
DRIFTED = {"drift": {"result": "DriftDetected", "job": "iris-drift-1", "reportUri": REPORT}}


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", timedelta(hours=24)), ("90m", timedelta(minutes=90)), ("1h30m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)), ("2d", timedelta(days=2)),
])
def test_parse_duration(text, expected):
    assert retrain.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1 day", "h", "10"])
def test_parse_duration_refuses_what_the_api_refuses(text):
    with pytest.raises(ValueError):
        retrain.parse_duration(text)


def test_drift_under_policy_auto_starts_a_retrain_named_after_its_report():
    decision = retrain.decide("iris", inferenceservice_spec(), DRIFTED, {}, NOW)
    assert isinstance(decision, retrain.Decision)
    assert (decision.reason, decision.cause, decision.report_uri) == ("DriftDetected", "20261126T201500Z", REPORT)
    assert decision.name == retrain.decide("iris", inferenceservice_spec(), DRIFTED, {}, NOW).name
    assert decision.name.startswith("iris-retrain-") and len(decision.name) <= 52


def test_the_cooldown_holds_and_then_lets_the_next_drift_through():
    status = DRIFTED | {"retrain": {"lastTriggered": "2026-11-26T10:00:00Z", "cause": "20261126T090000Z"}}
    waiting = retrain.decide("iris", inferenceservice_spec(), status, {}, NOW)
    assert isinstance(waiting, retrain.Waiting) and "allows the next in 13h30m" in waiting.message
    later = retrain.decide("iris", inferenceservice_spec(), status, {}, NOW + timedelta(hours=14))
    assert isinstance(later, retrain.Decision)


def test_the_check_that_already_started_a_retrain_does_not_start_another():
    status = DRIFTED | {"retrain": {"lastTriggered": "2026-11-20T10:00:00Z", "cause": "20261126T201500Z"}}
    assert retrain.decide("iris", inferenceservice_spec(), status, {}, NOW) is None


@pytest.mark.parametrize("drift", [{"result": "NoDrift"}, {"result": "InsufficientData"}, None])
def test_no_retrain_without_detected_drift(drift):
    assert retrain.decide("iris", inferenceservice_spec(), {"drift": drift}, {}, NOW) is None


def test_policy_manual_only_reports_drift():
    spec = inferenceservice_spec(retrain={"policy": "Manual", "template": inferenceservice_spec().retrain.template})
    assert retrain.decide("iris", spec, DRIFTED, {}, NOW) is None


def test_a_new_request_annotation_value_starts_one_once_under_any_policy_and_cooldown():
    spec = inferenceservice_spec(retrain={"policy": "Manual", "template": inferenceservice_spec().retrain.template})
    annotations = {"mlcycle.io/retrain-requested": "1764188000"}
    status = {"retrain": {"lastTriggered": "2026-11-26T20:29:00Z"}}
    decision = retrain.decide("iris", spec, status, annotations, NOW)
    assert isinstance(decision, retrain.Decision) and decision.reason == "Requested"
    after = {"retrain": retrain.retrain_status(decision, NOW, status["retrain"])}
    assert after["retrain"]["lastRequest"] == "1764188000"
    assert retrain.decide("iris", spec, after, annotations, NOW) is None


def test_the_training_job_carries_the_template_and_its_lineage():
    spec = inferenceservice_spec()
    decision = retrain.decide("iris", spec, DRIFTED, {}, NOW)
    tj = retrain.desired_training_job("iris", "shop", spec, decision)
    assert (tj["apiVersion"], tj["kind"]) == ("mlcycle.io/v1alpha1", "TrainingJob")
    assert tj["metadata"]["name"] == decision.name and tj["metadata"]["namespace"] == "shop"
    assert tj["metadata"]["labels"]["mlcycle.io/inferenceservice"] == "iris"
    assert tj["metadata"]["labels"]["mlcycle.io/drift-report"] == "20261126T201500Z"
    assert tj["metadata"]["annotations"] == {"mlcycle.io/drift-report-uri": REPORT}
    assert tj["spec"] == spec.retrain.template.to_api() and "ownerReferences" not in tj["metadata"]


def test_retrain_status_records_when_which_and_why():
    decision = retrain.decide("iris", inferenceservice_spec(), DRIFTED, {}, NOW)
    assert retrain.retrain_status(decision, NOW) == {
        "lastTriggered": "2026-11-26T20:30:00Z", "trainingJobRef": {"name": decision.name},
        "reason": "DriftDetected", "cause": "20261126T201500Z"}


def test_names_of_long_services_stay_short():
    name = retrain.retrain_name("a-very-long-inference-service-name-for-the-fraud-model", "x")
    assert len(name) <= 52 and "-retrain-" in name
