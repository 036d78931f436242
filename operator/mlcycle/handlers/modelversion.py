"""kopf entry points for ModelVersion. An alias moves between versions, so every event of a version (or of an
InferenceService that refers to a model) leads to one `reconcile_model(namespace, model)`: verify what is
due, then compute the status of all the model's versions together and write what changed.

Verification runs in a Job per attempt (modelversion/verifyjob.py: the model's code never runs in the operator),
at most one at a time per version and spec fingerprint; the Job's events bring its result back. Timers retry
healable failures with backoff and re-check verified objects with a HEAD request, so an artifact overwritten
after Ready is noticed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from datetime import UTC, datetime

import kopf

from mlcycle import images, informer, kube, metrics, placement, storage
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION, GROUP, VERSION
from mlcycle.api.modelversion import KIND, PLURAL
from mlcycle.clients import s3
from mlcycle.coalesce import Coalescer
from mlcycle.conditions import condition, merge_conditions
from mlcycle.handlers.failures import retried
from mlcycle.modelversion import deletion, metadata, verification, verifyjob
from mlcycle.modelversion import status as mv_status

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 3
# A HEAD request per verified version and interval: cheap, and an overwritten artifact is noticed within a minute.
RECHECK_SECONDS = float(os.environ.get("MLCYCLE_ARTIFACT_RECHECK_SECONDS", "60"))
# Limits of each verification pod (a JSON object of resource limits; the pod's requests equal them).
VERIFY_LIMITS = json.loads(os.environ.get("MLCYCLE_VERIFY_LIMITS") or "null")
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_model_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_verify_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
# ModelVersion work (status of a whole model, verification Jobs, HEAD requests to storage that may hang) runs on
# a bounded pool of its own: a burst of it, or an unreachable storage endpoint, never holds the kopf workers
# that the other kinds' events need. Handler calls for a model already queued are dropped (one reconcile
# reads the state after all of them).
_pool = Coalescer(lambda namespace, model: reconcile_model(namespace, model), KIND, workers=4)


@kopf.on.event(GROUP, VERSION, PLURAL)
@_pool.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["spec"].get("modelName")))
@retried(KIND)
def on_modelversion_event(namespace, spec, **_):
    if spec.get("modelName"):
        reconcile_model(namespace, spec["modelName"])


# A verification Job that finishes brings its result into status. Label-selected by the apiserver
# (mlcycle.informer), so other Jobs of the cluster never reach the operator.
verification_jobs = informer.Informer("batch/v1", "Job", keys.MODELVERSION_UID,
                                      lambda job: (job["metadata"].get("labels") or {}).get(keys.MODEL),
                                      _pool.submit)


@kopf.on.event(GROUP, VERSION, "inferenceservices")
@_pool.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["name"]))
@retried("InferenceService")
def on_inferenceservice_event(namespace, spec, **_):
    """servedBy follows the InferenceServices that refer to a model."""
    refs = [spec.get("model") or {}, (spec.get("canary") or {}).get("model") or {}]
    for model in sorted({ref["name"] for ref in refs if ref.get("name")}):
        reconcile_model(namespace, model)


def _record(annotations) -> dict | None:
    raw = (annotations or {}).get(verification.ANNOTATION)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _retry_pending(annotations, **_) -> bool:
    return "retryAt" in (_record(annotations) or {})


def _verified(annotations, **_) -> bool:
    return "etag" in (_record(annotations) or {})


@kopf.timer(GROUP, VERSION, PLURAL, interval=5, when=_retry_pending)
@_pool.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["name"]))
@retried(KIND)
def on_retry_timer(namespace, spec, annotations, **_):
    """Healable verification failures: verify again once the backoff has passed."""
    if verification.retry_due(_record(annotations), datetime.now(UTC)):
        reconcile_model(namespace, spec["modelName"])


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS, when=_verified)
@_pool.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["name"]))
@retried(KIND)
def on_recheck_timer(namespace, name, spec, **_):
    """Artifacts are immutable: notice an object that was overwritten or removed after it was verified."""
    recheck(namespace, name, spec["modelName"])


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_modelversion_delete(namespace, name, body, spec, status, **_):
    """The finalizer: keep a version that an InferenceService serves; remove the artifact only if asked."""
    isvcs = kube.list_(API_VERSION, "InferenceService", namespace)
    serving = mv_status.served_by(body, list(status.get("aliases") or []), isvcs)
    if serving:
        reconcile_model(namespace, spec["modelName"])  # writes servedBy and the reason into status
        raise kopf.TemporaryError(mv_status.deletion_blocked_message(serving), delay=15)
    if spec.get("deletionPolicy") != "Delete":
        return
    secret = kube.get("v1", "Secret", namespace, spec["storage"]["secretRef"]["name"])
    if refused := deletion.refusal(body, secret):
        # The version still goes away; the condition says why while it does, the Event stays after it.
        log.warning("ModelVersion %s/%s: %s", namespace, name, refused)
        kube.add_status_fields(API_VERSION, KIND, namespace, name, {"conditions": merge_conditions(
            status.get("conditions"), [condition(deletion.CONDITION, False, "NotWrittenByOperator", refused,
                                                 body["metadata"].get("generation"))])})
        kube.post_event(body, "Warning", "ArtifactKept", refused)
        return
    uri = spec["artifact"]["uri"]
    try:
        cfg = storage.s3_config(namespace, spec["storage"]["secretRef"]["name"])
        bucket, key = s3.parse_s3_uri(uri)
        with s3.storage_errors(uri):
            s3.client(cfg).remove_object(bucket, key)
    except (storage.SecretProblem, s3.StorageError, ValueError) as e:
        if _namespace_terminating(namespace):
            # The namespace's Secret may be gone already; holding the version would hold the namespace.
            log.warning("ModelVersion %s/%s: cannot remove %s (%s); the namespace is being deleted, so the "
                        "artifact is left in storage", namespace, name, uri, e)
            return
        raise kopf.TemporaryError(f"deletionPolicy Delete: cannot remove {uri}: {e}", delay=30) from e
    kube.post_event(body, "Normal", "ArtifactDeleted", f"removed {uri} (deletionPolicy: Delete)")


def _namespace_terminating(namespace: str) -> bool:
    ns = kube.call("GET", f"/api/v1/namespaces/{namespace}")
    return bool(ns.get("metadata", {}).get("deletionTimestamp"))


def reconcile_model(namespace: str, model: str) -> None:
    with metrics.reconciling(KIND):
        versions = _settle(namespace, model)
        if sum(_verify_if_due(mv) for mv in versions):
            _settle(namespace, model)


def _settle(namespace: str, model: str) -> list[dict]:
    """`_settle_once`, again when a version changed while its status was computed."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return _settle_once(namespace, model)
        except kube.Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def recheck(namespace: str, name: str, model: str) -> None:
    mv = kube.get(API_VERSION, KIND, namespace, name)
    if mv is None:
        return
    uri, secret = mv["spec"]["artifact"]["uri"], mv["spec"]["storage"]["secretRef"]["name"]
    try:
        etag = verification.current_etag(s3.client(storage.s3_config(namespace, secret)), uri)
    except s3.ObjectNotFound:
        etag = None
    except (storage.SecretProblem, s3.StorageError, ValueError) as e:
        # Not evidence that the artifact changed: a Ready version stays Ready while storage is unreachable.
        log.warning("ModelVersion %s/%s: cannot re-check %s: %s", namespace, name, uri, e)
        return
    if etag != (_record(mv["metadata"].get("annotations")) or {}).get("etag"):
        if _verify_if_due(mv, force=True):
            _settle(namespace, model)


