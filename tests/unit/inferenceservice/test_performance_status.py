import json
from datetime import UTC, datetime

import pytest

from factories import inferenceservice_spec
from mlcycle.inferenceservice import monitoring, performance_status, retrain
from unit.inferenceservice.factories import isvc, model_version

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 20, 30, tzinfo=UTC)
PERFORMANCE = {"labels": "s3://labels/iris/", "metric": "accuracy", "threshold": 0.8, "minLabelledRows": 50}
PERF_URI = "s3://logs/requests/ns/iris/drift/20261126T201500Z/performance.json"
DEGRADED = {"result": "PerformanceDegraded", "metric": "accuracy", "value": 0.62, "threshold": 0.8,
            "coverage": 0.78, "labelledRows": 312, "windowRows": 400, "reportUri": PERF_URI,
            "message": "accuracy 0.62 below the threshold 0.8; 312 of 400 logged prediction(s) labelled (78%)"}
CHECK = {"result": "NoDrift", "message": "0 of 4 features drifted", "checkTime": "2026-11-26T20:15:00Z",
         "method": "auto", "windowRows": 500,
         "reportUri": "s3://logs/requests/ns/iris/drift/20261126T201500Z/report.html"}


def job(name: str = "iris-drift-1") -> dict:
    return {"metadata": {"name": name}, "status": {"startTime": "2026-11-26T20:15:00Z",
                                                   "conditions": [{"type": "Complete", "status": "True"}]}}


