"""Which ModelVersion an InferenceService's `spec.model` points at now, and whether it may be served."""

from __future__ import annotations

from dataclasses import dataclass

from mlcycle.api.inferenceservice import ModelRef


@dataclass(frozen=True)
class Resolution:
    version: dict | None  # the Ready ModelVersion to serve, or None
    reason: str  # why not, when version is None
    message: str


def resolve(ref: ModelRef, versions: list[dict]) -> Resolution:
    """The version `ref` names among the model's `versions`; only a Ready one is ever served."""
    mine = [mv for mv in versions if mv["spec"].get("modelName") == ref.name]
    if ref.version is not None:
        found = next((mv for mv in mine if mv["spec"].get("version") == ref.version), None)
        if found is None:
            return Resolution(None, "ModelVersionNotFound",
                              f"no ModelVersion of model {ref.name} has version {ref.version} (spec.model.version)")
    else:
        found = next((mv for mv in mine if ref.alias in ((mv.get("status") or {}).get("aliases") or [])), None)
        if found is None:
            return Resolution(None, "AliasNotAssigned", f"no Ready ModelVersion of model {ref.name} holds alias "
                                                        f"{ref.alias} yet (spec.model.alias)")
    status = found.get("status") or {}
    if status.get("phase") != "Ready" or found["metadata"].get("deletionTimestamp"):
        phase = "Deleting" if found["metadata"].get("deletionTimestamp") else status.get("phase") or "Pending"
        detail = f": {status['message']}" if status.get("message") else ""
        return Resolution(None, "ModelVersionNotReady",
                          f"ModelVersion {found['metadata']['name']} is {phase}{detail}; it is not served")
    return Resolution(found, "Resolved", f"ModelVersion {found['metadata']['name']}")
