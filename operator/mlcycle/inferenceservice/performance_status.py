"""What the operator learns from a finished monitoring Job about the served version's live metric:
`status.performance`, the PerformanceDegraded condition, the events to post and the gauges. Pure functions
over plain dicts; the Job's result document is the drift check's (drift_status.check_result), with the
performance result under "performance"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlcycle.api.inferenceservice import PERFORMANCE_DEGRADED
from mlcycle.conditions import condition
from mlcycle.inferenceservice.drift_status import check_result

WITHIN_THRESHOLD, INSUFFICIENT_DATA, FAILED = "WithinThreshold", "InsufficientData", "Failed"
_WARNING_RESULTS = {PERFORMANCE_DEGRADED, FAILED}
_FIELDS = ("metric", "value", "threshold", "coverage", "labelledRows", "windowRows", "reportUri")


def performance_status(result: Mapping[str, Any], job_name: str) -> dict[str, Any]:
    """status.performance (wire form) from a check's result document; a check that reported no performance
    (it failed before it got there) is a Failed one that says why."""
    found = result.get("performance")
    if not isinstance(found, Mapping):
        found = {"result": FAILED, "message": f"the check reported no performance: {result.get('message', '')}"}
    status: dict[str, Any] = {"result": found.get("result", FAILED), "job": job_name,
                              "message": str(found.get("message", ""))[:4096]}
    if result.get("checkTime"):
        status["lastCheckTime"] = result["checkTime"]
    return status | {key: found[key] for key in _FIELDS if found.get(key) is not None}


def performance_condition(performance: Mapping[str, Any], generation: int | None = None) -> dict:
    """PerformanceDegraded: True when the metric crossed its threshold, False within it, Unknown without a
    verdict (InsufficientData, CheckFailed); the message has the value, the threshold and the coverage."""
    result = performance.get("result")
    report = f"; report {performance['reportUri']}" if performance.get("reportUri") else ""
    message = f"{performance.get('message', '')}{report}"
    if result == PERFORMANCE_DEGRADED:
        return condition(PERFORMANCE_DEGRADED, True, PERFORMANCE_DEGRADED, message, generation)
    if result == WITHIN_THRESHOLD:
        return condition(PERFORMANCE_DEGRADED, False, WITHIN_THRESHOLD, message, generation)
    reason = INSUFFICIENT_DATA if result == INSUFFICIENT_DATA else "CheckFailed"
    return condition(PERFORMANCE_DEGRADED, "Unknown", reason, message, generation)


def performance_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, reason, message) to post when a new check changed the outcome."""
    before = previous or {}
    if before.get("job") == current.get("job") or before.get("result") == current.get("result"):
        return []
    result = current.get("result") or FAILED
    reason = "PerformanceCheckFailed" if result == FAILED else result
    return [("Warning" if result in _WARNING_RESULTS else "Normal", reason, performance_condition(current)["message"])]


@dataclass(frozen=True)
class Gauges:
    """For mlcycle_performance_value / mlcycle_performance_label_coverage (metrics.record_performance)."""

    metric: str | None
    value: float | None  # None without a verdict
    coverage: float | None


@dataclass(frozen=True)
class Observation:
    performance: dict[str, Any]
    condition: dict
    events: list[tuple[str, str, str]]
    gauges: Gauges


def observe(previous: Mapping[str, Any] | None, job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
            generation: int | None = None) -> Observation | None:
    """The performance found by `job` (the latest finished monitoring Job) and its pods; None when
    status.performance already describes that Job."""
    name = job["metadata"]["name"]
    if (previous or {}).get("job") == name:
        return None
    performance = performance_status(check_result(job, pods), name)
    return Observation(performance, performance_condition(performance, generation),
                       performance_events(previous, performance),
                       Gauges(performance.get("metric"), performance.get("value"), performance.get("coverage")))
