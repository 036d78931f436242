"""The Service `<isvc>` in front of the serving pods, and the URLs status reports for it. It selects the pods
of the one version that receives traffic: switching versions is a change of its selector."""

from __future__ import annotations

from mlcycle.api.inferenceservice import GRPC_PORT, HTTP_PORT, METRICS_PORT
from mlcycle.inferenceservice.deployment import bounded, owner_reference, selector


def service_name(isvc: str) -> str:
    return bounded(isvc)


def desired_service(isvc: str, namespace: str, uid: str, version: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(isvc), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "mlcycle"},
                     "ownerReferences": [owner_reference(isvc, uid)]},
        "spec": {
            "selector": selector(isvc, version),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT},
                      {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                      {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT}],
        },
    }


def urls(isvc: str, namespace: str) -> tuple[str, str]:
    """(status.url, status.grpcUrl): the Service's cluster DNS names."""
    host = f"{service_name(isvc)}.{namespace}.svc"
    return f"http://{host}:{HTTP_PORT}", f"{host}:{GRPC_PORT}"
