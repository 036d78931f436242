"""The rollout state machine: promote through the steps, abort on failing analyses (naming the metric),
manual actions, inconclusive analyses without traffic, and no retry of a failed version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlcycle.api.inferenceservice import ROLLOUT_ABORTED, InferenceServiceSpec, Rollout
from mlcycle.inferenceservice.analysis import Measurement
from mlcycle.inferenceservice.rollout import (
    ABORT,
    PROMOTE,
    Observation,
    RolloutDecision,
    analysis_due,
    duration_seconds,
    next_rollout,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
ROLLOUT = Rollout.model_validate({
    "steps": [{"weight": 10, "pause": "2m"}, {"weight": 50, "pause": "2m"}],
    "analysis": {"interval": "1m", "successRateMin": 0.99, "latencyP99MaxMs": 250, "failureLimit": 2,
                 "minRequests": 10},
    "progressDeadline": "5m",
})
GOOD = Measurement(requests=100, failures=0, latency_p99_ms=12.0)
ERRORS = Measurement(requests=100, failures=20, latency_p99_ms=12.0)
SLOW = Measurement(requests=100, failures=0, latency_p99_ms=480.0)
IDLE = Measurement(requests=0, failures=0)


class Run:
    """Drives the state machine like the handler: feeds each decision's status back in."""

    def __init__(self, rollout: Rollout = ROLLOUT, stable: str = "iris-v1", desired: str = "iris-v2"):
        self.rollout, self.stable, self.desired, self.generation = rollout, stable, desired, 1
        self.status = None
        self.decision: RolloutDecision | None = None

    def at(self, minutes: float, **obs) -> RolloutDecision:
        fields = {"now": T0 + timedelta(minutes=minutes), "generation": self.generation, "stable": self.stable,
                  "desired": self.desired, "candidate_ready": True} | obs
        self.decision = next_rollout(self.rollout, self.status, Observation(**fields))
        self.status = self.decision.status
        return self.decision


def reasons(decision: RolloutDecision) -> list[str]:
    return [e.reason for e in decision.events]


def test_the_first_version_and_the_served_version_need_no_rollout():
    assert next_rollout(ROLLOUT, None, Observation(T0, 1, None, "iris-v1")) == RolloutDecision(None, 0)
    assert next_rollout(ROLLOUT, None, Observation(T0, 1, "iris-v1", "iris-v1")).status is None


def test_a_good_version_is_promoted_through_every_step():
    run = Run()
    d = run.at(0, candidate_ready=False)
    assert (d.status.phase, d.weight, d.status.step_start_time) == ("Progressing", 0, None)
    assert reasons(d) == ["RolloutStarted"]
    assert "waiting for the pods of iris-v2" in d.status.message

    d = run.at(1)  # pods ready: step 1
    assert (d.status.step, d.weight) == (0, 10) and reasons(d) == ["RolloutStep"]
    assert d.requeue_after == 60
    assert not analysis_due(ROLLOUT, run.status, T0 + timedelta(minutes=1.5))
    assert analysis_due(ROLLOUT, run.status, T0 + timedelta(minutes=2))

    d = run.at(2, measurement=GOOD)
    assert (d.status.step, d.weight, d.status.last_analysis.phase) == (0, 10, "Successful")
    assert d.measurement_used and d.status.last_analysis.success_rate == 1.0
    d = run.at(3, measurement=GOOD)  # the pause is over and the analysis passed: step 2
    assert (d.status.step, d.weight, d.status.message) == (1, 50, "step 2 of 2: iris-v2 at 50%")
    d = run.at(4, measurement=GOOD)
    assert d.weight == 50
    d = run.at(5, measurement=GOOD)
    assert (d.status.phase, d.weight, d.promoted) == ("Promoted", 100, True)
    assert reasons(d) == ["RolloutPromoted"] and "all 2 steps passed" in d.status.message
    assert d.condition["status"] == "False" and d.condition["reason"] == "Promoted"
    assert run.at(5.5).weight == 100  # until the handler switches

    run.stable = "iris-v2"  # the handler made it the served version
    d = run.at(6)
    assert (d.status.phase, d.weight) == ("Promoted", 0)


