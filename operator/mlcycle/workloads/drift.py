"""`mlcycle drift`: one drift check of an InferenceService's served version, run by its `<isvc>-drift`
CronJob (or by hand: `kubectl create job --from=cronjob/<isvc>-drift`).

It compares the newest logged requests with a reference, feature by feature (mlcycle.drift.stats),
writes report.json and report.html to S3, and reports a compact result in the pod's termination message
for the operator (status.drift, the DriftDetected condition, retraining).

Inputs, each an option or else the environment variable the CronJob sets:

  --logs       MLCYCLE_DRIFT_LOGS       S3 prefix of the served version's request logs (the serving agent's
                                        Parquet files): <logging.destination>/<namespace>/<isvc>/<modelversion>/
  --reference  MLCYCLE_DRIFT_REFERENCE  S3 URI of the reference_profile.json the trainer wrote next to the
                                        model, or of reference data: a CSV or Parquet file, or a prefix of them
  --reports    MLCYCLE_DRIFT_REPORTS    S3 prefix for the reports (default: <logs>/../drift/); each check
                                        writes <reports>/<UTC time>/report.{json,html}
  --window     MLCYCLE_DRIFT_WINDOW     how many of the newest logged rows to compare (default 1000)
  --method     MLCYCLE_DRIFT_METHOD     auto (default), psi, ks, chi2, wasserstein or jensenshannon
  --threshold  MLCYCLE_DRIFT_THRESHOLD  per-feature threshold (default: the method's own)
  --drift-share MLCYCLE_DRIFT_SHARE     share of drifted features that means the service drifted (0.5)
  --features   MLCYCLE_DRIFT_FEATURES   JSON list of the features to check (default: all the reference has)
  --title      MLCYCLE_DRIFT_TITLE      heading of the report, e.g. <namespace>/<isvc>
  --model-version MLCYCLE_DRIFT_MODEL_VERSION  the version the logs belong to, for the report
  MLCYCLE_PERF_*                        with MLCYCLE_PERF_LABELS, the check also computes the served version's
                                        live metric from delayed labels (mlcycle.workloads.performance)
  MLCYCLE_TERMINATION_LOG (default /dev/termination-log) and the S3 settings MLCYCLE_S3_ENDPOINT,
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLCYCLE_S3_SECURE, AWS_REGION (see mlcycle.podenv).

The window is read newest file first, newest row group first, only the needed columns, into bounded
per-feature sketches: memory does not grow with the window. No logs, fewer logged rows than the window,
or a feature missing from the logs give InsufficientData; a missing reference gives ReferenceMissing;
both name what is missing and exit 0 (the check ran), never a "no drift". A check that cannot run
(storage unreachable, bad options) gives Failed and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlcycle import training
from mlcycle.api.inferenceservice import DRIFT_METHODS
from mlcycle.clients import s3
from mlcycle.drift import report, stats
from mlcycle.workloads import performance, profile

NO_DRIFT, DRIFT_DETECTED = "NoDrift", "DriftDetected"
INSUFFICIENT_DATA, REFERENCE_MISSING, FAILED = "InsufficientData", "ReferenceMissing", "Failed"
# Columns the serving agent writes besides the features.
LOG_METADATA = ("request_id", "row", "timestamp", "model_version", "latency_ms", "status")
LOG_OUTPUT_PREFIX = "output__"
TIMESTAMP = "timestamp"
_MESSAGE_TEXT_LIMIT = 600


class CheckOutcome(Exception):
    """The check ran but cannot decide: InsufficientData or ReferenceMissing, with what is missing."""

    def __init__(self, result: str, message: str):
        super().__init__(message)
        self.result = result
        self.message = message


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftConfig:
    logs: str
    reference: str
    reports: str
    window: int = 1000
    method: str = "auto"
    threshold: float | None = None
    drift_share: float = stats.DEFAULT_DRIFT_SHARE
    features: tuple[str, ...] | None = None
    title: str = ""
    model_version: str | None = None
    performance: performance.PerformanceConfig | None = None

    @classmethod
    def parse(cls, argv: Sequence[str], env: Mapping[str, str] = os.environ) -> DriftConfig:
        """From options, each defaulting to its MLCYCLE_DRIFT_* variable; a bad value raises ValueError."""
        parser = argparse.ArgumentParser(prog="mlcycle drift", description=__doc__.split("\n\n")[0],
                                         exit_on_error=False)

        def option(name: str, variable: str, default: str | None = None) -> None:
            parser.add_argument(f"--{name}", default=env.get(variable) or default)

        option("logs", "MLCYCLE_DRIFT_LOGS")
        option("reference", "MLCYCLE_DRIFT_REFERENCE")
        option("reports", "MLCYCLE_DRIFT_REPORTS")
        option("window", "MLCYCLE_DRIFT_WINDOW", default="1000")
        option("method", "MLCYCLE_DRIFT_METHOD", default="auto")
        option("threshold", "MLCYCLE_DRIFT_THRESHOLD")
        option("drift-share", "MLCYCLE_DRIFT_SHARE", default=str(stats.DEFAULT_DRIFT_SHARE))
        option("features", "MLCYCLE_DRIFT_FEATURES")
        option("title", "MLCYCLE_DRIFT_TITLE", default="")
        option("model-version", "MLCYCLE_DRIFT_MODEL_VERSION")
        try:
            args = parser.parse_args(list(argv))
        except argparse.ArgumentError as e:
            raise ValueError(str(e)) from None
        for name in ("logs", "reference"):
            if not getattr(args, name):
                raise ValueError(f"--{name} (or MLCYCLE_DRIFT_{name.upper()}) is required")
        s3.parse_s3_uri(args.logs)
        s3.parse_s3_uri(args.reference)
        if args.method not in DRIFT_METHODS:
            raise ValueError(f"method must be one of {', '.join(DRIFT_METHODS)}, not {args.method!r}")
        features = None
        if args.features:
            features = json.loads(args.features)
            if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
                raise ValueError(f"features must be a JSON list of names, not {args.features!r}")
        window, share = int(args.window), float(args.drift_share)
        if window < 1 or not 0 < share <= 1:
            raise ValueError(f"window must be >= 1 and drift share in (0, 1], not {window} and {share}")
        return cls(
            logs=args.logs.rstrip("/") + "/",
            reference=args.reference,
            reports=args.reports or default_reports(args.logs),
            window=window,
            method=args.method,
            threshold=float(args.threshold) if args.threshold else None,
            drift_share=share,
            features=tuple(features) if features else None,
            title=args.title,
            model_version=args.model_version,
            performance=performance.PerformanceConfig.from_env(env),
        )


def default_reports(logs: str) -> str:
    """<destination>/<namespace>/<isvc>/drift/ for logs under <destination>/<namespace>/<isvc>/<version>/."""
    parent = logs.rstrip("/").rsplit("/", 1)[0]
    return f"{parent}/drift/"


# --- the reference -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    sketches: dict[str, stats.Sketch]
    rows: int


def is_profile(uri: str) -> bool:
    return uri.endswith(".json")


def load_profile(storage, uri: str) -> Reference:
    bucket, key = s3.parse_s3_uri(uri)
    try:
        doc = json.loads(s3.read_bytes(storage, bucket, key))
    except s3.ObjectNotFound:
        raise CheckOutcome(
            REFERENCE_MISSING,
            f"reference profile {uri} does not exist (the built-in trainer writes reference_profile.json next to "
            "the model; for a model trained elsewhere set spec.monitoring.drift.reference to an S3 URI of data)",
        ) from None
    except json.JSONDecodeError as e:
        raise CheckOutcome(REFERENCE_MISSING, f"reference profile {uri} is not JSON: {e}") from None
    sketches = profile.reference_sketches(doc)
    if not sketches:
        raise CheckOutcome(REFERENCE_MISSING, f"reference profile {uri} has no feature profiles")
    return Reference(sketches, int(doc.get("rows") or max(s.count for s in sketches.values())))


def _read_table(data: bytes, key: str, columns: Sequence[str]) -> pa.Table:
    if key.endswith(".parquet"):
        return pq.read_table(pa.BufferReader(data), columns=list(columns))
    return pa_csv.read_csv(pa.BufferReader(data), convert_options=pa_csv.ConvertOptions(include_columns=list(columns)))


def load_data(storage, uri: str, features: Sequence[str]) -> Reference:
    """A reference from CSV/Parquet data: the object at `uri`, or every .csv/.parquet object under it. Only
    the features' columns are read."""
    bucket, key = s3.parse_s3_uri(uri)
    keys = [k for k, _, _ in s3.list_objects(storage, bucket, key) if k.endswith((".csv", ".parquet"))]
    if not keys:
        raise CheckOutcome(REFERENCE_MISSING, f"no reference data (.csv or .parquet) at {uri}")
    columns: dict[str, list[np.ndarray]] = {f: [] for f in features}
    for k in keys:
        data = s3.read_bytes(storage, bucket, k)
        try:
            table = _read_table(data, k, features)
        except (pa.ArrowInvalid, KeyError) as e:
            raise CheckOutcome(
                REFERENCE_MISSING, f"reference data {s3.s3_uri(bucket, k)} lacks feature columns {list(features)}: {e}"
            ) from None
        for f in features:
            columns[f].append(_floats(table.column(f)))
    sketches = {f: stats.Sketch.of_reference(np.concatenate(parts)) for f, parts in columns.items()}
    return Reference(sketches, max(s.count for s in sketches.values()))


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64, nulls as NaN (left out by the sketches)."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


