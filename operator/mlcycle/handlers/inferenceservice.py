"""kopf entry points for InferenceService. Every event of an InferenceService, of its Deployments and pods,
and of a version of the model it serves leads to one `reconcile(namespace, name)`: read what is, let
`inferenceservice.status.plan` decide, apply it, write status when it changed."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

import kopf
from pydantic import ValidationError

from mlcycle import kube, metrics, names
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION, GROUP, VERSION
from mlcycle.api.inferenceservice import KIND, PLURAL, InferenceServiceSpec, RolloutStatus
from mlcycle.api.labels import INFERENCESERVICE, MODEL_VERSION, OWNER_NAME_ANNOTATION, ROLLOUT_ACTION_ANNOTATION
from mlcycle.clients import agents
from mlcycle.coalesce import Coalescer
from mlcycle.conditions import condition, merge_conditions
from mlcycle.images import mlcycle_image
from mlcycle.inferenceservice.analysis import Measurement, measure, window
from mlcycle.inferenceservice.cronjob import cronjob_name, job_selector
from mlcycle.inferenceservice.hpa import hpa_name
from mlcycle.inferenceservice.rollout import analysis_due
from mlcycle.inferenceservice.service import service_name
from mlcycle.inferenceservice.status import plan

log = logging.getLogger(__name__)
# How long the pods of the version served before a switch keep serving connections opened before it.
DRAIN_SECONDS = float(os.environ.get("MLCYCLE_SERVING_DRAIN_SECONDS", "10"))
RETRY_SECONDS = 15.0
# The last scrape of each InferenceService's agents: an analysis is the difference to the next one.
_scrapes: dict[tuple[str, str], dict[str, str]] = {}


@kopf.index(GROUP, VERSION, PLURAL)
def isvc_by_model(namespace, name, spec, **_):
    """(namespace, model) → the InferenceServices that serve a version of it, so a ModelVersion event
    reaches them without listing every InferenceService."""
    refs = [spec.get("model") or {}, (spec.get("canary") or {}).get("model") or {}]
    return {(namespace, ref["name"]): name for ref in refs if ref.get("name")}


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_inferenceservice_event(type, namespace, name, **_):
    if type == "DELETED":
        _reconcile.forget(namespace, name)
        _scrapes.pop((namespace, name), None)
        metrics.forget_drift(namespace, name)
        metrics.forget_performance(namespace, name)
    else:
        _reconcile.submit(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={INFERENCESERVICE: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={INFERENCESERVICE: kopf.PRESENT})
def on_child_event(namespace, annotations, **_):
    if annotations.get(OWNER_NAME_ANNOTATION):
        _reconcile.submit(namespace, annotations[OWNER_NAME_ANNOTATION])


@kopf.on.event(GROUP, VERSION, "modelversions")
def on_modelversion_event(namespace, spec, isvc_by_model: kopf.Index, **_):
    """A version became Ready, took or lost an alias: the services of its model re-resolve."""
    for name in sorted(set(isvc_by_model.get((namespace, spec.get("modelName")), []))):
        _reconcile.submit(namespace, name)


def reconcile(namespace: str, name: str) -> None:
    try:
        with metrics.reconciling(KIND):
            for attempt in range(3):
                try:
                    _reconcile_once(namespace, name)
                    break
                except kube.Conflict:  # changed while we computed: read it again and recompute
                    if attempt == 2:
                        raise
    except Exception as e:
        # Visible and retried: the cause goes into status (when the object can still be written) and the
        # reconcile runs again later.
        log.exception("InferenceService %s/%s: reconcile failed", namespace, name)
        _record_failure(namespace, name, e)
        _reconcile.later(namespace, name, RETRY_SECONDS)


# On a bounded pool of the InferenceServices' own (kopf's worker returns at once); reconcile reports and
# reschedules its own failures.
_reconcile = Coalescer(reconcile, KIND, workers=4)


def _reconcile_once(namespace: str, name: str) -> None:
    isvc = kube.get(API_VERSION, KIND, namespace, name)
    if isvc is None or isvc["metadata"].get("deletionTimestamp"):
        return
    uid, spec = isvc["metadata"]["uid"], isvc.get("spec") or {}
    model = (spec.get("model") or {}).get("name")
    versions = kube.list_(API_VERSION, "ModelVersion", namespace,
                          f"{keys.MODEL}={names.label_value(model)}") if model else []
    selector = f"{INFERENCESERVICE}={names.label_value(name)}"
    deployments = [d for d in kube.list_("apps/v1", "Deployment", namespace, selector)
                   if any(o.get("uid") == uid for o in d["metadata"].get("ownerReferences") or [])]
    pods = [p for p in kube.list_("v1", "Pod", namespace, selector)  # serving pods: those of a model version
            if (p["metadata"].get("annotations") or {}).get(OWNER_NAME_ANNOTATION) == name
            and MODEL_VERSION in (p["metadata"].get("labels") or {})]
    hpa = None if spec.get("autoscaling") else kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace,
                                                         hpa_name(name))
    canary_service = None if spec.get("canary") or spec.get("rollout") else kube.get(
        "v1", "Service", namespace, service_name(name, canary=True))
    drift_jobs = kube.list_("batch/v1", "Job", namespace, job_selector(name))
    drift_pods = kube.list_("v1", "Pod", namespace, job_selector(name)) if drift_jobs else []
    drift_cronjob = None if (spec.get("monitoring") or {}).get("drift") else kube.get(
        "batch/v1", "CronJob", namespace, cronjob_name(name))
    now = datetime.now(UTC)
    measurement = _measure(isvc, pods, now)
    result = plan(isvc, versions, deployments, pods, hpa, mlcycle_image(), now, DRAIN_SECONDS, measurement,
                  canary_service, drift_jobs, drift_pods, drift_cronjob)
    # A Deployment that already is what it would be is not applied again (list items come without their kind).
    observed = {("Deployment", d["metadata"]["name"]): {**d, "apiVersion": "apps/v1", "kind": "Deployment"}
                for d in deployments}
    for obj in result.apply:
        kube.ensure(obj, observed.get((obj["kind"], obj["metadata"]["name"])))
    for api_version, kind, child in result.delete:
        kube.delete(api_version, kind, namespace, child)
    if result.create is not None:
        kube.create(result.create)  # already there (a retry after a crash): fine, status records it below
    if result.drift_scores is not None:
        metrics.record_drift(namespace, name, result.drift_check_time, result.drift_scores)
    if result.performance is not None:
        p = result.performance
        metrics.record_performance(namespace, name, p.metric, p.value, p.coverage)
    served = result.status.get("servedModelVersion")
    if served:
        agents.push_split([p for p in pods if _serves(p, served)], result.split)
    if result.clear_action:
        kube.call("PATCH", f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
                  {"metadata": {"annotations": {ROLLOUT_ACTION_ANNOTATION: None}}}, "application/merge-patch+json")
    metrics.observe_rollout(namespace, name, result.status.get("rollout"), result.events)
    if kube.write_status(isvc, result.status):
        for type_, reason, message in result.events:
            kube.post_event(isvc, type_, reason, message)
    if result.requeue_after is not None:
        _reconcile.later(namespace, name, result.requeue_after)


def _serves(pod: dict, version: str) -> bool:
    return (pod["metadata"].get("labels") or {}).get(MODEL_VERSION) == names.label_value(version)


def _measure(isvc: dict, pods: list[dict], now: datetime) -> Measurement | None:
    """The rollout candidate's requests since the last analysis, scraped from every serving pod's agent,
    when an analysis is due; None otherwise."""
    try:
        spec = InferenceServiceSpec.model_validate(isvc["spec"])
        previous = (isvc.get("status") or {}).get("rollout")
        status = RolloutStatus.model_validate(previous) if previous else None
    except ValidationError:
        return None
    if spec.rollout is None or status is None or not analysis_due(spec.rollout, status, now):
        return None
    key = (isvc["metadata"]["namespace"], isvc["metadata"]["name"])
    scraped = agents.scrape(pods)
    before = _scrapes.get(key, {})
    _scrapes[key] = scraped
    return measure(window(before, scraped), status.candidate)


def _record_failure(namespace: str, name: str, error: Exception) -> None:
    try:
        isvc = kube.get(API_VERSION, KIND, namespace, name)
        if isvc is None:
            return
        old = isvc.get("status") or {}
        message = f"reconcile failed, retrying in {RETRY_SECONDS:.0f}s: {type(error).__name__}: {error}"[:1000]
        conds = [condition("Reconciling", True, "ReconcileError", message, isvc["metadata"].get("generation"))]
        kube.add_status_fields(API_VERSION, KIND, namespace, name,
                               {"message": message, "conditions": merge_conditions(old.get("conditions"), conds)})
    except Exception:  # the API itself is failing: the retry is all that is left
        log.warning("InferenceService %s/%s: could not record the failure in status", namespace, name)
