"""The monitoring half of an InferenceService's reconcile, pure: the drift-check CronJob of the served
version, what the last finished check says (status.drift, DriftDetected; with spec.monitoring.performance
also status.performance, PerformanceDegraded; events, metrics) and whether to start a retrain
(spec.retrain: Auto on drift or degraded performance within the cooldown, or by the request annotation).

Retraining is decided from status alone (status.retrain records the cause and time of the last one), so an
operator restart never starts a second TrainingJob for the same check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mlcycle.api.inferenceservice import RETRAIN_TRIGGERED, InferenceServiceSpec
from mlcycle.conditions import condition
from mlcycle.inferenceservice import cronjob, drift_status, performance_status, retrain


@dataclass
class Monitoring:
    cronjob: dict | None = None  # to apply; None: the CronJob should not exist
    training_job: dict | None = None  # a retrain to create (create-once: it may exist already)
    status: dict = field(default_factory=dict)  # drift / retrain fields of status
    conditions: list[dict] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    scores: dict[str, tuple[float, bool]] | None = None  # per feature, when a check just finished
    check_time: float | None = None
    performance: performance_status.Gauges | None = None  # when a check with performance just finished


def monitoring(isvc: dict, spec: InferenceServiceSpec, served: dict | None, jobs: list[dict], pods: list[dict],
               now: datetime) -> Monitoring:
    """`served`: the ModelVersion receiving traffic; `jobs`: the drift-check Jobs (cronjob.job_selector) and
    `pods`: theirs."""
    meta, old = isvc["metadata"], isvc.get("status") or {}
    name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation")
    out = Monitoring()
    if served is not None:
        out.cronjob = cronjob.desired_cronjob(
            name, namespace, meta["uid"], spec, served_version=served["metadata"]["name"],
            artifact_uri=served["spec"]["artifact"]["uri"], node_selector=spec.node_selector,
            tolerations=[t.to_api() for t in spec.tolerations or []])
    drift = old.get("drift")
    job = drift_status.latest_finished_job(jobs)
    method = spec.monitoring.drift.method if spec.monitoring and spec.monitoring.drift else None
    job_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == job["metadata"]["name"]
                ] if job else []
    seen = drift_status.observe(drift, job, job_pods, method, generation) if job else None
    if seen is not None:
        drift = seen.drift
        out.events += seen.events
        out.scores, out.check_time = seen.scores, seen.check_time
    if drift:
        out.status["drift"] = drift
        out.conditions.append(drift_status.drift_condition(drift, generation))
    # Without spec.monitoring.performance, status.performance goes: an old degradation must not retrain.
    performance = None
    if spec.monitoring is not None and spec.monitoring.performance is not None:
        performance = old.get("performance")
        scored = performance_status.observe(performance, job, job_pods, generation) if job else None
        if scored is not None:
            performance = scored.performance
            out.events += scored.events
            out.performance = scored.gauges
        if performance:
            out.status["performance"] = performance
            out.conditions.append(performance_status.performance_condition(performance, generation))

    retrain_status = old.get("retrain")
    decision = retrain.decide(name, spec, {**old, "drift": drift, "performance": performance},
                              meta.get("annotations"), now)
    if isinstance(decision, retrain.Decision):
        out.training_job = retrain.desired_training_job(name, namespace, spec, decision)
        retrain_status = retrain.retrain_status(decision, now, retrain_status)
        message = f"started TrainingJob {decision.name} ({decision.reason}: {decision.cause})"
        out.conditions.append(condition(RETRAIN_TRIGGERED, True, decision.reason, message, generation))
        out.events.append(("Normal", RETRAIN_TRIGGERED, message))
    elif isinstance(decision, retrain.Waiting):
        out.conditions.append(condition(RETRAIN_TRIGGERED, False, "Cooldown", decision.message, generation))
    if retrain_status:
        out.status["retrain"] = retrain_status
    return out
