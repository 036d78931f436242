"""The Kubernetes objects a TrainingJob wants: a batch/v1 Job (Indexed for several workers) and, for
distributed runs, a headless Service that gives worker 0 a stable DNS name for torchrun's rendezvous."""

from __future__ import annotations

import json

from mlcycle import images, names, podenv, podspec
from mlcycle.api import labels as keys
from mlcycle.api.base import owner_reference
from mlcycle.api.modelversion import Validation
from mlcycle.api.trainingjob import KIND, TrainingJobSpec
from mlcycle.trainingjob import datavalidation

LABEL = keys.TRAININGJOB
RENDEZVOUS_PORT = 29500
TERMINATION_LOG = "/dev/termination-log"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # the annotation the Job controller sets
# Pod hostnames are `<job>-<index>` and must stay a DNS label (63) with an index up to 1023.
COMPLETION_INDEX_FIELD = f"metadata.annotations['{COMPLETION_INDEX}']"
MAX_CHILD_NAME = 52
# torchrun reads these; the operator sets them, so user env must not.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
RESERVED_PREFIX = "MLCYCLE_"


def child_name(tj_name: str) -> str:
    """Name of the Job and Service: an RFC 1035 label (a Service needs one) short enough for the pods'
    `<name>-<index>` hostnames; other names (long, with dots, starting with a digit) get a stable hash."""
    return names.child_name(tj_name, limit=MAX_CHILD_NAME)


def master_address(tj_name: str, namespace: str) -> str:
    name = child_name(tj_name)
    return f"{name}-0.{name}.{namespace}.svc"


def reserved_env_errors(spec: TrainingJobSpec) -> list[str]:
    """Names in spec.env that would override what the operator sets."""
    return [f"spec.env[{i}].name: {e.name} is set by the operator; remove it"
            for i, e in enumerate(spec.env or []) if e.name in RESERVED_ENV or e.name.startswith(RESERVED_PREFIX)]


def output_uri(spec: TrainingJobSpec, uid: str) -> str:
    """Where this run writes: a prefix of its own under spec.output.uri, so that re-creating a job of the
    same name never overwrites the artifact an earlier ModelVersion points to."""
    return f"{spec.output.uri.rstrip('/')}/{uid[:8]}"


def data_env(name: str, uid: str, spec: TrainingJobSpec) -> list[dict]:
    """Data and output locations and storage credentials by reference: what every container of a worker reads."""
    return [
        {"name": "MLCYCLE_TRAININGJOB", "value": name},
        {"name": "MLCYCLE_DATASET_URI", "value": spec.dataset.uri},
        {"name": "MLCYCLE_DATASET_FORMAT", "value": spec.dataset.format},
        {"name": "MLCYCLE_OUTPUT_URI", "value": output_uri(spec, uid)},
        {"name": "MLCYCLE_TERMINATION_LOG", "value": TERMINATION_LOG},
        *podenv.storage_env(spec.storage.secret_ref.name),
    ]


def trainer_env(name: str, namespace: str, uid: str, spec: TrainingJobSpec) -> list[dict]:
    """Env of a worker: data_env, the trainer's configuration, torchrun's PET_*, then spec.env."""
    env = data_env(name, uid, spec)
    if spec.dataset.digest:
        env.append({"name": "MLCYCLE_DATASET_DIGEST", "value": spec.dataset.digest})
    if spec.trainer is not None:
        env.append({"name": "MLCYCLE_TRAINER", "value": json.dumps(spec.trainer.to_api(), sort_keys=True)})
    validation = spec.register_model.validation if spec.register_model else None
    if validation and validation.slices:  # what to evaluate per slice (see mlcycle.training.evaluation_config)
        asked = Validation(slices=validation.slices, positive_class=validation.positive_class)
        env.append({"name": "MLCYCLE_EVALUATION", "value": json.dumps(asked.to_api(), sort_keys=True)})
    distributed = spec.workers > 1
    env += [
        {"name": "PET_NNODES", "value": str(spec.workers)},
        {"name": "PET_NPROC_PER_NODE", "value": str(spec.procs_per_worker)},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}} if distributed
        else {"name": "PET_NODE_RANK", "value": "0"},
        {"name": "PET_MASTER_ADDR", "value": master_address(name, namespace) if distributed else "localhost"},
        {"name": "PET_MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
    ]
    return env + [e.to_api() for e in spec.env or []]


