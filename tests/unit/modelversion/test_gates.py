import pytest

from mlcycle.api.modelversion import Champion, Threshold, Validation
from mlcycle.modelversion.gates import champion_result, threshold_result, validation_results


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
