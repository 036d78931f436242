"""The training data set, read column by column into one float32 matrix.

Sources: an s3:// object, or every object under a prefix (or a bucket) whose name has the format's extension,
in key order; or a local file or directory (recursively, in path order). Formats, all read with pyarrow as
streams of record batches, so that memory holds the float32 result and a few batches, never the file:

- csv: a header line, then rows; column types are inferred from the first MiB and then fixed (numbers are
  read straight to float32 whatever the first rows looked like).
- parquet: only the needed columns, one row group at a time (the object is spooled to a temporary file
  first, because Parquet's footer sits at the end).
- jsonl: one JSON object per line; keys are columns, and keys the first MiB never shows are ignored.

Numeric feature columns (numbers, booleans) stay numbers; text columns are categorical: each value becomes
its code, the index in `Examples.categories[name]` (values sorted, numbers as numbers), and the model one-hot
encodes it (see model.py). Classification labels are read as text, regression labels as numbers.
The digest is the sha256 of the files' bytes in order, computed while reading. Failures raise
`TrainingFailed` with the reason the operator reports.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from mlcycle import training
from mlcycle.api.trainingjob import DATASET_EXTENSIONS as EXTENSIONS
from mlcycle.clients import s3
from mlcycle.training import TrainingFailed

FORMATS = ("csv", "parquet", "jsonl")
# A text column with more distinct values than this is an identifier, not a category: one-hot would explode.
MAX_CATEGORIES = 1024
_SAMPLE_BYTES = 1 << 20  # what type inference sees of a CSV or JSONL file
_BLOCK_BYTES = 4 << 20  # pyarrow's read block: large enough to parse in parallel, small next to the data
_PARQUET_BATCH_ROWS = 1 << 16


@dataclass(frozen=True)
class Examples:
    """The dataset as model inputs."""

    features: np.ndarray  # float32 [rows, n]: raw numbers, and for categorical columns the value's code
    feature_names: list[str]
    categories: dict[str, list[str]]  # categorical feature -> its values in code order
    targets: np.ndarray  # int64 class indices (classification) or float32 values (regression)
    classes: list[str] | None  # class labels in output order (classification)
    digest: str = ""  # sha256:<hex> of the files' bytes in order
    # Columns read beside the features without being model inputs (e.g. a sensitive attribute to evaluate
    # slices of): float64 numbers or text, one value per row.
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def value_order(values) -> list[str]:
    """Distinct text values in a stable order: numbers as numbers ("2" before "10"), others as text."""
    values = set(values)
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


# --- sources -------------------------------------------------------------------------------------


class _Hashing:
    """A readable stream that feeds what is read through a running sha256. Reads are whole: pyarrow takes
    a short read for the end of the stream, and an HTTP body or a prefixed stream may return less."""

    def __init__(self, raw, sha):
        self.raw, self.sha = raw, sha
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self.raw.read()
        else:
            pieces, wanted = [], size
            while wanted > 0 and (piece := self.raw.read(wanted)):
                pieces.append(piece)
                wanted -= len(piece)
            data = b"".join(pieces)
        self.sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(s3.CHUNK):
            pass


class _Prefixed:
    """`head` then the rest of `raw`: a stream whose first bytes were already read (to sniff the header)."""

    def __init__(self, head: bytes, raw):
        self.head, self.raw = head, raw
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data, self.head = self.head + self.raw.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        return data + self.raw.read(size - len(data)) if len(data) < size else data

    def readable(self) -> bool:
        return True


Opener = Callable[[], contextlib.AbstractContextManager[BinaryIO]]


def local_parts(path: str | Path, format: str) -> list[tuple[str, Opener]]:
    """A file, or every file with the format's extension in a directory (recursively, sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(EXTENSIONS[format]))
        if not files:
            raise TrainingFailed(training.DATASET_NOT_FOUND, f"no {'/'.join(EXTENSIONS[format])} files under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise TrainingFailed(training.DATASET_NOT_FOUND, f"{path} does not exist")
    return [(str(p), lambda p=p: open(p, "rb")) for p in files]


def s3_parts(storage, uri: str, format: str) -> list[tuple[str, Opener]]:
    """The object at `uri`, or every object with the format's extension under it when it ends with /."""
    try:
        bucket, key = s3.parse_s3_uri(uri)
    except ValueError as e:
        raise TrainingFailed(training.INVALID_CONFIG, f"MLCYCLE_DATASET_URI: {e}") from e
    with storage_failures():
        if key and not key.endswith("/"):
            keys = [key]
        else:
            keys = [k for k in s3.list_keys(storage, bucket, key) if k.lower().endswith(EXTENSIONS[format])]
            if not keys:
                raise TrainingFailed(
                    training.DATASET_NOT_FOUND, f"no {'/'.join(EXTENSIONS[format])} objects under {uri}"
                )
    return [(s3.s3_uri(bucket, k), lambda k=k: s3.open_object(storage, bucket, k)) for k in keys]


@contextlib.contextmanager
def storage_failures() -> Iterator[None]:
    try:
        yield
    except s3.ObjectNotFound as e:
        raise TrainingFailed(training.DATASET_NOT_FOUND, f"dataset not found: {e}") from e
    except s3.StorageAuthFailed as e:
        raise TrainingFailed(training.STORAGE_AUTH_FAILED, f"reading the dataset: {e}") from e
    except s3.StorageError as e:
        raise TrainingFailed(training.DATASET_UNREADABLE, f"reading the dataset: {e}") from e


def _check_digest(expected: str, parts: int) -> str:
    """The hex digest `expected` ("sha256:<hex>" of the single object of the dataset) asks for."""
    algorithm, _, want = expected.partition(":")
    if algorithm != "sha256" or len(want) != 64:
        raise TrainingFailed(
            training.INVALID_CONFIG, f"MLCYCLE_DATASET_DIGEST must be sha256:<64 hex digits>, not {expected!r}"
        )
    if parts != 1:
        raise TrainingFailed(
            training.INVALID_CONFIG,
            f"MLCYCLE_DATASET_DIGEST applies to a single object, but the dataset has {parts} files",
        )
    return want.lower()


# --- formats: a stream in, record batches of the chosen columns out -------------------------------

# choose(file name, the file's columns in order, their types) -> the columns to read, each with the arrow
# type to read it as.
Chooser = Callable[[str, list[str], list[pa.DataType]], dict[str, pa.DataType]]


def _sample(stream) -> tuple[bytes, _Prefixed]:
    """About _SAMPLE_BYTES of whole lines (one at least) from the start of `stream`, and the stream from its
    start again."""
    head = stream.read(_SAMPLE_BYTES)
    if len(head) < _SAMPLE_BYTES:  # the whole file
        return head, _Prefixed(head, stream)
    while b"\n" not in head and (more := stream.read(64 * 1024)):
        head += more
    return head[: head.rfind(b"\n") + 1] or head, _Prefixed(head, stream)


def _header(stream, name: str) -> tuple[list[str], _Prefixed]:
    """The CSV header's column names (BOM and spaces stripped), and the stream after the header line."""
    head = b""
    while b"\n" not in head and (more := stream.read(64 * 1024)):
        head += more
    line, _, rest = head.partition(b"\n")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is not UTF-8 CSV: {e}") from e
    names = [n.strip() for n in next(csv.reader([text]), [])]
    if not names or names == [""]:
        raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is empty (no header row)")
    return names, _Prefixed(rest, stream)


def csv_batches(stream, name: str, choose: Chooser) -> Iterator[pa.RecordBatch]:
    columns, body = _header(stream, name)
    sample, body = _sample(body)
    read_options = pacsv.ReadOptions(column_names=columns, block_size=_BLOCK_BYTES)
    sniffed = pacsv.read_csv(pa.py_buffer(sample), read_options=read_options).schema
    chosen = choose(name, columns, [sniffed.field(c).type for c in columns])
    convert = pacsv.ConvertOptions(include_columns=list(chosen), column_types=chosen)
    yield from pacsv.open_csv(body, read_options=read_options, convert_options=convert)


def jsonl_batches(stream, name: str, choose: Chooser) -> Iterator[pa.RecordBatch]:
    sample, body = _sample(stream)
    if not sample.strip():
        raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is empty")
    sniffed = pajson.read_json(pa.py_buffer(sample)).schema
    chosen = choose(name, sniffed.names, sniffed.types)
    # JSON cannot read a number as text, nor mixed integers and decimals as integers: read every number
    # as float64 and every text as text, then cast.
    schema = pa.schema([(c, pa.string() if _is_text(sniffed.field(c).type) else pa.float64()) for c in chosen])
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    for batch in pajson.open_json(body, read_options=pajson.ReadOptions(block_size=_BLOCK_BYTES),
                                  parse_options=parse):
        yield pa.RecordBatch.from_arrays([batch.column(c).cast(t) for c, t in chosen.items()], names=list(chosen))


def parquet_batches(stream, name: str, choose: Chooser) -> Iterator[pa.RecordBatch]:
    with tempfile.TemporaryFile(prefix="mlcycle-dataset-") as spool:
        while piece := stream.read(s3.CHUNK):
            spool.write(piece)
        spool.seek(0)
        try:
            file = pq.ParquetFile(spool)
        except pa.ArrowInvalid as e:
            raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is not a Parquet file: {e}") from e
        schema = file.schema_arrow
        chosen = choose(name, schema.names, schema.types)
        for batch in file.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=list(chosen)):
            yield pa.RecordBatch.from_arrays([batch.column(c).cast(t) for c, t in chosen.items()], names=list(chosen))


