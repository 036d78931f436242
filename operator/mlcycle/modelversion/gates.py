"""Validation gates: absolute thresholds on metrics and the champion/challenger rule. Pure functions that
return one result per rule, in the shape of status.validation[]."""

from __future__ import annotations

import operator

from mlcycle.api.base import MAX_NAME
from mlcycle.api.modelversion import Champion, Threshold, Validation

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _result(rule: str, passed: bool, observed: float | None, message: str) -> dict:
    return {"rule": rule, "passed": passed, "message": message} | ({"observed": observed} if observed is not None
                                                                  else {})


def threshold_result(threshold: Threshold, metrics: dict[str, float]) -> dict:
    rule = f"{threshold.metric} {threshold.op} {threshold.value:g}"
    value = metrics.get(threshold.metric)
    if value is None:
        return _result(rule, False, None, f"metric {threshold.metric} is not in spec.metrics")
    passed = OPS[threshold.op](value, threshold.value)
    return _result(rule, passed, value, f"{threshold.metric} is {value:g}")


def champion_result(champion: Champion, metrics: dict[str, float], holder: tuple[str, dict] | None) -> dict:
    """`holder` is (name, metrics) of the version that holds champion.alias now, other than the candidate."""
    better = "higher" if champion.higher_is_better else "lower"
    rule = f"beat {champion.alias} on {champion.metric} by {champion.min_improvement:g} ({better} is better)"
    value = metrics.get(champion.metric)
    if value is None:
        return _result(rule, False, None, f"metric {champion.metric} is not in spec.metrics")
    if holder is None:
        return _result(rule, True, value, f"no other version holds {champion.alias}: nothing to beat")
    name, holder_metrics = holder
    theirs = holder_metrics.get(champion.metric)
    if theirs is None:
        return _result(rule, True, value, f"{champion.alias} holder {name} reports no {champion.metric}")
    improvement = value - theirs if champion.higher_is_better else theirs - value
    # Tolerance for float rounding, so that 0.95 beats 0.90 by 0.05.
    passed = improvement >= champion.min_improvement - 1e-9
    return _result(rule, passed, value, f"{champion.metric} {value:g} vs {theirs:g} of {name} ({champion.alias}); "
                   f"improvement {improvement:g}, needs {champion.min_improvement:g}")


def validation_results(validation: Validation | None, metrics: dict[str, float] | None,
                       champion_holder: tuple[str, dict] | None) -> list[dict]:
    if validation is None:
        return []
    metrics = metrics or {}
    results = [threshold_result(t, metrics) for t in validation.thresholds or []]
    if validation.champion:
        results.append(champion_result(validation.champion, metrics, champion_holder))
    return results


def gated_metrics(validation: Validation | None) -> list[str]:
    """The metrics a validation compares, the champion's first: what a listing should show of a version or run."""
    if validation is None:
        return []
    return ([validation.champion.metric] if validation.champion else []) + [t.metric for t in validation.thresholds
                                                                             or []]


def named_metric(metrics: dict[str, float] | None, preference: list[str]) -> str | None:
    """`name=value` of the first metric in `preference` that `metrics` has (kubectl's key-metric column); None
    when there is none or the text would not fit the status field."""
    metrics = metrics or {}
    name = next((n for n in preference if n in metrics), None)
    text = f"{name}={metrics[name]:.4g}" if name else None
    return text if text and len(text) <= MAX_NAME else None
