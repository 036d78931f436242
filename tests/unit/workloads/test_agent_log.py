"""The payload log's pure parts: sampling, entries -> Arrow tables and object keys, the bounded buffer."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.workloads.agent_log import (
    Entry,
    RecordBuffer,
    Sampler,
    log_objects,
    log_table,
    make_entry,
    parquet_bytes,
)

pytestmark = pytest.mark.unit

T0 = int(datetime(2026, 11, 26, 19, 59, 58, tzinfo=UTC).timestamp() * 1e6)


def entry(rid: str, rows: int, ts: int = T0, width: int = 3, status: int = 200, outputs: bool = True) -> Entry:
    x = np.arange(rows * width, dtype=np.float32).reshape(rows, width) + 100 * int(rid.strip("r") or 0)
    outs = {"OUTPUT__0": x[:, :2] * 2} if outputs else {}
    return make_entry(rid, ts, "iris-v3", 1.5, status, x, outs)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- sampling ----------------------------------------------------------------------------------------


def test_sampler_at_one_and_zero_is_exact():
    assert all(Sampler(1.0)() for _ in range(1000))
    assert not any(Sampler(0.0)() for _ in range(1000))


def test_sampler_keeps_about_the_rate():
    sample = Sampler(0.1, random.Random(7))
    kept = sum(sample() for _ in range(20_000))
    assert 1800 < kept < 2200


def test_sampler_refuses_a_rate_outside_zero_one():
    with pytest.raises(ValueError, match="sample rate"):
        Sampler(1.5)


# --- records -> Arrow ----------------------------------------------------------------------------------


def test_table_has_one_row_per_input_row_with_feature_names_and_metadata():
    table = log_table([entry("r1", 2), entry("r2", 1)], ["sepal", "petal", "width"])
    assert table.num_rows == 3
    assert table.column_names == ["sepal", "petal", "width", "request_id", "row", "timestamp", "model_version",
                                  "latency_ms", "status", "output__0"]
    assert table["sepal"].to_pylist() == [100.0, 103.0, 200.0]
    assert table["request_id"].to_pylist() == ["r1", "r1", "r2"]
    assert table["row"].to_pylist() == [0, 1, 0]
    assert table["status"].to_pylist() == [200, 200, 200]
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table["timestamp"].to_pylist()[0] == datetime(2026, 11, 26, 19, 59, 58, tzinfo=UTC)
    assert table["output__0"].to_pylist() == [[200.0, 202.0], [206.0, 208.0], [400.0, 402.0]]
    assert table.schema.field("sepal").type == pa.float32()


def test_table_falls_back_to_positional_names_when_the_names_do_not_fit():
    table = log_table([entry("r1", 1)], ["only-one"])
    assert table.column_names[:3] == ["f0", "f1", "f2"]


def test_failed_requests_are_logged_with_their_status_and_no_output():
    table = log_table([entry("r1", 1), entry("r2", 2, status=500, outputs=False)], ["a", "b", "c"])
    assert table["status"].to_pylist() == [200, 500, 500]
    assert table["output__0"].to_pylist() == [[200.0, 202.0], None, None]


def test_an_output_with_another_row_count_is_left_out():
    x = np.ones((3, 2), np.float32)
    assert make_entry("r", T0, "v", 1.0, 200, x, {"OUTPUT__0": np.ones((1, 5))}).outputs == {}


def test_objects_are_split_by_hour_and_keyed_under_the_prefix():
    next_hour = T0 + 3 * 1_000_000  # 20:00:01
    objects = log_objects([entry("r1", 2), entry("r2", 1, ts=next_hour), entry("r3", 1)], "logs/ns/isvc/iris-v3",
                          ["a", "b", "c"])
    keys = [k for k, _ in objects]
    assert [k.rsplit("/", 1)[0] for k in keys] == ["logs/ns/isvc/iris-v3/2026-11-26/19",
                                                  "logs/ns/isvc/iris-v3/2026-11-26/20"]
    assert keys[0].rsplit("/", 1)[1].startswith("20261126T195958Z-") and keys[0].endswith(".parquet")
    assert [t["request_id"].to_pylist() for _, t in objects] == [["r1", "r1", "r3"], ["r2"]]


def test_parquet_bytes_read_back_equal():
    table = log_table([entry("r1", 4)], ["a", "b", "c"])
    assert pq.read_table(io.BytesIO(parquet_bytes(table))).equals(table)


# --- the bounded buffer ----------------------------------------------------------------------------------


def test_buffer_under_its_bound_drops_nothing():
    buffer = RecordBuffer(10)
    assert [buffer.put(entry(f"r{i}", 2)) for i in range(5)] == [0] * 5
    assert buffer.depth == 10


def test_full_buffer_drops_exactly_the_oldest_rows():
    buffer = RecordBuffer(5)
    dropped = [buffer.put(entry(f"r{i}", 2)) for i in range(1, 5)]  # 8 rows into a bound of 5
    assert dropped == [0, 0, 1, 2]
    assert buffer.depth == 5
    taken = buffer.take(100)
    # r1 is gone, r2 lost its first row, r3 and r4 are whole.
    assert [(e.request_id, e.first_row, e.rows) for e in taken] == [("r2", 1, 1), ("r3", 0, 2), ("r4", 0, 2)]
    assert log_table(taken, "abc")["row"].to_pylist() == [1, 0, 1, 0, 1]


def test_an_entry_larger_than_the_bound_keeps_its_newest_rows():
    buffer = RecordBuffer(3)
    assert buffer.put(entry("r1", 5)) == 2
    (kept,) = buffer.take(10)
    assert (kept.first_row, kept.rows) == (2, 3)
    assert kept.features[0, 0] == entry("r1", 5).features[2, 0]


def test_rows_in_flight_count_against_the_bound_and_are_never_dropped():
    buffer = RecordBuffer(4)
    buffer.put(entry("r1", 3))
    in_flight = buffer.take(3)
    assert buffer.depth == 3 and buffer.queued == 0
    assert buffer.put(entry("r2", 2)) == 1  # only one queued row fits beside the three in flight
    assert buffer.depth == 4
    buffer.release(sum(e.rows for e in in_flight))
    assert buffer.depth == 1
    assert buffer.put(entry("r3", 3)) == 0


def test_take_splits_an_entry_at_the_batch_size():
    buffer = RecordBuffer(100)
    buffer.put(entry("r1", 3))
    buffer.put(entry("r2", 3))
    first = buffer.take(4)
    assert [(e.request_id, e.first_row, e.rows) for e in first] == [("r1", 0, 3), ("r2", 0, 1)]
    assert [(e.request_id, e.first_row, e.rows) for e in buffer.take(4)] == [("r2", 1, 2)]


def test_wait_ready_on_batch_size_or_age():
    clock = FakeClock()
    buffer = RecordBuffer(100, clock)
    assert not buffer.wait_ready(2, 5.0, 0)  # empty
    buffer.put(entry("r1", 1))
    assert not buffer.wait_ready(2, 5.0, 0)  # neither full nor old
    clock.now = 5.0
    assert buffer.wait_ready(2, 5.0, 0)  # old enough
    clock.now = 0.0
    buffer.put(entry("r2", 1))
    assert buffer.wait_ready(2, 5.0, 0)  # a full batch