READERS = {"csv": csv_batches, "parquet": parquet_batches, "jsonl": jsonl_batches}


# --- assembling the matrix -----------------------------------------------------------------------


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t) \
        or pa.types.is_decimal(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)


class _Assembler:
    """Collects the chosen columns of every batch: numbers into float32 row blocks, text columns as arrow
    arrays until their categories are known."""

    def __init__(self, label: str, features: list[str] | None, label_as_text: bool, extra: list[str] | None = None):
        self.label, self.wanted, self.label_as_text = label, features, label_as_text
        self.extra_wanted = list(extra or [])
        self.extra_types: dict[str, pa.DataType] = {}
        self.text_extra: set[str] = set()
        self.extra_chunks: dict[str, list[pa.Array]] = {}
        self.first: tuple[str, list[str]] | None = None
        self.names: list[str] = []
        self.text: set[str] = set()  # categorical features
        # The rows read so far, in a buffer that grows by doubling with realloc: the kernel remaps the pages of
        # a large allocation rather than copying them, so loading never holds two copies of the matrix.
        self.matrix = np.empty((0, 0), dtype=np.float32)
        self.text_chunks: dict[str, list[pa.Array]] = {}
        self.labels: list = []
        self.rows = 0

    def choose(self, name: str, columns: list[str], types: list[pa.DataType]) -> dict[str, pa.DataType]:
        if self.first is None:
            self.first = (name, columns)
            self._plan(columns, dict(zip(columns, types, strict=True)))
        elif sorted(columns) != sorted(self.first[1]):
            raise TrainingFailed(
                training.DATASET_UNREADABLE, f"{name} has columns {columns}, but {self.first[0]} has {self.first[1]}"
            )
        chosen = {n: pa.string() if n in self.text else pa.float32() for n in self.names}
        chosen[self.label] = pa.string() if self.label_as_text else pa.float32()
        return chosen | self.extra_types

    def _plan(self, columns: list[str], types: dict[str, pa.DataType]) -> None:
        if self.label not in types:
            raise TrainingFailed(
                training.LABEL_COLUMN_MISSING, f"label column {self.label!r} is not in the dataset (columns: {columns})"
            )
        names = list(self.wanted) if self.wanted else [c for c in columns if c != self.label]
        missing = [n for n in names if n not in types]
        if missing:
            raise TrainingFailed(
                training.INVALID_CONFIG, f"feature columns {missing} are not in the dataset (columns: {columns})"
            )
        if not names:
            raise TrainingFailed(training.DATASET_UNREADABLE, "the dataset has no feature columns besides the label")
        for n in names:
            if not (_is_numeric(types[n]) or _is_text(types[n])):
                raise TrainingFailed(
                    training.DATASET_UNREADABLE, f"column {n!r} holds {types[n]}; features must be numbers or text"
                )
        self.names = names
        self.text = {n for n in names if _is_text(types[n])}
        self.text_chunks = {n: [] for n in names if n in self.text}
        extra = [n for n in self.extra_wanted if n not in names and n != self.label]
        missing = [n for n in extra if n not in types]
        if missing:
            raise TrainingFailed(
                training.INVALID_CONFIG, f"columns {missing} are not in the dataset (columns: {columns})"
            )
        self.text_extra = {n for n in extra if _is_text(types[n])}
        self.extra_types = {n: pa.string() if n in self.text_extra else pa.float64() for n in extra}
        self.extra_chunks = {n: [] for n in extra}

    def add(self, batch: pa.RecordBatch, name: str) -> None:
        if self.matrix.shape[1] != len(self.names):
            self.matrix = np.empty((_PARQUET_BATCH_ROWS, len(self.names)), dtype=np.float32)
        if self.rows + batch.num_rows > len(self.matrix):
            self.matrix.resize((max(2 * len(self.matrix), self.rows + batch.num_rows), len(self.names)),
                               refcheck=False)
        block = self.matrix[self.rows : self.rows + batch.num_rows]
        for j, n in enumerate(self.names):
            column = batch.column(n)
            if n in self.text:
                self.text_chunks[n].append(column)
                continue
            block[:, j] = column.to_numpy(zero_copy_only=False)  # nulls become NaN
            bad = ~np.isfinite(block[:, j])
            if bad.any():
                raise TrainingFailed(
                    training.DATASET_UNREADABLE,
                    f"{name}: column {n!r}, data row {self.rows + int(bad.argmax()) + 1} is empty, NaN or infinite",
                )
        for n, chunks in self.extra_chunks.items():
            chunks.append(batch.column(n))
        label = batch.column(self.label)
        if label.null_count:
            raise TrainingFailed(training.DATASET_UNREADABLE, f"{name}: label column {self.label!r} has empty values")
        self.labels.append(pc.utf8_trim_whitespace(label) if self.label_as_text else label.to_numpy())
        self.rows += batch.num_rows

    def examples(self, digest: str) -> Examples:
        if self.rows < 2:
            raise TrainingFailed(training.DATASET_UNREADABLE, f"the dataset has {self.rows} rows; need at least 2")
        features, self.matrix = self.matrix, np.empty((0, 0), dtype=np.float32)
        features.resize((self.rows, len(self.names)), refcheck=False)
        categories = {}
        for j, n in enumerate(self.names):
            if n in self.text:
                categories[n] = self._encode(n, pa.chunked_array(self.text_chunks.pop(n), type=pa.string()),
                                             features[:, j])
        extra = {}
        for n, chunks in self.extra_chunks.items():
            column = pa.chunked_array(chunks, type=self.extra_types[n])
            extra[n] = column.to_numpy() if n not in self.text_extra else \
                column.fill_null("").to_numpy(zero_copy_only=False).astype(str)
        if self.label_as_text:
            labels = pa.chunked_array(self.labels, type=pa.string())
            distinct = labels.unique().to_pylist()
            if "" in distinct:
                raise TrainingFailed(training.DATASET_UNREADABLE, f"label column {self.label!r} has empty labels")
            classes = value_order(distinct)
            if len(classes) < 2:
                raise TrainingFailed(
                    training.DATASET_UNREADABLE,
                    f"label column {self.label!r} has only the class(es) {classes}; classification needs 2+",
                )
            targets = pc.index_in(labels, value_set=pa.array(classes)).to_numpy().astype(np.int64)
            return Examples(features, self.names, categories, targets, classes, digest, extra)
        targets = np.concatenate(self.labels).astype(np.float32)
        if not np.isfinite(targets).all():
            raise TrainingFailed(training.DATASET_UNREADABLE, f"label column {self.label!r} has NaN or empty values")
        return Examples(features, self.names, categories, targets, None, digest, extra)

    def _encode(self, name: str, values: pa.ChunkedArray, out: np.ndarray) -> list[str]:
        """Write each value's code into `out`; returns the categories in code order."""
        if values.null_count:
            raise TrainingFailed(training.DATASET_UNREADABLE, f"categorical column {name!r} has missing values")
        distinct = values.unique().to_pylist()
        if len(distinct) > MAX_CATEGORIES:
            raise TrainingFailed(
                training.DATASET_UNREADABLE,
                f"column {name!r} has {len(distinct)} distinct text values; a categorical feature may have at "
                f"most {MAX_CATEGORIES} (list the features to use in spec.trainer.features)",
            )
        categories = value_order(distinct)
        out[:] = pc.index_in(values, value_set=pa.array(categories, type=pa.string())).to_numpy()
        return categories


