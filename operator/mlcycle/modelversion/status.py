"""The status of every version of one model, computed together: aliases make versions depend on each other.

The artifact's verification result is an input (the ArtifactVerified condition, written when a
verification ends, see `artifact_fields`); validation, phase, aliases and servedBy are derived here.
"""

from __future__ import annotations

from pydantic import ValidationError

from mlcycle.api.base import field_errors
from mlcycle.api.modelversion import ModelVersionSpec
from mlcycle.conditions import condition, find, kstatus, merge_conditions
from mlcycle.modelversion import aliases, gates
from mlcycle.modelversion.verification import RETRIED, VerificationFailed, Verified


def artifact_fields(outcome: Verified | VerificationFailed, generation: int, record: dict) -> dict:
    """Status fields that record one verification: the ArtifactVerified condition, and digest and size."""
    if isinstance(outcome, Verified):
        return {"verifiedDigest": outcome.digest, "size": outcome.size, "conditions": [condition(
            "ArtifactVerified", True, "Verified", f"{outcome.digest}, {outcome.size} bytes; {outcome.detail}",
            generation)]}
    message = outcome.message
    if outcome.healable:
        message += f"; retry {record['attempts']} at {record['retryAt']}"
    return {"conditions": [condition("ArtifactVerified", False, outcome.reason, message, generation)]}


def key_metric(spec: ModelVersionSpec) -> str | None:
    """`name=value` of the metric the validation cares most about (else the first), for `kubectl get`."""
    return gates.named_metric(spec.metrics, gates.gated_metrics(spec.validation) + sorted(spec.metrics or {}))


def how_served(mv: dict, held: list[str], isvc: dict) -> list[str]:
    """How an InferenceService uses this version: by number, by an alias the version holds, or as what its
    status reports serving. Empty when it does not."""
    name, spec = mv["metadata"]["name"], mv["spec"]
    isvc_spec, isvc_status = isvc.get("spec") or {}, isvc.get("status") or {}
    ways = []
    for role, ref in (("model", isvc_spec.get("model")), ("canary", (isvc_spec.get("canary") or {}).get("model"))):
        if not ref or ref.get("name") != spec["modelName"]:
            continue
        if ref.get("version") == spec["version"]:
            ways.append(f"{role} version {spec['version']}")
        elif ref.get("alias") in held:
            ways.append(f"{role} alias {ref['alias']}")
    for role, key in (("serving", "servedModelVersion"), ("canary serving", "canaryModelVersion")):
        if isvc_status.get(key) == name:
            ways.append(f"status: {role}")
    return ways


def served_by(mv: dict, held: list[str], isvcs: list[dict]) -> list[str]:
    """Names of the InferenceServices that use this version (see how_served)."""
    return sorted(isvc["metadata"]["name"] for isvc in isvcs if how_served(mv, held, isvc))


def deletion_blocked_message(serving: list[str]) -> str:
    return (f"deletion waits: served by InferenceService(s) {', '.join(serving)}; delete them or point them at "
            "another version")


def _verdict(mv: dict, current_holders: dict[str, str], by_name: dict[str, dict]) -> dict:
    """Phase, reason, message and validation of one version, before aliases are resolved."""
    meta, old = mv["metadata"], mv.get("status") or {}
    generation = meta.get("generation")
    try:
        spec = ModelVersionSpec.model_validate(mv["spec"])
    except ValidationError as e:
        errors = "; ".join(field_errors(e, "spec"))
        return {"phase": "Failed", "reason": "InvalidSpec", "message": errors, "spec": None}
    verified = find(old.get("conditions"), "ArtifactVerified")
    if verified is None or verified["status"] == "Unknown":
        return {"phase": "Verifying", "reason": "Verifying", "message": "verifying the artifact", "spec": spec}
    if verified["status"] == "False":
        return {"phase": "Failed", "reason": verified["reason"], "message": verified["message"], "spec": spec}

    validated = find(old.get("conditions"), "Validated")
    if validated and validated["status"] in ("True", "False") and validated.get("observedGeneration") == \
            generation and old.get("validation") is not None:
        # Validation is decided once per generation: a champion that changes later does not undo it.
        results = old["validation"]
    else:
        champion = spec.validation.champion if spec.validation else None
        holder_name = current_holders.get(champion.alias) if champion else None
        holder = by_name.get(holder_name) if holder_name and holder_name != meta["name"] else None
        results = gates.validation_results(spec.validation, spec.metrics,
                                           (holder_name, holder["spec"].get("metrics") or {}) if holder else None,
                                           spec.evaluation)
    failed = [r for r in results if not r["passed"]]
    if failed:
        message = "rejected: " + "; ".join(f"{r['rule']} failed ({r['message']})" for r in failed)
        return {"phase": "Rejected", "reason": "ValidationFailed", "message": message, "spec": spec,
                "validation": results}
    return {"phase": "Ready", "reason": "Ready", "message": verified["message"], "spec": spec,
            "validation": results}