def pod(document: dict, job_name: str = "iris-drift-1") -> dict:
    terminated = {"exitCode": 0, "message": json.dumps(document)}
    return {"metadata": {"name": f"{job_name}-x", "labels": {"job-name": job_name}},
            "status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}


def test_status_performance_from_the_checks_result():
    status = performance_status.performance_status(CHECK | {"performance": DEGRADED}, "iris-drift-1")
    assert status == {"result": "PerformanceDegraded", "job": "iris-drift-1", "message": DEGRADED["message"],
                      "lastCheckTime": "2026-11-26T20:15:00Z", "metric": "accuracy", "value": 0.62,
                      "threshold": 0.8, "coverage": 0.78, "labelledRows": 312, "windowRows": 400,
                      "reportUri": PERF_URI}


def test_a_check_without_performance_is_a_failed_one_that_says_why():
    failed = {"result": "Failed", "message": "storage unreachable", "checkTime": "2026-11-26T20:15:00Z"}
    status = performance_status.performance_status(failed, "iris-drift-2")
    assert status["result"] == "Failed" and "reported no performance: storage unreachable" in status["message"]
    cond = performance_status.performance_condition(status)
    assert (cond["status"], cond["reason"]) == ("Unknown", "CheckFailed")


@pytest.mark.parametrize(("result", "status", "reason"), [
    ("PerformanceDegraded", "True", "PerformanceDegraded"), ("WithinThreshold", "False", "WithinThreshold"),
    ("InsufficientData", "Unknown", "InsufficientData"), ("Failed", "Unknown", "CheckFailed"),
])
def test_the_condition_carries_the_value_threshold_and_coverage(result, status, reason):
    cond = performance_status.performance_condition(DEGRADED | {"result": result}, generation=3)
    assert (cond["type"], cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "PerformanceDegraded", status, reason, 3)
    assert "0.62" in cond["message"] and "0.8" in cond["message"] and "(78%)" in cond["message"]
    assert cond["message"].endswith(f"report {PERF_URI}")


def test_an_event_only_when_a_new_check_changes_the_outcome():
    first = DEGRADED | {"job": "j1"}
    assert performance_status.performance_events(None, first)[0][:2] == ("Warning", "PerformanceDegraded")
    assert performance_status.performance_events(first, first | {"job": "j2"}) == []
    better = {"result": "WithinThreshold", "job": "j3", "message": "accuracy 0.9 at or above"}
    assert performance_status.performance_events(first, better)[0][:2] == ("Normal", "WithinThreshold")


def test_observing_the_same_job_twice_changes_nothing():
    seen = performance_status.observe(None, job(), [pod(CHECK | {"performance": DEGRADED})])
    assert seen.gauges == performance_status.Gauges("accuracy", 0.62, 0.78)
    assert performance_status.observe(seen.performance, job(), [pod(CHECK)]) is None


def watch(document: dict, status: dict | None = None, **spec):
    obj = isvc(status, **spec)
    parsed = inferenceservice_spec(**spec)
    return monitoring.monitoring(obj, parsed, model_version(1), [job()], [pod(document)], NOW)


def test_degraded_performance_under_policy_auto_starts_a_retrain_named_after_the_check():
    out = watch(CHECK | {"performance": DEGRADED}, monitoring={"drift": {"schedule": "@hourly"},
                                                               "performance": PERFORMANCE})
    assert out.status["performance"]["result"] == "PerformanceDegraded"
    assert {c["type"]: c["status"] for c in out.conditions} == {
        "DriftDetected": "False", "PerformanceDegraded": "True", "RetrainTriggered": "True"}
    tj = out.training_job
    assert tj["metadata"]["labels"]["mlcycle.io/drift-report"] == "20261126T201500Z"
    assert tj["metadata"]["annotations"]["mlcycle.io/drift-report-uri"] == PERF_URI
    assert out.status["retrain"]["reason"] == "PerformanceDegraded"
    assert out.performance == performance_status.Gauges("accuracy", 0.62, 0.78)
    assert ("Warning", "PerformanceDegraded", performance_status.performance_condition(
        out.status["performance"])["message"]) in out.events


def test_the_cooldown_drift_keeps_holds_for_degraded_performance_too():
    status = {"retrain": {"lastTriggered": "2026-11-26T20:00:00Z", "cause": "20261126T190000Z"}}
    out = watch(CHECK | {"performance": DEGRADED}, status, monitoring={"drift": {"schedule": "@hourly"},
                                                                       "performance": PERFORMANCE})
    assert out.training_job is None
    waiting = next(c for c in out.conditions if c["type"] == "RetrainTriggered")
    assert waiting["reason"] == "Cooldown" and waiting["message"].startswith("performance degraded, but")


def test_drift_and_degradation_in_one_check_start_one_retrain_for_the_drift():
    drifted = CHECK | {"result": "DriftDetected", "driftedFeatures": ["a"]}
    out = watch(drifted | {"performance": DEGRADED}, monitoring={"drift": {"schedule": "@hourly"},
                                                                 "performance": PERFORMANCE})
    assert out.status["retrain"]["reason"] == "DriftDetected"
    again = watch(drifted | {"performance": DEGRADED}, out.status,
                  monitoring={"drift": {"schedule": "@hourly"}, "performance": PERFORMANCE})
    assert again.training_job is None


@pytest.mark.parametrize("result", ["InsufficientData", "WithinThreshold", "Failed"])
def test_no_retrain_without_a_degradation_verdict(result):
    out = watch(CHECK | {"performance": DEGRADED | {"result": result}},
                monitoring={"drift": {"schedule": "@hourly"}, "performance": PERFORMANCE})
    assert out.training_job is None and out.status["performance"]["result"] == result


def test_without_spec_performance_the_result_is_ignored_and_an_old_status_dropped():
    out = watch(CHECK | {"performance": DEGRADED}, {"performance": DEGRADED | {"job": "old"}})
    assert "performance" not in out.status and out.training_job is None and out.performance is None


def test_decide_reads_a_degraded_performance_status():
    decision = retrain.decide("iris", inferenceservice_spec(), {"performance": DEGRADED}, {}, NOW)
    assert (decision.reason, decision.cause, decision.report_uri) == (
        "PerformanceDegraded", "20261126T201500Z", PERF_URI)
    assert retrain.report_id(PERF_URI) == "20261126T201500Z"
