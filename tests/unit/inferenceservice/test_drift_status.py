import json
from datetime import UTC, datetime

import pytest

from mlcycle.inferenceservice import drift_status

pytestmark = pytest.mark.unit

DRIFTED = {
    "result": "DriftDetected", "message": "2 of 4 features drifted (50%; drift at 50%): c, x1",
    "checkTime": "2026-11-26T20:15:00Z", "method": "auto", "windowRows": 2000,
    "reportUri": "s3://logs/shop/iris/drift/20261126T201500Z/report.html",
    "score": 0.96, "share": 0.5, "driftShare": 0.5, "driftedFeatures": ["c", "x1"],
    "features": {"c": {"method": "jensenshannon", "score": 0.33, "drifted": True},
                 "x1": {"method": "wasserstein", "score": 0.96, "drifted": True},
                 "x2": {"method": "wasserstein", "score": 0.04, "drifted": False}},
}


def job(name: str, start: str, outcome: str | None = "Complete") -> dict:
    conditions = [{"type": outcome, "status": "True"}] if outcome else []
    return {"metadata": {"name": name}, "status": {"startTime": start, "conditions": conditions}}


def pod(message: str | None) -> dict:
    terminated = {"exitCode": 0} | ({"message": message} if message else {})
    return {"status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}


def test_the_latest_finished_job_is_read():
    jobs = [job("iris-drift-1", "2026-11-26T18:00:00Z"), job("iris-drift-3", "2026-11-26T20:00:00Z", None),
            job("iris-drift-2", "2026-11-26T19:00:00Z", "Failed")]
    assert drift_status.latest_finished_job(jobs)["metadata"]["name"] == "iris-drift-2"
    assert drift_status.latest_finished_job([job("x", "t", None)]) is None


def test_status_drift_from_the_termination_message():
    result = drift_status.check_result(job("iris-drift-1", "t"), [pod(json.dumps(DRIFTED))])
    status = drift_status.drift_status(result, "iris-drift-1", "auto")
    assert status == {
        "result": "DriftDetected", "job": "iris-drift-1", "method": "auto", "message": DRIFTED["message"],
        "lastCheckTime": "2026-11-26T20:15:00Z", "score": 0.96, "share": 0.5, "driftedFeatures": ["c", "x1"],
        "windowRows": 2000, "reportUri": DRIFTED["reportUri"],
    }


def test_a_pod_that_died_without_a_message_is_a_failed_check_that_says_so():
    failed = job("iris-drift-9", "t", "Failed")
    failed["status"]["conditions"][0]["message"] = "Job has reached the specified backoff limit"
    result = drift_status.check_result(failed, [pod(None)])
    assert result["result"] == "Failed" and "iris-drift-9 failed: Job has reached" in result["message"]


def test_drift_detected_condition_names_the_features_and_the_report():
    cond = drift_status.drift_condition(drift_status.drift_status(DRIFTED, "j", "auto"), generation=4)
    assert (cond["type"], cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "DriftDetected", "True", "DriftDetected", 4)
    assert cond["message"] == f"drifted: c, x1; report {DRIFTED['reportUri']}"


@pytest.mark.parametrize(("result", "status", "reason"), [
    ("NoDrift", "False", "NoDrift"),
    ("InsufficientData", "Unknown", "InsufficientData"),
    ("ReferenceMissing", "Unknown", "ReferenceMissing"),
    ("Failed", "Unknown", "CheckFailed"),
])
def test_a_check_that_found_no_drift_or_could_not_decide(result, status, reason):
    cond = drift_status.drift_condition({"result": result, "message": "only 300 logged row(s)"})
    assert (cond["status"], cond["reason"]) == (status, reason)
    if status == "Unknown":
        assert "only 300 logged row(s)" in cond["message"]


def test_no_drift_mentions_features_that_drifted_below_the_share():
    cond = drift_status.drift_condition({"result": "NoDrift", "driftedFeatures": ["x2"]})
    assert cond["message"] == "no drift (x2 drifted, below driftShare)"


def test_an_event_on_each_change_of_outcome_or_features_and_none_for_the_same_job():
    drifted = drift_status.drift_status(DRIFTED, "j2", "auto")
    assert drift_status.drift_events({"result": "NoDrift", "job": "j1"}, drifted) == [
        ("Warning", "DriftDetected", drift_status.drift_condition(drifted)["message"])]
    assert drift_status.drift_events(drifted, drifted) == []
    again = drifted | {"job": "j3"}
    assert drift_status.drift_events(drifted, again) == []
    calm = {"result": "NoDrift", "job": "j4", "message": "0 of 4"}
    assert drift_status.drift_events(drifted, calm)[0][:2] == ("Normal", "NoDrift")


def test_feature_scores_for_the_metrics():
    assert drift_status.feature_scores(DRIFTED) == {"c": (0.33, True), "x1": (0.96, True), "x2": (0.04, False)}


def test_observe_a_new_check_once():
    finished = job("iris-drift-5", "2026-11-26T20:15:00Z")
    seen = drift_status.observe({"result": "NoDrift", "job": "iris-drift-4"}, finished, [pod(json.dumps(DRIFTED))],
                                "auto", generation=2)
    assert seen.drift["job"] == "iris-drift-5" and seen.condition["status"] == "True"
    assert [e[1] for e in seen.events] == ["DriftDetected"] and seen.scores["x1"] == (0.96, True)
    assert seen.check_time == datetime(2026, 11, 26, 20, 15, tzinfo=UTC).timestamp()
    assert drift_status.observe(seen.drift, finished, [pod(json.dumps(DRIFTED))], "auto") is None
