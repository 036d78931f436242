"""kopf entry points for ModelVersion. An alias moves between versions, so every event of a version (or of an
InferenceService that refers to a model, or of a verification Job) leads to one `reconcile(namespace, model)`:
verify what is due, then compute the status of all the model's versions together and write what changed.

Reads come from memory, not the apiserver: kopf indexes hold every ModelVersion, InferenceService and
verification Job (cut down, modelversion/observed.py), kept current by the watches kopf runs anyway, and kopf
runs no handler before its initial listing has filled them, so a restarted operator never computes a model's
aliases from part of its versions. A reconcile costs API calls only for what changed (a status that differs,
a verification that starts or ends), and the operator's own writes, coming back as watch events, are
recognised (mlcycle/mutations.py) and cost nothing: an alias move among N versions is two status writes and
two Events, not O(N²) requests (docs/benchmarks.md).

Verification runs in a Job per attempt (modelversion/verifyjob.py: the model's code never runs in the operator),
at most one at a time per version and spec fingerprint; the Job's events bring its result back. Retries of
healable failures and the periodic re-check of verified artifacts (a HEAD request per version, so an artifact
overwritten after Ready is noticed) are scheduled per model for when they are due (Coalescer.later), not polled
by a kopf timer per version.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import kopf
from kubernetes.client.rest import ApiException

from mlcycle import images, kube, metrics, placement, storage
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION, GROUP, VERSION
from mlcycle.api.modelversion import KIND, PLURAL
from mlcycle.clients import s3
from mlcycle.clock import parse
from mlcycle.coalesce import Coalescer
from mlcycle.conditions import condition, merge_conditions
from mlcycle.handlers.failures import retried
from mlcycle.modelversion import deletion, metadata, observed, verification, verifyjob
from mlcycle.modelversion import status as mv_status
from mlcycle.mutations import Mutations

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 3
# A model's statuses depend on each other (aliases, a champion): computed again after a write until nothing
# changes; these passes are memory reads only.
SETTLE_PASSES = 3
# A HEAD request per verified version and interval: cheap, and an overwritten artifact is noticed within a minute.
RECHECK_SECONDS = float(os.environ.get("MLCYCLE_ARTIFACT_RECHECK_SECONDS", "60"))
# Limits of each verification pod (a JSON object of resource limits; the pod's requests equal them).
VERIFY_LIMITS = json.loads(os.environ.get("MLCYCLE_VERIFY_LIMITS") or "null")
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_verify_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_written = Mutations()
_indexes: dict[str, kopf.Index] = {}  # kopf's indexes, as its handlers receive them
_deleted_jobs: set[tuple[str, str]] = set()  # verification Jobs deleted, until their DELETED event
_rechecked: dict[tuple[str, str], float] = {}  # (namespace, model) -> time.monotonic() of its last re-check


@kopf.index(GROUP, VERSION, PLURAL)
def versions_by_model(namespace, spec, body, **_):
    return {(namespace, spec.get("modelName")): observed.version(body)}


@kopf.index(GROUP, VERSION, "inferenceservices")
def inference_services_by_namespace(namespace, body, **_):
    return {namespace: observed.inference_service(body)}


@kopf.index("batch", "v1", "jobs", labels={keys.MODELVERSION_UID: kopf.PRESENT})
def verification_jobs_by_version(namespace, labels, body, **_):
    return {(namespace, labels[keys.MODELVERSION_UID]): observed.job(body)}


def _keep_indexes(kwargs: dict) -> None:
    """The reconciles run on the pool, outside kopf's handlers: they read the indexes a handler was given."""
    if not _indexes:
        _indexes.update({name: kwargs[name] for name in (
            "versions_by_model", "inference_services_by_namespace", "verification_jobs_by_version")})


def _stored(index: str, key) -> list:
    # A copy taken in one C-level call (the GIL held throughout): kopf updates the index in its own thread.
    store = _indexes[index].get(key)
    return list(store) if store is not None else []


