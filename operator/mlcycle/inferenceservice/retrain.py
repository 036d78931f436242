"""When an InferenceService starts a retrain, and the TrainingJob it creates. Pure functions.

policy Auto: a drift check that found drift, or performance degraded (spec.monitoring.performance), starts
one, at most once per `cooldown` (status.retrain.lastTriggered persists across operator restarts). policy
Manual only reports. With either policy, a new value of the annotation mlcycle.io/retrain-requested (e.g.
`kubectl annotate isvc/x mlcycle.io/retrain-requested=$(date +%s) --overwrite`) starts one at once: a person
asked. The TrainingJob's name comes from what caused it (the check's report, or the annotation's value), so a
retried reconcile creates the same object, never a second one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlcycle.api.base import API_VERSION, DURATION_PATTERN
from mlcycle.api.inferenceservice import DRIFT_DETECTED, PERFORMANCE_DEGRADED, InferenceServiceSpec
from mlcycle.api.labels import DRIFT_REPORT, DRIFT_REPORT_ANNOTATION, INFERENCESERVICE, RETRAIN_REQUESTED_ANNOTATION
from mlcycle.api.trainingjob import KIND as TRAININGJOB_KIND

REQUESTED = "Requested"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_REPORT_ID = re.compile(r"/(\d{8}T\d{6}Z)/(report\.html|report\.json|performance\.json)$")
_MAX_NAME = 52  # a TrainingJob's Job keeps its name up to this length (see trainingjob.manifests.child_name)


def parse_duration(text: str) -> timedelta:
    """`24h`, `90m`, `1h30m`, `45s`, `2d` (the API's DURATION_PATTERN) as a timedelta."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration like 24h or 90m: {text!r}")
    return sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in re.findall(r"(\d+)([smhd])", text)),
               timedelta())


def cooldown_left(last_triggered: datetime | None, cooldown: str, now: datetime) -> timedelta:
    """How long until another automatic retrain may start (zero when it may now)."""
    if last_triggered is None:
        return timedelta()
    return max(timedelta(), last_triggered + parse_duration(cooldown) - now)


def report_id(report_uri: str | None) -> str | None:
    """The check's report folder name, its UTC time (e.g. 20261126T201500Z): a valid label value. The drift
    report and performance.json of one check share it."""
    match = _REPORT_ID.search(report_uri or "")
    return match.group(1) if match else None


def retrain_name(isvc: str, cause: str) -> str:
    """A deterministic TrainingJob name for the retrain `cause` (report id or request value) started."""
    digest = hashlib.sha256(f"{isvc}\0{cause}".encode()).hexdigest()[:10]
    return f"{isvc[: _MAX_NAME - 19].rstrip('-')}-retrain-{digest}"


@dataclass(frozen=True)
class Decision:
    """A retrain to start now: why (DriftDetected, PerformanceDegraded or Requested), its cause and the
    TrainingJob name."""

    reason: str
    cause: str
    name: str
    report_uri: str | None = None


@dataclass(frozen=True)
class Waiting:
    """Drift or degradation was detected but the cooldown holds: for the RetrainTriggered condition's message."""

    message: str


def decide(
    isvc: str,
    spec: InferenceServiceSpec,
    status: Mapping[str, Any] | None,
    annotations: Mapping[str, str] | None,
    now: datetime,
) -> Decision | Waiting | None:
    """Whether to start a retrain now. `status` is the InferenceService's status (wire form)."""
    if spec.retrain is None:
        return None
    status = status or {}
    retrain = status.get("retrain") or {}
    requested = (annotations or {}).get(RETRAIN_REQUESTED_ANNOTATION)
    if requested and requested != retrain.get("lastRequest"):
        return Decision(REQUESTED, requested, retrain_name(isvc, f"request:{requested}"))
    if spec.retrain.policy != "Auto":
        return None
    # Drift first: a check that found both starts one retrain, for its drift report.
    found = next(((reason, check) for reason, check in ((DRIFT_DETECTED, status.get("drift") or {}),
                                                         (PERFORMANCE_DEGRADED, status.get("performance") or {}))
                  if check.get("result") == reason), None)
    if found is None:
        return None
    reason, check = found
    cause = report_id(check.get("reportUri")) or check.get("job") or ""
    if retrain.get("cause") == cause:
        return None  # this check already started one
    last = retrain.get("lastTriggered")
    left = cooldown_left(datetime.fromisoformat(last.replace("Z", "+00:00")) if last else None,
                         spec.retrain.cooldown, now)
    what = "drift detected" if reason == DRIFT_DETECTED else "performance degraded"
    if left:
        return Waiting(f"{what}, but the last retrain started at {last}; the cooldown "
                       f"{spec.retrain.cooldown} allows the next in {_rounded(left)}")
    prefix = "drift" if reason == DRIFT_DETECTED else "performance"
    return Decision(reason, cause, retrain_name(isvc, f"{prefix}:{cause}"), check.get("reportUri"))


def _rounded(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)}m"


def desired_training_job(isvc: str, namespace: str, spec: InferenceServiceSpec, decision: Decision) -> dict:
    """The TrainingJob from spec.retrain.template, labelled with the service and the check's report that
    caused it (lineage: drift or performance report -> training job -> new version -> service). No owner reference: the
    record of a training run, like the version it registers, outlives the service."""
    labels = {INFERENCESERVICE: isvc, "app.kubernetes.io/managed-by": "mlcycle"}
    annotations = {}
    if decision.reason in (DRIFT_DETECTED, PERFORMANCE_DEGRADED) and report_id(decision.report_uri):
        labels[DRIFT_REPORT] = report_id(decision.report_uri)
        annotations[DRIFT_REPORT_ANNOTATION] = decision.report_uri
    else:
        annotations[RETRAIN_REQUESTED_ANNOTATION] = decision.cause
    return {
        "apiVersion": API_VERSION,
        "kind": TRAININGJOB_KIND,
        "metadata": {"name": decision.name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": spec.retrain.template.to_api(),
    }


def retrain_status(decision: Decision, now: datetime, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """status.retrain once the TrainingJob exists: when, which, why; the request value acted on is kept
    so the same annotation value never starts a second one."""
    status = {
        "lastTriggered": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trainingJobRef": {"name": decision.name},
        "reason": decision.reason,
        "cause": decision.cause,
    }
    last_request = decision.cause if decision.reason == REQUESTED else (previous or {}).get("lastRequest")
    if last_request:
        status["lastRequest"] = last_request
    return status
