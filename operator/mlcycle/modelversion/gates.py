"""Validation gates: absolute thresholds on metrics, the champion/challenger rule, minimum metrics per slice
and maximum fairness gaps. Pure functions that return one result per rule, in the shape of
status.validation[]."""

from __future__ import annotations

import operator

from mlcycle.api.base import MAX_NAME
from mlcycle.api.modelversion import (
    FAIRNESS_GAPS,
    Champion,
    Evaluation,
    FairnessThreshold,
    SliceThreshold,
    Threshold,
    Validation,
)

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
# A rejection names this many failing slices, so that its message stays readable (and within its 1024 bytes).
NAMED_SLICES = 5
MESSAGE_LIMIT = 1024  # the maxLength of status.validation[].message


def _result(rule: str, passed: bool, observed: float | None, message: str) -> dict:
    if len(message) > MESSAGE_LIMIT:  # long slice names: the apiserver would refuse the whole status
        message = message[: MESSAGE_LIMIT - 1] + "…"
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


def slice_threshold_result(threshold: SliceThreshold, evaluation: Evaluation | None) -> dict:
    """Holds when every slice (of threshold.feature) has the metric on the right side of the bound; the
    message names each slice that does not (feature=value), and observed is the worst slice's value."""
    of = f" of {threshold.feature}" if threshold.feature else ""
    rule = f"{threshold.metric} {threshold.op} {threshold.value:g} on every slice{of}"
    slices = [s for s in (evaluation.slices if evaluation else None) or []
              if threshold.feature in (None, s.feature)]
    if not slices:
        return _result(rule, False, None, f"spec.evaluation has no slices{of}")
    values = [(f"{s.feature}={s.value}", s.metrics.get(threshold.metric)) for s in slices]
    missing = [name for name, v in values if v is None]
    failing = [(name, v) for name, v in values if v is not None and not OPS[threshold.op](v, threshold.value)]
    measured = [v for _, v in values if v is not None]
    worst = None
    if measured:
        # The slice furthest on the wrong side: the lowest for a minimum, the highest for a maximum.
        worst = min(measured) if threshold.op in (">=", ">") else max(measured)
    problems = [f"{name}: {threshold.metric} {v:g}, bound {threshold.value:g}" for name, v in failing]
    problems += [f"{name}: no {threshold.metric}" for name in missing]
    if problems:
        more = f"; and {len(problems) - NAMED_SLICES} more" if len(problems) > NAMED_SLICES else ""
        return _result(rule, False, worst, "; ".join(problems[:NAMED_SLICES]) + more)
    if evaluation.truncated:  # the slices left out may be the ones that fail
        return _result(rule, False, worst, f"spec.evaluation is truncated: only {len(slices)} slice(s) reported")
    return _result(rule, True, worst, f"{len(slices)} slice(s); worst {threshold.metric} {worst:g}")


def fairness_result(threshold: FairnessThreshold, evaluation: Evaluation | None) -> dict:
    """Holds when the feature's gap is at most threshold.max; the message names the groups at either end."""
    rule = f"{threshold.metric} across {threshold.feature} <= {threshold.max:g}"
    reported = next((f for f in (evaluation.fairness if evaluation else None) or []
                     if f.feature == threshold.feature), None)
    gap = reported.gaps.get(threshold.metric) if reported else None
    if gap is None:
        return _result(rule, False, None, f"spec.evaluation has no {threshold.metric} for {threshold.feature}")
    passed = gap <= threshold.max
    return _result(rule, passed, gap, f"{threshold.metric} {gap:g}, bound {threshold.max:g}"
                   + _extremes(threshold, evaluation))


def _extremes(threshold: FairnessThreshold, evaluation: Evaluation) -> str:
    """The groups with the highest and lowest value of the rate the gap compares, e.g.
    "; selection_rate 0.9 at sex=m, 0.1 at sex=f"."""
    parts = []
    for rate in FAIRNESS_GAPS[threshold.metric]:
        groups = [(s.metrics[rate], f"{s.feature}={s.value}") for s in evaluation.slices or []
                  if s.feature == threshold.feature and s.metrics.get("count") and rate in s.metrics]
        if groups:
            (high, at_high), (low, at_low) = max(groups), min(groups)
            parts.append(f"{rate} {high:g} at {at_high}, {low:g} at {at_low}")
    return "".join(f"; {p}" for p in parts)


def validation_results(validation: Validation | None, metrics: dict[str, float] | None,
                       champion_holder: tuple[str, dict] | None, evaluation: Evaluation | None = None) -> list[dict]:
    if validation is None:
        return []
    metrics = metrics or {}
    results = [threshold_result(t, metrics) for t in validation.thresholds or []]
    if validation.champion:
        results.append(champion_result(validation.champion, metrics, champion_holder))
    results += [slice_threshold_result(t, evaluation) for t in validation.slice_thresholds or []]
    results += [fairness_result(t, evaluation) for t in validation.fairness or []]
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
