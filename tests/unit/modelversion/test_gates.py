import pytest

from mlcycle.api.modelversion import Champion, Evaluation, FairnessThreshold, SliceThreshold, Threshold, Validation
from mlcycle.modelversion.gates import (
    champion_result,
    fairness_result,
    slice_threshold_result,
    threshold_result,
    validation_results,
)


@pytest.mark.parametrize(("op", "bound", "value", "passed"), [
    (">=", 0.9, 0.9, True), (">=", 0.9, 0.8999, False),
    (">", 0.9, 0.9001, True), (">", 0.9, 0.9, False),
    ("<=", 3.0, 3.0, True), ("<=", 3.0, 3.0001, False),
    ("<", 3.0, 2.999, True), ("<", 3.0, 3.0, False),
])
def test_threshold_holds_on_one_side_of_the_bound_only(op, bound, value, passed):
    result = threshold_result(Threshold(metric="m", op=op, value=bound), {"m": value})
    assert result["passed"] is passed
    assert result["rule"] == f"m {op} {bound:g}"
    assert result["observed"] == value


def test_threshold_on_a_missing_metric_fails_and_says_so():
    result = threshold_result(Threshold(metric="accuracy", op=">=", value=0.9), {"loss": 0.1})
    assert not result["passed"]
    assert "accuracy is not in spec.metrics" in result["message"]


def champion(**kw):
    return Champion.model_validate({"alias": "production", "metric": "accuracy", "minImprovement": 0.05} | kw)


@pytest.mark.parametrize(("candidate", "passed"), [(0.95, True), (0.96, True), (0.9499, False), (0.90, False)])
def test_challenger_must_beat_the_champion_by_the_margin_when_higher_is_better(candidate, passed):
    result = champion_result(champion(), {"accuracy": candidate}, ("iris-v1", {"accuracy": 0.90}))
    assert result["passed"] is passed
    assert "iris-v1" in result["message"]


@pytest.mark.parametrize(("candidate", "passed"), [(2.5, True), (2.51, False), (3.5, False)])
def test_challenger_must_beat_the_champion_by_the_margin_when_lower_is_better(candidate, passed):
    rule = champion(metric="rmse", minImprovement=0.5, higherIsBetter=False)
    assert champion_result(rule, {"rmse": candidate}, ("v1", {"rmse": 3.0}))["passed"] is passed


def test_without_a_champion_there_is_nothing_to_beat():
    result = champion_result(champion(), {"accuracy": 0.1}, None)
    assert result["passed"]
    assert "no other version holds production" in result["message"]


def test_challenger_without_the_metric_fails():
    assert not champion_result(champion(), {}, ("v1", {"accuracy": 0.9}))["passed"]


def test_validation_results_list_thresholds_then_champion():
    validation = Validation.model_validate({
        "thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.9}, {"metric": "rmse", "op": "<=", "value": 3}],
        "champion": {"alias": "production", "metric": "accuracy"}})
    results = validation_results(validation, {"accuracy": 0.93, "rmse": 4}, ("v1", {"accuracy": 0.92}))
    assert [(r["rule"], r["passed"]) for r in results] == [
        ("accuracy >= 0.9", True), ("rmse <= 3", False), ("beat production on accuracy by 0 (higher is better)", True)]
    assert validation_results(None, {"a": 1}, None) == []


EVALUATION = Evaluation.model_validate({
    "slices": [
        {"feature": "region", "value": "north", "metrics": {"count": 60, "accuracy": 0.97, "selection_rate": 0.5}},
        {"feature": "region", "value": "island", "metrics": {"count": 20, "accuracy": 0.55, "selection_rate": 0.1}},
        {"feature": "region", "value": "south", "metrics": {"count": 0}},
        {"feature": "age", "value": "[-inf, 30)", "metrics": {"count": 40, "accuracy": 0.75}},
    ],
    "fairness": [{"feature": "region", "gaps": {"demographic_parity_difference": 0.4, "accuracy_difference": 0.42}}],
})


def slice_gate(**kw):
    return SliceThreshold.model_validate({"metric": "accuracy", "op": ">=", "value": 0.8} | kw)


