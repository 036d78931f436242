"""Logged predictions joined with the labels that have arrived, as Arrow tables. Pure functions.

The serving agent logs one row per input row, keyed by `request_id` and `row` (the row's index within its
request); labels are keyed by the same request id and, for batched requests, the row. A label file may
repeat a key (a corrected label): the last one wins. Logged rows without a label are counted for the
coverage but not scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The agent's key columns (see docs/serving-agent.md).
REQUEST_ID, ROW = "request_id", "row"
PREDICTION, TRUTH = "prediction", "truth"
_ORDER = "__order"


@dataclass(frozen=True)
class Joined:
    """The labelled rows of a window: the model's predictions and the truth, side by side."""

    predictions: np.ndarray
    truth: np.ndarray
    window_rows: int  # logged predictions in the window, labelled or not

    @property
    def labelled_rows(self) -> int:
        return len(self.truth)

    @property
    def coverage(self) -> float:
        """Share of the window's predictions that have a label (0 for an empty window)."""
        return self.labelled_rows / self.window_rows if self.window_rows else 0.0


def output_column(schema: pa.Schema, meta: Sequence[str], wanted: str | None) -> str:
    """The logged output to score: `wanted`, or the log's only output (the agent logs each output as a list
    column; a scalar column named output__* counts too). ValueError naming the candidates otherwise."""
    if wanted:
        if wanted not in schema.names:
            raise ValueError(f"output column {wanted!r} is not in the request logs (columns: {schema.names})")
        return wanted
    outputs = [f.name for f in schema if f.name not in meta and
               (pa.types.is_list(f.type) or pa.types.is_large_list(f.type) or f.name.startswith("output__"))]
    if len(outputs) != 1:
        raise ValueError(f"the request logs have the output columns {outputs}: set spec.monitoring.performance"
                         ".output to the one to score")
    return outputs[0]


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A logged output as [rows, values]: a list column of equal-length lists, or a scalar column."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).reshape(-1, 1)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != lengths.max() or lengths.min() == 0):
        raise ValueError(f"the logged output has rows of {sorted(set(lengths.tolist()))[:5]} values; "
                         "scoring needs the same number in every row")
    values = pc.cast(pc.list_flatten(column), pa.float64()).to_numpy(zero_copy_only=False)
    return values.reshape(len(column), int(lengths[0]) if len(lengths) else 1)


def predictions(column: pa.ChunkedArray | pa.Array, classification: bool) -> np.ndarray:
    """Per row, the class (the index of the largest output, or the single output rounded) or the value
    (the first output) the model predicted."""
    matrix = _matrix(column)
    if not classification:
        return matrix[:, 0]
    if matrix.shape[1] == 1:
        return np.rint(matrix[:, 0]).astype(np.int64)
    return np.argmax(matrix, axis=1).astype(np.int64)


def truth(column: pa.ChunkedArray | pa.Array, classification: bool, classes: Sequence[str] | None) -> np.ndarray:
    """The labels as the predictions' type: class indices (names looked up in `classes`, in the model's
    output order), or floats. ValueError naming labels that are not one of the classes."""
    if not classification:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    if classes:
        text = pc.cast(column, pa.string())
        index = pc.index_in(text, value_set=pa.array(list(classes), pa.string()))
        unknown = pc.unique(pc.filter(text, pc.is_null(index))).to_pylist()
        if unknown:
            raise ValueError(f"label(s) {sorted(map(str, unknown))[:10]} are not among the classes {list(classes)}")
        return index.to_numpy(zero_copy_only=False).astype(np.int64)
    try:
        return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError("the labels are not class indices: set spec.monitoring.performance.classes to the class "
                         "names in the model's output order") from None


def keyed_labels(table: pa.Table, id_column: str, row_column: str | None, label_column: str) -> pa.Table:
    """A labels file as (request_id, row, label): ids as text; without a row column every label is for its
    request's first row. Rows whose label is missing are left out. KeyError naming a missing column."""
    missing = [c for c in (id_column, row_column, label_column) if c and c not in table.column_names]
    if missing:
        raise KeyError(f"column(s) {missing} are not in the labels (columns: {table.column_names})")
    rows = pc.cast(table.column(row_column), pa.int32()) if row_column else pa.array(
        np.zeros(table.num_rows, np.int32))
    keyed = pa.table({REQUEST_ID: pc.cast(table.column(id_column), pa.string()), ROW: rows,
                      TRUTH: table.column(label_column)})
    return keyed.filter(pc.is_valid(keyed.column(TRUTH)))


def latest(labels: pa.Table) -> pa.Table:
    """One label per (request_id, row): the last in table order (files are concatenated oldest first)."""
    ordered = labels.append_column(_ORDER, pa.array(np.arange(labels.num_rows, dtype=np.int64)))
    last = ordered.group_by([REQUEST_ID, ROW], use_threads=False).aggregate([(_ORDER, "max")])
    return labels.take(np.sort(last.column(f"{_ORDER}_max").to_numpy()))


def join(logged: pa.Table, labels: pa.Table, classification: bool, classes: Sequence[str] | None = None) -> Joined:
    """`logged`: the window's predictions (request_id, row, prediction: the output column as logged);
    `labels`: keyed_labels of the files, oldest first. The labelled rows, in log order."""
    order = pa.array(np.arange(logged.num_rows, dtype=np.int64))
    # Arrow's hash join carries no list columns: join the keys and each row's position, then take the rows.
    keys = pa.table({REQUEST_ID: logged.column(REQUEST_ID), ROW: pc.cast(logged.column(ROW), pa.int32()),
                     _ORDER: order})
    matched = keys.join(latest(labels), keys=[REQUEST_ID, ROW], join_type="inner", use_threads=False)
    matched = matched.take(pc.sort_indices(matched.column(_ORDER)))
    rows = logged.column(PREDICTION).take(matched.column(_ORDER))
    return Joined(predictions(rows, classification), truth(matched.column(TRUTH), classification, classes),
                  logged.num_rows)
