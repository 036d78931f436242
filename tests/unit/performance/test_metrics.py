import numpy as np
import pytest

from mlcycle.performance import metrics

pytestmark = pytest.mark.unit

TRUTH = np.array([0, 0, 1, 1, 2, 2, 2, 1])
PREDICTED = np.array([0, 1, 1, 1, 2, 0, 2, 2])


def test_accuracy_is_the_share_of_right_classes():
    assert metrics.value("accuracy", TRUTH, PREDICTED) == 5 / 8


def test_f1_is_macro_averaged_as_scikit_learn_does():
    # f1_score(TRUTH, PREDICTED, average="macro"): class 0: p 1/2 r 1/2; class 1: p 2/3 r 2/3; class 2: p 2/3 r 2/3.
    assert metrics.value("f1", TRUTH, PREDICTED) == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)


def test_a_class_only_predicted_counts_with_f1_zero():
    assert metrics.value("f1", np.array([0, 0]), np.array([0, 1])) == pytest.approx((2 / 3 + 0) / 2)


def test_regression_errors():
    truth, predicted = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 6.0])
    assert metrics.value("mae", truth, predicted) == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    assert metrics.value("rmse", truth, predicted) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 4) / 4))


@pytest.mark.parametrize(("metric", "measured", "threshold", "expected"), [
    ("accuracy", 0.79, 0.8, True), ("accuracy", 0.8, 0.8, False), ("f1", 0.95, 0.9, False),
    ("rmse", 1.2, 1.0, True), ("mae", 1.0, 1.0, False), ("mae", 0.3, 1.0, False),
])
def test_the_direction_follows_the_metric(metric, measured, threshold, expected):
    assert metrics.degraded(metric, measured, threshold) is expected


def test_a_verdict_names_the_value_the_threshold_and_the_coverage():
    found = metrics.verdict("accuracy", 0.8, TRUTH, PREDICTED, window_rows=16, min_labelled_rows=8)
    assert found.result == "PerformanceDegraded" and found.value == 5 / 8
    assert found.message == "accuracy 0.625 below the threshold 0.8; 8 of 16 logged prediction(s) labelled (50%)"
    fine = metrics.verdict("rmse", 2.0, np.array([1.0]), np.array([1.5]), window_rows=1, min_labelled_rows=1)
    assert fine.result == "WithinThreshold" and "rmse 0.5 at or below the threshold 2" in fine.message


def test_too_few_labelled_rows_are_insufficient_data_without_a_value():
    found = metrics.verdict("accuracy", 0.99, TRUTH, PREDICTED, window_rows=400, min_labelled_rows=100)
    assert (found.result, found.value) == ("InsufficientData", None)
    assert "8 of 400 logged prediction(s) labelled (2%)" in found.message and "at least 100" in found.message
    empty = metrics.verdict("mae", 1.0, np.array([]), np.array([]), window_rows=0, min_labelled_rows=1)
    assert empty.result == "InsufficientData" and "no logged predictions in the window" in empty.message