def load_examples(
    source: str,
    *,
    label: str,
    features: list[str] | None = None,
    label_as_text: bool,
    storage=None,
    format: str = "csv",
    digest: str | None = None,
    extra: list[str] | None = None,
) -> Examples:
    """The dataset at `source` (an s3:// URI, read with the minio client `storage`, or a local path): the
    `features` columns (every column but the label when None) and the `label` column, and the `extra`
    columns that are not features (Examples.extra)."""
    if format not in FORMATS:
        raise TrainingFailed(
            training.INVALID_CONFIG, f"dataset format {format!r} is not supported (supported: {', '.join(FORMATS)})"
        )
    parts = s3_parts(storage, source, format) if source.startswith("s3://") else local_parts(source, format)
    want = _check_digest(digest, len(parts)) if digest else None
    sha = hashlib.sha256()
    assembler = _Assembler(label, features, label_as_text, extra)
    for name, opener in parts:
        with storage_failures(), opener() as raw:
            stream = _Hashing(raw, sha)
            try:
                for batch in READERS[format](stream, name, assembler.choose):
                    assembler.add(batch, name)
            except (pa.ArrowInvalid, UnicodeDecodeError, TrainingFailed) as e:
                if want:  # data that is not what the digest names: say that rather than why it does not parse
                    stream.drain()
                    _digest_matches(sha, want, name, digest)
                if isinstance(e, TrainingFailed):
                    raise
                raise TrainingFailed(training.DATASET_UNREADABLE, f"{name} is not readable {format}: {e}") from e
            stream.drain()  # what the reader left (a Parquet footer it did not need) is part of the digest
    if want:
        _digest_matches(sha, want, parts[0][0], digest)
    return assembler.examples(f"sha256:{sha.hexdigest()}")


def _digest_matches(sha, want: str, name: str, expected: str) -> None:
    got = sha.hexdigest()
    if got != want:
        raise TrainingFailed(training.DIGEST_MISMATCH, f"{name} has digest sha256:{got}, expected {expected}")
