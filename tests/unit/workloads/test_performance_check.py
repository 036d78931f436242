"""The performance check's pure parts: its inputs, which log hours it reads, the result of a window."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from mlcycle.performance import join
from mlcycle.workloads import performance

pytestmark = pytest.mark.unit

ENV = {"MLCYCLE_PERF_LABELS": "s3://labels/iris/", "MLCYCLE_PERF_METRIC": "accuracy",
       "MLCYCLE_PERF_THRESHOLD": "0.8"}


def test_inputs_come_from_the_environment_with_defaults():
    config = performance.PerformanceConfig.from_env(ENV | {"MLCYCLE_PERF_WINDOW": "90m",
                                                           "MLCYCLE_PERF_CLASSES": '["a", "b"]'})
    assert (config.labels, config.metric, config.threshold, config.window) == (
        "s3://labels/iris/", "accuracy", 0.8, timedelta(minutes=90))
    assert (config.min_labelled_rows, config.id_column, config.row_column, config.label_column, config.classes) == (
        100, "request_id", None, "label", ("a", "b"))
    assert performance.PerformanceConfig.from_env({}) is None


@pytest.mark.parametrize(("change", "message"), [
    ({"MLCYCLE_PERF_METRIC": "auc"}, "must be one of accuracy, f1, rmse, mae"),
    ({"MLCYCLE_PERF_THRESHOLD": ""}, "MLCYCLE_PERF_THRESHOLD is required"),
    ({"MLCYCLE_PERF_LABELS": "/tmp/labels"}, "not an S3 URI"),
    ({"MLCYCLE_PERF_CLASSES": '{"a": 1}'}, "JSON list of names"),
    ({"MLCYCLE_PERF_MIN_LABELLED_ROWS": "0"}, "at least 1"),
    ({"MLCYCLE_PERF_WINDOW": "a day"}, "not a duration"),
])
def test_bad_inputs_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        performance.PerformanceConfig.from_env(ENV | change)


def test_only_log_hours_that_may_hold_rows_of_the_window_are_read():
    start = datetime(2026, 11, 26, 18, 40, tzinfo=UTC)
    assert performance.hour_in_window("2026-11-26/18/20261126T180000Z-ab.parquet", start)
    assert performance.hour_in_window("2026-11-27/01/x.parquet", start)
    assert not performance.hour_in_window("2026-11-26/17/x.parquet", start)
    assert performance.hour_in_window("x.parquet", start) and performance.hour_in_window("a/b/c.parquet", start)


def test_the_result_of_a_window_and_its_labels():
    config = performance.PerformanceConfig.from_env(ENV | {"MLCYCLE_PERF_MIN_LABELLED_ROWS": "2"})
    logged = pa.table({"request_id": ["a", "b", "c", "d"], "row": pa.array([0, 0, 0, 0], pa.int32()),
                       "prediction": pa.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]],
                                              pa.list_(pa.float32()))})
    labels = join.keyed_labels(pa.table({"request_id": ["a", "b", "c"], "label": [0, 0, 1]}), "request_id", None,
                               "label")
    doc = performance.evaluate(config, logged, labels)
    assert doc == {"result": "PerformanceDegraded", "metric": "accuracy", "value": 2 / 3, "threshold": 0.8,
                   "coverage": 0.75, "labelledRows": 3, "windowRows": 4,
                   "message": "accuracy 0.6667 below the threshold 0.8; 3 of 4 logged prediction(s) labelled (75%)"}