def _versions(namespace: str, model: str) -> list[dict]:
    return [_written.newest(mv) for mv in _stored("versions_by_model", (namespace, model))]


def _inference_services(namespace: str) -> list[dict]:
    return _stored("inference_services_by_namespace", namespace)


def _jobs(namespace: str, uid: str) -> list[dict]:
    return [j for j in _stored("verification_jobs_by_version", (namespace, uid))
            if (namespace, j["metadata"]["name"]) not in _deleted_jobs and not j["metadata"].get("deletionTimestamp")]


def _remember(written: dict | None) -> dict | None:
    """What a write (or a fresh read) returned, kept until the watch brings it (see mlcycle/mutations.py)."""
    if written is None:
        return None
    slim = observed.version(written)
    _written.record(slim)
    return slim


def _reconcile_with_metrics(namespace: str, model: str) -> None:
    with metrics.reconciling(KIND):
        reconcile_model(namespace, model)


# ModelVersion work (status of a whole model, verification Jobs, HEAD requests to storage that may hang) runs on
# a bounded pool of its own: a burst of it, or an unreachable storage endpoint, never holds the kopf workers
# that the other kinds' events need. One reconcile per model at a time; triggers while one is queued are dropped
# (it reads the state after all of them).
reconcile = Coalescer(_reconcile_with_metrics, KIND, workers=4)


@kopf.on.event(GROUP, VERSION, PLURAL)
def on_modelversion_event(type, body, **kwargs):
    _keep_indexes(kwargs)
    if type == "DELETED":
        _written.forget(body["metadata"]["uid"])
        _verify_locks.pop((body["metadata"]["namespace"], body["metadata"]["name"]), None)
    elif _written.echo(body):
        return  # the operator's own write: the reconcile that made it has already settled the model
    _on_version_change(type=type, body=body, **kwargs)


@reconcile.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["spec"].get("modelName")))
@retried(KIND)
def _on_version_change(namespace, spec, **_):
    if spec.get("modelName"):
        reconcile(namespace, spec["modelName"])


@kopf.on.event("batch", "v1", "jobs", labels={keys.MODELVERSION_UID: kopf.PRESENT})
def on_verification_job_event(type, namespace, name, labels, **kwargs):
    """A verification Job that finishes brings its result into status."""
    _keep_indexes(kwargs)
    if type == "DELETED":
        _deleted_jobs.discard((namespace, name))
    reconcile.submit(namespace, labels[keys.MODEL])


@kopf.on.event(GROUP, VERSION, "inferenceservices")
@reconcile.offloaded(lambda kwargs: (kwargs["namespace"], kwargs["name"]))
@retried("InferenceService")
def on_inferenceservice_event(namespace, spec, **kwargs):
    """servedBy follows the InferenceServices that refer to a model."""
    _keep_indexes(kwargs)
    refs = [spec.get("model") or {}, (spec.get("canary") or {}).get("model") or {}]
    for model in sorted({ref["name"] for ref in refs if ref.get("name")}):
        reconcile(namespace, model)


def _record(annotations) -> dict | None:
    raw = (annotations or {}).get(verification.ANNOTATION)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


@kopf.on.delete(GROUP, VERSION, PLURAL)
def on_modelversion_delete(namespace, name, body, spec, status, **kwargs):
    """The finalizer: keep a version that an InferenceService serves; remove the artifact only if asked."""
    _keep_indexes(kwargs)
    serving = mv_status.served_by(body, list(status.get("aliases") or []), _inference_services(namespace))
    if serving:
        reconcile(namespace, spec["modelName"])  # writes servedBy and the reason into status
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
        bucket, key = s3.parse_s3_uri(uri)

        def remove(client):
            with s3.storage_errors(uri):
                client.remove_object(bucket, key)

        storage.using(namespace, spec["storage"]["secretRef"]["name"], remove)
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
    _settle(namespace, model)
    if sum(_verify_if_due(mv) for mv in _versions(namespace, model)):
        _settle(namespace, model)
    _recheck_if_due(namespace, model)
    if (delay := _next_due(namespace, model, datetime.now(UTC))) is not None:
        reconcile.later(namespace, model, delay)


