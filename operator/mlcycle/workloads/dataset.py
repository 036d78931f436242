"""The training data set: CSV from S3 (one object, or every .csv object under a prefix, in key order) or
from a local file or directory, checked against an optional sha256 digest and parsed into a `Table`.
Failures raise `TrainingFailed` with the reason the operator reports."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path

from mlcycle import training
from mlcycle.clients import s3
from mlcycle.training import TrainingFailed

FORMATS = ("csv",)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    digest: str = ""  # sha256:<hex> of the files' bytes in order (of the object itself when there is one)


def parse_csv(parts: list[tuple[str, bytes]]) -> Table:
    """One table from CSV parts (name, content) that share the first part's header."""
    columns: list[str] | None = None
    rows: list[list[str]] = []
    for name, content in parts:
        try:
            reader = csv.reader(io.StringIO(content.decode("utf-8-sig")))
            header = next(reader, None)
            if header is None:
                raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is empty (no header row)")
            header = [h.strip() for h in header]
            if columns is None:
                columns = header
            elif header != columns:
                raise TrainingFailed(
                    training.DATASET_UNREADABLE,
                    f"{name} has columns {header}, but the first file has {columns}",
                )
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(columns):
                    raise TrainingFailed(
                        training.DATASET_UNREADABLE,
                        f"{name} line {reader.line_num}: {len(row)} fields, the header has {len(columns)}",
                    )
                rows.append(row)
        except (UnicodeDecodeError, csv.Error) as e:
            raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is not UTF-8 CSV: {e}") from e
    if columns is None:
        raise TrainingFailed(training.DATASET_UNREADABLE, "the dataset has no CSV files")
    return Table(columns, rows)


def read_local(path: str | Path) -> list[tuple[str, bytes]]:
    """A CSV file, or every .csv file in a directory (recursively, sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.csv") if p.is_file())
        if not files:
            raise TrainingFailed(training.DATASET_NOT_FOUND, f"no .csv files under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise TrainingFailed(training.DATASET_NOT_FOUND, f"{path} does not exist")
    return [(str(p), p.read_bytes()) for p in files]


def read_s3(storage, uri: str) -> list[tuple[str, bytes]]:
    """The object at `uri`, or every .csv object under it when it ends with / (or names only a bucket)."""
    try:
        bucket, key = s3.parse_s3_uri(uri)
    except ValueError as e:
        raise TrainingFailed(training.INVALID_CONFIG, f"MLCYCLE_DATASET_URI: {e}") from e
    try:
        if key and not key.endswith("/"):
            return [(uri, s3.read_bytes(storage, bucket, key))]
        keys = [k for k in s3.list_keys(storage, bucket, key) if k.lower().endswith(".csv")]
        if not keys:
            raise TrainingFailed(training.DATASET_NOT_FOUND, f"no .csv objects under {uri}")
        return [(s3.s3_uri(bucket, k), s3.read_bytes(storage, bucket, k)) for k in keys]
    except s3.ObjectNotFound as e:
        raise TrainingFailed(training.DATASET_NOT_FOUND, f"dataset not found: {e}") from e
    except s3.StorageAuthFailed as e:
        raise TrainingFailed(training.STORAGE_AUTH_FAILED, f"reading the dataset: {e}") from e
    except s3.StorageError as e:
        raise TrainingFailed(training.DATASET_UNREADABLE, f"reading the dataset: {e}") from e


def verify_digest(parts: list[tuple[str, bytes]], expected: str) -> None:
    """`expected` is "sha256:<hex>" of the single object the dataset consists of."""
    algorithm, _, want = expected.partition(":")
    if algorithm != "sha256" or len(want) != 64:
        raise TrainingFailed(
            training.INVALID_CONFIG,
            f"MLCYCLE_DATASET_DIGEST must be sha256:<64 hex digits>, not {expected!r}",
        )
    if len(parts) != 1:
        raise TrainingFailed(
            training.INVALID_CONFIG,
            f"MLCYCLE_DATASET_DIGEST applies to a single object, but the dataset has {len(parts)} files",
        )
    name, content = parts[0]
    got = hashlib.sha256(content).hexdigest()
    if got != want.lower():
        raise TrainingFailed(training.DIGEST_MISMATCH, f"{name} has digest sha256:{got}, expected {expected}")


def load_table(source: str, *, storage=None, format: str = "csv", digest: str | None = None) -> Table:
    """The dataset at `source`: an s3:// URI (read with the minio client `storage`) or a local path."""
    if format not in FORMATS:
        raise TrainingFailed(
            training.INVALID_CONFIG,
            f"dataset format {format!r} is not supported (supported: {', '.join(FORMATS)})",
        )
    parts = read_s3(storage, source) if source.startswith("s3://") else read_local(source)
    if digest:
        verify_digest(parts, digest)
    sha = hashlib.sha256()
    for _, content in parts:
        sha.update(content)
    return replace(parse_csv(parts), digest=f"sha256:{sha.hexdigest()}")