# --- the window ----------------------------------------------------------------------------------


def log_files(storage, logs: str) -> list[tuple[str, str]]:
    """(bucket, key) of the Parquet files under the logs prefix, newest first."""
    bucket, prefix = s3.parse_s3_uri(logs)
    return [(bucket, key) for key in newest_first(s3.list_objects(storage, bucket, prefix))]


def newest_first(objects: Iterable[tuple[str, datetime, int]]) -> list[str]:
    """Keys of the .parquet objects, newest first: by their <YYYY-MM-DD>/<HH>/ folder (the hour the agent
    logged them in), then by when they were written, then by name."""
    found = [(key, modified) for key, modified, _ in objects if key.endswith(".parquet")]
    found.sort(key=lambda item: (item[0].rsplit("/", 1)[0], item[1], item[0]), reverse=True)
    return [key for key, _ in found]


def feature_columns(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n not in LOG_METADATA and not n.startswith(LOG_OUTPUT_PREFIX)]


@dataclass
class Window:
    """The newest rows of the logs, as sketches on the reference's cuts."""

    sketches: dict[str, stats.Sketch]
    size: int
    rows: int = 0
    files: int = 0
    first: Any = None  # earliest and latest timestamp seen
    last: Any = None

    def add(self, table: pa.Table) -> None:
        for name, sketch in self.sketches.items():
            sketch.add(_floats(table.column(name)))
        self.rows += table.num_rows
        if TIMESTAMP in table.column_names and table.num_rows:
            low, high = pc.min_max(table.column(TIMESTAMP)).values()
            if low.is_valid:
                self.first = min(self.first, low.as_py()) if self.first else low.as_py()
                self.last = max(self.last, high.as_py()) if self.last else high.as_py()

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"size": self.size, "rows": self.rows, "files": self.files}
        if self.first is not None:
            doc |= {"from": _iso(self.first), "to": _iso(self.last)}
        return doc


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def newest_tables(files: Iterable[Callable[[], pq.ParquetFile]], features: Sequence[str], window: int,
                  ) -> Iterator[pa.Table]:
    """The newest `window` rows, newest file and row group first, one row group of the needed columns at
    a time. A file without a feature column stops the check: InsufficientData naming the feature."""
    remaining = window
    for open_file in files:
        parquet = open_file()
        names = parquet.schema_arrow.names
        missing = [f for f in features if f not in names]
        if missing:
            raise CheckOutcome(
                INSUFFICIENT_DATA,
                f"feature(s) {missing} are not in the request logs "
                f"(logged features: {feature_columns(parquet.schema_arrow)})",
            )
        columns = [*features, *([TIMESTAMP] if TIMESTAMP in names else [])]
        for group in reversed(range(parquet.num_row_groups)):
            table = parquet.read_row_group(group, columns=columns)
            if table.num_rows > remaining:
                table = table.slice(table.num_rows - remaining)  # rows are appended: the newest are last
            remaining -= table.num_rows
            yield table
            if remaining == 0:
                return


def read_window(files: Sequence[Callable[[], pq.ParquetFile]], references: Mapping[str, stats.Sketch],
                features: Sequence[str], size: int) -> Window:
    window = Window({f: references[f].empty_like() for f in features}, size)
    for table in newest_tables(_counting(files, window), features, size):
        window.add(table)
    return window


def _counting(files: Sequence[Callable[[], pq.ParquetFile]], window: Window) -> Iterator[Callable[[], pq.ParquetFile]]:
    for open_file in files:
        window.files += 1
        yield open_file


def s3_parquet(storage, bucket: str, key: str) -> Callable[[], pq.ParquetFile]:
    """Opens one log file: the agent's batches are small, so the object is read into memory."""
    return lambda: pq.ParquetFile(pa.BufferReader(s3.read_bytes(storage, bucket, key)))


# --- the check -----------------------------------------------------------------------------------


@dataclass
class Check:
    """Everything a check found, for the reports and the termination message."""

    result: str
    message: str
    context: dict[str, Any]
    dataset: stats.DatasetResult | None = None
    references: dict[str, stats.Sketch] | None = None
    window: Window | None = None


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if len(items) <= 8 else ", ".join(items[:8]) + f" and {len(items) - 8} more"


def check(config: DriftConfig, storage, say: Callable[[str], None] = print) -> Check:
    context: dict[str, Any] = {
        "title": config.title, "modelVersion": config.model_version, "logs": config.logs,
        "reference": config.reference, "method": config.method,
        "window": {"size": config.window, "rows": 0, "files": 0},
    }
    try:
        reference: Reference | None = None
        if is_profile(config.reference):
            say(f"reading the reference profile {config.reference}")
            reference = load_profile(storage, config.reference)
        files = log_files(storage, config.logs)
        say(f"{len(files)} request log file(s) under {config.logs}")
        if not files:
            raise CheckOutcome(INSUFFICIENT_DATA, f"no request logs under {config.logs} yet")
        if reference is None:
            features = list(config.features or feature_columns(s3_parquet(storage, *files[0])().schema_arrow))
            say(f"reading the reference data {config.reference} ({len(features)} features)")
            reference = load_data(storage, config.reference, features)
        context["referenceRows"] = reference.rows
        features = list(config.features or reference.sketches)
        unknown = [f for f in features if f not in reference.sketches]
        if unknown:
            raise CheckOutcome(
                REFERENCE_MISSING,
                f"feature(s) {unknown} are not in the reference {config.reference} (it has {list(reference.sketches)})",
            )
        window = read_window([s3_parquet(storage, b, k) for b, k in files], reference.sketches, features,
                             config.window)
        context["window"] = window.describe()
        say(f"read the newest {window.rows} of {config.window} rows from {window.files} file(s)")
        if window.rows < config.window:
            raise CheckOutcome(
                INSUFFICIENT_DATA,
                f"only {window.rows} logged row(s) under {config.logs}; the window needs {config.window}",
            )
        empty = [f for f in features if window.sketches[f].count == 0]
        if empty:
            raise CheckOutcome(INSUFFICIENT_DATA, f"feature(s) {empty} have no finite values in the window")
    except CheckOutcome as e:
        return Check(e.result, e.message, context)
    dataset = stats.compare_all(reference.sketches, window.sketches, features, config.method, config.threshold,
                                config.drift_share)
    for f in dataset.features:
        p = f" p={f.p_value:.3g}" if f.p_value is not None else ""
        say(f"  {f.feature}: {f.method} {f.statistic:.4g}{p} threshold {f.threshold:g} -> "
            f"{'DRIFTED' if f.drifted else 'ok'}")
    drifted = dataset.drifted
    share = (f"{len(drifted)} of {len(features)} features drifted ({dataset.share:.0%}; "
             f"drift at {config.drift_share:.0%})")
    if dataset.detected:
        result, message = DRIFT_DETECTED, f"{share}: {_names(drifted)}"
    else:
        result, message = NO_DRIFT, share + (f": {_names(drifted)}" if drifted else "")
    return Check(result, message, context, dataset, reference.sketches, window)