def _settle(namespace: str, model: str) -> None:
    """Status of every version of `model` from what is known now; writes only what changed, and computes
    again after writing (the statuses depend on each other) until nothing changes."""
    for _ in range(SETTLE_PASSES):
        versions = _versions(namespace, model)
        statuses = mv_status.model_statuses(versions, _inference_services(namespace))
        changed = False
        for mv in versions:
            try:
                changed |= _write(mv, statuses[mv["metadata"]["name"]])
            except kube.Conflict:
                # Changed meanwhile and its event is still on the way: read it now and compute again.
                _remember(kube.get(API_VERSION, KIND, namespace, mv["metadata"]["name"]))
                changed = True
            except ApiException as e:
                if e.status != 404:
                    raise
                # Deleted meanwhile: its DELETED event brings the reconcile of what remains.
        if not changed:
            return
    reconcile.later(namespace, model, 0)  # still changing: once more, after what is queued


def _write(mv: dict, new: dict) -> bool:
    """Labels, finalizer and status of one version as computed; True when something was written."""
    if metadata.needs_update(mv):
        # The apply returns a newer object, maybe with a status someone else wrote meanwhile: `new` was computed
        # from the older one, so the status is computed again (next pass) rather than written over it.
        _remember(kube.apply(metadata.desired(mv, _record(mv["metadata"].get("annotations")))))
        return True
    if not _remember(kube.write_status(mv, new)):
        return False
    for type_, reason, message in mv_status.events(mv.get("status") or {}, new):
        kube.post_event(mv, type_, reason, message)
    return True


def _recheck_if_due(namespace: str, model: str) -> None:
    """Artifacts are immutable: notice an object that was overwritten or removed after it was verified. One
    round per model and interval, a HEAD request per verified version."""
    now = time.monotonic()
    if now - _rechecked.setdefault((namespace, model), now) < RECHECK_SECONDS:
        return
    _rechecked[(namespace, model)] = now
    unreachable: set[str] = set()  # Secrets whose storage failed this round: the next round tries again
    for mv in _versions(namespace, model):
        record, spec = _record(mv["metadata"].get("annotations")) or {}, mv["spec"]
        secret, uri = spec["storage"]["secretRef"]["name"], spec["artifact"]["uri"]
        if "etag" not in record or mv["metadata"].get("deletionTimestamp") or secret in unreachable:
            continue
        try:
            etag = storage.using(namespace, secret, lambda client, uri=uri: verification.current_etag(client, uri))
        except s3.ObjectNotFound:
            etag = None
        except (storage.SecretProblem, s3.StorageError, ValueError) as e:
            # Not evidence that the artifact changed: a Ready version stays Ready while storage is unreachable.
            log.warning("ModelVersion %s/%s: cannot re-check %s: %s", namespace, mv["metadata"]["name"], uri, e)
            unreachable.add(secret)
            continue
        if etag != record["etag"] and _verify_if_due(mv, force=True):
            _settle(namespace, model)


def _next_due(namespace: str, model: str, now: datetime) -> float | None:
    """Seconds until this model has work again without an event: a verification retry, a re-check round."""
    versions = _versions(namespace, model)
    # A retry whose time has passed has started (its Job's events come back) or failed (a new retryAt).
    due = [d for mv in versions if "retryAt" in (r := _record(mv["metadata"].get("annotations")) or {})
           and (d := (parse(r["retryAt"]) - now).total_seconds()) > 0]
    if any("etag" in (_record(mv["metadata"].get("annotations")) or {}) for mv in versions):
        due.append(RECHECK_SECONDS - (time.monotonic() - _rechecked.setdefault((namespace, model), time.monotonic())))
    return min(due) if due else None


