"""The live metric over the labelled rows, and the verdict. Pure functions.

Computed with numpy: scikit-learn is not installed in the image (and would bring scipy's and joblib's
weight into every monitoring pod for four one-line formulas); the definitions are scikit-learn's
(accuracy_score, f1_score(average="macro"), mean_squared_error ** 0.5, mean_absolute_error), which the
unit tests check on known values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcycle.api.inferenceservice import CLASSIFICATION_METRICS, HIGHER_IS_BETTER, PERFORMANCE_DEGRADED

WITHIN_THRESHOLD, INSUFFICIENT_DATA, FAILED = "WithinThreshold", "InsufficientData", "Failed"


def is_classification(metric: str) -> bool:
    return metric in CLASSIFICATION_METRICS


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(truth == predicted))


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 per class, averaged over the classes in either the labels or the predictions (as scikit-learn's
    average="macro"): a class the model never predicts, or predicts wrongly, scores 0."""
    scores = []
    for c in np.union1d(truth, predicted):
        tp = np.sum((truth == c) & (predicted == c))
        wrong = np.sum((truth == c) != (predicted == c))  # false positives and false negatives
        scores.append(2 * tp / (2 * tp + wrong))
    return float(np.mean(scores))


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def mae(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(truth - predicted)))


_METRICS = {"accuracy": accuracy, "f1": macro_f1, "rmse": rmse, "mae": mae}


def value(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    """The metric over at least one labelled row."""
    return _METRICS[metric](truth, predicted)


def degraded(metric: str, measured: float, threshold: float) -> bool:
    """Below the threshold for accuracy and f1, above it for the errors."""
    return measured < threshold if metric in HIGHER_IS_BETTER else measured > threshold


@dataclass(frozen=True)
class Verdict:
    result: str
    message: str
    value: float | None  # None with too few labelled rows: no number is reported that could be read as one


def verdict(metric: str, threshold: float, truth: np.ndarray, predicted: np.ndarray, window_rows: int,
            min_labelled_rows: int) -> Verdict:
    """PerformanceDegraded or WithinThreshold over the labelled rows; InsufficientData with fewer than
    `min_labelled_rows` of them. The message names the value, the threshold and the coverage."""
    labelled = len(truth)
    covered = f"{labelled} of {window_rows} logged prediction(s) labelled ({labelled / window_rows:.0%})" if (
        window_rows) else "no logged predictions in the window"
    if labelled < min_labelled_rows:
        return Verdict(INSUFFICIENT_DATA, f"{covered}; {metric} needs at least {min_labelled_rows} labelled rows",
                       None)
    measured = value(metric, truth, predicted)
    if degraded(metric, measured, threshold):
        side = "below" if metric in HIGHER_IS_BETTER else "above"
        return Verdict(PERFORMANCE_DEGRADED, f"{metric} {measured:.4g} {side} the threshold {threshold:g}; {covered}",
                       measured)
    side = "at or above" if metric in HIGHER_IS_BETTER else "at or below"
    return Verdict(WITHIN_THRESHOLD, f"{metric} {measured:.4g} {side} the threshold {threshold:g}; {covered}",
                   measured)
