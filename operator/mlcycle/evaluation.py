"""Validation metrics per slice and group-fairness gaps, from labels and predictions: what the built-in trainer
reports for spec.registerModel.validation.slices, and what `mlcycle.training.report_slices` computes for a
user image. Pure numpy; the result has the wire form of api.modelversion.Evaluation.

The gaps follow Fairlearn's definitions (fairlearn.metrics): over the groups (slices) of one feature,
demographic_parity_difference = max - min selection rate (share predicted positive), equalized_odds_difference
= the larger of the true-positive-rate and false-positive-rate differences, equal_opportunity_difference = the
true-positive-rate difference, accuracy_difference = max - min accuracy. As in Fairlearn (scikit-learn's
normalised confusion matrix), a rate whose denominator is empty in a group (no positives for the
true-positive rate) counts as 0 there. Groups without validation rows take no part in a gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mlcycle.api.modelversion import FAIRNESS_GAPS, MAX_SLICES, Slice

# Results are rounded to this many decimals: a termination message is small, and no gate needs finer.
DECIMALS = 4


class SliceError(ValueError):
    """A slice that cannot be formed from the data (an unknown feature, bins on text, too many values)."""


def _number(value: float) -> str:
    return f"{value:g}"


def groups(feature: str, column: np.ndarray, spec: Slice) -> list[tuple[str, np.ndarray]]:
    """(slice name, row mask) of each slice of `column`, the feature's value per row: numbers (a numeric
    feature) or text (a categorical one)."""
    numeric = np.issubdtype(column.dtype, np.number)
    if spec.bins:
        if not numeric:
            raise SliceError(f"slice {feature}: bins need a numeric feature, but {feature} holds text")
        edges = [-np.inf, *spec.bins, np.inf]
        return [(f"[{_number(lo)}, {_number(hi)})", (column >= lo) & (column < hi))
                for lo, hi in zip(edges, edges[1:], strict=False)]
    if spec.values:
        if numeric:
            try:
                return [(v, column == float(v)) for v in spec.values]
            except ValueError as e:
                raise SliceError(f"slice {feature}: {feature} is numeric, but a value is not a number: {e}") from e
        return [(v, column == v) for v in spec.values]
    distinct = np.unique(column)
    if len(distinct) > MAX_SLICES:
        raise SliceError(f"slice {feature}: {feature} has {len(distinct)} distinct values in the validation rows, "
                         f"more than {MAX_SLICES}; list its values or bins")
    return [(_number(v) if numeric else str(v), column == v) for v in distinct]


def positive_class(classes: Sequence[str], wanted: str | None) -> str | None:
    """The class counted as the positive outcome: `wanted`, else the second of exactly two classes; None for
    several classes without `wanted` (selection and true/false-positive rates are then not defined)."""
    if wanted is not None:
        if wanted not in classes:
            raise SliceError(f"positiveClass {wanted!r} is not one of the classes {list(classes)}")
        return wanted
    return classes[1] if len(classes) == 2 else None


def _rate(hits: np.ndarray, of: np.ndarray) -> float:
    n = int(of.sum())
    return float((hits & of).sum() / n) if n else 0.0  # Fairlearn's (scikit-learn's) 0 for an empty denominator


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray, positive: str | None, classification: bool) -> dict:
    """count, and accuracy and (with a positive class) selection_rate, true_positive_rate and
    false_positive_rate; or rmse and mae for regression. Only count when the group is empty."""
    count = len(y_true)
    out: dict[str, float] = {"count": count}
    if not count:
        return out
    if not classification:
        err = y_pred.astype(np.float64) - y_true.astype(np.float64)
        return out | {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())}
    out["accuracy"] = float((y_true == y_pred).mean())
    if positive is not None:
        actual, predicted = y_true == positive, y_pred == positive
        out["selection_rate"] = float(predicted.mean())
        out["true_positive_rate"] = _rate(predicted, actual)
        out["false_positive_rate"] = _rate(predicted, ~actual)
    return out


def gaps(per_group: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Fairlearn's between-groups differences (max - min) over the groups that have rows; a gap whose
    rates are not measured (regression, or no positive class) is left out."""
    present = [g for g in per_group if g.get("count")]
    out: dict[str, float] = {}
    for gap, rates in FAIRNESS_GAPS.items():
        if present and all(r in g for g in present for r in rates):
            out[gap] = max(max(g[r] for g in present) - min(g[r] for g in present) for r in rates)
    return out


def _rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v if k == "count" else round(v, DECIMALS) for k, v in metrics.items()}


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, columns: Mapping[str, np.ndarray], slices: Sequence[Slice],
             *, classes: Sequence[str] | None, positive: str | None = None) -> dict:
    """The Evaluation (wire form) of predictions on validation rows. `classes` (the class labels, as text)
    for classification, None for regression; labels and predictions are class labels then. `columns` holds
    each sliced feature's value per row."""
    classification = classes is not None
    if classification:
        y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
        positive = positive_class(classes, positive)
    results, fairness = [], []
    for spec in slices:
        if spec.feature not in columns:
            raise SliceError(f"slice {spec.feature}: no such feature (features: {sorted(columns)})")
        per_group = []
        for name, mask in groups(spec.feature, np.asarray(columns[spec.feature]), spec):
            metrics = group_metrics(y_true[mask], y_pred[mask], positive, classification)
            per_group.append(metrics)
            results.append({"feature": spec.feature, "value": name, "metrics": _rounded(metrics)})
        feature_gaps = gaps(per_group)
        if feature_gaps:
            fairness.append({"feature": spec.feature, "gaps": _rounded(feature_gaps)})
    return {"slices": results} | ({"fairness": fairness} if fairness else {})
