"""The agent's payload log: sampled requests as Parquet rows in object storage, off the request path.

One request becomes one `Entry` (its input rows, outputs and metadata). Entries wait in a `RecordBuffer`
bounded in rows: when full, the oldest queued rows are dropped and counted, never the request. A
`LogWriter` thread takes batches from it, turns each into one Parquet object per hour
(`<prefix>/<YYYY-MM-DD>/<HH>/<batch-id>.parquet`, schema in docs/serving-agent.md) and writes it, retrying
a failing or slow store with capped exponential backoff. The object key is fixed before the first
attempt, so a retry after a write that did land overwrites it: at-least-once, without duplicates.
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.workloads.agent_metrics import AgentMetrics

log = logging.getLogger("mlcycle.agent")

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
META_COLUMNS = ("request_id", "row", "timestamp", "model_version", "latency_ms", "status")


class Sampler:
    """Whether to log a request: each one independently with probability `rate`."""

    def __init__(self, rate: float, rng: random.Random | None = None):
        if not 0 <= rate <= 1:
            raise ValueError(f"sample rate must be within [0, 1], not {rate}")
        self.rate = rate
        self._random = (rng or random.Random()).random

    def __call__(self) -> bool:
        return self.rate >= 1 or (self.rate > 0 and self._random() < self.rate)


@dataclass(frozen=True, slots=True)
class Entry:
    """The log rows of one request. `features` is [rows, columns]; each output is [rows, values] and
    present only when the model answered. `first_row` is the request row of `features[0]` (non-zero
    once the buffer has trimmed the entry's oldest rows)."""

    request_id: str
    timestamp_us: int  # when the request arrived, microseconds since the epoch (UTC)
    model_version: str
    latency_ms: float
    status: int
    features: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    first_row: int = 0

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])

    def tail(self, n: int) -> Entry:
        """The last `n` rows."""
        cut = self.rows - n
        return replace(self, features=self.features[cut:], outputs={k: v[cut:] for k, v in self.outputs.items()},
                       first_row=self.first_row + cut)

    def head(self, n: int) -> Entry:
        return replace(self, features=self.features[:n], outputs={k: v[:n] for k, v in self.outputs.items()})


def make_entry(request_id: str, timestamp_us: int, model_version: str, latency_ms: float, status: int,
               features: np.ndarray, outputs: dict[str, np.ndarray]) -> Entry:
    """An entry whose outputs are reshaped to [rows, values]; an output with another number of rows than
    the inputs (a model that does not batch row-wise) is left out rather than misaligned."""
    n = features.shape[0]
    shaped = {name: a.reshape(n, -1) for name, a in outputs.items() if a.ndim and a.shape[0] == n}
    return Entry(request_id, timestamp_us, model_version, latency_ms, status, features, shaped)


def feature_columns(feature_names: Sequence[str], width: int) -> list[str]:
    """Column names of the input values: the configured names, or f0..fN when they do not fit."""
    return list(feature_names) if len(feature_names) == width else [f"f{i}" for i in range(width)]


def output_column(name: str) -> str:
    """Triton's OUTPUT__0 is logged as output__0."""
    return name.lower()


def _list_column(entries: Sequence[Entry], name: str, counts: np.ndarray) -> pa.Array:
    """One list per row: the row's values of output `name`, null where the model gave none."""
    arrays = [e.outputs.get(name) for e in entries]
    widths = np.repeat([0 if a is None else a.shape[1] for a in arrays], counts)
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.int32)
    present = [a.ravel() for a in arrays if a is not None]
    flat = np.concatenate(present) if present else np.zeros(0, np.float32)
    missing = np.repeat([a is None for a in arrays], counts)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(missing))