def _verify_if_due(mv: dict, force: bool = False) -> bool:
    """Drive one version's verification Job: record the result of a finished one (True when a result was
    recorded), or start one when a verification is due (or `force`). API calls only when one of them happens."""
    namespace, name, uid = mv["metadata"]["namespace"], mv["metadata"]["name"], mv["metadata"]["uid"]
    lock = _verify_locks[(namespace, name)]
    if not lock.acquire(blocking=False):
        return False  # another worker is at it and settles the model afterwards
    try:
        if mv["metadata"].get("deletionTimestamp"):
            return False
        spec, record = mv["spec"], _record(mv["metadata"].get("annotations"))
        fp = verification.fingerprint(spec["artifact"], spec.get("signature"))
        now = datetime.now(UTC)
        jobs = _jobs(namespace, uid)
        current = [j for j in jobs if (j["metadata"].get("annotations") or {}).get(keys.FINGERPRINT_ANNOTATION) == fp]
        for job in jobs:
            if job not in current:  # started for a spec that has changed since
                _delete_job(namespace, job)
        if done := [j for j in current if verifyjob.finished(j)]:
            job_name = done[0]["metadata"]["name"]
            pods = kube.list_("v1", "Pod", namespace, kube.selector({JOB_NAME_LABEL: job_name}))
            outcome = verifyjob.outcome(done[0], pods)
            log.info("ModelVersion %s/%s: verification %s (Job %s)", namespace, name, "passed" if isinstance(
                outcome, verification.Verified) else f"failed ({outcome.reason})", job_name)
            recorded = _record_outcome(mv, outcome, fp, record, now)
            for job in current:  # only once the result is in status: until then the Job holds it
                _delete_job(namespace, job)
            return recorded
        if current or not (force or verification.verification_due(record, fp, now)):
            return False
        return _start_verification(mv, fp, record, now)
    finally:
        lock.release()


def _delete_job(namespace: str, job: dict) -> None:
    kube.delete("batch/v1", "Job", namespace, job["metadata"]["name"])
    _deleted_jobs.add((namespace, job["metadata"]["name"]))


def _start_verification(mv: dict, fp: str, record: dict | None, now: datetime) -> bool:
    """Create the verification Job, unless the apiserver already has one for this spec (the index may not have
    seen a Job created a moment ago: Jobs have generated names, so a second create would be a second Job)."""
    namespace, name = mv["metadata"]["namespace"], mv["metadata"]["name"]
    fresh = kube.get(API_VERSION, KIND, namespace, name)
    if fresh is None or fresh["metadata"]["uid"] != mv["metadata"]["uid"] or fresh["metadata"].get("deletionTimestamp"):
        return False
    listed = kube.list_("batch/v1", "Job", namespace, kube.selector(verifyjob.selector(fresh)))
    if any((j["metadata"].get("annotations") or {}).get(keys.FINGERPRINT_ANNOTATION) == fp and
           (namespace, j["metadata"]["name"]) not in _deleted_jobs for j in listed):
        return False
    secret = fresh["spec"]["storage"]["secretRef"]["name"]
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


def _record_outcome(mv: dict, outcome: verification.Verified | verification.VerificationFailed, fp: str,
                    record: dict | None, now: datetime) -> bool:
    """Write one verification's result into status (ArtifactVerified, digest, size) and the record annotation;
    True when written (the version is still the one that was verified)."""
    namespace, name = mv["metadata"]["namespace"], mv["metadata"]["name"]
    new_record = verification.next_record(outcome, fp, record, now)
    for attempt in range(CONFLICT_RETRIES):
        current = kube.get(API_VERSION, KIND, namespace, name)
        if current is None or current["metadata"]["uid"] != mv["metadata"]["uid"] or \
                current["metadata"].get("deletionTimestamp"):
            return False
        fields = mv_status.artifact_fields(outcome, current["metadata"]["generation"], new_record)
        old = current.get("status") or {}
        fields["conditions"] = merge_conditions(old.get("conditions"), fields["conditions"])
        try:
            _remember(kube.write_status(current, {**old, **fields}))
            break
        except kube.Conflict:  # e.g. kopf's own annotations changed meanwhile: read again
            if attempt == CONFLICT_RETRIES - 1:
                raise
    _remember(kube.apply(metadata.desired(current, new_record)))
    return True