def write_reports(storage, config: DriftConfig, found: Check, check_time: datetime) -> str:
    """report.json and report.html under <reports>/<UTC time>/; returns the HTML's URI."""
    stamp = check_time.strftime("%Y%m%dT%H%M%SZ")
    bucket, prefix = s3.parse_s3_uri(config.reports)
    currents = found.window.sketches if found.window and found.dataset else None
    doc = report.report_document(result=found.result, message=found.message, check_time=_iso(check_time),
                                 context=found.context, dataset=found.dataset, references=found.references,
                                 currents=currents)
    charts = {}
    if found.dataset is not None:
        charts = {f: report.distribution(found.references[f], currents[f]) for f in doc["features"]}
    json_key = s3.join_key(prefix, f"{stamp}/report.json")
    html_key = s3.join_key(prefix, f"{stamp}/report.html")
    s3.upload_bytes(storage, bucket, json_key, json.dumps(doc, indent=1).encode(), "application/json")
    s3.upload_bytes(storage, bucket, html_key, report.render_html(doc, charts).encode(), "text/html; charset=utf-8")
    return s3.s3_uri(bucket, html_key)


def termination_message(doc: Mapping[str, Any]) -> str:
    """The compact result, under training.MESSAGE_LIMIT bytes: per-feature scores are dropped first, then
    drifted feature names from the end; `driftedFeatureCount` keeps the full count."""
    doc = dict(doc)
    if isinstance(doc.get("message"), str) and len(doc["message"]) > _MESSAGE_TEXT_LIMIT:
        doc["message"] = doc["message"][: _MESSAGE_TEXT_LIMIT - 1] + "…"
    text = json.dumps(doc, separators=(",", ":"))
    if len(text.encode()) <= training.MESSAGE_LIMIT:
        return text
    doc.pop("features", None)
    drifted = list(doc.get("driftedFeatures") or [])
    doc["driftedFeatureCount"] = len(drifted)
    while True:
        text = json.dumps(doc, separators=(",", ":"))
        if len(text.encode()) <= training.MESSAGE_LIMIT or not drifted:
            return text
        drifted = drifted[: len(drifted) * 3 // 4]
        doc["driftedFeatures"] = drifted


def result_document(found: Check, check_time: datetime, report_uri: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "result": found.result,
        "message": found.message,
        "checkTime": _iso(check_time),
        "method": found.context["method"],
        "windowRows": found.context["window"]["rows"],
    }
    if report_uri:
        doc["reportUri"] = report_uri
    if found.dataset is not None:
        d = found.dataset
        doc |= {
            "score": d.score,
            "share": d.share,
            "driftShare": d.drift_share,
            "driftedFeatures": d.drifted,
            "features": {f.feature: {"method": f.method, "score": f.score, "drifted": f.drifted}
                         for f in d.features},
        }
    return doc


def run(config: DriftConfig, storage, check_time: datetime | None = None,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """One check: the result document that goes into the termination message."""
    check_time = check_time or datetime.now(UTC)
    found = check(config, storage, say)
    report_uri = write_reports(storage, config, found, check_time)
    say(f"wrote {report_uri} (and report.json beside it)")
    say(f"result: {found.result}: {found.message}")
    doc = result_document(found, check_time, report_uri)
    if config.performance is not None:
        doc["performance"] = performance.run(config.performance, config.logs, config.reports, storage, check_time,
                                             say)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    env = os.environ
    reporter = training.Reporter.from_env(env)
    try:
        config = DriftConfig.parse(argv, env)
        storage = s3.client(s3.S3Config.from_env(env))
        doc = run(config, storage)
    except Exception as e:  # whatever went wrong, the operator must learn it from the message
        return _fail(reporter, str(e) if isinstance(e, ValueError | s3.StorageError) else f"{type(e).__name__}: {e}")
    reporter.write_termination_message(termination_message(doc))
    return 0


def _fail(reporter: training.Reporter, message: str) -> int:
    doc = {"result": FAILED, "message": training.redact(message)[:_MESSAGE_TEXT_LIMIT],
           "checkTime": _iso(datetime.now(UTC))}
    print(f"drift check failed: {doc['message']}", file=sys.stderr, flush=True)
    reporter.write_termination_message(json.dumps(doc, separators=(",", ":")))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
