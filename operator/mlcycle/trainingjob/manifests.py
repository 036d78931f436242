"""The Kubernetes objects a TrainingJob wants: a batch/v1 Job (Indexed for several workers) and, for
distributed runs, a headless Service that gives worker 0 a stable DNS name for torchrun's rendezvous."""

from __future__ import annotations

import hashlib
import json

from mlcycle import images, podenv
from mlcycle.api.base import API_VERSION
from mlcycle.api.trainingjob import KIND, TrainingJobSpec

LABEL = "mlcycle.io/trainingjob"
RENDEZVOUS_PORT = 29500
TERMINATION_LOG = "/dev/termination-log"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
# torchrun reads these; the operator sets them, so user env must not.
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
RESERVED_PREFIX = "MLCYCLE_"


def child_name(tj_name: str) -> str:
    """Name of the Job and Service. Pod hostnames are `<name>-<index>` and must stay a DNS label (63), so
    long names are cut and given a short hash to stay unique and deterministic."""
    if len(tj_name) <= 52:
        return tj_name
    return f"{tj_name[:46].rstrip('-')}-{hashlib.sha256(tj_name.encode()).hexdigest()[:5]}"


def master_address(tj_name: str, namespace: str) -> str:
    name = child_name(tj_name)
    return f"{name}-0.{name}.{namespace}.svc"


def reserved_env_errors(spec: TrainingJobSpec) -> list[str]:
    """Names in spec.env that would override what the operator sets."""
    return [f"spec.env[{i}].name: {e.name} is set by the operator; remove it"
            for i, e in enumerate(spec.env or []) if e.name in RESERVED_ENV or e.name.startswith(RESERVED_PREFIX)]


def owner_reference(name: str, uid: str) -> dict:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def output_uri(spec: TrainingJobSpec, uid: str) -> str:
    """Where this run writes: a prefix of its own under spec.output.uri, so that re-creating a job of the
    same name never overwrites the artifact an earlier ModelVersion points to."""
    return f"{spec.output.uri.rstrip('/')}/{uid[:8]}"


def trainer_env(name: str, namespace: str, uid: str, spec: TrainingJobSpec) -> list[dict]:
    """Env of a worker: data and output locations, storage credentials by reference, torchrun's PET_*."""
    secret = spec.storage.secret_ref.name
    env = [
        {"name": "MLCYCLE_TRAININGJOB", "value": name},
        {"name": "MLCYCLE_DATASET_URI", "value": spec.dataset.uri},
        {"name": "MLCYCLE_DATASET_FORMAT", "value": spec.dataset.format},
        {"name": "MLCYCLE_OUTPUT_URI", "value": output_uri(spec, uid)},
        {"name": "MLCYCLE_TERMINATION_LOG", "value": TERMINATION_LOG},
        *podenv.storage_env(secret),
    ]
    if spec.dataset.digest:
        env.append({"name": "MLCYCLE_DATASET_DIGEST", "value": spec.dataset.digest})
    if spec.trainer is not None:
        env.append({"name": "MLCYCLE_TRAINER", "value": json.dumps(spec.trainer.to_api(), sort_keys=True)})
    distributed = spec.workers > 1
    env += [
        {"name": "PET_NNODES", "value": str(spec.workers)},
        {"name": "PET_NPROC_PER_NODE", "value": str(spec.procs_per_worker)},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}} if distributed
        else {"name": "PET_NODE_RANK", "value": "0"},
        {"name": "PET_MASTER_ADDR", "value": master_address(name, namespace) if distributed else "localhost"},
        {"name": "PET_MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
    ]
    return env + [e.to_api() for e in spec.env or []]


def _resources(spec: TrainingJobSpec) -> dict:
    limits = {}
    if spec.resources.cpu is not None:
        limits["cpu"] = str(spec.resources.cpu)
    if spec.resources.memory is not None:
        limits["memory"] = str(spec.resources.memory)
    if spec.resources.gpus:
        limits[GPU_RESOURCE] = str(spec.resources.gpus)
    return {"limits": limits, "requests": dict(limits)} if limits else {}


def _pod_spec(name: str, namespace: str, uid: str, spec: TrainingJobSpec, default_image: str) -> dict:
    container = {
        "name": "trainer",
        "image": spec.image or default_image,
        "command": spec.command or ["mlcycle", "train"],
        "env": trainer_env(name, namespace, uid, spec),
        "resources": _resources(spec),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args:
        container["args"] = spec.args
    if spec.workers > 1:
        container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    node_selector = dict(spec.node_selector or {})
    if spec.gpu_type:
        node_selector[GPU_PRODUCT_LABEL] = spec.gpu_type
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = ([GPU_TOLERATION] if spec.resources.gpus else []) + [t.to_api() for t in spec.tolerations or []]
    if tolerations:
        pod["tolerations"] = tolerations
    if spec.workers > 1:
        pod["subdomain"] = child_name(name)
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    return pod


def labels(name: str) -> dict:
    return {LABEL: name, "app.kubernetes.io/managed-by": "mlcycle", "app.kubernetes.io/component": "trainer"}


def job_image(job: dict | None) -> str | None:
    """The trainer image of an existing Job (its pod template cannot change)."""
    containers = (job or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return next((c.get("image") for c in containers if c.get("name") == "trainer"), None)


def desired_job(name: str, namespace: str, uid: str, spec: TrainingJobSpec,
                default_image: str = images.RELEASE_IMAGE) -> dict:
    """The Job running the workers, in `spec.image` or else `default_image`. `suspend` is set only when the
    TrainingJob asks for it: with server-side apply, leaving it out lets another controller (Kueue) own it, and
    dropping it resumes the Job."""
    job_spec: dict = {
        "parallelism": spec.workers,
        "completions": spec.workers,
        "backoffLimit": spec.run_policy.backoff_limit,
        "template": {"metadata": {"labels": labels(name)},
                     "spec": _pod_spec(name, namespace, uid, spec, default_image)},
    }
    if spec.workers > 1:
        job_spec["completionMode"] = "Indexed"
    if spec.run_policy.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.run_policy.active_deadline_seconds
    if spec.run_policy.suspend:
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels(name),
                     "ownerReferences": [owner_reference(name, uid)]},
        "spec": job_spec,
    }


def desired_service(name: str, namespace: str, uid: str, spec: TrainingJobSpec) -> dict | None:
    """Headless Service for the rendezvous; None for a single worker."""
    if spec.workers <= 1:
        return None
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": child_name(name), "namespace": namespace, "labels": labels(name),
                     "ownerReferences": [owner_reference(name, uid)]},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # workers must find each other before they are ready
            "selector": {LABEL: name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }
