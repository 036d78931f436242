"""`mlcycle validate-data`: check a dataset against TrainingJob spec.dataValidation before training. The
operator runs it as the init container `validate-data` of every training pod, so no training container
starts on data that fails; by hand it validates any dataset the trainer could read.

It reads the dataset the way the trainer does (workloads/dataset.py: a file or a prefix in S3 or on disk,
CSV, Parquet or JSONL, streamed as record batches), checks every expectation (datavalidation/expectations.py),
optionally compares the numeric columns with the data that trained the version holding an alias (serving's
drift statistics), writes report.json and report.html, and leaves a compact result in the termination
message for the operator (status.dataValidation).

Inputs, each an option or else the environment variable the operator sets:

  --dataset      MLCYCLE_DATASET_URI       s3:// URI or local path of a file or a prefix/directory
  --format       MLCYCLE_DATASET_FORMAT    csv (default), parquet or jsonl
  --expectations MLCYCLE_DATA_VALIDATION   spec.dataValidation as JSON (or @file with JSON or YAML)
  --reference    MLCYCLE_DATA_VALIDATION_REFERENCE  the drift reference the operator resolved, as JSON:
                                           {alias, model, modelVersion, uri, format} or {alias, model, skipped}
  --reports      MLCYCLE_OUTPUT_URI + /data-validation/   where report.json and report.html go (s3:// or a
                                           local directory)
  MLCYCLE_TRAININGJOB (for the report), MLCYCLE_TERMINATION_LOG, and the S3 settings of mlcycle.podenv.

Exit status: 0 when every expectation holds, 3 when one does not (the Job's pod failure policy then fails
the job at once: the same data would fail again), 1 when the check could not run (e.g. the dataset is
missing; retried like a training failure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from mlcycle import training
from mlcycle.api.trainingjob import (
    DATA_VALIDATION_FAILED,
    DATA_VALIDATION_PASSED,
    MAX_ITEMS,
    VALIDATION_FAILED_EXIT_CODE,
    DataValidation,
)
from mlcycle.clients import s3
from mlcycle.datavalidation import expectations as ex
from mlcycle.datavalidation import report
from mlcycle.drift import report as drift_report
from mlcycle.drift import stats
from mlcycle.training import TrainingFailed
from mlcycle.workloads import dataset

REPORTS_FOLDER = "data-validation"
_FAILURE_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Config:
    dataset: str
    format: str
    spec: DataValidation
    reports: str | None
    reference: dict[str, Any] | None = None
    training_job: str | None = None

    @classmethod
    def parse(cls, argv: Sequence[str], env: Mapping[str, str] = os.environ) -> Config:
        parser = argparse.ArgumentParser(prog="mlcycle validate-data", description=__doc__.split("\n\n")[0],
                                         exit_on_error=False)
        output = env.get("MLCYCLE_OUTPUT_URI")
        parser.add_argument("--dataset", default=env.get("MLCYCLE_DATASET_URI"))
        parser.add_argument("--format", default=env.get("MLCYCLE_DATASET_FORMAT") or "csv")
        parser.add_argument("--expectations", default=env.get("MLCYCLE_DATA_VALIDATION"))
        parser.add_argument("--reference", default=env.get("MLCYCLE_DATA_VALIDATION_REFERENCE"))
        parser.add_argument("--reports", default=f"{output.rstrip('/')}/{REPORTS_FOLDER}/" if output else None)
        try:
            args = parser.parse_args(list(argv))
        except argparse.ArgumentError as e:
            raise ValueError(str(e)) from None
        if not args.dataset or not args.expectations:
            raise ValueError("--dataset (MLCYCLE_DATASET_URI) and --expectations (MLCYCLE_DATA_VALIDATION) "
                             "are required")
        if args.format not in dataset.FORMATS:
            raise ValueError(f"format must be one of {', '.join(dataset.FORMATS)}, not {args.format!r}")
        text = args.expectations
        raw = yaml.safe_load(Path(text[1:]).read_text() if text.startswith("@") else text)
        return cls(dataset=args.dataset, format=args.format, spec=DataValidation.model_validate(raw),
                   reports=args.reports, reference=json.loads(args.reference) if args.reference else None,
                   training_job=env.get("MLCYCLE_TRAININGJOB"))


# --- reading -------------------------------------------------------------------------------------


def _chooser(format: str, seen: list[tuple[str, list[str]]]) -> dataset.Chooser:
    """Every column, as text for CSV (typed value by value), as the file's own types for Parquet, and as
    numbers or text for JSONL (what its reader can parse). Each file must have the first one's columns."""

    def choose(name: str, columns: list[str], types: list[pa.DataType]) -> dict[str, pa.DataType]:
        if not seen:
            seen.append((name, columns))
        elif sorted(columns) != sorted(seen[0][1]):
            raise TrainingFailed(training.DATASET_UNREADABLE,
                                 f"{name} has columns {columns}, but {seen[0][0]} has {seen[0][1]}")
        text = (pa.types.is_string(t) or pa.types.is_large_string(t) for t in types)
        if format == "csv":
            return {c: pa.string() for c in columns}
        if format == "jsonl":
            return {c: pa.string() if is_text else pa.float64() for c, is_text in zip(columns, text, strict=True)}
        return dict(zip(columns, types, strict=True))

    return choose


def read_batches(source: str, format: str, storage, on_columns: Callable[[list[str]], None],
                 on_batch: Callable[[pa.RecordBatch], None]) -> None:
    """Stream the dataset at `source`: `on_columns` once with the first file's columns, then each batch."""
    parts = dataset.s3_parts(storage, source, format) if source.startswith("s3://") else dataset.local_parts(
        source, format)
    first: list[tuple[str, list[str]]] = []  # the first file's name and columns, once its reader chose them
    announced = False
    for name, opener in parts:
        with dataset.storage_failures(), opener() as stream:
            try:
                for batch in dataset.READERS[format](stream, name, _chooser(format, first)):
                    if not announced:
                        on_columns(first[0][1])
                        announced = True
                    on_batch(batch)
            except (pa.ArrowInvalid, UnicodeDecodeError) as e:
                raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is not readable {format}: {e}") from e
    if first and not announced:  # files without a data row
        on_columns(first[0][1])


@dataclass
class Observed:
    """A dataset as validation sees it: its columns' summaries and, for drift, numeric sketches."""

    columns: list[str] = field(default_factory=list)
    summaries: dict[str, ex.ColumnSummary] = field(default_factory=dict)
    rows: int = 0
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)  # reference: every value, for its cuts
    sketches: dict[str, stats.Sketch] = field(default_factory=dict)  # current: on the reference's cuts


def observe(source: str, format: str, storage, spec: DataValidation, *, keep_values: bool = False,
            reference_sketches: Mapping[str, stats.Sketch] | None = None) -> Observed:
    found = Observed()

    def on_columns(columns: list[str]) -> None:
        found.columns = columns
        found.summaries = ex.summaries(columns, spec)
        found.values = {c: [] for c in columns} if keep_values else {}
        found.sketches = {c: s.empty_like() for c, s in (reference_sketches or {}).items() if c in columns}

    def on_batch(batch: pa.RecordBatch) -> None:
        found.rows += batch.num_rows
        for c, summary in found.summaries.items():
            values = summary.add(batch.column(c))
            if c in found.values:
                found.values[c].append(values)
            if c in found.sketches:
                found.sketches[c].add(values)

    read_batches(source, format, storage, on_columns, on_batch)
    return found


def reference_sketches(reference: Observed, columns: Sequence[str] | None) -> dict[str, stats.Sketch]:
    """The reference's sketch of each numeric column (those asked for, else all)."""
    out = {}
    for c, parts in reference.values.items():
        values = np.concatenate(parts) if parts else np.empty(0)
        if (columns is None or c in columns) and reference.summaries[c].numbers and np.isfinite(values).any():
            out[c] = stats.Sketch.of_reference(values)
    return out


# --- the check -----------------------------------------------------------------------------------


@dataclass
class Validation:
    """Everything one validation found."""

    outcomes: list[ex.Outcome]
    observed: Observed
    context: dict[str, Any]
    drift: stats.DatasetResult | None = None
    references: dict[str, stats.Sketch] | None = None

    @property
    def passed(self) -> bool:
        return not ex.failures(self.outcomes)

    @property
    def result(self) -> str:
        return DATA_VALIDATION_PASSED if self.passed else DATA_VALIDATION_FAILED