def test_a_step_does_not_end_without_a_passing_analysis_taken_during_it():
    run = Run()
    run.at(0)
    d = run.at(10)  # long past the pause, but never analysed
    assert (d.status.step, d.weight) == (0, 10)
    assert run.at(10.5, measurement=GOOD).status.step == 1


def test_no_traffic_is_inconclusive_and_the_step_waits():
    run = Run()
    run.at(0)
    d = run.at(1, measurement=IDLE)
    assert d.status.last_analysis.phase == "Inconclusive" and d.status.failures == 0
    d = run.at(2, measurement=IDLE)
    assert (d.status.phase, d.status.step, d.weight) == ("Progressing", 0, 10)
    assert "waiting for a conclusive analysis (0 requests to the candidate, fewer than minRequests 10)" \
        in d.status.message
    assert run.at(3, measurement=GOOD).status.step == 1


def test_a_failing_success_rate_aborts_at_the_failure_limit_and_names_the_metric():
    run = Run()
    run.at(0)
    d = run.at(1, measurement=ERRORS)
    assert (d.status.phase, d.weight, d.status.failures) == ("Progressing", 10, 1)
    assert reasons(d) == ["AnalysisFailed"] and d.events[0].type == "Warning"
    d = run.at(2, measurement=ERRORS)
    assert (d.status.phase, d.weight, d.status.failed_version) == ("Aborted", 0, "iris-v2")
    assert d.condition["type"] == ROLLOUT_ABORTED and d.condition["status"] == "True"
    assert d.condition["reason"] == "AnalysisFailed"
    assert "successRate 0.8000 < successRateMin 0.99 (20 of 100 requests failed)" in d.condition["message"]
    assert "failed 2 time(s) (failureLimit 2)" in d.condition["message"]
    assert d.status.message.startswith("rolled back to iris-v1")
    assert reasons(d)[-1] == "RolloutAborted"


def test_slow_p99_latency_fails_the_analysis():
    run = Run()
    run.at(0)
    run.at(1, measurement=SLOW)
    d = run.at(2, measurement=SLOW)
    assert d.status.phase == "Aborted"
    assert "latencyP99Ms 480.0 > latencyP99MaxMs 250" in d.condition["message"]
    assert d.status.last_analysis.latency_p99_ms == 480.0


def test_a_p99_above_every_bucket_fails_and_is_not_written_as_a_number():
    run = Run(Rollout.model_validate({"steps": [{"weight": 10, "pause": "1m"}],
                                      "analysis": {"latencyP99MaxMs": 100, "failureLimit": 1}}))
    run.at(0)
    d = run.at(1, measurement=Measurement(100, 0, float("inf")))
    assert "latencyP99Ms above the highest histogram bucket" in d.condition["message"]
    assert d.status.last_analysis.latency_p99_ms is None
    d.status.to_api()  # serialisable for the status patch


def test_a_failure_below_the_limit_does_not_stop_the_walk():
    run = Run()
    run.at(0)
    run.at(1, measurement=ERRORS)
    d = run.at(2, measurement=GOOD)
    assert (d.status.phase, d.status.step, d.status.failures) == ("Progressing", 1, 1)


def test_an_aborted_version_is_not_retried_until_the_spec_or_alias_changes():
    run = Run()
    run.at(0)
    run.at(1, measurement=ERRORS)
    run.at(2, measurement=ERRORS)
    d = run.at(30)
    assert (d.status.phase, d.weight, d.events, d.condition) == ("Aborted", 0, (), None)

    run.generation = 2  # the spec changed: try again
    d = run.at(31)
    assert (d.status.phase, d.status.failed_version, d.weight) == ("Progressing", None, 10)
    assert reasons(d) == ["RolloutStarted", "RolloutStep"]


