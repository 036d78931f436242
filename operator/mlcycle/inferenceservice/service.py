"""The Service `<isvc>` in front of the serving pods, and the URLs status reports for it. It selects the pods
of the one version that receives traffic: switching versions is a change of its selector. Its http port
goes to the serving agent (logging, canary split); grpc goes straight to Triton (not logged, not split).
`<isvc>-canary` selects the candidate's pods: the stable agents forward the canary's share there."""

from __future__ import annotations

from mlcycle import names
from mlcycle.api.base import owner_reference
from mlcycle.api.inferenceservice import AGENT_PORT, GRPC_PORT, HTTP_PORT, KIND, METRICS_PORT
from mlcycle.inferenceservice.deployment import selector


def service_name(isvc: str, canary: bool = False) -> str:
    return names.child_name(isvc, "canary") if canary else names.child_name(isvc)


def desired_service(isvc: str, namespace: str, uid: str, version: str, canary: bool = False) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(isvc, canary), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "mlcycle"},
                     "ownerReferences": [owner_reference(KIND, isvc, uid)]},
        "spec": {
            "selector": selector(isvc, version),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": AGENT_PORT},
                      {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                      {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT}],
        },
    }


def canary_url(isvc: str, namespace: str) -> str:
    """Where the stable agents forward the candidate's share."""
    return f"http://{service_name(isvc, canary=True)}.{namespace}.svc:{HTTP_PORT}"


def urls(isvc: str, namespace: str) -> tuple[str, str]:
    """(status.url, status.grpcUrl): the Service's cluster DNS names."""
    host = f"{service_name(isvc)}.{namespace}.svc"
    return f"http://{host}:{HTTP_PORT}", f"{host}:{GRPC_PORT}"
