"""TrainingJob's controller: informers of the TrainingJobs and their children. Level-based: every event of a
TrainingJob, its Job, Service or pods leads to one `reconcile(namespace, name)`, which reads what is, applies
what should be, and writes status only when it changed. Running it twice, or after a restart, changes nothing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from mlcycle import images, informer, kube, metrics, redaction, storage
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION, field_errors
from mlcycle.api.trainingjob import KIND, VALIDATE_DATA_CONTAINER, TrainingJobSpec
from mlcycle.clients import s3
from mlcycle.coalesce import Coalescer
from mlcycle.conditions import SYNCED, condition, find, merge_conditions, synced
from mlcycle.handlers import failures
from mlcycle.handlers.failures import backoff
from mlcycle.trainingjob import datavalidation, manifests, registration
from mlcycle.trainingjob.status import RESYNC_SECONDS, next_reconcile, observed_pod, training_status, ttl_expired

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 3
REFERENCE_API = {"ServiceAccount": "v1", "PriorityClass": "scheduling.k8s.io/v1"}
# Registration retries back off from 2 s, but never wait longer than an unfinished job's resync.
MAX_REGISTRATION_RETRY_SECONDS = RESYNC_SECONDS
_registration_failures: dict[tuple[str, str], int] = {}


def _reconcile_with_retries(namespace: str, name: str) -> None:
    with metrics.reconciling(KIND):
        for attempt in range(CONFLICT_RETRIES):
            try:
                # A conflict means the cached TrainingJob was behind its status write: read it afresh.
                return _reconcile(namespace, name, fresh=attempt > 0)
            except kube.Conflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise


def _report_failure(namespace: str, name: str, error: Exception, delay: float) -> None:
    metrics.HANDLER_FAILURES.labels(KIND, type(error).__name__).inc()
    failures.report(KIND, namespace, name, failures.failure_message("reconcile", error, delay))


# No kopf timers: they would put kopf's finalizer on every TrainingJob, and deleting one (or its namespace)
# would wait for a running operator. TTL, registration retries and resyncs are scheduled here instead.
# Reconciles run on a pool of the TrainingJobs' own, so other kinds' slow work never delays them.
reconcile = Coalescer(_reconcile_with_retries, KIND, workers=8, on_failure=_report_failure)


def _spec_changed(type_: str, tj: dict) -> bool:
    """Whether a TrainingJob's event needs a reconcile: not when only its status changed since the last one
    (mostly our own status write). Children's events, the scheduled reconciles and a restart's listing cover
    everything else."""
    return type_ != "MODIFIED" or (tj.get("status") or {}).get("observedGeneration") != tj["metadata"].get(
        "generation")


# TrainingJobs through an informer of our own, not kopf: kopf would keep per-object state for each and a
# reconcile would GET the object it just saw; here each is held once, as compact JSON, and read from memory.
trainingjobs = informer.Informer(API_VERSION, KIND, None, lambda tj: tj["metadata"]["name"], reconcile.submit,
                                 trigger=_spec_changed)


def _owner(child: dict) -> str | None:
    """The TrainingJob of a child. The label value may be a cut name (names.label_value); the annotation has
    the whole one."""
    meta = child["metadata"]
    return (meta.get("annotations") or {}).get(keys.OWNER_NAME_ANNOTATION) or (meta.get("labels") or {}).get(
        manifests.LABEL)


# The children, label-selected by the apiserver and kept in memory (mlcycle.informer): a change of one
# reconciles its TrainingJob, and reconciles read them here instead of a GET and a LIST each.
jobs = informer.Informer("batch/v1", "Job", manifests.LABEL, _owner, reconcile.submit)
services = informer.Informer("v1", "Service", manifests.LABEL, _owner, reconcile.submit)
pods = informer.Informer("v1", "Pod", manifests.LABEL, _owner, reconcile.submit, slim=observed_pod)


def _reconcile(namespace: str, name: str, fresh: bool = False) -> None:
    body = kube.get(API_VERSION, KIND, namespace, name) if fresh else trainingjobs.get(namespace, name)
    if body is None:  # deleted: nothing to clean up (owner references remove the children)
        reconcile.forget(namespace, name)
        _registration_failures.pop((namespace, name), None)
        return
    if body["metadata"].get("deletionTimestamp"):
        return
    meta, old = body["metadata"], body.get("status") or {}
    spec, invalid = _parse(body["spec"])

    job, children = None, []
    if not invalid:
        try:
            # The chart's image (MLCYCLE_IMAGE) for a new Job; an existing Job keeps its own across an operator
            # upgrade (a Job's pod template cannot change).
            observed = jobs.get(namespace, manifests.child_name(name))
            image = manifests.job_image(observed)
            validator = manifests.job_image(observed, VALIDATE_DATA_CONTAINER) or images.mlcycle_image()
            job = _ensure(jobs, manifests.desired_job(name, namespace, meta["uid"], spec,
                                                      image or images.mlcycle_image(), validator,
                                                      _validation_reference(namespace, spec, observed)), observed)
            service = manifests.desired_service(name, namespace, meta["uid"], spec)
            if service:
                _ensure(services, service, services.get(namespace, service["metadata"]["name"]))
        except ApiException as e:
            if kube.namespace_terminating(e):
                return  # the TrainingJob goes with its namespace: nothing to create, no failure to report
            if e.status not in (400, 422):
                raise
            # What admission let through but the Job or Service refuses: said in status, not retried blindly.
            invalid = [f"the apiserver refuses the children this spec asks for: {kube.error_message(e)}"]
        if job is not None and observed is None and not invalid:
            # Created just now: the Job's own watch event brings the reconcile that writes status. In a burst,
            # that puts every new TrainingJob's Job before the statuses (the resync is only a safety net).
            reconcile.later(namespace, name, RESYNC_SECONDS)
            return
    if job is not None:
        children = pods.children(namespace, name)
    missing = _missing_references(namespace, spec) if job is not None and not children else []
    status = training_status(spec, meta["generation"], job, children, old, invalid, missing)
    if (find(status["conditions"], SYNCED) or {}).get("status") == "False":
        # A reconcile that failed earlier (failures.report) succeeded now.
        status["conditions"] = merge_conditions(status["conditions"], [synced(None, meta["generation"])])

    registration_retry = None
    if registration.due(spec, status):
        status["conditions"] = merge_conditions(status["conditions"], [_register(body, spec, status)])
        registration_retry = _registration_retry((namespace, name), registration.due(spec, status))

    now = datetime.now(UTC)
    if ttl_expired(spec, status, now):
        kube.post_event(body, "Normal", "Deleted", "deleting: spec.runPolicy.ttlSecondsAfterFinished passed")
        kube.delete(API_VERSION, KIND, namespace, name)
        return
    delay = next_reconcile(spec, status, now, registration_retry)
    if delay is not None:
        reconcile.later(namespace, name, delay)

    if kube.status_changed(old, status):
        # Messages can carry a pod's own words (a user image's last log lines): redacted before anyone reads them.
        status = redaction.redact_status(status, storage.secret_values(namespace, spec.storage.secret_ref.name)
                                         if spec else [])
        if kube.write_status(body, status) and old.get("phase") != status["phase"]:
            metrics.TRAINING_TRANSITIONS.labels(status["phase"]).inc()
            kube.post_event(body, "Warning" if status["phase"] == "Failed" else "Normal", status["phase"],
                            status["message"])


def _ensure(cache: informer.Informer, desired: dict, observed: dict | None) -> dict:
    """kube.ensure, and what it wrote kept until the watch brings it: the next reconcile must not take a Job
    just created for missing."""
    child = kube.ensure(desired, observed)
    if child is not observed:
        cache.remember(child)
    return child


def _registration_retry(key: tuple[str, str], still_due: bool) -> float | None:
    """Seconds until the next registration attempt (backing off while it fails), None once registered."""
    if not still_due:
        _registration_failures.pop(key, None)
        return None
    failures = _registration_failures[key] = _registration_failures.get(key, 0) + 1
    return min(backoff(failures), MAX_REGISTRATION_RETRY_SECONDS)


def _validation_reference(namespace: str, spec: TrainingJobSpec, job: dict | None) -> dict | None:
    """The drift reference of spec.dataValidation: an existing Job keeps the one it was created with."""
    if spec.data_validation is None or spec.data_validation.drift is None:
        return None
    if job is not None:
        return datavalidation.job_reference(job)
    return datavalidation.drift_reference(spec, kube.list_(API_VERSION, "ModelVersion", namespace))


def _missing_references(namespace: str, spec: TrainingJobSpec) -> list[str]:
    """Objects the spec names that only the cluster can say exist: without them no worker pod can be created."""
    refs = [("spec.serviceAccountName", "ServiceAccount", namespace, spec.service_account_name),
            ("spec.priorityClassName", "PriorityClass", None, spec.priority_class_name)]
    return [f"{field}: {kind} {name} does not exist" for field, kind, ns, name in refs
            if name and kube.get(REFERENCE_API[kind], kind, ns, name) is None]


def _parse(raw: dict) -> tuple[TrainingJobSpec | None, list[str]]:
    """The spec, or None and why not (each error with its field)."""
    try:
        spec = TrainingJobSpec.model_validate(raw)
    except ValidationError as e:
        return None, field_errors(e, "spec")
    return spec, manifests.reserved_env_errors(spec)


def _register(body: dict, spec: TrainingJobSpec, status: dict) -> dict:
    """Create the ModelVersion once; returns the ModelRegistered condition."""
    namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
    generation = body["metadata"]["generation"]
    if not status.get("artifact"):
        return condition("ModelRegistered", False, "NoArtifact",
                         "the trainer reported no artifact in its termination message", generation)
    model = spec.register_model.name
    existing = kube.list_(API_VERSION, "ModelVersion", namespace, kube.selector({keys.MODEL: model}))
    mine = registration.registered_by(existing, uid)
    if mine:
        mv_name = mine[0]["metadata"]["name"]
    else:
        try:
            signature = _signature(namespace, spec, status["artifact"]["uri"])
        except (storage.SecretProblem, s3.StorageError, ValueError) as e:
            return condition("ModelRegistered", False, "SignatureUnavailable",
                             f"cannot read signature.json next to the artifact: {e}; retrying", generation)
        candidates = registration.candidate_versions(existing)
        for version in candidates:
            mv = registration.desired_model_version(body["metadata"]["name"], namespace, uid, spec, status,
                                                    version, signature)
            if kube.create(mv) is not None:
                if registration.written_by_run(spec, uid, status["artifact"]["uri"]):
                    # The record that lets deletionPolicy: Delete remove this artifact (modelversion/deletion.py):
                    # in status, which whoever creates a ModelVersion cannot write.
                    kube.add_status_fields(API_VERSION, "ModelVersion", namespace, mv["metadata"]["name"],
                                           {"registeredBy": {"name": body["metadata"]["name"], "uid": uid}})
                break
        else:
            return condition("ModelRegistered", False, "VersionConflict",
                             f"ModelVersion names {registration.model_version_name(model, candidates[0])}.."
                             f"v{candidates[-1]} are taken; retrying", generation)
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

