"""Prometheus metrics of the operator (served by `mlcycle run --metrics-port`)."""

import time
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("mlcycle_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram("mlcycle_reconcile_duration_seconds", "Time spent in one reconcile", ["kind"])
TRAINING_TRANSITIONS = Counter("mlcycle_trainingjob_transitions_total", "TrainingJob phase transitions",
                               ["phase"])
_DRIFT_LABELS = ["namespace", "inferenceservice", "feature"]
DRIFT_SCORE = Gauge("mlcycle_drift_score",
                    "Last drift check's score per feature: the distance, or 1 - p-value for a test", _DRIFT_LABELS)
DRIFT_DETECTED = Gauge("mlcycle_drift_detected", "1 when the feature drifted in the last drift check, else 0",
                       _DRIFT_LABELS)
# Alert on stale checks with `time() - mlcycle_drift_last_check_timestamp_seconds > ...`.
DRIFT_LAST_CHECK = Gauge("mlcycle_drift_last_check_timestamp_seconds",
                         "Unix time of the last finished drift check", ["namespace", "inferenceservice"])
_drift_features: dict[tuple[str, str], set[str]] = {}


def record_drift(namespace: str, isvc: str, check_time: float, scores: dict[str, tuple[float, bool]]) -> None:
    """The gauges of one drift check (`scores`: feature -> (score, drifted)); features no longer checked
    lose their series."""
    for gone in _drift_features.get((namespace, isvc), set()) - set(scores):
        DRIFT_SCORE.remove(namespace, isvc, gone)
        DRIFT_DETECTED.remove(namespace, isvc, gone)
    for feature, (score, drifted) in scores.items():
        DRIFT_SCORE.labels(namespace, isvc, feature).set(score)
        DRIFT_DETECTED.labels(namespace, isvc, feature).set(1 if drifted else 0)
    _drift_features[(namespace, isvc)] = set(scores)
    DRIFT_LAST_CHECK.labels(namespace, isvc).set(check_time)


def forget_drift(namespace: str, isvc: str) -> None:
    """Drop a deleted InferenceService's drift series."""
    record_drift(namespace, isvc, 0.0, {})
    DRIFT_LAST_CHECK.remove(namespace, isvc)


_PERFORMANCE_LABELS = ["namespace", "inferenceservice"]
PERFORMANCE_VALUE = Gauge("mlcycle_performance_value",
                          "Last performance check's live metric over the labelled predictions (no sample without "
                          "a verdict)", [*_PERFORMANCE_LABELS, "metric"])
PERFORMANCE_COVERAGE = Gauge("mlcycle_performance_label_coverage",
                             "Share of the last performance check's logged predictions that had a label",
                             _PERFORMANCE_LABELS)
_performance_series: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}


def record_performance(namespace: str, isvc: str, metric: str | None, value: float | None,
                       coverage: float | None) -> None:
    """The gauges of one performance check; the series of the check before go first, so a check without a
    verdict (InsufficientData, Failed) leaves no stale value to be read as a current one."""
    for gauge, labels in _performance_series.pop((namespace, isvc), []):
        gauge.remove(*labels)
    series = []
    if metric is not None and value is not None:
        series.append((PERFORMANCE_VALUE, (namespace, isvc, metric), value))
    if coverage is not None:
        series.append((PERFORMANCE_COVERAGE, (namespace, isvc), coverage))
    for gauge, labels, number in series:
        gauge.labels(*labels).set(number)
    if series:
        _performance_series[(namespace, isvc)] = [(gauge, labels) for gauge, labels, _ in series]


def forget_performance(namespace: str, isvc: str) -> None:
    """Drop a deleted InferenceService's performance series."""
    record_performance(namespace, isvc, None, None, None)


ROLLOUT_WEIGHT = Gauge("mlcycle_rollout_weight", "Percent of requests the rollout candidate receives",
                       ["namespace", "inferenceservice"])
ROLLOUT_STEP = Gauge("mlcycle_rollout_step", "Index of the rollout's current step", ["namespace", "inferenceservice"])
ROLLOUT_RESULTS = Counter("mlcycle_rollout_results_total", "Rollouts that ended, by result (promoted, aborted)",
                          ["namespace", "inferenceservice", "result"])
ROLLOUT_ANALYSES = Counter("mlcycle_rollout_analyses_total", "Rollout analyses failed (each failure counts once)",
                           ["namespace", "inferenceservice"])


def observe_rollout(namespace: str, name: str, rollout: dict | None, events: list[tuple[str, str, str]]) -> None:
    """The rollout gauges from status.rollout, and its ends and failed analyses from the events posted."""
    if rollout is not None:
        active = rollout.get("phase") in ("Progressing", "Paused")
        ROLLOUT_WEIGHT.labels(namespace, name).set(rollout.get("weight", 0) if active else 0)
        ROLLOUT_STEP.labels(namespace, name).set(rollout.get("step", 0))
    for _, reason, _ in events:
        if reason in ("RolloutPromoted", "RolloutAborted"):
            ROLLOUT_RESULTS.labels(namespace, name, reason.removeprefix("Rollout").lower()).inc()
        elif reason == "AnalysisFailed":
            ROLLOUT_ANALYSES.labels(namespace, name).inc()

VERIFICATIONS = Counter("mlcycle_modelversion_verifications_total", "ModelVersion artifact verifications by result "
                        "(passed, or the failure reason)", ["result"])
HANDLER_FAILURES = Counter("mlcycle_handler_failures_total", "Unexpected handler exceptions (each is retried)",
                           ["kind", "error"])

LEADER = Gauge("mlcycle_leader", "1 while this replica holds the leader-election Lease (0: standby)")


@contextmanager
def reconciling(kind: str):
    """Count one reconcile of `kind` by result and time it."""
    started = time.monotonic()
    try:
        yield
        RECONCILES.labels(kind, "ok").inc()
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def serve(port: int) -> None:
    if port:
        start_http_server(port)