def log_table(entries: Sequence[Entry], feature_names: Sequence[str]) -> pa.Table:
    """The entries (all with the same number of input columns) as one Arrow table, one row per input row."""
    counts = np.array([e.rows for e in entries])
    features = np.concatenate([e.features for e in entries])
    # Each row's index within its request: its position, less where its entry starts, plus the entry's offset.
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    row = np.arange(len(features)) - np.repeat(starts - [e.first_row for e in entries], counts)

    def repeated(values: list, type_: pa.DataType) -> pa.Array:
        return pa.array(np.repeat(np.array(values, dtype=object if type_ == pa.string() else None), counts), type_)

    columns: dict[str, pa.Array] = {
        name: pa.array(features[:, i]) for i, name in enumerate(feature_columns(feature_names, features.shape[1]))
    }
    columns |= {
        "request_id": repeated([e.request_id for e in entries], pa.string()),
        "row": pa.array(row, pa.int32()),
        "timestamp": repeated([e.timestamp_us for e in entries], pa.timestamp("us", tz="UTC")),
        "model_version": repeated([e.model_version for e in entries], pa.string()),
        "latency_ms": repeated([e.latency_ms for e in entries], pa.float64()),
        "status": repeated([e.status for e in entries], pa.int16()),
    }
    for name in sorted({o for e in entries for o in e.outputs}):
        column = output_column(name)
        columns[column if column not in columns else f"{column}_output"] = _list_column(entries, name, counts)
    return pa.table(columns)


_HOUR_US = 3_600_000_000


