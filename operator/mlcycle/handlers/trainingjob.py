"""kopf entry points for TrainingJob. Level-based: every event of a TrainingJob, its Job or its pods leads
to one `reconcile(namespace, name)`, which reads what is, applies what should be, and writes status only
when it changed. Running it twice, or after a restart, changes nothing."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime

import kopf
from pydantic import ValidationError

from mlcycle import images, kube, metrics, storage
from mlcycle.api.base import API_VERSION, GROUP, VERSION
from mlcycle.api.trainingjob import PLURAL, TrainingJobSpec
from mlcycle.clients import s3
from mlcycle.conditions import condition, merge_conditions
from mlcycle.handlers.failures import retried
from mlcycle.trainingjob import manifests, registration
from mlcycle.trainingjob.status import training_status

log = logging.getLogger(__name__)
KIND = "TrainingJob"
FINISHED = ("Succeeded", "Failed")
# One reconcile per TrainingJob at a time: events of the job, its Job and its pods arrive on different
# kopf workers, and registration must not run twice at once. A trigger that finds a reconcile already
# waiting for the lock is dropped: the waiting one reads the state after it, so a burst of pod events
# costs one reconcile, not one each.
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
_waiting: set[tuple[str, str]] = set()
_waiting_guard = threading.Lock()


@kopf.on.event(GROUP, VERSION, PLURAL)
@retried(KIND)
def on_trainingjob_event(type, namespace, name, body, **_):
    if type == "DELETED":
        _locks.pop((namespace, name), None)
    elif type == "MODIFIED" and (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]:
        # The spec did not change since the last reconcile: this is (mostly) our own status write. Children's
        # events, the timers and a restart's initial listing cover everything else.
        return
    else:
        reconcile(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={manifests.LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={manifests.LABEL: kopf.PRESENT})
@retried(KIND, target=lambda kwargs: (kwargs["namespace"], kwargs["labels"][manifests.LABEL]))
def on_child_event(namespace, labels, **_):
    reconcile(namespace, labels[manifests.LABEL])


def _needs_timer(status, spec, **_) -> bool:
    finished = (status or {}).get("phase") in FINISHED
    unregistered = (status or {}).get("phase") == "Succeeded" and spec.get("registerModel") and not (
        status or {}).get("modelVersionRef")
    ttl = (spec.get("runPolicy") or {}).get("ttlSecondsAfterFinished") is not None
    return finished and (ttl or bool(unregistered))


@kopf.timer(GROUP, VERSION, PLURAL, interval=5, when=_needs_timer)
@retried(KIND)
def on_finished_timer(namespace, name, **_):
    """TTL clean-up and registration retries for finished jobs (nothing else needs a clock)."""
    reconcile(namespace, name)


@kopf.timer(GROUP, VERSION, PLURAL, interval=60, idle=60,
            when=lambda status, **_: (status or {}).get("phase") not in FINISHED)
@retried(KIND)
def on_resync_timer(namespace, name, **_):
    """A periodic resync of unfinished jobs, so a reconcile that failed is retried without a new event."""
    reconcile(namespace, name)


def reconcile(namespace: str, name: str) -> None:
    key = (namespace, name)
    with _waiting_guard:
        if key in _waiting:
            return
        _waiting.add(key)
    with _locks[key]:
        with _waiting_guard:
            _waiting.discard(key)
        with metrics.reconciling(KIND):
            _reconcile(namespace, name)


def _reconcile(namespace: str, name: str) -> None:
    body = kube.get(API_VERSION, KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    meta, old = body["metadata"], body.get("status") or {}
    try:
        spec = TrainingJobSpec.model_validate(body["spec"])
        invalid = manifests.reserved_env_errors(spec)
    except ValidationError as e:
        spec, invalid = None, [f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]

    job, pods = None, []
    if not invalid:
        # The chart's image (MLCYCLE_IMAGE) for a new Job; an existing Job keeps its own across an operator
        # upgrade (a Job's pod template cannot change).
        image = manifests.job_image(kube.get("batch/v1", "Job", namespace, manifests.child_name(name)))
        job = kube.apply(manifests.desired_job(name, namespace, meta["uid"], spec, image or images.mlcycle_image()))
        service = manifests.desired_service(name, namespace, meta["uid"], spec)
        if service:
            kube.apply(service)
        pods = kube.list_("v1", "Pod", namespace, f"{manifests.LABEL}={name}")
    status = training_status(spec, meta["generation"], job, pods, old, invalid)

    if status["phase"] == "Succeeded" and spec.register_model and not status.get("modelVersionRef"):
        status["conditions"] = merge_conditions(status["conditions"], [_register(body, spec, status)])

    if _ttl_expired(spec, status):
        kube.post_event(body, "Normal", "Deleted", "deleting: spec.runPolicy.ttlSecondsAfterFinished passed")
        kube.delete(API_VERSION, KIND, namespace, name)
        return

    if kube.status_changed(old, status):
        kube.patch_status(API_VERSION, KIND, namespace, name, status)
        if old.get("phase") != status["phase"]:
            metrics.TRAINING_TRANSITIONS.labels(status["phase"]).inc()
            kube.post_event(body, "Warning" if status["phase"] == "Failed" else "Normal", status["phase"],
                            status["message"])


def _register(body: dict, spec: TrainingJobSpec, status: dict) -> dict:
    """Create the ModelVersion once; returns the ModelRegistered condition."""
    namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
    generation = body["metadata"]["generation"]
    if not status.get("artifact"):
        return condition("ModelRegistered", False, "NoArtifact",
                         "the trainer reported no artifact in its termination message", generation)
    model = spec.register_model.name
    existing = kube.list_(API_VERSION, "ModelVersion", namespace, f"{registration.MODEL_LABEL}={model}")
    mine = [mv for mv in existing
            if mv["metadata"].get("labels", {}).get(registration.TRAININGJOB_UID_LABEL) == uid]
    if mine:
        mv_name = mine[0]["metadata"]["name"]
    else:
        try:
            signature = _signature(namespace, spec, status["artifact"]["uri"])
        except (storage.SecretProblem, s3.StorageError, ValueError) as e:
            return condition("ModelRegistered", False, "SignatureUnavailable",
                             f"cannot read signature.json next to the artifact: {e}; retrying", generation)
        # Another job may take the next number between our list and create: then try the number after it.
        for version in range(registration.next_version(existing), registration.next_version(existing) + 5):
            mv = registration.desired_model_version(body["metadata"]["name"], namespace, uid, spec, status,
                                                    version, signature)
            if kube.create(mv) is not None:
                break
        else:
            return condition("ModelRegistered", False, "VersionConflict",
                             f"ModelVersion names {model}-v{version - 4}..v{version} are taken; retrying",
                             generation)
        mv_name = mv["metadata"]["name"]
        kube.post_event(body, "Normal", "ModelRegistered", f"registered ModelVersion {mv_name}")
    status["modelVersionRef"] = {"name": mv_name}
    return condition("ModelRegistered", True, "Registered", f"ModelVersion {mv_name}", generation)


def _signature(namespace: str, spec: TrainingJobSpec, artifact_uri: str) -> dict | None:
    cfg = storage.s3_config(namespace, spec.storage.secret_ref.name)
    uri = registration.signature_uri(artifact_uri)
    bucket, key = s3.parse_s3_uri(uri)
    with s3.storage_errors(uri):
        raw = json.loads(s3.read_bytes(s3.client(cfg), bucket, key))
    return {k: raw[k] for k in ("inputs", "outputs", "featureNames") if k in raw}


def _ttl_expired(spec: TrainingJobSpec | None, status: dict) -> bool:
    ttl = spec.run_policy.ttl_seconds_after_finished if spec else None
    if ttl is None or status["phase"] not in FINISHED or not status.get("completionTime"):
        return False
    done = datetime.fromisoformat(status["completionTime"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - done).total_seconds() >= ttl
