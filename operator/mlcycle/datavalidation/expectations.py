"""The expectations of spec.dataValidation, checked on bounded per-column summaries.

A `ColumnSummary` is fed the column batch by batch (pyarrow arrays, as the trainer's readers yield them),
so memory does not grow with the dataset. Text is typed value by value, the way the trainer will read it:
a value is missing when it is null, empty, or one of pyarrow's null spellings (NA, NaN, null, ...), a
number when it parses as one, a boolean when it is true/false. A column's observed type is the narrowest
that all its present values have: integer (whole numbers), number, boolean, else string.

Shares: missing values are counted against all rows; out-of-range and not-allowed values against the
column's present values (what `maxInvalid` bounds), as Great Expectations' `mostly` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mlcycle.api.trainingjob import ColumnExpectation, DataDrift, DataValidation
from mlcycle.drift import stats

# What pyarrow (and so the trainer) reads as null, and the empty string.
MISSING_TEXT = sorted({"", *pacsv.ConvertOptions().null_values})
BOOLEAN_TEXT = ["true", "false", "True", "False", "TRUE", "FALSE"]
_NUMBER = r"^[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|(?i:inf|infinity))$"
EXAMPLES = 5  # offending values kept per column for the report
TYPE_ACCEPTS = {  # expected type -> observed types that satisfy it
    "number": {"number", "integer"},
    "integer": {"integer"},
    "string": {"string"},
    "boolean": {"boolean"},
}


@dataclass
class ColumnSummary:
    """What validation needs to know of one column, added batch by batch."""

    name: str
    expectation: ColumnExpectation | None = None
    rows: int = 0
    missing: int = 0
    numbers: int = 0  # present values that are numbers
    whole: int = 0  # ... and whole
    booleans: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    out_of_range: int = 0  # present values outside [min, max] (text counts as outside)
    not_allowed: int = 0  # present values not in allowedValues
    range_examples: list[str] = field(default_factory=list)
    value_examples: list[str] = field(default_factory=list)

    def add(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Count one batch of the column; returns its values as float64 (NaN where not a number), for drift."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        text, numbers, booleans, missing = _typed(column)
        values = numbers.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        missing_mask = missing.to_numpy(zero_copy_only=False)
        present = ~missing_mask
        is_number = present & ~np.isnan(values)
        found = values[is_number]
        self.rows += len(column)
        self.missing += int(missing_mask.sum())
        self.numbers += int(found.size)
        self.whole += int(np.count_nonzero(np.isfinite(found) & (found == np.round(found))))
        self.booleans += int(np.count_nonzero(booleans.to_numpy(zero_copy_only=False) & present))
        if found.size:
            self.minimum = min(self.minimum, float(found.min()))
            self.maximum = max(self.maximum, float(found.max()))
        e = self.expectation
        if e is not None and (e.min is not None or e.max is not None):
            inside = is_number.copy()
            if e.min is not None:
                inside &= values >= e.min
            if e.max is not None:
                inside &= values <= e.max
            outside = present & ~inside
            self.out_of_range += int(outside.sum())
            _keep_examples(self.range_examples, text, outside)
        if e is not None and e.allowed_values:
            allowed = pc.is_in(text, value_set=pa.array(e.allowed_values, pa.string())).to_numpy(zero_copy_only=False)
            numeric = [float(v) for v in e.allowed_values if _is_number(v)]
            if numeric:
                allowed |= np.isin(values, numeric)
            rejected = present & ~allowed
            self.not_allowed += int(rejected.sum())
            _keep_examples(self.value_examples, text, rejected)
        return values

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def observed_type(self) -> str:
        """integer, number, boolean or string; `empty` when every value is missing."""
        if self.present == 0:
            return "empty"
        if self.booleans == self.present:
            return "boolean"
        if self.numbers == self.present:
            return "integer" if self.whole == self.numbers else "number"
        return "string"

    def to_json(self) -> dict[str, Any]:
        numeric = self.numbers > 0
        return {
            "type": self.observed_type,
            "rows": self.rows,
            "missing": self.missing,
            "missingShare": share(self.missing, self.rows),
            "min": self.minimum if numeric else None,
            "max": self.maximum if numeric else None,
        }


def _typed(column: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(text, numbers as float64 or null, is-boolean, is-missing) of one batch, whatever its arrow type."""
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = pc.utf8_trim_whitespace(column.cast(pa.string()))
        missing = pc.or_(pc.is_null(text), pc.is_in(text, value_set=pa.array(MISSING_TEXT)))
        is_number = pc.fill_null(pc.and_(pc.match_substring_regex(text, _NUMBER), pc.invert(missing)), False)
        numbers = pc.if_else(is_number, text, pa.scalar(None, pa.string())).cast(pa.float64())
        booleans = pc.fill_null(pc.is_in(text, value_set=pa.array(BOOLEAN_TEXT)), False)
        return text, numbers, booleans, missing
    if pa.types.is_boolean(t):
        missing = pc.is_null(column)
        return (column.cast(pa.string()), pa.nulls(len(column), pa.float64()), pc.fill_null(column.is_valid(), False),
                missing)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        numbers = column.cast(pa.float64())
        missing = pc.is_null(numbers, nan_is_null=True)
        return numbers.cast(pa.string()), numbers, pa.array(np.zeros(len(column), bool)), missing
    # Dates, times, nested values: text for allowedValues, never numbers.
    text = column.cast(pa.string()) if pa.types.is_temporal(t) else pa.array([str(v) for v in column.to_pylist()])
    return text, pa.nulls(len(column), pa.float64()), pa.array(np.zeros(len(column), bool)), pc.is_null(column)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _keep_examples(examples: list[str], text: pa.Array, mask: np.ndarray) -> None:
    if len(examples) >= EXAMPLES or not mask.any():
        return
    for value in text.filter(pa.array(mask)).to_pylist():
        value = "" if value is None else value
        if value not in examples:
            examples.append(value)
            if len(examples) >= EXAMPLES:
                return


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --- outcomes ------------------------------------------------------------------------------------

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Outcome:
    """One expectation checked: what was expected, what was observed, and the verdict in words."""

    expectation: str  # e.g. range(sepal_length)
    column: str | None
    result: str  # passed, failed or skipped
    expected: str
    observed: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "column": self.column, "result": self.result,
                "expected": self.expected, "observed": self.observed, "message": self.message}


def _verdict(ok: bool) -> str:
    return PASSED if ok else FAILED


def percent(value: float) -> str:
    """A share as people read it: 12.5%, 0.05%, 0%."""
    return f"{value:.3g}%" if (value := value * 100) else "0%"


def _number(value: float) -> str:
    return f"{value:g}"


def row_outcomes(rows: int, spec: DataValidation) -> list[Outcome]:
    if spec.min_rows is None and spec.max_rows is None:
        return []
    low = spec.min_rows if spec.min_rows is not None else 0
    bounds = f"[{low}, {spec.max_rows if spec.max_rows is not None else '∞'}]"
    ok = rows >= low and (spec.max_rows is None or rows <= spec.max_rows)
    return [Outcome("rows", None, _verdict(ok), f"rows in {bounds}", f"{rows:,} rows",
                    f"the dataset has {rows:,} rows" + ("" if ok else f", outside {bounds}"))]


def schema_outcomes(columns: Sequence[str], spec: DataValidation) -> list[Outcome]:
    """Required columns present; no others when allowExtraColumns is false."""
    outcomes = []
    for e in spec.columns or []:
        if e.required:
            ok = e.name in columns
            said = "present" if ok else f"missing (columns: {list(columns)})"
            outcomes.append(Outcome(f"exists({e.name})", e.name, _verdict(ok), "column present",
                                    "present" if ok else "absent", f"column {e.name!r} is {said}"))
    if not spec.allow_extra_columns:
        listed = {e.name for e in spec.columns or []}
        extra = [c for c in columns if c not in listed]
        outcomes.append(Outcome("columns", None, _verdict(not extra), "only the listed columns",
                                ", ".join(extra) or "none extra",
                                f"unexpected columns {extra}" if extra else "no unexpected columns"))
    return outcomes


def column_outcomes(summary: ColumnSummary) -> list[Outcome]:
    """The outcomes of one column's expectation (type, missing, range, allowed values), from its summary."""
    e, name, out = summary.expectation, summary.name, []
    if e is None:
        return out
    if e.type is not None:
        observed = summary.observed_type
        ok = observed in TYPE_ACCEPTS[e.type]
        detail = ""
        if not ok and e.type in ("number", "integer") and observed == "string":
            detail = f" ({summary.present - summary.numbers:,} of {summary.present:,} values are not numbers)"
        elif not ok and e.type == "integer" and observed == "number":
            detail = f" ({summary.numbers - summary.whole:,} of {summary.present:,} values are not whole numbers)"
        out.append(Outcome(f"type({name})", name, _verdict(ok), e.type, observed,
                           f"{name}: values are {observed}" + ("" if ok else f", expected {e.type}") + detail))
    if e.max_missing is not None:
        observed = share(summary.missing, summary.rows)
        ok = observed <= e.max_missing
        out.append(Outcome(f"missing({name})", name, _verdict(ok), f"≤ {percent(e.max_missing)} missing",
                           percent(observed),
                           f"{name}: {percent(observed)} of rows missing ({summary.missing:,} of {summary.rows:,})"
                           + ("" if ok else f", allowed {percent(e.max_missing)}")))
    if e.min is not None or e.max is not None:
        bounds = f"[{_number(e.min) if e.min is not None else '-∞'}, {_number(e.max) if e.max is not None else '∞'}]"
        observed = share(summary.out_of_range, summary.present)
        ok = observed <= e.max_invalid
        seen = (f"; observed min {_number(summary.minimum)}, max {_number(summary.maximum)}"
                if summary.numbers else "")
        examples = f", e.g. {', '.join(map(repr, summary.range_examples))}" if summary.range_examples and not ok else ""
        out.append(Outcome(
            f"range({name})", name, _verdict(ok), f"in {bounds}" + (f", ≤ {percent(e.max_invalid)} outside"
                                                                   if e.max_invalid else ""),
            f"{percent(observed)} outside",
            f"{name}: {percent(observed)} of values outside {bounds} ({summary.out_of_range:,} of "
            f"{summary.present:,}{examples})" + ("" if ok else f", allowed {percent(e.max_invalid)}") + seen))
    if e.allowed_values:
        observed = share(summary.not_allowed, summary.present)
        ok = observed <= e.max_invalid
        listed = ", ".join(e.allowed_values[:8]) + (f" and {len(e.allowed_values) - 8} more"
                                                    if len(e.allowed_values) > 8 else "")
        examples = f", e.g. {', '.join(map(repr, summary.value_examples))}" if summary.value_examples else ""
        out.append(Outcome(f"values({name})", name, _verdict(ok), f"one of {listed}", f"{percent(observed)} other",
                           f"{name}: {percent(observed)} of values not allowed ({summary.not_allowed:,} of "
                           f"{summary.present:,}{examples})" + ("" if ok else f", allowed {percent(e.max_invalid)}")))
    return out


def summaries(columns: Sequence[str], spec: DataValidation) -> dict[str, ColumnSummary]:
    """A summary for every column of the dataset, with its expectation where it has one."""
    expectations = {e.name: e for e in spec.columns or []}
    return {c: ColumnSummary(c, expectations.get(c)) for c in columns}


# --- drift against the champion's data ------------------------------------------------------------


def drift_columns(reference: Mapping[str, ColumnSummary], current: Mapping[str, ColumnSummary],
                  drift: DataDrift) -> list[str]:
    """The columns to compare: those asked for, else every column that holds numbers in both."""
    if drift.columns:
        return list(drift.columns)
    numeric = ("integer", "number")
    return [c for c in current if c in reference and current[c].observed_type in numeric
            and reference[c].observed_type in numeric]


def drift_outcome(result: stats.DatasetResult | None, drift: DataDrift, skipped: str | None = None) -> Outcome:
    """The drift expectation: fails when the drifted share of the compared columns reaches driftShare."""
    expected = f"< {percent(drift.drift_share)} of columns drifted ({drift.method})"
    name = f"drift({drift.against_alias})"
    if result is None:
        return Outcome(name, None, SKIPPED, expected, "not compared", skipped or "not compared")
    drifted = result.drifted
    observed = f"{len(drifted)} of {len(result.features)} drifted ({percent(result.share)})"
    message = f"{observed} against the data of {drift.against_alias}" + (f": {', '.join(drifted)}" if drifted else "")
    return Outcome(name, None, _verdict(not result.detected), expected, observed, message)


def failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.result == FAILED]


def summary_message(outcomes: Sequence[Outcome], rows: int) -> str:
    failed = failures(outcomes)
    checked = sum(o.result != SKIPPED for o in outcomes)
    if not failed:
        return f"{checked} expectations met on {rows:,} rows"
    shown = "; ".join(o.message for o in failed[:5])
    more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
    return f"{len(failed)} of {checked} expectations failed: {shown}{more}"