def test_a_slice_gate_names_each_failing_slice_with_its_value_and_the_bound():
    result = slice_threshold_result(slice_gate(feature="region"), EVALUATION)
    assert result["rule"] == "accuracy >= 0.8 on every slice of region"
    assert not result["passed"] and result["observed"] == 0.55
    # An empty slice has no accuracy: it cannot show that the model is good there.
    assert result["message"] == "region=island: accuracy 0.55, bound 0.8; region=south: no accuracy"


def test_a_slice_gate_without_a_feature_covers_every_slice_and_passes_when_all_hold():
    result = slice_threshold_result(slice_gate(value=0.7, feature="age"), EVALUATION)
    assert result["passed"] and result["observed"] == 0.75
    assert not slice_threshold_result(slice_gate(value=0.5), EVALUATION)["passed"]  # south has no accuracy


def test_a_maximum_per_slice_reports_the_highest_slice():
    result = slice_threshold_result(slice_gate(metric="selection_rate", op="<=", value=0.3, feature="region"),
                                    EVALUATION)
    assert result["observed"] == 0.5 and "region=north: selection_rate 0.5, bound 0.3" in result["message"]


def test_a_slice_gate_fails_when_no_slices_were_reported():
    result = slice_threshold_result(slice_gate(feature="sex"), EVALUATION)
    assert not result["passed"] and result["message"] == "spec.evaluation has no slices of sex"
    assert not slice_threshold_result(slice_gate(), None)["passed"]


def test_a_slice_gate_never_passes_on_a_truncated_evaluation():
    truncated = EVALUATION.model_copy(update={"truncated": True})
    result = slice_threshold_result(slice_gate(value=0.7, feature="age"), truncated)
    assert not result["passed"] and "truncated: only 1 slice(s) reported" in result["message"]


def test_a_long_list_of_failing_slices_is_cut_in_the_message():
    many = Evaluation.model_validate({"slices": [
        {"feature": "f", "value": str(i), "metrics": {"accuracy": 0.1}} for i in range(9)]})
    assert slice_threshold_result(slice_gate(), many)["message"].endswith("f=4: accuracy 0.1, bound 0.8; and 4 more")


def test_a_message_stays_within_what_the_status_schema_accepts():
    long = Evaluation.model_validate({"slices": [
        {"feature": "f" * 200, "value": f"{i}" * 200, "metrics": {"accuracy": 0.1}} for i in range(5)]})
    assert len(slice_threshold_result(slice_gate(), long)["message"]) == 1024


def test_a_fairness_gate_compares_the_gap_and_names_the_groups_at_either_end():
    gate = FairnessThreshold(feature="region", metric="demographic_parity_difference", max=0.2)
    result = fairness_result(gate, EVALUATION)
    assert result["rule"] == "demographic_parity_difference across region <= 0.2"
    assert not result["passed"] and result["observed"] == 0.4
    assert result["message"] == ("demographic_parity_difference 0.4, bound 0.2; "
                                 "selection_rate 0.5 at region=north, 0.1 at region=island")
    assert fairness_result(FairnessThreshold(feature="region", metric="accuracy_difference", max=0.5),
                           EVALUATION)["passed"]


def test_a_fairness_gate_fails_when_the_gap_was_not_reported():
    gate = FairnessThreshold(feature="region", metric="equalized_odds_difference", max=0.2)
    result = fairness_result(gate, EVALUATION)
    assert not result["passed"] and "no equalized_odds_difference for region" in result["message"]


def test_validation_results_add_slice_and_fairness_gates_after_the_others():
    validation = Validation.model_validate({
        "thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.9}],
        "sliceThresholds": [{"metric": "accuracy", "op": ">=", "value": 0.5, "feature": "age"}],
        "fairness": [{"feature": "region", "metric": "accuracy_difference", "max": 0.1}]})
    results = validation_results(validation, {"accuracy": 0.93}, None, EVALUATION)
    assert [(r["rule"], r["passed"]) for r in results] == [
        ("accuracy >= 0.9", True), ("accuracy >= 0.5 on every slice of age", True),
        ("accuracy_difference across region <= 0.1", False)]
