"""The ModelVersion a succeeded TrainingJob registers. It has no owner reference: a registry entry must
outlive the job that produced it. Lineage goes in labels and spec.source."""

from __future__ import annotations

from mlcycle.api.base import API_VERSION
from mlcycle.api.trainingjob import TrainingJobSpec

MODEL_LABEL = "mlcycle.io/model"
TRAININGJOB_LABEL = "mlcycle.io/trainingjob"
TRAININGJOB_UID_LABEL = "mlcycle.io/trainingjob-uid"


def model_version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def next_version(existing: list[dict]) -> int:
    return 1 + max((mv["spec"]["version"] for mv in existing), default=0)


def signature_uri(artifact_uri: str) -> str:
    """The trainer writes signature.json next to the model file."""
    return artifact_uri.rsplit("/", 1)[0] + "/signature.json"


def registered_format(spec: TrainingJobSpec) -> str:
    """The built-in trainer reports the first of its export formats; a user image, registerModel.format."""
    if spec.trainer is not None and not spec.command:
        return spec.trainer.export_formats[0]
    return spec.register_model.format


def desired_model_version(tj_name: str, namespace: str, uid: str, spec: TrainingJobSpec, status: dict,
                          version: int, signature: dict | None) -> dict:
    reg = spec.register_model
    artifact = status["artifact"]
    mv_spec: dict = {
        "modelName": reg.name,
        "version": version,
        "artifact": {"uri": artifact["uri"], "format": registered_format(spec)}
        | ({"digest": artifact["digest"]} if artifact.get("digest") else {}),
        "source": {
            "trainingJob": tj_name,
            "dataset": {"uri": spec.dataset.uri} | ({"digest": digest} if (
                digest := spec.dataset.digest or status.get("datasetDigest")) else {}),
            "params": spec.trainer.to_api() if spec.trainer else {"image": spec.image},
        },
        "metrics": status.get("metrics") or {},
        "storage": spec.storage.to_api(),
    }
    if signature:
        mv_spec["signature"] = signature
    if reg.aliases:
        mv_spec["aliases"] = list(reg.aliases)
    if reg.validation:
        mv_spec["validation"] = reg.validation.to_api()
    return {
        "apiVersion": API_VERSION, "kind": "ModelVersion",
        "metadata": {
            "name": model_version_name(reg.name, version), "namespace": namespace,
            "labels": {MODEL_LABEL: reg.name, TRAININGJOB_LABEL: tj_name, TRAININGJOB_UID_LABEL: uid,
                       "app.kubernetes.io/managed-by": "mlcycle"},
        },
        "spec": mv_spec,
    }
