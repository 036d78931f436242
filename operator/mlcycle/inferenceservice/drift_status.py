"""What the operator learns from a finished drift-check Job: `status.drift`, the DriftDetected condition,
the events to post and the per-feature scores for the metrics. Pure functions over plain dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlcycle.api.inferenceservice import DRIFT_DETECTED
from mlcycle.conditions import condition
from mlcycle.trainingjob.status import termination_message

NO_DRIFT, INSUFFICIENT_DATA, REFERENCE_MISSING, FAILED = "NoDrift", "InsufficientData", "ReferenceMissing", "Failed"
_WARNING_RESULTS = {DRIFT_DETECTED, REFERENCE_MISSING, FAILED}
_NAMES_IN_MESSAGE = 20


def _job_finished(job: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" once the Job has finished, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def latest_finished_job(jobs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recently started drift Job that has finished (the CronJob keeps a few)."""
    finished = [j for j in jobs if _job_finished(j)]
    return max(finished, key=lambda j: ((j.get("status") or {}).get("startTime") or "",
                                       j["metadata"]["name"]), default=None)


def check_result(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The check's result document from its pod's termination message; a pod that died without one (OOM,
    image pull, evicted) is a Failed check that says so."""
    for pod in pods:
        message = termination_message(dict(pod))
        if message and "result" in message:
            return message
    state = _job_finished(job) or "running"
    reason = next((c.get("message") or c.get("reason") for c in (job.get("status") or {}).get("conditions") or []
                   if c.get("type") == "Failed" and c.get("status") == "True"), None)
    logged = next((m["log"] for p in pods if (m := termination_message(dict(p))) and "log" in m), None)
    detail = reason or logged or "no termination message; see the pod's log"
    return {"result": FAILED, "message": f"drift check Job {job['metadata']['name']} {state.lower()}: {detail}"}


def drift_status(result: Mapping[str, Any], job_name: str, method: str | None) -> dict[str, Any]:
    """status.drift (wire form) from a check's result document."""
    status: dict[str, Any] = {
        "result": result.get("result", FAILED),
        "job": job_name,
        "method": result.get("method") or method,
        "message": str(result.get("message", ""))[:4096],
    }
    for key in ("checkTime", "score", "share", "driftedFeatures", "windowRows", "reportUri"):
        if result.get(key) is not None:
            status["lastCheckTime" if key == "checkTime" else key] = result[key]
    return status


def _names(features: Sequence[str]) -> str:
    shown = ", ".join(features[:_NAMES_IN_MESSAGE])
    return shown + (f" and {len(features) - _NAMES_IN_MESSAGE} more" if len(features) > _NAMES_IN_MESSAGE else "")


def drift_condition(drift: Mapping[str, Any], generation: int | None = None) -> dict:
    """DriftDetected: True naming the drifted features; False when the share stayed below driftShare;
    Unknown when the check could not decide (InsufficientData, ReferenceMissing, CheckFailed)."""
    result = drift.get("result")
    drifted = list(drift.get("driftedFeatures") or [])
    report = f"; report {drift['reportUri']}" if drift.get("reportUri") else ""
    if result == DRIFT_DETECTED:
        return condition(DRIFT_DETECTED, True, DRIFT_DETECTED, f"drifted: {_names(drifted)}{report}", generation)
    if result == NO_DRIFT:
        below = f" ({_names(drifted)} drifted, below driftShare)" if drifted else ""
        return condition(DRIFT_DETECTED, False, NO_DRIFT, f"no drift{below}{report}", generation)
    reason = "CheckFailed" if result == FAILED else result or "CheckFailed"
    return condition(DRIFT_DETECTED, "Unknown", reason, f"{drift.get('message', '')}{report}", generation)


def drift_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, reason, message) to post when a new check changed the outcome or the drifted features."""
    before = previous or {}
    if before.get("job") == current.get("job"):
        return []
    same = (before.get("result") == current.get("result")
            and sorted(before.get("driftedFeatures") or []) == sorted(current.get("driftedFeatures") or []))
    if same:
        return []
    result = current.get("result") or FAILED
    kind = "Warning" if result in _WARNING_RESULTS else "Normal"
    reason = "CheckFailed" if result == FAILED else result
    return [(kind, reason, drift_condition(current)["message"])]


def feature_scores(result: Mapping[str, Any]) -> dict[str, tuple[float, bool]]:
    """feature -> (score, drifted), for mlcycle_drift_score / mlcycle_drift_detected. Scores are finite:
    a distance, or 1 - p for a test."""
    return {name: (float(f["score"]), bool(f.get("drifted"))) for name, f in (result.get("features") or {}).items()}


@dataclass(frozen=True)
class Observation:
    """What a newly finished drift check changes: status.drift, the DriftDetected condition, the events
    to post, and the metrics (metrics.record_drift(namespace, isvc, check_time, scores))."""

    drift: dict[str, Any]
    condition: dict
    events: list[tuple[str, str, str]]
    scores: dict[str, tuple[float, bool]]
    check_time: float | None  # unix time, for mlcycle_drift_last_check_timestamp_seconds


def observe(previous: Mapping[str, Any] | None, job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
            method: str | None, generation: int | None = None) -> Observation | None:
    """The observation of `job` (see latest_finished_job) and its pods; None when status.drift already
    describes that Job, so a reconcile neither rewrites status nor posts an event twice."""
    if (previous or {}).get("job") == job["metadata"]["name"]:
        return None
    result = check_result(job, pods)
    drift = drift_status(result, job["metadata"]["name"], method)
    checked = drift.get("lastCheckTime")
    check_time = datetime.fromisoformat(checked.replace("Z", "+00:00")).timestamp() if checked else None
    return Observation(drift, drift_condition(drift, generation), drift_events(previous, drift),
                       feature_scores(result), check_time)
