"""Pod-spec pieces that every operator-written workload shares: resources and placement (GPUs, gpuType,
node selector, tolerations), so a TrainingJob's worker and an InferenceService's replica land alike."""

from __future__ import annotations

from mlcycle.api.base import Resources, Toleration

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def container_resources(resources: Resources) -> dict:
    """requests = limits, from the spec's cpu, memory and GPUs; {} when none is set."""
    limits = {}
    if resources.cpu is not None:
        limits["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        limits["memory"] = str(resources.memory)
    if resources.gpus:
        limits[GPU_RESOURCE] = str(resources.gpus)
    return {"limits": limits, "requests": dict(limits)} if limits else {}


def placement(resources: Resources, gpu_type: str | None, node_selector: dict[str, str] | None,
              tolerations: list[Toleration] | None) -> dict:
    """nodeSelector and tolerations of the pod spec: GPU pods tolerate the GPU taint and select gpuType."""
    pod: dict = {}
    selector = dict(node_selector or {})
    if gpu_type:
        selector[GPU_PRODUCT_LABEL] = gpu_type
    if selector:
        pod["nodeSelector"] = selector
    tolerated = ([GPU_TOLERATION] if resources.gpus else []) + [t.to_api() for t in tolerations or []]
    if tolerated:
        pod["tolerations"] = tolerated
    return pod
