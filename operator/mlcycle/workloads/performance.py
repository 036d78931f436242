"""The performance half of `mlcycle drift`: the served version's live metric from delayed labels.

With MLCYCLE_PERF_LABELS set (the CronJob sets these from spec.monitoring.performance), each check also reads
the predictions the serving agent logged in the window (`<logs>/<YYYY-MM-DD>/<HH>/*.parquet`, rows whose
timestamp is within MLCYCLE_PERF_WINDOW of the check and whose request succeeded), reads the labels that have
arrived under the labels prefix (only those of the window's requests are kept), joins them on the request
id (mlcycle.performance.join), computes the metric and the verdict (mlcycle.performance.metrics), writes
performance.json next to the drift report and returns the compact result that goes into the termination
message under "performance".

  MLCYCLE_PERF_LABELS            S3 prefix (or object) of the label files, .parquet or .csv
  MLCYCLE_PERF_METRIC            accuracy, f1, rmse or mae
  MLCYCLE_PERF_THRESHOLD         degraded below it (accuracy, f1) or above it (rmse, mae)
  MLCYCLE_PERF_WINDOW            how far back the logged predictions go, e.g. 24h (default 24h)
  MLCYCLE_PERF_MIN_LABELLED_ROWS fewer labelled rows give InsufficientData (default 100)
  MLCYCLE_PERF_ID_COLUMN, MLCYCLE_PERF_ROW_COLUMN, MLCYCLE_PERF_LABEL_COLUMN  the labels' columns
                                 (request_id, none, label)
  MLCYCLE_PERF_CLASSES           JSON list of the class names in the model's output order (labels are names)
  MLCYCLE_PERF_OUTPUT            the logged output column to score (default: the only one)

A check that cannot read the labels or the logs reports Failed with the cause; the drift result stands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlcycle import training
from mlcycle.api.inferenceservice import PERFORMANCE_METRICS
from mlcycle.clients import s3
from mlcycle.inferenceservice.retrain import parse_duration
from mlcycle.performance import join, metrics
from mlcycle.workloads.agent_log import META_COLUMNS

_MESSAGE_LIMIT = 600
_TIMESTAMP, _STATUS = "timestamp", "status"


@dataclass(frozen=True)
class PerformanceConfig:
    labels: str
    metric: str
    threshold: float
    window: timedelta = timedelta(hours=24)
    min_labelled_rows: int = 100
    id_column: str = "request_id"
    row_column: str | None = None
    label_column: str = "label"
    classes: tuple[str, ...] | None = None
    output: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PerformanceConfig | None:
        """None without MLCYCLE_PERF_LABELS; ValueError naming a bad value."""
        labels = env.get("MLCYCLE_PERF_LABELS")
        if not labels:
            return None
        s3.parse_s3_uri(labels)
        metric = env.get("MLCYCLE_PERF_METRIC", "")
        if metric not in PERFORMANCE_METRICS:
            raise ValueError(f"MLCYCLE_PERF_METRIC must be one of {', '.join(PERFORMANCE_METRICS)}, not {metric!r}")
        if not env.get("MLCYCLE_PERF_THRESHOLD"):
            raise ValueError("MLCYCLE_PERF_THRESHOLD is required with MLCYCLE_PERF_LABELS")
        classes = json.loads(env["MLCYCLE_PERF_CLASSES"]) if env.get("MLCYCLE_PERF_CLASSES") else None
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
            raise ValueError(f"MLCYCLE_PERF_CLASSES must be a JSON list of names, not {env['MLCYCLE_PERF_CLASSES']!r}")
        minimum = int(env.get("MLCYCLE_PERF_MIN_LABELLED_ROWS") or 100)
        if minimum < 1:
            raise ValueError(f"MLCYCLE_PERF_MIN_LABELLED_ROWS must be at least 1, not {minimum}")
        return cls(
            labels=labels,
            metric=metric,
            threshold=float(env["MLCYCLE_PERF_THRESHOLD"]),
            window=parse_duration(env.get("MLCYCLE_PERF_WINDOW") or "24h"),
            min_labelled_rows=minimum,
            id_column=env.get("MLCYCLE_PERF_ID_COLUMN") or "request_id",
            row_column=env.get("MLCYCLE_PERF_ROW_COLUMN") or None,
            label_column=env.get("MLCYCLE_PERF_LABEL_COLUMN") or "label",
            classes=tuple(classes) if classes else None,
            output=env.get("MLCYCLE_PERF_OUTPUT") or None,
        )


def hour_in_window(relative_key: str, start: datetime) -> bool:
    """Whether a log object `<YYYY-MM-DD>/<HH>/<batch>.parquet` (relative to the logs prefix) may hold rows
    from `start` on: its hour folder is not before start's hour. Keys of another layout are read."""
    parts = relative_key.split("/")
    if len(parts) < 3:
        return True
    try:
        hour = datetime.strptime(f"{parts[-3]} {parts[-2]}", "%Y-%m-%d %H").replace(tzinfo=start.tzinfo)
    except ValueError:
        return True
    return hour >= start.replace(minute=0, second=0, microsecond=0)


