"""Per-slice metrics and Fairlearn's group-fairness gaps, checked against examples worked by hand."""

import numpy as np
import pytest

from mlcycle.api.modelversion import Slice
from mlcycle.evaluation import SliceError, evaluate, gaps, group_metrics, groups, positive_class

# Group a: two positives (one found), two negatives (one wrongly selected).
# Group b: one positive (found), three negatives (one wrongly selected).
Y_TRUE = np.array(["1", "1", "0", "0", "1", "0", "0", "0"])
Y_PRED = np.array(["1", "0", "1", "0", "1", "1", "0", "0"])
GROUP = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])


def by_value(result):
    return {s["value"]: s["metrics"] for s in result["slices"]}


def test_group_metrics_by_hand():
    a = group_metrics(Y_TRUE[:4], Y_PRED[:4], "1", True)
    assert a == {"count": 4, "accuracy": 0.5, "selection_rate": 0.5, "true_positive_rate": 0.5,
                 "false_positive_rate": 0.5}
    b = group_metrics(Y_TRUE[4:], Y_PRED[4:], "1", True)
    assert b == {"count": 4, "accuracy": 0.75, "selection_rate": 0.5, "true_positive_rate": 1.0,
                 "false_positive_rate": pytest.approx(1 / 3)}


def test_fairlearn_gaps_by_hand():
    a = group_metrics(Y_TRUE[:4], Y_PRED[:4], "1", True)
    b = group_metrics(Y_TRUE[4:], Y_PRED[4:], "1", True)
    result = gaps([a, b])
    # Same selection rate: no demographic-parity gap; TPR 0.5 vs 1, FPR 0.5 vs 1/3: equalized odds takes the larger.
    assert result == {"demographic_parity_difference": 0.0, "equalized_odds_difference": 0.5,
                      "equal_opportunity_difference": 0.5, "accuracy_difference": 0.25}


def test_a_group_without_positives_has_a_true_positive_rate_of_zero_as_in_fairlearn():
    m = group_metrics(np.array(["0", "0"]), np.array(["0", "1"]), "1", True)
    assert m["true_positive_rate"] == 0.0 and m["false_positive_rate"] == 0.5


def test_empty_groups_only_count_and_take_no_part_in_a_gap():
    empty = group_metrics(np.array([], dtype=str), np.array([], dtype=str), "1", True)
    assert empty == {"count": 0}
    full = group_metrics(np.array(["1"]), np.array(["1"]), "1", True)
    assert gaps([full, empty])["demographic_parity_difference"] == 0.0


def test_without_a_positive_class_only_accuracy_is_compared():
    result = evaluate(np.array(["x", "y", "z"]), np.array(["x", "y", "y"]), {"g": np.array(["p", "p", "q"])},
                      [Slice(feature="g")], classes=["x", "y", "z"])
    assert by_value(result) == {"p": {"count": 2, "accuracy": 1.0}, "q": {"count": 1, "accuracy": 0.0}}
    assert result["fairness"] == [{"feature": "g", "gaps": {"accuracy_difference": 1.0}}]


def test_evaluate_slices_a_categorical_feature_and_reports_the_gaps_rounded():
    result = evaluate(Y_TRUE, Y_PRED, {"group": GROUP}, [Slice(feature="group")], classes=["0", "1"])
    assert by_value(result)["b"]["false_positive_rate"] == 0.3333
    assert result["fairness"][0]["gaps"]["equalized_odds_difference"] == 0.5


def test_regression_slices_have_rmse_and_mae_and_no_gaps():
    result = evaluate(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 3.0, 3.0]),
                      {"x": np.array([0.5, 1.5, 2.5, 3.5])}, [Slice(feature="x", bins=[2])], classes=None)
    assert by_value(result) == {"[-inf, 2)": {"count": 2, "rmse": pytest.approx(1.4142), "mae": 1.0},
                                "[2, inf)": {"count": 2, "rmse": pytest.approx(0.7071), "mae": 0.5}}
    assert "fairness" not in result


def test_slices_from_values_bins_or_every_value():
    numbers = np.array([1.0, 2.0, 2.0, 40.0])
    assert [(n, m.tolist()) for n, m in groups("n", numbers, Slice(feature="n", values=["2", "3"]))] == [
        ("2", [False, True, True, False]), ("3", [False, False, False, False])]
    assert [n for n, _ in groups("n", numbers, Slice(feature="n", bins=[2, 10]))] == [
        "[-inf, 2)", "[2, 10)", "[10, inf)"]
    assert [n for n, _ in groups("n", numbers, Slice(feature="n"))] == ["1", "2", "40"]
    assert [n for n, _ in groups("t", np.array(["b", "a", "b"]), Slice(feature="t"))] == ["a", "b"]


@pytest.mark.parametrize(("column", "spec", "says"), [
    (np.array(["a"]), Slice(feature="f", bins=[1]), "bins need a numeric feature"),
    (np.array([1.0]), Slice(feature="f", values=["one"]), "not a number"),
    (np.arange(40.0), Slice(feature="f"), "40 distinct values"),
])
def test_slices_that_cannot_be_formed_say_why(column, spec, says):
    with pytest.raises(SliceError, match=says):
        groups("f", column, spec)


def test_positive_class_is_the_one_asked_for_or_the_second_of_two():
    assert positive_class(["no", "yes"], None) == "yes"
    assert positive_class(["no", "yes"], "no") == "no"
    assert positive_class(["a", "b", "c"], None) is None
    with pytest.raises(SliceError, match="not one of the classes"):
        positive_class(["no", "yes"], "maybe")


def test_bins_must_ascend():
    with pytest.raises(ValueError, match="strictly ascending"):
        Slice(feature="age", bins=[30, 30])
