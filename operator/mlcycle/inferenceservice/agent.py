"""The serving agent container of a serving pod (`mlcycle agent`, the sidecar in front of Triton) and the
payload-log prefix of a served version. Its env is the agent's contract (mlcycle.workloads.agent)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mlcycle import podenv
from mlcycle.api.inferenceservice import AGENT_ADMIN_PORT, AGENT_PORT, HTTP_PORT, InferenceServiceSpec

# How long the agent keeps writing its log buffer after SIGTERM, and the pod's terminationGracePeriodSeconds
# that leaves it: up to 5 s for requests in flight before, up to 5 s to exit after, and a margin.
LOG_SHUTDOWN_SECONDS = 15
TERMINATION_GRACE_SECONDS = LOG_SHUTDOWN_SECONDS + 15


def log_prefix(destination: str, namespace: str, isvc: str, model_version: str) -> str:
    """`<destination>/<namespace>/<isvc>/<modelversion>`: where a version's payload logs go."""
    return "/".join((destination.rstrip("/"), namespace, isvc, model_version))


def agent_container(isvc: str, namespace: str, spec: InferenceServiceSpec, model_version: str, model_name: str,
                    feature_names: Sequence[str] | None, image: str) -> dict:
    """The agent for the pod serving `model_version` (Triton model `model_name`). The canary split is not in
    the env: the operator sets it with PUT /traffic on the admin port, so changing it restarts nothing."""
    env = [
        {"name": "MLCYCLE_AGENT_PORT", "value": str(AGENT_PORT)},
        {"name": "MLCYCLE_AGENT_ADMIN_PORT", "value": str(AGENT_ADMIN_PORT)},
        {"name": "MLCYCLE_TRITON_URL", "value": f"http://127.0.0.1:{HTTP_PORT}"},
        {"name": "MLCYCLE_MODEL_NAME", "value": model_name},
        {"name": "MLCYCLE_MODEL_VERSION", "value": model_version},
    ]
    if feature_names:
        env.append({"name": "MLCYCLE_FEATURE_NAMES", "value": json.dumps(list(feature_names))})
    if spec.logging is not None:
        env += [
            {"name": "MLCYCLE_LOG_PREFIX",
             "value": log_prefix(spec.logging.destination, namespace, isvc, model_version)},
            {"name": "MLCYCLE_LOG_SAMPLE_RATE", "value": str(spec.logging.sample_rate)},
            {"name": "MLCYCLE_LOG_SHUTDOWN_SECONDS", "value": str(LOG_SHUTDOWN_SECONDS)},
            *podenv.storage_env(spec.storage.secret_ref.name),
        ]
    admin_probe = {"httpGet": {"path": "/healthz", "port": AGENT_ADMIN_PORT}}
    return {
        "name": "agent",
        "image": image,
        "command": ["mlcycle", "agent"],
        "env": env,
        "ports": [{"name": "agent-http", "containerPort": AGENT_PORT},
                  {"name": "agent-admin", "containerPort": AGENT_ADMIN_PORT}],
        "readinessProbe": {**admin_probe, "periodSeconds": 5},
        "livenessProbe": {**admin_probe, "periodSeconds": 10, "failureThreshold": 3},
    }
