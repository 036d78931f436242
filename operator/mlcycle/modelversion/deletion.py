"""What `deletionPolicy: Delete` may remove. Whoever may create a ModelVersion can point `artifact.uri` at any
object the referenced Secret's credentials reach; the operator, deleting it, would be a confused deputy. So it
removes only what it wrote itself — an artifact its TrainingJob wrote under the run's own prefix, recorded in
status.registeredBy at registration — unless the Secret's owner opts in with ALLOW_ANNOTATION."""

from __future__ import annotations

from mlcycle.api.labels import ALLOW_ARTIFACT_DELETION_ANNOTATION as ALLOW_ANNOTATION

CONDITION = "ArtifactDeleted"


def refusal(mv: dict, secret: dict | None) -> str | None:
    """Why the artifact must stay, or None when deletionPolicy Delete may remove it."""
    spec, status = mv["spec"], mv.get("status") or {}
    if spec.get("deletionPolicy") != "Delete":
        return None
    if status.get("registeredBy"):
        return None
    annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(ALLOW_ANNOTATION) == "true":
        return None
    return (f"deletionPolicy Delete: {spec['artifact']['uri']} is kept: the operator did not write it (no "
            f"status.registeredBy) and Secret {spec['storage']['secretRef']['name']} does not carry the annotation "
            f'{ALLOW_ANNOTATION}: "true"')