def hour_path(timestamp_us: int) -> str:
    """`YYYY-MM-DD/HH` of a timestamp, in UTC."""
    return datetime.fromtimestamp(timestamp_us // _HOUR_US * 3600, UTC).strftime("%Y-%m-%d/%H")


def log_objects(entries: Sequence[Entry], prefix: str, feature_names: Sequence[str]) -> list[tuple[str, pa.Table]]:
    """(object key, table) for a batch: one object per hour of arrival and per input width, each keyed
    `<prefix>/<YYYY-MM-DD>/<HH>/<first arrival>-<random>.parquet` so that names sort by time."""
    groups: dict[tuple[int, int], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.timestamp_us // _HOUR_US, e.features.shape[1]), []).append(e)
    objects = []
    for (hour, _), group in sorted(groups.items()):
        first = datetime.fromtimestamp(min(e.timestamp_us for e in group) / 1e6, UTC)
        batch_id = f"{first:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:12]}"
        key = "/".join(p for p in (prefix.strip("/"), hour_path(hour * _HOUR_US), f"{batch_id}.parquet") if p)
        objects.append((key, log_table(group, feature_names)))
    return objects


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class RecordBuffer:
    """Entries waiting to be written, bounded in rows: the batch being written plus the queue never
    exceed `bound`. A `put` that would exceed it drops the oldest queued rows (trimming an entry when
    only part of it must go) and returns how many it dropped; it never waits."""

    def __init__(self, bound: int, clock: Callable[[], float] = time.monotonic):
        if bound < 1:
            raise ValueError(f"buffer bound must be at least 1 row, not {bound}")
        self.bound = bound
        self._clock = clock
        self._queue: deque[tuple[float, Entry]] = deque()  # (when queued, entry), oldest first
        self._queued = 0
        self._in_flight = 0
        self._batch_rows = 1  # the batch size the writer waits for (set by wait_ready)
        self._changed = threading.Condition()

    @property
    def depth(self) -> int:
        """Rows not yet written: the queue and the batch in flight."""
        return self._queued + self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    def put(self, entry: Entry) -> int:
        with self._changed:
            self._queue.append((self._clock(), entry))
            self._queued += entry.rows
            dropped = 0
            while self._queued + self._in_flight > self.bound:
                excess = self._queued + self._in_flight - self.bound
                queued_at, oldest = self._queue[0]
                if oldest.rows <= excess:
                    self._queue.popleft()
                    cut = oldest.rows
                else:
                    self._queue[0] = (queued_at, oldest.tail(oldest.rows - excess))
                    cut = excess
                self._queued -= cut
                dropped += cut
            # Wake the writer only when it has something new to act on: a first row (to time its age) or
            # a full batch. Waking it on every put would cost a thread switch per request.
            if len(self._queue) == 1 or self._queued >= self._batch_rows:
                self._changed.notify()
            return dropped

    def wait_ready(self, batch_rows: int, max_age: float, timeout: float) -> bool:
        """Wait up to `timeout` for a batch: `batch_rows` queued rows, or any whose oldest has waited
        `max_age` seconds."""
        def ready() -> bool:
            return bool(self._queue) and (self._queued >= batch_rows or
                                          self._clock() - self._queue[0][0] >= max_age)

        with self._changed:
            self._batch_rows = batch_rows
            if not ready() and self._queue:
                # Wake in time for the oldest row's deadline, not only on the next put.
                timeout = min(timeout, max(0.0, max_age - (self._clock() - self._queue[0][0])))
            return self._changed.wait_for(ready, timeout)

    def take(self, max_rows: int) -> list[Entry]:
        """Up to `max_rows` of the oldest rows, now in flight until `release`d."""
        with self._changed:
            taken, n = [], 0
            while self._queue and n < max_rows:
                queued_at, entry = self._queue[0]
                if entry.rows <= max_rows - n:
                    self._queue.popleft()
                    taken.append(entry)
                else:
                    taken.append(entry.head(max_rows - n))
                    self._queue[0] = (queued_at, entry.tail(entry.rows - (max_rows - n)))
                n += taken[-1].rows
            self._queued -= n
            self._in_flight += n
            return taken

    def release(self, rows: int) -> None:
        """The batch taken is written (or given up): its rows no longer count against the bound."""
        with self._changed:
            self._in_flight -= rows


Store = Callable[[str, bytes], None]


class LogWriter:
    """The background thread that writes batches from `buffer` with `store(key, data)`.

    A failed write is retried with exponential backoff from `retry_initial` up to `retry_max` seconds
    (with jitter), for as long as it takes: the bound on the buffer, not a retry limit, is what sheds
    load. Only `close(deadline)` gives up, on what is still unwritten at its deadline (counted as dropped).
    """

    def __init__(self, buffer: RecordBuffer, store: Store, prefix: str, feature_names: Sequence[str],
                 metrics: AgentMetrics, batch_rows: int, flush_seconds: float,
                 retry_initial: float = 0.2, retry_max: float = 5.0):
        self.buffer, self._store, self._prefix, self._features = buffer, store, prefix, list(feature_names)
        self._metrics = metrics
        self._batch_rows = min(batch_rows, buffer.bound)
        self._flush_seconds = flush_seconds
        self._retry = (retry_initial, retry_max)
        self._closing = threading.Event()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="payload-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Write everything buffered, giving up `timeout` seconds from now (for SIGTERM)."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._thread.join(timeout + 5)
        left = self.buffer.depth
        if left:
            log.error("payload log: %d rows not written before the shutdown deadline", left)

    def _run(self) -> None:
        while True:
            closing = self._closing.is_set()
            if not self.buffer.wait_ready(self._batch_rows, 0 if closing else self._flush_seconds, 0.5):
                if closing and not self.buffer.queued:
                    return
                continue
            batch = self.buffer.take(self._batch_rows)
            rows = sum(e.rows for e in batch)
            try:
                self._write(batch)
            except Exception:  # a bug in building the table must not kill the writer; the rows are lost
                log.exception("payload log: could not build a batch of %d rows; dropped", rows)
                self._metrics.log_dropped.inc(rows)
            finally:
                self.buffer.release(rows)

    def _write(self, batch: list[Entry]) -> None:
        for key, table in log_objects(batch, self._prefix, self._features):
            data = parquet_bytes(table)
            attempt = 0
            while True:
                started = time.monotonic()
                try:
                    self._store(key, data)
                except Exception as e:  # any storage failure: the store is down, slow or refusing
                    self._metrics.log_write_failures.inc()
                    delay = min(self._retry[1], self._retry[0] * 2**attempt) * random.uniform(0.5, 1.0)
                    attempt += 1
                    if self._deadline is not None and time.monotonic() + delay > self._deadline:
                        self._metrics.log_dropped.inc(table.num_rows)
                        log.error("payload log: giving up on %s (%d rows) at shutdown: %s", key, table.num_rows, e)
                        break
                    if attempt == 1 or attempt % 10 == 0:
                        log.warning("payload log: writing %s failed (attempt %d), retrying: %s", key, attempt, e)
                    time.sleep(delay)
                    continue
                self._metrics.log_flush_duration.observe(time.monotonic() - started)
                self._metrics.log_records.inc(table.num_rows)
                break
