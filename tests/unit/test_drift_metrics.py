import pytest
from prometheus_client import REGISTRY

from mlcycle import metrics

pytestmark = pytest.mark.unit


def sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_drift_gauges_follow_the_last_check_and_drop_features_no_longer_checked():
    metrics.record_drift("shop", "iris", 1764188100.0, {"x1": (0.96, True), "x2": (0.04, False)})
    labels = {"namespace": "shop", "inferenceservice": "iris"}
    assert sample("mlcycle_drift_score", **labels, feature="x1") == 0.96
    assert sample("mlcycle_drift_detected", **labels, feature="x1") == 1.0
    assert sample("mlcycle_drift_detected", **labels, feature="x2") == 0.0
    assert sample("mlcycle_drift_last_check_timestamp_seconds", **labels) == 1764188100.0

    metrics.record_drift("shop", "iris", 1764191700.0, {"x1": (0.05, False)})
    assert sample("mlcycle_drift_score", **labels, feature="x2") is None
    assert sample("mlcycle_drift_detected", **labels, feature="x1") == 0.0

    metrics.forget_drift("shop", "iris")
    assert sample("mlcycle_drift_score", **labels, feature="x1") is None
    assert sample("mlcycle_drift_last_check_timestamp_seconds", **labels) is None


def test_performance_gauges_follow_the_last_check_and_a_check_without_a_verdict_leaves_no_value():
    labels = {"namespace": "shop", "inferenceservice": "iris"}
    metrics.record_performance("shop", "iris", "accuracy", 0.62, 0.78)
    assert sample("mlcycle_performance_value", **labels, metric="accuracy") == 0.62
    assert sample("mlcycle_performance_label_coverage", **labels) == 0.78

    metrics.record_performance("shop", "iris", "accuracy", None, 0.01)
    assert sample("mlcycle_performance_value", **labels, metric="accuracy") is None
    assert sample("mlcycle_performance_label_coverage", **labels) == 0.01

    metrics.forget_performance("shop", "iris")
    assert sample("mlcycle_performance_label_coverage", **labels) is None
