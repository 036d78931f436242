"""The ModelVersion a succeeded TrainingJob registers. It has no owner reference: a registry entry must
outlive the job that produced it. Lineage goes in labels and spec.source."""

from __future__ import annotations

from mlcycle import names
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION
from mlcycle.api.trainingjob import TrainingJobSpec
from mlcycle.trainingjob.manifests import output_uri


def model_version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


# Another job may take the next number between our list and our create: then the numbers after it are tried.
CANDIDATES = 5


def next_version(existing: list[dict]) -> int:
    return 1 + max((mv["spec"]["version"] for mv in existing), default=0)


def candidate_versions(existing: list[dict]) -> list[int]:
    """The version numbers to try creating, in order, given the model's existing versions."""
    first = next_version(existing)
    return list(range(first, first + CANDIDATES))


def registered_by(existing: list[dict], uid: str) -> list[dict]:
    """The versions a TrainingJob (by uid) registered already: it registers once."""
    return [mv for mv in existing if (mv["metadata"].get("labels") or {}).get(keys.TRAININGJOB_UID) == uid]


def written_by_run(spec: TrainingJobSpec, uid: str, artifact_uri: str) -> bool:
    """Whether the artifact lies under the run's own output prefix (where the operator told it to write), not
    wherever a user image's termination message says."""
    return artifact_uri.startswith(output_uri(spec, uid) + "/")


def due(spec: TrainingJobSpec | None, status: dict) -> bool:
    """Whether the job should register (or find) its ModelVersion now."""
    return bool(spec and spec.register_model and status["phase"] == "Succeeded" and not status.get("modelVersionRef"))


def signature_uri(artifact_uri: str) -> str:
    """The trainer writes signature.json next to the model file."""
    return artifact_uri.rsplit("/", 1)[0] + "/signature.json"


def profile_uri(artifact_uri: str) -> str:
    """The trainer writes reference_profile.json (what drift checks compare with) next to the model file."""
    return artifact_uri.rsplit("/", 1)[0] + "/reference_profile.json"
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
    if status.get("evaluation"):
        mv_spec["evaluation"] = status["evaluation"]
    return {
        "apiVersion": API_VERSION, "kind": "ModelVersion",
        "metadata": {
            "name": model_version_name(reg.name, version), "namespace": namespace,
            "labels": {keys.MODEL: reg.name, keys.TRAININGJOB: names.label_value(tj_name),
                       keys.TRAININGJOB_UID: uid} | keys.MANAGED_BY,
        },
        "spec": mv_spec,
    }
