"""What the operator owns in a ModelVersion's metadata (never its spec): labels, the verification record and
the finalizer."""

from __future__ import annotations

import json

from mlcycle import names
from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION
from mlcycle.api.modelversion import KIND
from mlcycle.modelversion.verification import ANNOTATION


def labels(spec: dict) -> dict[str, str]:
    """Labels that let `kubectl get modelversions -l mlcycle.io/model=NAME` list a model, and tie a version to
    its TrainingJob."""
    out = {keys.MODEL: spec["modelName"]}
    training_job = (spec.get("source") or {}).get("trainingJob")
    if training_job:
        out[keys.TRAININGJOB] = names.label_value(training_job)
    return out


def needs_update(mv: dict) -> bool:
    """Whether a (not deleting) version lacks its labels or the finalizer."""
    meta = mv["metadata"]
    missing = labels(mv["spec"]).items() - (meta.get("labels") or {}).items()
    return not meta.get("deletionTimestamp") and bool(missing or keys.FINALIZER not in meta.get("finalizers", []))


def desired(mv: dict, record: dict | None) -> dict:
    """The server-side apply body of what the operator owns in metadata. kopf adds the finalizer too, but only
    once the version's own handler has run, which can be after a sibling's reconcile made it Ready. Never for
    a deleting object: an apply without the finalizer would remove it."""
    meta = mv["metadata"]
    applied = {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "labels": labels(mv["spec"]),
               "finalizers": [keys.FINALIZER]}
    if record:
        applied["annotations"] = {ANNOTATION: json.dumps(record, sort_keys=True)}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": applied}