def validate(config: Config, storage, say: Callable[[str], None] = print) -> Validation:
    spec, drift = config.spec, config.spec.drift
    ref = config.reference or {}
    context: dict[str, Any] = {"trainingJob": config.training_job,
                               "dataset": {"uri": config.dataset, "format": config.format}}
    references, ref_observed, skipped = None, None, None
    if drift is not None:
        if ref.get("uri"):
            say(f"reading the drift reference {ref['uri']} ({ref.get('modelVersion')}, alias {drift.against_alias})")
            ref_observed = observe(ref["uri"], ref.get("format") or config.format, storage, DataValidation(),
                                   keep_values=True)
            references = reference_sketches(ref_observed, drift.columns)
            context["reference"] = {**ref, "rows": ref_observed.rows}
        else:
            skipped = ref.get("skipped") or f"no reference data for alias {drift.against_alias}"
    say(f"validating {config.dataset} ({config.format})")
    observed = observe(config.dataset, config.format, storage, spec, reference_sketches=references)
    context["dataset"]["rows"] = observed.rows
    outcomes = ex.row_outcomes(observed.rows, spec) + ex.schema_outcomes(observed.columns, spec)
    for summary in observed.summaries.values():
        outcomes += ex.column_outcomes(summary)
    result = None
    if drift is not None:
        if ref_observed is not None:
            columns = [c for c in ex.drift_columns(ref_observed.summaries, observed.summaries, drift)
                       if c in references and c in observed.sketches and observed.sketches[c].count]
            if columns:
                result = stats.compare_all(references, observed.sketches, columns, drift.method, drift.threshold,
                                           drift.drift_share)
            else:
                skipped = "no numeric column to compare in both datasets"
        outcomes.append(ex.drift_outcome(result, drift, skipped))
    for o in outcomes:
        say(f"  {o.result.upper():7} {o.message}")
    return Validation(outcomes, observed, context, result, references)


def write_reports(storage, reports: str, found: Validation, check_time: str) -> str:
    """report.json and report.html under `reports`; returns the HTML's URI (or path)."""
    message = ex.summary_message(found.outcomes, found.observed.rows)
    currents = found.observed.sketches if found.drift else None
    doc = report.report_document(result=found.result, message=message, check_time=check_time,
                                 context=found.context, outcomes=found.outcomes, columns=found.observed.summaries,
                                 drift=found.drift, references=found.references, currents=currents)
    charts = {f.feature: drift_report.distribution(found.references[f.feature], currents[f.feature])
              for f in found.drift.features} if found.drift else None
    page = report.render_html(doc, found.observed.summaries, charts).encode()
    body = json.dumps(doc, indent=1).encode()
    if not reports.startswith("s3://"):
        folder = Path(reports)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_bytes(body)
        (folder / "report.html").write_bytes(page)
        return str(folder / "report.html")
    bucket, prefix = s3.parse_s3_uri(reports)
    s3.upload_bytes(storage, bucket, s3.join_key(prefix, "report.json"), body, "application/json")
    s3.upload_bytes(storage, bucket, s3.join_key(prefix, "report.html"), page, "text/html; charset=utf-8")
    return s3.s3_uri(bucket, s3.join_key(prefix, "report.html"))


def result_document(found: Validation, report_uri: str | None) -> dict[str, Any]:
    """What status.dataValidation shows, small enough for the termination message."""
    failed = ex.failures(found.outcomes)
    doc: dict[str, Any] = {
        "result": found.result,
        "message": training.redact(ex.summary_message(found.outcomes, found.observed.rows))[:_FAILURE_TEXT_LIMIT * 2],
        "rows": found.observed.rows,
        "expectations": sum(o.result != ex.SKIPPED for o in found.outcomes),
    }
    if failed:
        doc["failures"] = [{"expectation": o.expectation, **({"column": o.column} if o.column else {}),
                            "message": o.message[:_FAILURE_TEXT_LIMIT]} for o in failed[:MAX_ITEMS]]
    if report_uri and report_uri.startswith("s3://"):
        doc["reportUri"] = report_uri
    return doc


def termination_message(doc: Mapping[str, Any]) -> str:
    """{"dataValidation": doc} within training.MESSAGE_LIMIT: failures are dropped from the end (the
    message and the report keep their count)."""
    doc = dict(doc)
    while True:
        text = json.dumps({"dataValidation": doc}, separators=(",", ":"))
        if len(text.encode()) <= training.MESSAGE_LIMIT or not doc.get("failures"):
            return text
        doc["failures"] = doc["failures"][:-1]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    env = os.environ
    reporter = training.Reporter.from_env(env)
    try:
        config = Config.parse(argv, env)
        places = (config.dataset, config.reports or "", (config.reference or {}).get("uri") or "")
        storage = s3.client(s3.S3Config.from_env(env)) if any(p.startswith("s3://") for p in places) else None
        found = validate(config, storage)
        check_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        report_uri = write_reports(storage, config.reports, found, check_time) if config.reports else None
    except TrainingFailed as e:
        reporter.fail(e.reason, e.message)
    except (ValueError, s3.StorageError) as e:
        reporter.fail(training.INVALID_CONFIG if isinstance(e, ValueError) else training.DATASET_UNREADABLE, str(e))
    doc = result_document(found, report_uri)
    if report_uri:
        print(f"wrote {report_uri} (and report.json beside it)")
    print(f"result: {doc['result']}: {doc['message']}", flush=True)
    reporter.write_termination_message(termination_message(doc))
    return 0 if found.passed else VALIDATION_FAILED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
