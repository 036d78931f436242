"""What the operator keeps in memory of the objects a model's status depends on: each ModelVersion, each
InferenceService and each verification Job, cut down to the fields the status computation, the verification
and the writes read. A watch event's body carries much more (managedFields, kopf's annotations, a whole pod
template); kept whole for every object it would be most of the operator's memory."""

from __future__ import annotations

import copy

from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION
from mlcycle.api.modelversion import KIND
from mlcycle.modelversion.verification import ANNOTATION

_VERSION_META = ("name", "namespace", "uid", "generation", "resourceVersion", "labels", "finalizers",
                 "deletionTimestamp")


def _meta(body, fields: tuple[str, ...], annotations: tuple[str, ...]) -> dict:
    meta = body["metadata"]
    out = {k: copy.deepcopy(meta[k]) for k in fields if meta.get(k) is not None}
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in annotations}
    return out | ({"annotations": kept} if kept else {})


def version(body) -> dict:
    """A ModelVersion: its metadata that the operator reads or writes, spec and status."""
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": _meta(body, _VERSION_META, (ANNOTATION,)),
            "spec": copy.deepcopy(body.get("spec") or {}), "status": copy.deepcopy(body.get("status") or {})}


def inference_service(body) -> dict:
    """An InferenceService: which models and versions it refers to and serves (modelversion/status.how_served)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    slim_spec = {k: copy.deepcopy(spec[k]) for k in ("model",) if spec.get(k)}
    if (spec.get("canary") or {}).get("model"):
        slim_spec["canary"] = {"model": copy.deepcopy(spec["canary"]["model"])}
    return {"metadata": _meta(body, ("name", "namespace"), ()), "spec": slim_spec,
            "status": {k: status[k] for k in ("servedModelVersion", "canaryModelVersion") if status.get(k)}}


def job(body) -> dict:
    """A verification Job: the spec it verifies (the fingerprint annotation) and whether it finished."""
    conditions = (body.get("status") or {}).get("conditions") or []
    return {"metadata": _meta(body, ("name", "namespace", "deletionTimestamp"), (keys.FINGERPRINT_ANNOTATION,)),
            "status": {"conditions": copy.deepcopy(conditions)}}