def _versions(namespace: str, model: str) -> list[dict]:
    items = [mv for mv in kube.list_(API_VERSION, KIND, namespace) if mv["spec"].get("modelName") == model]
    for mv in items:  # list items come without these; events need them
        mv["apiVersion"], mv["kind"] = API_VERSION, KIND
    return items


def _settle_once(namespace: str, model: str) -> list[dict]:
    """Status of every version of `model` from what is stored now; writes only what changed."""
    with _model_locks[(namespace, model)]:
        versions = _versions(namespace, model)
        isvcs = kube.list_(API_VERSION, "InferenceService", namespace)
        statuses = mv_status.model_statuses(versions, isvcs)
        for mv in versions:
            meta, old, new = mv["metadata"], mv.get("status") or {}, statuses[mv["metadata"]["name"]]
            if metadata.needs_update(mv):
                kube.apply(metadata.desired(mv, _record(meta.get("annotations"))))
            if kube.write_status(mv, new):
                for type_, reason, message in mv_status.events(old, new):
                    kube.post_event(mv, type_, reason, message)
        return versions


def _verify_if_due(mv: dict, force: bool = False) -> bool:
    """Drive one version's verification Job: record the result of a finished one (True when a result was
    recorded), or start one when a verification is due (or `force`)."""
    namespace, name = mv["metadata"]["namespace"], mv["metadata"]["name"]
    lock = _verify_locks[(namespace, name)]
    if not lock.acquire(blocking=False):
        return False  # another worker is at it and settles the model afterwards
    try:
        fresh = kube.get(API_VERSION, KIND, namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return False
        spec, record = fresh["spec"], _record(fresh["metadata"].get("annotations"))
        fp = verification.fingerprint(spec["artifact"], spec.get("signature"))
        now = datetime.now(UTC)
        jobs = [j for j in kube.list_("batch/v1", "Job", namespace, kube.selector(verifyjob.selector(fresh)))
                if not j["metadata"].get("deletionTimestamp")]
        current = [j for j in jobs if (j["metadata"].get("annotations") or {}).get(
            keys.FINGERPRINT_ANNOTATION) == fp]
        for job in jobs:
            if job not in current:  # started for a spec that has changed since
                kube.delete("batch/v1", "Job", namespace, job["metadata"]["name"])
        if done := [j for j in current if verifyjob.finished(j)]:
            job_name = done[0]["metadata"]["name"]
            pods = kube.list_("v1", "Pod", namespace, kube.selector({JOB_NAME_LABEL: job_name}))
            outcome = verifyjob.outcome(done[0], pods)
            log.info("ModelVersion %s/%s: verification %s (Job %s)", namespace, name, "passed" if isinstance(
                outcome, verification.Verified) else f"failed ({outcome.reason})", job_name)
            recorded = _record_outcome(fresh, outcome, fp, record, now)
            for job in current:  # only once the result is in status: until then the Job holds it
                kube.delete("batch/v1", "Job", namespace, job["metadata"]["name"])
            return recorded
        if current or not (force or verification.verification_due(record, fp, now)):
            return False
        secret = spec["storage"]["secretRef"]["name"]
        try:  # a missing Secret would leave the pod waiting forever: say so now
            cfg = storage.s3_config(namespace, secret)
        except (storage.SecretProblem, ValueError) as e:
            failure = verification.VerificationFailed("SecretProblem", f"spec.storage.secretRef: {e}")
            return _record_outcome(fresh, failure, fp, record, now)
        kube.apply(verifyjob.desired_network_policy(fresh, verifyjob.storage_port(cfg.endpoint, cfg.secure)))
        created = kube.create(verifyjob.desired_job(fresh, fp, images.mlcycle_image(), placement.workload_placement(),
                                                    VERIFY_LIMITS))
        log.info("ModelVersion %s/%s: verifying in Job %s", namespace, name,
                 (created or {}).get("metadata", {}).get("name"))
        return False
    finally:
        lock.release()


def _record_outcome(mv: dict, outcome: verification.Verified | verification.VerificationFailed, fp: str,
                    record: dict | None, now: datetime) -> bool:
    """Write one verification's result into status (ArtifactVerified, digest, size) and the record annotation;
    True when written (the version is still the one that was verified)."""
    namespace, name = mv["metadata"]["namespace"], mv["metadata"]["name"]
    new_record = verification.next_record(outcome, fp, record, now)
    with _model_locks[(namespace, mv["spec"]["modelName"])]:
        for attempt in range(CONFLICT_RETRIES):
            current = kube.get(API_VERSION, KIND, namespace, name)
            if current is None or current["metadata"]["uid"] != mv["metadata"]["uid"] or \
                    current["metadata"].get("deletionTimestamp"):
                return False
            fields = mv_status.artifact_fields(outcome, current["metadata"]["generation"], new_record)
            old = current.get("status") or {}
            fields["conditions"] = merge_conditions(old.get("conditions"), fields["conditions"])
            try:
                kube.write_status(current, {**old, **fields})
                break
            except kube.Conflict:  # e.g. kopf's own annotations changed meanwhile: read again
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        kube.apply(metadata.desired(current, new_record))
    return True
