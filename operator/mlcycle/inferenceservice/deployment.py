"""The Deployment that serves one ModelVersion for an InferenceService: `<isvc>-<modelversion>`.

One Deployment per served version, so a new version (or a canary) is a second Deployment next to the one
serving, never an in-place restart of it. Each pod: an init container (`mlcycle fetch-model`) that fetches
the artifact, re-checks its digest and lays out the model repository on an emptyDir; then Triton, loading
exactly that model, ready only when the model is (readiness on /v2/models/<model>/ready, not a TCP port);
and the serving agent (`mlcycle agent`), the pod's HTTP entry point: payload logging, canary split, metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcycle import names, podenv, podspec
from mlcycle.api.base import owner_reference
from mlcycle.api.inferenceservice import GRPC_PORT, HTTP_PORT, KIND, METRICS_PORT, InferenceServiceSpec
from mlcycle.api.labels import INFERENCESERVICE, MODEL_VERSION, OWNER_NAME_ANNOTATION
from mlcycle.api.modelversion import Signature
from mlcycle.inferenceservice.agent import TERMINATION_GRACE_SECONDS, agent_container
from mlcycle.inferenceservice.tritonconfig import ModelLayout

MODEL_REPOSITORY = "/models"
TERMINATION_LOG = "/dev/termination-log"
# Startup: a big model may take minutes to fetch and load; 5 s × 360 = 30 minutes before Kubernetes gives up.
STARTUP_PERIOD, STARTUP_FAILURES = 5, 360


@dataclass(frozen=True)
class ServedVersion:
    """What serving needs to know of a Ready ModelVersion."""

    name: str
    model_name: str
    artifact_uri: str
    artifact_format: str
    digest: str  # the digest the registry verified (status.verifiedDigest)
    signature: Signature | None

    @classmethod
    def from_model_version(cls, mv: dict) -> ServedVersion:
        spec = mv["spec"]
        return cls(mv["metadata"]["name"], spec["modelName"], spec["artifact"]["uri"], spec["artifact"]["format"],
                   (mv.get("status") or {}).get("verifiedDigest") or spec["artifact"].get("digest") or "",
                   Signature.model_validate(spec["signature"]) if spec.get("signature") else None)


def deployment_name(isvc: str, version: str) -> str:
    return names.child_name(f"{isvc}-{version}")


def selector(isvc: str, version: str) -> dict[str, str]:
    """Labels that select the pods serving `version` for `isvc`."""
    return {INFERENCESERVICE: names.label_value(isvc), MODEL_VERSION: names.label_value(version)}


def selector_string(isvc: str, version: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(isvc, version).items())


def _http_probe(path: str, **settings) -> dict:
    return {"httpGet": {"path": path, "port": HTTP_PORT}, **settings}


def fetch_container(version: ServedVersion, layout: ModelLayout, secret: str, image: str) -> dict:
    return {
        "name": "fetch-model",
        "image": image,
        "command": ["mlcycle", "fetch-model"],
        "env": [
            {"name": "MLCYCLE_ARTIFACT_URI", "value": version.artifact_uri},
            {"name": "MLCYCLE_ARTIFACT_DIGEST", "value": version.digest},
            {"name": "MLCYCLE_ARTIFACT_FILE", "value": layout.artifact_file},
            {"name": "MLCYCLE_MODEL_NAME", "value": version.model_name},
            {"name": "MLCYCLE_MODEL_REPOSITORY", "value": MODEL_REPOSITORY},
            {"name": "MLCYCLE_TRITON_BACKEND", "value": layout.backend},
            {"name": "MLCYCLE_TRITON_CONFIG", "value": layout.config},
            {"name": "MLCYCLE_TERMINATION_LOG", "value": TERMINATION_LOG},
            *podenv.storage_env(secret),
        ],
        "volumeMounts": [{"name": "model-repository", "mountPath": MODEL_REPOSITORY}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def triton_container(spec: InferenceServiceSpec, model: str) -> dict:
    return {
        "name": "triton",
        "image": spec.runtime.image,
        "command": ["tritonserver"],
        "args": [
            f"--model-repository={MODEL_REPOSITORY}",
            "--model-control-mode=explicit",
            f"--load-model={model}",
            "--disable-auto-complete-config",
            f"--http-port={HTTP_PORT}",
            f"--grpc-port={GRPC_PORT}",
            f"--metrics-port={METRICS_PORT}",
            "--allow-metrics=true",
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT}, {"name": "grpc", "containerPort": GRPC_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        # Ready means the model answers, not that a port is open (the complaint about KServe's raw mode).
        "readinessProbe": _http_probe(f"/v2/models/{model}/ready", periodSeconds=2, failureThreshold=2),
        "startupProbe": _http_probe(f"/v2/models/{model}/ready", periodSeconds=STARTUP_PERIOD,
                                    failureThreshold=STARTUP_FAILURES),
        "livenessProbe": _http_probe("/v2/health/live", periodSeconds=10, failureThreshold=3),
        "resources": podspec.container_resources(spec.resources),
        "volumeMounts": [{"name": "model-repository", "mountPath": MODEL_REPOSITORY}],
        # Triton's last log lines say why a model failed to load; they become the status message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def desired_deployment(isvc: str, namespace: str, uid: str, spec: InferenceServiceSpec, version: ServedVersion,
                       layout: ModelLayout, replicas: int, image: str) -> dict:
    """The Deployment serving `version`; `replicas` is decided by the caller (spec, HPA or a rollout)."""
    labels = {**selector(isvc, version.name), "app.kubernetes.io/managed-by": "mlcycle",
              "app.kubernetes.io/component": "predictor"}
    pod = {
        "initContainers": [fetch_container(version, layout, spec.storage.secret_ref.name, image)],
        "containers": [triton_container(spec, version.model_name),
                       agent_container(isvc, namespace, spec, version.name, version.model_name,
                                       version.signature.feature_names if version.signature else None, image)],
        "volumes": [{"name": "model-repository", "emptyDir": {}}],
        # Model code is the user's: it gets no token for the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,  # the agent flushes its log buffer
        **podspec.placement(spec.resources, spec.gpu_type, spec.node_selector, spec.tolerations),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": deployment_name(isvc, version.name), "namespace": namespace, "labels": labels,
                     "annotations": {OWNER_NAME_ANNOTATION: isvc},
                     "ownerReferences": [owner_reference(KIND, isvc, uid)]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(isvc, version.name)},
            # A changed template (resources, runtime) rolls without dropping below the replicas asked for.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "revisionHistoryLimit": 2,
            "template": {"metadata": {"labels": labels, "annotations": {OWNER_NAME_ANNOTATION: isvc}}, "spec": pod},
        },
    }
