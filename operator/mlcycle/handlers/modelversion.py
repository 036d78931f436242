"""kopf entry points for ModelVersion. An alias moves between versions, so every event of a version (or of an
InferenceService that refers to a model) leads to one `reconcile_model(namespace, model)`: verify what is
due, then compute the status of all the model's versions together and write what changed.

Verification (a download) runs outside the model's lock, at most once at a time per version, and once per
spec fingerprint; timers retry healable failures with backoff and re-check verified objects with a HEAD
request, so an artifact overwritten after Ready is noticed.
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

from mlcycle import kube, metrics, storage
from mlcycle.api.base import API_VERSION, GROUP, VERSION
from mlcycle.api.modelversion import KIND, PLURAL
from mlcycle.clients import s3
from mlcycle.conditions import merge_conditions
from mlcycle.handlers.failures import retried
from mlcycle.modelversion import status as mv_status
from mlcycle.modelversion import verification
from mlcycle.operator_main import PREFIX
from mlcycle.trainingjob.registration import MODEL_LABEL, TRAININGJOB_LABEL

log = logging.getLogger(__name__)
FINALIZER = f"{PREFIX}/finalizer"  # the one kopf uses (operator_main)
# A HEAD request per verified version and interval: cheap, and an overwritten artifact is noticed within a minute.
RECHECK_SECONDS = float(os.environ.get("MLCYCLE_ARTIFACT_RECHECK_SECONDS", "60"))
# Where artifacts are downloaded while they are checked (the default temporary directory when unset).
DOWNLOAD_DIR = os.environ.get("MLCYCLE_ARTIFACT_DIR") or None
_model_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_verify_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


@kopf.on.event(GROUP, VERSION, PLURAL)
@retried(KIND)
def on_modelversion_event(namespace, spec, **_):
    if spec.get("modelName"):
        reconcile_model(namespace, spec["modelName"])


@kopf.on.event(GROUP, VERSION, "inferenceservices")
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
@retried(KIND)
def on_retry_timer(namespace, spec, annotations, **_):
    """Healable verification failures: verify again once the backoff has passed."""
    if verification.retry_due(_record(annotations), datetime.now(UTC)):
        reconcile_model(namespace, spec["modelName"])


@kopf.timer(GROUP, VERSION, PLURAL, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS, when=_verified)
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
    if spec.get("deletionPolicy") == "Delete":
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
        mv["apiVersion"], mv["kind"] = API_VERSION, KIND
        if _verify_if_due(mv, force=True):
            _settle(namespace, model)


def _versions(namespace: str, model: str) -> list[dict]:
    items = [mv for mv in kube.list_(API_VERSION, KIND, namespace) if mv["spec"].get("modelName") == model]
    for mv in items:  # list items come without these; events need them
        mv["apiVersion"], mv["kind"] = API_VERSION, KIND
    return items


def _settle(namespace: str, model: str) -> list[dict]:
    """Status of every version of `model` from what is stored now; writes only what changed."""
    with _model_locks[(namespace, model)]:
        versions = _versions(namespace, model)
        isvcs = kube.list_(API_VERSION, "InferenceService", namespace)
        statuses = mv_status.model_statuses(versions, isvcs)
        for mv in versions:
            meta, old, new = mv["metadata"], mv.get("status") or {}, statuses[mv["metadata"]["name"]]
            missing_labels = _labels(mv).items() - (meta.get("labels") or {}).items()
            if not meta.get("deletionTimestamp") and (missing_labels or FINALIZER not in meta.get("finalizers", [])):
                _apply_metadata(mv, _record(meta.get("annotations")))
            if kube.status_changed(old, new):
                kube.patch_status(API_VERSION, KIND, namespace, meta["name"], new)
                for type_, reason, message in mv_status.events(old, new):
                    kube.post_event(mv, type_, reason, message)
        return versions


def _verify_if_due(mv: dict, force: bool = False) -> bool:
    """Verify one version's artifact when due (or `force`); True when a result was recorded."""
    namespace, name = mv["metadata"]["namespace"], mv["metadata"]["name"]
    lock = _verify_locks[(namespace, name)]
    if not lock.acquire(blocking=False):
        return False  # another worker is verifying it and settles the model afterwards
    try:
        fresh = kube.get(API_VERSION, KIND, namespace, name)
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return False
        spec, record = fresh["spec"], _record(fresh["metadata"].get("annotations"))
        fp = verification.fingerprint(spec["artifact"], spec.get("signature"))
        now = datetime.now(UTC)
        if not force and not verification.verification_due(record, fp, now):
            return False
        outcome = _run_verification(fresh)
        new_record = verification.next_record(outcome, fp, record, now)
        with _model_locks[(namespace, spec["modelName"])]:
            current = kube.get(API_VERSION, KIND, namespace, name)
            if current is None or current["metadata"]["uid"] != fresh["metadata"]["uid"] or \
                    current["metadata"].get("deletionTimestamp"):
                return False
            fields = mv_status.artifact_fields(outcome, current["metadata"]["generation"], new_record)
            old = current.get("status") or {}
            fields["conditions"] = merge_conditions(old.get("conditions"), fields["conditions"])
            kube.patch_status(API_VERSION, KIND, namespace, name, fields)
            _apply_metadata(current, new_record)
        return True
    finally:
        lock.release()


def _run_verification(mv: dict) -> verification.Verified | verification.VerificationFailed:
    namespace, spec = mv["metadata"]["namespace"], mv["spec"]
    secret = spec["storage"]["secretRef"]["name"]
    started = time.monotonic()
    try:
        cfg = storage.s3_config(namespace, secret)
        client = s3.client(cfg)
    except (storage.SecretProblem, ValueError) as e:
        return verification.VerificationFailed("SecretProblem", f"spec.storage.secretRef: {e}")
    try:
        outcome = verification.verify(client, spec["artifact"], spec.get("signature"),
                                      (mv.get("status") or {}).get("verifiedDigest"), f"{namespace}/{secret}",
                                      DOWNLOAD_DIR)
    except verification.VerificationFailed as e:
        outcome = e
    metrics.VERIFICATIONS.labels("passed" if isinstance(outcome, verification.Verified) else outcome.reason).inc()
    log.info("ModelVersion %s/%s: verification %s in %.1fs", namespace, mv["metadata"]["name"],
             "passed" if isinstance(outcome, verification.Verified) else f"failed ({outcome.reason})",
             time.monotonic() - started)
    return outcome


def _labels(mv: dict) -> dict[str, str]:
    """Labels that let `kubectl get modelversions -l mlcycle.io/model=NAME` list a model, and tie a version to
    its TrainingJob."""
    spec = mv["spec"]
    labels = {MODEL_LABEL: spec["modelName"]}
    training_job = (spec.get("source") or {}).get("trainingJob")
    if training_job and len(training_job) <= 63:
        labels[TRAININGJOB_LABEL] = training_job
    return labels


def _apply_metadata(mv: dict, record: dict | None) -> None:
    """Server-side apply of what the operator owns in metadata (never spec): labels, the verification record
    and the finalizer. kopf adds the finalizer too, but only once the version's own handler has run, which
    can be after a sibling's reconcile made it Ready. Never for a deleting object: an apply without the
    finalizer would remove it."""
    meta = mv["metadata"]
    applied = {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "labels": _labels(mv),
               "finalizers": [FINALIZER]}
    if record:
        applied["annotations"] = {verification.ANNOTATION: json.dumps(record, sort_keys=True)}
    kube.apply({"apiVersion": API_VERSION, "kind": KIND, "metadata": applied})