def _pod_spec(name: str, namespace: str, uid: str, spec: TrainingJobSpec, default_image: str,
              validator_image: str, validation_reference: dict | None) -> dict:
    container = {
        "name": "trainer",
        "image": spec.image or default_image,
        "command": spec.command or ["mlcycle", "train"],
        "env": trainer_env(name, namespace, uid, spec),
        "resources": podspec.container_resources(spec.resources),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args:
        container["args"] = spec.args
    if spec.workers > 1:
        container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    pod: dict = {"restartPolicy": "Never", "containers": [container],
                 **podspec.placement(spec.resources, spec.gpu_type, spec.node_selector, spec.tolerations)}
    if spec.data_validation is not None:
        resources = podspec.container_resources(spec.resources.model_copy(update={"gpus": 0}))
        pod["initContainers"] = [datavalidation.validation_container(
            spec, data_env(name, uid, spec), validator_image, resources, TERMINATION_LOG, validation_reference)]
    if spec.workers > 1:
        pod["subdomain"] = child_name(name)
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    return pod


def selector(name: str) -> dict:
    """The label that ties the Job, the Service and the pods to their TrainingJob."""
    return {LABEL: names.label_value(name)}


def labels(name: str) -> dict:
    return selector(name) | keys.MANAGED_BY | {"app.kubernetes.io/component": "trainer"}


def annotations(name: str) -> dict:
    """The TrainingJob's full name, which the label value may not hold (see names.label_value)."""
    return {keys.OWNER_NAME_ANNOTATION: name}


def job_image(job: dict | None, container: str = "trainer") -> str | None:
    """The image of a container (the trainer, or an init container) of an existing Job (its pod template
    cannot change)."""
    pod = (job or {}).get("spec", {}).get("template", {}).get("spec", {})
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    return next((c.get("image") for c in containers if c.get("name") == container), None)


def desired_job(name: str, namespace: str, uid: str, spec: TrainingJobSpec,
                default_image: str = images.RELEASE_IMAGE, validator_image: str | None = None,
                validation_reference: dict | None = None) -> dict:
    """The Job running the workers, in `spec.image` or else `default_image`; with spec.dataValidation, each
    worker first runs `validate-data` in `validator_image` (the mlcycle image; default `default_image`) against
    `validation_reference` (datavalidation.drift_reference). `suspend` is set only when the TrainingJob asks
    for it: with server-side apply, leaving it out lets another controller (Kueue) own it, and dropping it
    resumes the Job."""
    job_spec: dict = {
        "parallelism": spec.workers,
        "completions": spec.workers,
        "backoffLimit": spec.run_policy.backoff_limit,
        "template": {"metadata": {"labels": labels(name), "annotations": annotations(name)},
                     "spec": _pod_spec(name, namespace, uid, spec, default_image, validator_image or default_image,
                                       validation_reference)},
    }
    if spec.data_validation is not None:
        job_spec["podFailurePolicy"] = datavalidation.pod_failure_policy()
    if spec.workers > 1:
        job_spec["completionMode"] = "Indexed"
    if spec.run_policy.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.run_policy.active_deadline_seconds
    if spec.run_policy.suspend:
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels(name),
                     "annotations": annotations(name), "ownerReferences": [owner_reference(KIND, name, uid)]},
        "spec": job_spec,
    }


def desired_service(name: str, namespace: str, uid: str, spec: TrainingJobSpec) -> dict | None:
    """Headless Service for the rendezvous; None for a single worker."""
    if spec.workers <= 1:
        return None
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels(name),
                     "annotations": annotations(name), "ownerReferences": [owner_reference(KIND, name, uid)]},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # workers must find each other before they are ready
            "selector": selector(name),
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }
