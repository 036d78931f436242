"""The drift check's pure parts: options, reading the newest rows of Parquet files, the termination message."""

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import training
from mlcycle.workloads import drift

pytestmark = pytest.mark.unit

LOGS = "s3://logs/requests/shop/iris/iris-v3/"


def parquet_file(first: int, rows: int, group: int, names=("x",)) -> callable:
    """A file whose column x counts up from `first` (row groups of `group` rows), opened lazily."""
    out = io.BytesIO()
    table = pa.table({name: np.arange(first, first + rows, dtype=np.float32) for name in names}
                     | {"request_id": [str(i) for i in range(rows)]})
    pq.write_table(table, out, row_group_size=group)
    return lambda: pq.ParquetFile(pa.BufferReader(out.getvalue()))


def test_options_default_to_the_environment_and_reports_go_next_to_the_logs():
    config = drift.DriftConfig.parse([], {"MLCYCLE_DRIFT_LOGS": LOGS.rstrip("/"),
                                          "MLCYCLE_DRIFT_REFERENCE": "s3://models/iris/r/reference_profile.json",
                                          "MLCYCLE_DRIFT_FEATURES": '["a", "b"]'})
    assert config.logs == LOGS and config.reports == "s3://logs/requests/shop/iris/drift/"
    assert (config.window, config.method, config.threshold, config.drift_share) == (1000, "auto", None, 0.5)
    assert config.features == ("a", "b")
    override = drift.DriftConfig.parse(["--window", "50", "--method", "ks", "--threshold", "0.01"],
                                       {"MLCYCLE_DRIFT_LOGS": LOGS, "MLCYCLE_DRIFT_REFERENCE": "s3://data/ref.csv"})
    assert (override.window, override.method, override.threshold) == (50, "ks", 0.01)


@pytest.mark.parametrize(("args", "message"), [
    ([], "--logs"),
    (["--logs", LOGS], "--reference"),
    (["--logs", "/tmp/logs", "--reference", "s3://refs/x.json"], "not an S3 URI"),
    (["--logs", LOGS, "--reference", "s3://refs/x.json", "--method", "kl"], "method must be one of"),
    (["--logs", LOGS, "--reference", "s3://refs/x.json", "--window", "0"], "window must be >= 1"),
    (["--logs", LOGS, "--reference", "s3://refs/x.json", "--features", '"a"'], "JSON list"),
])
def test_bad_options_are_refused_with_a_clear_message(args, message):
    with pytest.raises(ValueError, match=message):
        drift.DriftConfig.parse(args, {})


def test_the_newest_rows_come_from_the_newest_file_and_row_group_first():
    newest, older = parquet_file(1000, 300, group=100), parquet_file(0, 1000, group=400)
    tables = list(drift.newest_tables([newest, older], ["x"], 450))
    values = np.concatenate([t.column("x").to_numpy() for t in tables])
    assert len(values) == 450 and sorted(values.tolist()) == list(range(850, 1300))
    assert tables[0].column_names == ["x"]  # only the needed columns are read


def test_reading_stops_at_the_window_without_opening_older_files():
    opened = []

    def never():
        opened.append(True)
        raise AssertionError("an older file was opened")

    tables = list(drift.newest_tables([parquet_file(0, 500, group=100), never], ["x"], 200))
    assert sum(t.num_rows for t in tables) == 200 and not opened


def test_a_feature_missing_from_a_log_file_is_insufficient_data_naming_it():
    with pytest.raises(drift.CheckOutcome) as caught:
        list(drift.newest_tables([parquet_file(0, 10, 10, names=("x",))], ["x", "y"], 5))
    assert caught.value.result == "InsufficientData" and "['y'] are not in the request logs" in caught.value.message
    assert "logged features: ['x']" in caught.value.message


def test_the_termination_message_stays_under_the_limit_and_keeps_the_count():
    features = [f"feature_with_a_rather_long_name_{i:04d}" for i in range(400)]
    doc = {"result": "DriftDetected", "message": "x" * 5000, "driftedFeatures": features,
           "features": {f: {"method": "ks", "score": 1.0, "drifted": True} for f in features}}
    text = drift.termination_message(doc)
    parsed = json.loads(text)
    assert len(text.encode()) <= training.MESSAGE_LIMIT and "features" not in parsed
    kept = parsed["driftedFeatures"]
    assert parsed["driftedFeatureCount"] == 400 and kept and kept == features[: len(kept)]
    assert len(parsed["message"]) <= 600
    small = {"result": "NoDrift", "driftedFeatures": [], "features": {"a": {"score": 0.1}}}
    assert json.loads(drift.termination_message(small)) == small


def test_log_metadata_and_outputs_are_not_features():
    schema = pa.schema([("x1", pa.float32()), ("request_id", pa.string()), ("timestamp", pa.timestamp("us")),
                        ("output__0", pa.float32()), ("latency_ms", pa.float64())])
    assert drift.feature_columns(schema) == ["x1"]


def test_log_files_are_read_newest_hour_first_then_newest_written_first():
    t = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
    objects = [
        (f"{LOGS}2026-11-26/19/zzz.parquet", t, 1),
        (f"{LOGS}2026-11-26/20/aaa.parquet", t + timedelta(minutes=1), 1),
        (f"{LOGS}2026-11-26/20/bbb.parquet", t, 1),
        (f"{LOGS}2026-11-25/23/x.parquet", t + timedelta(days=1), 1),  # an old hour written late still comes last
        (f"{LOGS}2026-11-26/20/_tmp.json", t + timedelta(hours=1), 1),
    ]
    assert [k.removeprefix(LOGS) for k in drift.newest_first(objects)] == [
        "2026-11-26/20/aaa.parquet", "2026-11-26/20/bbb.parquet", "2026-11-26/19/zzz.parquet",
        "2026-11-25/23/x.parquet"]