def test_the_alias_moving_on_starts_a_rollout_of_the_new_version():
    run = Run()
    run.at(0)
    run.at(1, measurement=ERRORS)
    run.at(2, measurement=ERRORS)
    run.desired = "iris-v3"
    d = run.at(3)
    assert (d.status.candidate, d.status.phase, d.status.failed_version) == ("iris-v3", "Progressing", None)


def test_the_alias_moving_back_withdraws_the_rollout():
    run = Run()
    run.at(0)
    run.desired = "iris-v1"
    d = run.at(1)
    assert (d.status.phase, d.weight, reasons(d)) == ("Aborted", 0, ["RolloutWithdrawn"])
    assert d.condition["status"] == "False" and d.status.failed_version is None


def test_manual_promote_skips_the_remaining_steps():
    run = Run()
    run.at(0)
    d = run.at(0.5, action=PROMOTE)
    assert (d.status.phase, d.weight, d.action_done) == ("Promoted", 100, True)
    assert "promoted by the annotation mlcycle.io/rollout-action: promote" in d.status.message


def test_manual_abort_rolls_back_and_remembers_the_version():
    run = Run()
    run.at(0)
    d = run.at(0.5, action=ABORT)
    assert (d.status.phase, d.weight, d.action_done, d.status.failed_version) == ("Aborted", 0, True, "iris-v2")
    assert d.condition["reason"] == "ManualAbort"


def test_manual_promote_overrides_a_remembered_failure():
    run = Run()
    run.at(0, action=ABORT)
    assert run.at(1).status.phase == "Aborted"
    assert run.at(2, action=PROMOTE).status.phase == "Promoted"


def test_an_unknown_action_is_consumed_and_ignored():
    run = Run()
    d = run.at(0, action="yolo")
    assert d.action_done and d.status.phase == "Progressing"


def test_a_step_without_a_pause_waits_for_manual_promotion():
    run = Run(Rollout.model_validate({"steps": [{"weight": 20}]}))
    d = run.at(0)
    assert (d.status.phase, d.weight) == ("Paused", 20)
    assert "waiting for mlcycle.io/rollout-action: promote" in d.status.message
    assert run.at(60, measurement=GOOD).status.phase == "Paused"
    assert run.at(61, action=PROMOTE).status.phase == "Promoted"


def test_a_candidate_that_cannot_serve_aborts_at_once():
    run = Run()
    run.at(0, candidate_ready=False)
    d = run.at(0.5, candidate_ready=False, candidate_failure="model failed to load: bad config")
    assert (d.status.phase, d.weight, d.condition["reason"]) == ("Aborted", 0, "CandidateFailed")
    assert "iris-v2 cannot serve: model failed to load: bad config" in d.condition["message"]


def test_a_candidate_not_ready_within_the_deadline_aborts():
    run = Run()
    run.at(0, candidate_ready=False)
    assert run.at(4, candidate_ready=False).requeue_after == 60
    d = run.at(5, candidate_ready=False)
    assert (d.status.phase, d.condition["reason"]) == ("Aborted", "ProgressDeadlineExceeded")
    assert "not ready within progressDeadline 5m" in d.condition["message"]


def test_measurements_while_starting_are_not_recorded():
    run = Run()
    run.at(0, candidate_ready=False)
    d = run.at(1, candidate_ready=False, measurement=ERRORS)
    assert not d.measurement_used and d.status.last_analysis is None


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1d", 86400)])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "1.5h"])
def test_duration_seconds_refuses_other_forms(text):
    with pytest.raises(ValueError):
        duration_seconds(text)


def test_rollout_spec_defaults_and_validation():
    spec = InferenceServiceSpec.model_validate({
        "model": {"name": "iris", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}},
        "rollout": {"steps": [{"weight": 10, "pause": "5m"}]},
    })
    assert spec.rollout.analysis.failure_limit == 2 and spec.rollout.progress_deadline == "10m"
    with pytest.raises(ValueError):
        Rollout.model_validate({"steps": [{"weight": 0}]})
    with pytest.raises(ValueError):
        Rollout.model_validate({"steps": [{"weight": 10, "pause": "5 minutes"}]})
