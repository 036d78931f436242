import numpy as np
import pyarrow as pa
import pytest

from mlcycle.api.trainingjob import ColumnExpectation, DataDrift, DataValidation
from mlcycle.datavalidation import expectations as ex
from mlcycle.drift import stats


def summary(expectation: dict | None, *batches) -> ex.ColumnSummary:
    s = ex.ColumnSummary("c", ColumnExpectation.model_validate({"name": "c", **expectation}) if expectation else None)
    for b in batches:
        s.add(pa.array(b))
    return s


def outcome(s: ex.ColumnSummary, expectation: str) -> ex.Outcome:
    return next(o for o in ex.column_outcomes(s) if o.expectation == f"{expectation}(c)")


@pytest.mark.parametrize(("values", "observed"), [
    (["1", " 2", "-3", "1e3"], "integer"),  # whole numbers, however written
    (["1", "2.5"], "number"),
    (["1", "2", "-3"], "integer"),
    ([1.0, 2.0, None], "integer"),
    ([1.5, 2.0], "number"),
    (["true", "FALSE"], "boolean"),
    ([True, None], "boolean"),
    (["setosa", "1"], "string"),
    (["", "NA", None, "NaN"], "empty"),
])
def test_a_column_is_typed_by_every_present_value(values, observed):
    assert summary(None, values).observed_type == observed


def test_missing_values_are_nulls_empty_text_and_pyarrows_null_spellings():
    s = summary({"maxMissing": 0.25}, ["1", "", " ", "NA", "null", "N/A", "NaN", None], [2.0, float("nan")])
    assert s.rows == 10 and s.missing == 8
    o = outcome(s, "missing")
    assert o.result == ex.FAILED and o.observed == "80%"
    assert "80% of rows missing (8 of 10), allowed 25%" in o.message


def test_a_range_counts_values_outside_it_and_text_among_them_against_the_present_values():
    s = summary({"min": 0, "max": 10}, ["1", "11", "abc", "", "5"], [-1.0, 3.0, None])
    assert s.present == 6 and s.out_of_range == 3
    o = outcome(s, "range")
    assert o.result == ex.FAILED and o.observed == "50% outside"
    assert "c: 50% of values outside [0, 10] (3 of 6, e.g. '11', 'abc', '-1')" in o.message
    assert "observed min -1, max 11" in o.message


def test_max_invalid_tolerates_a_share_of_bad_values():
    values = [str(v) for v in range(100)]
    assert outcome(summary({"max": 97, "maxInvalid": 0.02}, values), "range").result == ex.PASSED
    failed = outcome(summary({"max": 96, "maxInvalid": 0.02}, values), "range")
    assert failed.result == ex.FAILED and "3% of values outside [-∞, 96] (3 of 100" in failed.message


def test_allowed_values_compare_text_as_text_and_numbers_as_numbers():
    s = summary({"allowedValues": ["setosa", "1"]}, ["setosa", "1.0", " setosa ", "virginica"], [1.0, 2.0])
    assert s.not_allowed == 2
    o = outcome(s, "values")
    assert o.result == ex.FAILED and "(2 of 6, e.g. 'virginica', '2')" in o.message


@pytest.mark.parametrize(("expected", "values", "ok"), [
    ("number", ["1", "2.5"], True),
    ("number", ["1", "2"], True),
    ("integer", ["1", "2.5"], False),
    ("string", ["a", "b"], True),
    ("string", ["1", "2"], False),
    ("boolean", ["true", "false"], True),
    ("number", ["1", "x"], False),
])
def test_type_expectations(expected, values, ok):
    o = outcome(summary({"type": expected}, values), "type")
    assert (o.result == ex.PASSED) == ok, o.message


def test_a_failed_type_says_how_many_values_do_not_fit():
    assert "(1 of 3 values are not numbers)" in outcome(summary({"type": "number"}, ["1", "x", "2"]), "type").message
    assert "(1 of 2 values are not whole numbers)" in outcome(summary({"type": "integer"}, [1.5, 2.0]), "type").message


def test_row_bounds():
    spec = DataValidation(min_rows=10, max_rows=20)
    assert ex.row_outcomes(15, spec)[0].result == ex.PASSED
    low = ex.row_outcomes(9, spec)[0]
    assert low.result == ex.FAILED and low.message == "the dataset has 9 rows, outside [10, 20]"
    assert ex.row_outcomes(5, DataValidation()) == []


def test_required_columns_and_extra_columns():
    spec = DataValidation.model_validate({"columns": [{"name": "a"}, {"name": "b", "required": False},
                                                      {"name": "c"}], "allowExtraColumns": False})
    outcomes = {o.expectation: o for o in ex.schema_outcomes(["a", "x"], spec)}
    assert outcomes["exists(a)"].result == ex.PASSED
    assert "exists(b)" not in outcomes
    assert outcomes["exists(c)"].result == ex.FAILED and "column 'c' is missing" in outcomes["exists(c)"].message
    assert outcomes["columns"].result == ex.FAILED and outcomes["columns"].observed == "x"


def sketches(**columns) -> dict[str, stats.Sketch]:
    return {name: stats.Sketch.of_reference(np.asarray(values, float)) for name, values in columns.items()}


def current(references: dict[str, stats.Sketch], **columns) -> dict[str, stats.Sketch]:
    out = {name: references[name].empty_like() for name in columns}
    for name, values in columns.items():
        out[name].add(np.asarray(values, float))
    return out


def test_drift_fails_when_the_drifted_share_reaches_drift_share_and_names_the_columns():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 500), rng.normal(5, 1, 500)
    refs = sketches(a=a, b=b)
    drift = DataDrift(against_alias="champion", method="psi", drift_share=0.5)
    shifted = stats.compare_all(refs, current(refs, a=a + 3, b=b), ["a", "b"], "psi", None, 0.5)
    o = ex.drift_outcome(shifted, drift)
    assert o.result == ex.FAILED and o.message == "1 of 2 drifted (50%) against the data of champion: a"
    same = stats.compare_all(refs, current(refs, a=a, b=b), ["a", "b"], "psi", None, 0.5)
    assert ex.drift_outcome(same, drift).result == ex.PASSED


def test_drift_without_a_reference_is_skipped_with_the_reason():
    o = ex.drift_outcome(None, DataDrift(against_alias="champion"), "no version of model iris holds alias champion")
    assert o.result == ex.SKIPPED and "holds alias champion" in o.message


def test_drift_compares_the_columns_that_hold_numbers_in_both_unless_told():
    ref = {"a": summary(None, [1.0, 2.0]), "b": summary(None, ["x"]), "c": summary(None, [1.0])}
    cur = {"a": summary(None, [1.5]), "b": summary(None, [1.0]), "d": summary(None, [1.0])}
    assert ex.drift_columns(ref, cur, DataDrift(against_alias="x")) == ["a"]
    assert ex.drift_columns(ref, cur, DataDrift(against_alias="x", columns=["b"])) == ["b"]


def test_summary_message_counts_the_checked_and_names_the_failed():
    outcomes = [ex.Outcome("rows", None, ex.PASSED, "", "", "ok"),
                ex.Outcome("range(a)", "a", ex.FAILED, "", "", "a: 5% of values outside [0, 1]"),
                ex.Outcome("drift(x)", None, ex.SKIPPED, "", "", "no reference")]
    assert ex.summary_message(outcomes, 10) == "1 of 2 expectations failed: a: 5% of values outside [0, 1]"
    assert ex.summary_message(outcomes[:1], 1000) == "1 expectations met on 1,000 rows"