def read_predictions(storage, logs: str, start: datetime, output: str | None) -> pa.Table:
    """The window's logged predictions (request_id, row, prediction): rows logged at or after `start` whose
    request succeeded, from every log file that may hold some."""
    bucket, prefix = s3.parse_s3_uri(logs)
    keys = [k for k, _, _ in s3.list_objects(storage, bucket, prefix)
            if k.endswith(".parquet") and hour_in_window(k[len(prefix):].lstrip("/"), start)]
    tables = []
    for key in keys:
        parquet = pq.ParquetFile(pa.BufferReader(s3.read_bytes(storage, bucket, key)))
        column = join.output_column(parquet.schema_arrow, META_COLUMNS, output)
        table = parquet.read(columns=[join.REQUEST_ID, join.ROW, _TIMESTAMP, _STATUS, column])
        keep = pc.and_(pc.greater_equal(table.column(_TIMESTAMP), pa.scalar(start, table.schema.field(
            _TIMESTAMP).type)), pc.equal(table.column(_STATUS), 200))
        table = table.filter(pc.and_(keep, pc.is_valid(table.column(column))))
        tables.append(pa.table({join.REQUEST_ID: pc.cast(table.column(join.REQUEST_ID), pa.string()),
                                join.ROW: pc.cast(table.column(join.ROW), pa.int32()),
                                join.PREDICTION: table.column(column)}))
    if not tables:
        return pa.table({join.REQUEST_ID: pa.array([], pa.string()), join.ROW: pa.array([], pa.int32()),
                         join.PREDICTION: pa.array([], pa.float64())})
    return pa.concat_tables(tables, promote_options="permissive")


def _read_labels_file(data: bytes, key: str, config: PerformanceConfig) -> pa.Table:
    columns = [c for c in (config.id_column, config.row_column, config.label_column) if c]
    if key.endswith(".parquet"):
        return pq.read_table(pa.BufferReader(data), columns=columns)
    # Ids are text, whatever they look like; a label keeps its inferred type until it is cast for the metric.
    options = pa_csv.ConvertOptions(include_columns=columns, column_types={config.id_column: pa.string()})
    return pa_csv.read_csv(pa.BufferReader(data), convert_options=options)


def read_labels(storage, config: PerformanceConfig, ids: pa.Array) -> pa.Table:
    """The labels of the requests `ids`, keyed (join.keyed_labels), oldest file first (by when written, then
    name), so that a later label for the same row wins."""
    bucket, prefix = s3.parse_s3_uri(config.labels)
    objects = [(modified, key) for key, modified, _ in s3.list_objects(storage, bucket, prefix)
               if key.endswith((".parquet", ".csv"))]
    wanted = pc.unique(ids)
    tables = []
    for _, key in sorted(objects):
        try:
            table = _read_labels_file(s3.read_bytes(storage, bucket, key), key, config)
            keyed = join.keyed_labels(table, config.id_column, config.row_column, config.label_column)
        except (KeyError, pa.ArrowInvalid) as e:
            raise ValueError(f"labels {s3.s3_uri(bucket, key)}: {e}") from None
        tables.append(keyed.filter(pc.is_in(keyed.column(join.REQUEST_ID), value_set=wanted)))
    if not tables:
        return pa.table({join.REQUEST_ID: pa.array([], pa.string()), join.ROW: pa.array([], pa.int32()),
                         join.TRUTH: pa.array([], pa.string())})
    if len({t.schema.field(join.TRUTH).type for t in tables}) > 1:  # an int column in one file, text in another
        tables = [t.set_column(2, join.TRUTH, pc.cast(t.column(join.TRUTH), pa.string())) for t in tables]
    return pa.concat_tables(tables)


def evaluate(config: PerformanceConfig, logged: pa.Table, labels: pa.Table) -> dict[str, Any]:
    """The compact result of a window and its labels (pure)."""
    classification = metrics.is_classification(config.metric)
    joined = join.join(logged, labels, classification, config.classes)
    found = metrics.verdict(config.metric, config.threshold, joined.truth, joined.predictions, joined.window_rows,
                            config.min_labelled_rows)
    doc: dict[str, Any] = {"result": found.result, "message": found.message, "metric": config.metric,
                           "threshold": config.threshold, "coverage": round(joined.coverage, 6),
                           "labelledRows": joined.labelled_rows, "windowRows": joined.window_rows}
    if found.value is not None:
        doc["value"] = found.value
    return doc


def run(config: PerformanceConfig, logs: str, reports: str, storage, check_time: datetime,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """One performance check: the compact result (Failed with the cause when it could not run)."""
    start = check_time - config.window
    try:
        logged = read_predictions(storage, logs, start, config.output)
        say(f"performance: {logged.num_rows} logged prediction(s) since {start:%Y-%m-%dT%H:%M:%SZ}")
        labels = read_labels(storage, config, logged.column(join.REQUEST_ID))
        say(f"performance: {labels.num_rows} label(s) for them under {config.labels}")
        doc = evaluate(config, logged, labels)
    except (ValueError, s3.StorageError, pa.ArrowException) as e:
        doc = {"result": metrics.FAILED, "metric": config.metric, "threshold": config.threshold,
               "message": training.redact(f"performance check failed: {e}")[:_MESSAGE_LIMIT]}
    bucket, prefix = s3.parse_s3_uri(reports)
    key = s3.join_key(prefix, f"{check_time:%Y%m%dT%H%M%SZ}/performance.json")
    report = {**doc, "checkTime": f"{check_time:%Y-%m-%dT%H:%M:%SZ}", "logs": logs, "labels": config.labels,
              "window": {"from": f"{start:%Y-%m-%dT%H:%M:%SZ}", "duration": str(config.window)},
              "minLabelledRows": config.min_labelled_rows}
    try:
        s3.upload_bytes(storage, bucket, key, json.dumps(report, indent=1).encode(), "application/json")
        doc["reportUri"] = s3.s3_uri(bucket, key)
    except s3.StorageError as e:
        say(f"performance: could not write its report: {e}")
    say(f"performance: {doc['result']}: {doc['message']}")
    return doc

