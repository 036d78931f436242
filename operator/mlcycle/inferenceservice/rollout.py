"""The progressive rollout of a new version, as a pure state machine (vocabulary of Argo Rollouts/Flagger).

`next_rollout` takes the spec's rollout, what the handler observed this reconcile (the version served,
the version the spec resolves to, the candidate's readiness, a fresh analysis measurement, a manual
action) and the previous `status.rollout`, and returns the next status and the weight the stable agents
must forward to the candidate (`PUT /traffic`). The handler applies it; nothing here talks to a cluster.

The walk: the candidate's pods start (weight 0, within `progressDeadline`), then each step sets its weight
and lasts `pause`; a step ends once its pause has passed and the latest analysis, taken during the step,
passed. After the last step the candidate is Promoted (weight 100; the handler then makes it the served
version). A Failed analysis counts against `failureLimit`; reaching it aborts: weight 0, condition
RolloutAborted with the failing metric and value, and the version is remembered in `failedVersion` so it is
not rolled out again until the spec (its generation) or the alias (the resolved version) changes. An
Inconclusive analysis (too few requests) neither passes nor fails: the step waits. A step without a pause
waits for `mlcycle.io/rollout-action: promote`; `abort` aborts at any time, `promote` promotes at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from mlcycle.api.inferenceservice import ROLLOUT_ABORTED, Rollout, RolloutAnalysis, RolloutAnalysisResult, RolloutStatus
from mlcycle.api.labels import ROLLOUT_ACTION_ANNOTATION
from mlcycle.conditions import condition
from mlcycle.inferenceservice.analysis import Measurement

PROMOTE, ABORT = "promote", "abort"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float:
    """`1h30m` -> 5400.0 (the API's DURATION_PATTERN)."""
    parts = re.findall(r"([0-9]+)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration like 90s, 5m, 1h30m: {text!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


@dataclass(frozen=True)
class Observation:
    """What the handler saw this reconcile."""

    now: datetime
    generation: int  # metadata.generation of the InferenceService
    stable: str | None  # the ModelVersion served now (status.servedModelVersion)
    desired: str  # the ModelVersion spec.model resolves to
    candidate_ready: bool = False  # the desired version's pods are ready with the model loaded
    candidate_failure: str | None = None  # why its pods can never serve (model failed to load, digest mismatch)
    measurement: Measurement | None = None  # the candidate over the last interval, when an analysis was due
    action: str | None = None  # the value of the mlcycle.io/rollout-action annotation


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class RolloutDecision:
    status: RolloutStatus | None  # the next status.rollout (None: there never was a rollout)
    weight: int  # percent of requests the stable agents forward to the candidate
    condition: dict | None = None  # RolloutAborted as it should be now; None: leave it as it is
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # seconds until calling again is useful (a pause or analysis ends)
    action_done: bool = False  # the handler removes the annotation
    measurement_used: bool = False  # whether the measurement was recorded as an analysis

    @property
    def promoted(self) -> bool:
        return self.status is not None and self.status.phase == "Promoted"


def analysis_due(rollout: Rollout, status: RolloutStatus | None, now: datetime) -> bool:
    """Whether the handler should take a measurement now: a step is running and an interval has passed
    since the last analysis (or since the step started)."""
    if status is None or status.phase not in ("Progressing", "Paused") or status.step_start_time is None:
        return False
    since = status.step_start_time
    if status.last_analysis is not None and status.last_analysis.time > since:
        since = status.last_analysis.time
    return (now - since).total_seconds() >= duration_seconds(rollout.analysis.interval)


def evaluate(analysis: RolloutAnalysis, m: Measurement, now: datetime) -> RolloutAnalysisResult:
    rate, p99 = m.success_rate, m.latency_p99_ms
    numbers = {"requests": m.requests, "success_rate": None if rate is None else round(rate, 6),
               "latency_p99_ms": None if p99 is None or math.isinf(p99) else round(p99, 3)}
    if m.requests < analysis.min_requests:
        return RolloutAnalysisResult(time=now, phase="Inconclusive", **numbers,
                                     message=f"{m.requests} requests to the candidate, fewer than minRequests "
                                             f"{analysis.min_requests}")
    failing = []
    if rate is not None and rate < analysis.success_rate_min:
        failing.append(f"successRate {rate:.4f} < successRateMin {analysis.success_rate_min} "
                       f"({m.failures} of {m.requests} requests failed)")
    if analysis.latency_p99_max_ms is not None and p99 is not None and p99 > analysis.latency_p99_max_ms:
        shown = "above the highest histogram bucket" if math.isinf(p99) else f"{p99:.1f}"
        failing.append(f"latencyP99Ms {shown} > latencyP99MaxMs {analysis.latency_p99_max_ms:g}")
    return RolloutAnalysisResult(time=now, phase="Failed" if failing else "Successful", **numbers,
                                 message="; ".join(failing))


@dataclass
class _Step:
    """The decision being built."""

    status: RolloutStatus
    events: list[Event] = field(default_factory=list)
    used: bool = False


def _aborted_condition(status: RolloutStatus, reason: str, generation: int) -> dict:
    return condition(ROLLOUT_ABORTED, True, reason, status.message or "", generation)


def _quiet_condition(reason: str, generation: int) -> dict:
    return condition(ROLLOUT_ABORTED, False, reason, "", generation)


def next_rollout(rollout: Rollout, previous: RolloutStatus | None, obs: Observation) -> RolloutDecision:
    action = obs.action if obs.action in (PROMOTE, ABORT) else None
    consumed = obs.action is not None  # an unknown value is dropped too, rather than left to surprise later

    # Nothing to roll out: the first version goes straight in, and the served one needs no rollout.
    if obs.stable is None or obs.desired == obs.stable:
        return _settled(previous, obs, consumed)

    # A version that failed is not tried again until the spec or the alias changes.
    if (previous is not None and previous.failed_version == obs.desired
            and previous.failed_generation == obs.generation and action != PROMOTE):
        return RolloutDecision(previous, 0, None, action_done=consumed)  # RolloutAborted stays as it was set

    current = previous if previous is not None and previous.candidate == obs.desired else None
    if current is not None and current.phase == "Promoted":  # waiting for the handler to switch
        return RolloutDecision(current, 100, _quiet_condition("Promoted", obs.generation), action_done=consumed)
    step = _Step(current) if current is not None and current.phase != "Aborted" else _start(obs)

    if action == ABORT:
        return _abort(step, obs, "ManualAbort", f"aborted by the annotation {ROLLOUT_ACTION_ANNOTATION}: abort",
                      consumed)
    if action == PROMOTE:
        return _promote(step, obs, f"promoted by the annotation {ROLLOUT_ACTION_ANNOTATION}: promote", consumed)
    if obs.candidate_failure:
        return _abort(step, obs, "CandidateFailed", f"{obs.desired} cannot serve: {obs.candidate_failure}",
                      consumed)

    status = step.status
    if status.step_start_time is None:
        deadline = duration_seconds(rollout.progress_deadline)
        waited = (obs.now - status.start_time).total_seconds()
        if not obs.candidate_ready:
            if waited >= deadline:
                return _abort(step, obs, "ProgressDeadlineExceeded",
                              f"{obs.desired} was not ready within progressDeadline {rollout.progress_deadline}",
                              consumed)
            step.status = status.model_copy(update={"message": f"waiting for the pods of {obs.desired} to be ready"})
            return _decision(step, obs, consumed, requeue_after=deadline - waited)
        step.status = _enter_step(status, rollout, 0, obs.now)
        step.events.append(Event("Normal", "RolloutStep", _step_message(rollout, 0, obs.desired)))

    if obs.measurement is not None:
        result = evaluate(rollout.analysis, obs.measurement, obs.now)
        failures = step.status.failures + (result.phase == "Failed")
        step.status = step.status.model_copy(update={"last_analysis": result, "failures": failures})
        step.used = True
        if result.phase == "Failed":
            limit = rollout.analysis.failure_limit
            if failures >= limit:
                return _abort(step, obs, "AnalysisFailed",
                              f"analysis of {obs.desired} failed {failures} time(s) (failureLimit {limit}): "
                              f"{result.message}", consumed)
            step.events.append(Event("Warning", "AnalysisFailed",
                                     f"{obs.desired}: {result.message} ({failures} of failureLimit {limit})"))
    return _advance(step, rollout, obs, consumed)


def _start(obs: Observation) -> _Step:
    status = RolloutStatus(phase="Progressing", candidate=obs.desired, start_time=obs.now,
                           message=f"starting {obs.desired} next to {obs.stable}")
    return _Step(status, [Event("Normal", "RolloutStarted", f"rolling out {obs.desired} in place of {obs.stable}")])


def _enter_step(status: RolloutStatus, rollout: Rollout, index: int, now: datetime) -> RolloutStatus:
    return status.model_copy(update={"phase": "Progressing", "step": index, "weight": rollout.steps[index].weight,
                                     "step_start_time": now,
                                     "message": _step_message(rollout, index, status.candidate)})


def _step_message(rollout: Rollout, index: int, candidate: str) -> str:
    return f"step {index + 1} of {len(rollout.steps)}: {candidate} at {rollout.steps[index].weight}%"


def _advance(step: _Step, rollout: Rollout, obs: Observation, consumed: bool) -> RolloutDecision:
    status = step.status
    assert status.step_start_time is not None
    spec_step = rollout.steps[status.step]
    last = status.last_analysis
    passed = last is not None and last.phase == "Successful" and last.time > status.step_start_time
    elapsed = (obs.now - status.step_start_time).total_seconds()
    interval = duration_seconds(rollout.analysis.interval)
    since_analysis = obs.now - (last.time if last is not None and last.time > status.step_start_time
                                else status.step_start_time)
    next_analysis = max(0.0, interval - since_analysis.total_seconds())

    if spec_step.pause is None:
        step.status = status.model_copy(update={
            "phase": "Paused",
            "message": f"{_step_message(rollout, status.step, status.candidate)}; waiting for "
                       f"{ROLLOUT_ACTION_ANNOTATION}: promote"})
        return _decision(step, obs, consumed, requeue_after=next_analysis)
    pause = duration_seconds(spec_step.pause)
    if elapsed < pause or not passed:
        if elapsed >= pause and last is not None and last.phase == "Inconclusive":
            step.status = status.model_copy(update={
                "message": f"{_step_message(rollout, status.step, status.candidate)}; waiting for a conclusive "
                           f"analysis ({last.message})"})
        wait = next_analysis if elapsed >= pause else min(pause - elapsed, next_analysis)
        return _decision(step, obs, consumed, requeue_after=wait)
    if status.step + 1 < len(rollout.steps):
        step.status = _enter_step(status, rollout, status.step + 1, obs.now)
        step.events.append(Event("Normal", "RolloutStep", _step_message(rollout, status.step + 1, status.candidate)))
        return _decision(step, obs, consumed, requeue_after=interval)
    return _promote(step, obs, f"all {len(rollout.steps)} steps passed", consumed)


def _decision(step: _Step, obs: Observation, consumed: bool, requeue_after: float | None) -> RolloutDecision:
    return RolloutDecision(step.status, step.status.weight, _quiet_condition("Progressing", obs.generation),
                           tuple(step.events), requeue_after, consumed, step.used)


def _promote(step: _Step, obs: Observation, why: str, consumed: bool) -> RolloutDecision:
    status = step.status.model_copy(update={"phase": "Promoted", "weight": 100,
                                            "message": f"{obs.desired} promoted: {why}"})
    events = (*step.events, Event("Normal", "RolloutPromoted", status.message or ""))
    return RolloutDecision(status, 100, _quiet_condition("Promoted", obs.generation), events, None, consumed,
                           step.used)


def _abort(step: _Step, obs: Observation, reason: str, why: str, consumed: bool) -> RolloutDecision:
    status = step.status.model_copy(update={
        "phase": "Aborted", "weight": 0, "failed_version": obs.desired, "failed_generation": obs.generation,
        "message": f"rolled back to {obs.stable}: {why}"})
    events = (*step.events, Event("Warning", "RolloutAborted", status.message or ""))
    return RolloutDecision(status, 0, _aborted_condition(status, reason, obs.generation), events, None, consumed,
                           step.used)


def _settled(previous: RolloutStatus | None, obs: Observation, consumed: bool) -> RolloutDecision:
    """The spec asks for what is served: no traffic to any candidate. A rollout in flight was withdrawn
    (the alias moved back, the version was changed back); a remembered failure is forgotten, since the
    spec or alias has changed."""
    if previous is None:
        return RolloutDecision(None, 0, action_done=consumed)
    if previous.phase in ("Progressing", "Paused"):
        status = previous.model_copy(update={
            "phase": "Aborted", "weight": 0, "failed_version": None, "failed_generation": None,
            "message": f"{previous.candidate} withdrawn: the spec asks for {obs.desired} again"})
        return RolloutDecision(status, 0, _quiet_condition("Withdrawn", obs.generation),
                               (Event("Normal", "RolloutWithdrawn", status.message or ""),), action_done=consumed)
    status = previous.model_copy(update={"failed_version": None, "failed_generation": None})
    reason = "Promoted" if previous.phase == "Promoted" else "Stable"
    return RolloutDecision(status, 0, _quiet_condition(reason, obs.generation), action_done=consumed)
