"""spec.dataValidation in the TrainingJob's pods and status: the `validate-data` init container every worker
runs before its trainer, the drift reference the operator resolves for it (the data that trained the version
holding an alias, from that version's lineage), and what its termination message says (status.dataValidation,
the DataValidated condition)."""

from __future__ import annotations

import json
import re

from mlcycle.api.base import MAX_ITEMS, MAX_NAME, S3_URI_PATTERN
from mlcycle.api.trainingjob import (
    DATA_VALIDATION_FAILED,
    DATA_VALIDATION_PASSED,
    DATASET_EXTENSIONS,
    VALIDATE_DATA_CONTAINER,
    VALIDATION_FAILED_EXIT_CODE,
    TrainingJobSpec,
)

REFERENCE_ENV = "MLCYCLE_DATA_VALIDATION_REFERENCE"
SPEC_ENV = "MLCYCLE_DATA_VALIDATION"
_MESSAGE_LIMIT = 4096
_FAILURE_MESSAGE_LIMIT = 1024


def drift_reference(spec: TrainingJobSpec, versions: list[dict]) -> dict | None:
    """The reference of spec.dataValidation.drift among the namespace's ModelVersions: the dataset in the
    lineage of the version holding the alias, with its format (from the file's extension, else the job's
    own), or why there is none (`skipped`). None when the spec asks for no drift check."""
    drift = spec.data_validation.drift if spec.data_validation else None
    if drift is None:
        return None
    model = drift.model or spec.register_model.name
    ref: dict = {"alias": drift.against_alias, "model": model}
    holder = next((mv for mv in versions if mv["spec"].get("modelName") == model
                   and drift.against_alias in ((mv.get("status") or {}).get("aliases") or [])), None)
    if holder is None:
        return ref | {"skipped": f"no version of model {model} holds alias {drift.against_alias} yet"}
    ref["modelVersion"] = holder["metadata"]["name"]
    dataset = (holder["spec"].get("source") or {}).get("dataset") or {}
    if not dataset.get("uri"):
        return ref | {"skipped": f"the lineage of {ref['modelVersion']} names no dataset (spec.source.dataset)"}
    uri = dataset["uri"]
    fmt = next((f for f, ends in DATASET_EXTENSIONS.items() if uri.lower().endswith(ends)), spec.dataset.format)
    return ref | {"uri": uri, "format": fmt} | ({"digest": dataset["digest"]} if dataset.get("digest") else {})


def job_reference(job: dict) -> dict | None:
    """The reference an existing Job's validate-data container was given (its pod template cannot change,
    so a champion that moved since does not change it)."""
    for c in (job.get("spec", {}).get("template", {}).get("spec", {}).get("initContainers") or []):
        if c.get("name") == VALIDATE_DATA_CONTAINER:
            value = next((e.get("value") for e in c.get("env") or [] if e.get("name") == REFERENCE_ENV), None)
            return json.loads(value) if value else None
    return None


def validation_container(spec: TrainingJobSpec, env: list[dict], image: str, resources: dict,
                         termination_log: str, reference: dict | None) -> dict:
    """The init container: `mlcycle validate-data` in the mlcycle image, whatever image trains."""
    env = [*env, {"name": SPEC_ENV, "value": json.dumps(spec.data_validation.to_api(), sort_keys=True)}]
    if reference is not None:
        env.append({"name": REFERENCE_ENV, "value": json.dumps(reference, sort_keys=True)})
    return {
        "name": VALIDATE_DATA_CONTAINER,
        "image": image,
        "command": ["mlcycle", "validate-data"],
        "env": env,
        "resources": resources,
        "terminationMessagePath": termination_log,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def pod_failure_policy() -> dict:
    """Data that fails its expectations fails the job at once: a retry would read the same data."""
    return {"rules": [{"action": "FailJob", "onExitCodes": {
        "containerName": VALIDATE_DATA_CONTAINER, "operator": "In", "values": [VALIDATION_FAILED_EXIT_CODE]}}]}


def _reported(doc: dict) -> dict | None:
    """A validate-data result, kept only where the status schema accepts it."""
    if not isinstance(doc, dict) or doc.get("result") not in (DATA_VALIDATION_PASSED, DATA_VALIDATION_FAILED):
        return None
    out: dict = {"result": doc["result"]}
    if isinstance(doc.get("message"), str):
        out["message"] = doc["message"][:_MESSAGE_LIMIT]
    for key in ("rows", "expectations"):
        if isinstance(doc.get(key), int) and not isinstance(doc[key], bool) and doc[key] >= 0:
            out[key] = doc[key]
    if isinstance(doc.get("reportUri"), str) and re.match(S3_URI_PATTERN, doc["reportUri"]):
        out["reportUri"] = doc["reportUri"]
    failures = [{"expectation": f["expectation"][:MAX_NAME], "message": f["message"][:_FAILURE_MESSAGE_LIMIT]}
                | ({"column": f["column"][:MAX_NAME]} if isinstance(f.get("column"), str) else {})
                for f in doc.get("failures") or [] if isinstance(f, dict)
                and isinstance(f.get("expectation"), str) and isinstance(f.get("message"), str)]
    if failures:
        out["failures"] = failures[:MAX_ITEMS]
    return out


def validation_result(pods: list[dict]) -> dict | None:
    """status.dataValidation from the pods' validate-data containers: a failure if any reports one, else
    a pass; None while none has finished."""
    found = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or {}
            if cs.get("name") != VALIDATE_DATA_CONTAINER or not terminated.get("message"):
                continue
            try:
                doc = json.loads(terminated["message"])
            except ValueError:
                continue
            if isinstance(doc, dict) and (result := _reported(doc.get("dataValidation"))):
                found.append(result)
    return next((r for r in found if r["result"] == DATA_VALIDATION_FAILED), found[0] if found else None)
