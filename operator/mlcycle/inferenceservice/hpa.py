"""The HorizontalPodAutoscaler of an InferenceService. It scales the InferenceService itself (its scale
subresource writes spec.replicas), and the operator carries spec.replicas to the serving Deployment, so
the HPA and the operator never write the same field.

Pods metrics are the names the metrics pipeline exports per pod (docs/serving.md has the
prometheus-adapter rules): Triton's pending requests, and the agent's request rate.
"""

from __future__ import annotations

from mlcycle import names
from mlcycle.api.base import API_VERSION, owner_reference
from mlcycle.api.inferenceservice import KIND, Autoscaling

PODS_METRICS = {
    "inference-queue": "nv_inference_pending_request_count",
    "requests-per-second": "mlcycle_agent_requests_per_second",
    "gpu-utilization": "nv_gpu_utilization",
}


def hpa_name(isvc: str) -> str:
    return names.child_name(isvc)


def _metric(autoscaling: Autoscaling) -> dict:
    if autoscaling.metric == "cpu-utilization":
        return {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": max(1, round(autoscaling.target))}}}
    target = autoscaling.target / 100 if autoscaling.metric == "gpu-utilization" else autoscaling.target
    return {"type": "Pods", "pods": {"metric": {"name": PODS_METRICS[autoscaling.metric]},
                                     "target": {"type": "AverageValue", "averageValue": _quantity(target)}}}


def _quantity(value: float) -> str:
    """A resource.Quantity for a target: milli-units keep fractions exact enough (0.5 → 500m)."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def desired_hpa(isvc: str, namespace: str, uid: str, autoscaling: Autoscaling) -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name(isvc), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "mlcycle"},
                     "ownerReferences": [owner_reference(KIND, isvc, uid)]},
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": isvc},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [_metric(autoscaling)],
        },
    }
