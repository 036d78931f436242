"""Prometheus metrics of the operator (served by `mlcycle run --metrics-port`)."""

import time
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("mlcycle_reconcile_total", "Reconciles by kind and result", ["kind", "result"])
RECONCILE_SECONDS = Histogram("mlcycle_reconcile_duration_seconds", "Time spent in one reconcile", ["kind"])
TRAINING_TRANSITIONS = Counter("mlcycle_trainingjob_transitions_total", "TrainingJob phase transitions",
                               ["phase"])

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