def _validated_condition(verdict: dict, generation: int | None) -> dict:
    if "validation" not in verdict:
        return condition("Validated", "Unknown", "WaitingForArtifact", "validation runs after verification",
                         generation)
    results = verdict["validation"]
    if verdict["phase"] == "Rejected":
        return condition("Validated", False, "ValidationFailed", verdict["message"], generation)
    return condition("Validated", True, "Passed" if results else "NoRules",
                     f"{len(results)} rule(s) passed" if results else "spec.validation has no rules", generation)


def _alias_condition(conflicting: dict[str, str], versions: dict[str, int], generation: int | None) -> dict:
    if not conflicting:
        return condition("AliasConflict", False, "NoConflict", "", generation)
    held = ", ".join(f"{a} is held by {h} (version {versions[h]})" for a, h in sorted(conflicting.items()))
    return condition("AliasConflict", True, "HeldByHigherVersion",
                     f"{held}: an alias goes to the highest Ready version that asks for it", generation)


def model_statuses(versions: list[dict], isvcs: list[dict]) -> dict[str, dict]:
    """name -> new status, for every version of one model. `isvcs` are the namespace's InferenceServices."""
    by_name = {mv["metadata"]["name"]: mv for mv in versions}
    current_holders = {a: mv["metadata"]["name"] for mv in versions for a in (mv.get("status") or {}).get(
        "aliases") or []}
    verdicts = {name: _verdict(mv, current_holders, by_name) for name, mv in by_name.items()}
    holders = aliases.resolve(versions, {n for n, v in verdicts.items() if v["phase"] == "Ready"})
    numbers = {name: mv["spec"].get("version") for name, mv in by_name.items()}

    statuses = {}
    for name, mv in by_name.items():
        verdict, old = verdicts[name], mv.get("status") or {}
        generation = mv["metadata"].get("generation")
        phase, reason, message = verdict["phase"], verdict["reason"], verdict["message"]
        held = aliases.held_by(holders, name)
        conflicting = aliases.conflicts(mv, holders) if phase == "Ready" else {}
        if phase == "Ready":
            message = "ready" + (f"; aliases: {', '.join(held)}" if held else "") + f"; {message}"
        retrying = phase == "Failed" and reason in RETRIED
        conds = kstatus(phase == "Ready", phase == "Verifying" or retrying,
                        phase in ("Failed", "Rejected") and not retrying, reason, message, generation)
        artifact = find(old.get("conditions"), "ArtifactVerified") or condition(
            "ArtifactVerified", "Unknown", "Verifying", "", generation)
        conds += [artifact, _validated_condition(verdict, generation),
                  _alias_condition(conflicting, numbers, generation)]
        serving = served_by(mv, held, isvcs)
        if mv["metadata"].get("deletionTimestamp") and serving:
            message = deletion_blocked_message(serving)
        status = {"phase": phase, "message": message, "observedGeneration": generation, "aliases": held,
                  "servedBy": serving, "validation": verdict.get("validation", []),
                  "conditions": merge_conditions(old.get("conditions"), conds)}
        if verdict["spec"] is not None:
            status["keyMetric"] = key_metric(verdict["spec"])
        for kept in ("verifiedDigest", "size", "registeredBy"):
            if old.get(kept) is not None:
                status[kept] = old[kept]
        statuses[name] = status
    return statuses


def events(old: dict, new: dict) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Kubernetes Events one status change deserves."""
    posted = []
    if old.get("phase") != new["phase"] and new["phase"] in ("Ready", "Rejected", "Failed"):
        posted.append(("Normal" if new["phase"] == "Ready" else "Warning", new["phase"], new["message"]))
    before, after = set(old.get("aliases") or []), set(new.get("aliases") or [])
    posted += [("Normal", "AliasAssigned", f"now holds alias {a}") for a in sorted(after - before)]
    posted += [("Normal", "AliasRemoved", f"no longer holds alias {a}") for a in sorted(before - after)]
    return posted
