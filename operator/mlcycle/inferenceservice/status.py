"""One reconcile of an InferenceService as a pure function: from the spec, the model's versions and the
observed children, what to apply, what to delete and the status.

A new version (alias moved, version changed) gets its own Deployment next to the one serving. The Service
switches to it only once all its replicas are ready with the model loaded; the old Deployment then drains
for `drain_seconds` (connections opened before the switch finish) and is removed. A version that is not
Ready is never served, and a version that cannot start (digest mismatch, model fails to load, no node)
never takes traffic from the one serving: status says which and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from mlcycle.api.inferenceservice import MODEL_VERSION_LABEL, InferenceServiceSpec
from mlcycle.conditions import condition, kstatus, merge_conditions
from mlcycle.inferenceservice import deployment as dep
from mlcycle.inferenceservice.hpa import desired_hpa, hpa_name
from mlcycle.inferenceservice.resolve import resolve
from mlcycle.inferenceservice.service import desired_service, urls
from mlcycle.inferenceservice.tritonconfig import ServingConfigError, model_layout

# Status fields other parts of the operator own (drift checks, retraining): carried over unchanged.
CARRIED = ("drift", "retrain", "rollout", "canaryModelVersion")
# Container waiting reasons that need a person, as kubelet reports them.
STUCK_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError")


@dataclass
class Plan:
    apply: list[dict] = field(default_factory=list)
    delete: list[tuple[str, str, str]] = field(default_factory=list)  # (apiVersion, kind, name)
    status: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None  # seconds until something is due (a drain ending)


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _error_of(message: str | None) -> tuple[str | None, str]:
    """(reason, text) from a termination message: our workloads' JSON error, or Triton's last log lines."""
    if not message:
        return None, ""
    try:
        doc = json.loads(message)
    except ValueError:
        lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
        # Triton says why a model did not load on a "failed to load" line; otherwise its last error line.
        failed = [ln for ln in lines if "failed to load" in ln.lower()] or [ln for ln in lines if ln[:1] == "E"]
        return None, (failed[-1] if failed else lines[-1] if lines else "")[-500:]
    error = doc.get("error") if isinstance(doc, dict) else None
    return (error.get("reason"), error.get("message", "")) if isinstance(error, dict) else (None, "")


def pod_problem(pod: dict) -> tuple[str, str] | None:
    """(reason, message) of a serving pod that cannot become ready, as a person would want it: the
    init container's reason (DigestMismatch, ArtifactNotFound…), Triton's load error, image, scheduling."""
    status, name = pod.get("status") or {}, pod["metadata"]["name"]
    for cond in status.get("conditions") or []:
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return "Unschedulable", f"pod {name} cannot be scheduled: {cond.get('message', '')}"
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            return waiting["reason"], f"pod {name} container {cs['name']}: {waiting.get('message', '')}".strip()
        terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            reason, text = _error_of(terminated.get("message"))
            if terminated.get("reason") == "OOMKilled":
                return "OOMKilled", f"pod {name} container {cs['name']} ran out of memory; raise spec.resources.memory"
            if cs["name"] == "triton":
                return reason or "ModelLoadFailed", f"Triton in pod {name} exited ({terminated.get('exitCode')}): " \
                                                    f"{text or 'see the container log'}"
            return reason or "InitFailed", f"pod {name} container {cs['name']}: {text or terminated.get('reason')}"
    return None


def _ready_replicas(deployment: dict | None) -> int:
    return ((deployment or {}).get("status") or {}).get("readyReplicas", 0) or 0


def _rolled_out(deployment: dict | None, replicas: int) -> bool:
    """All `replicas` of the Deployment's current template are ready (so its model is loaded everywhere)."""
    if deployment is None:
        return False
    st, meta = deployment.get("status") or {}, deployment["metadata"]
    if st.get("observedGeneration", 0) < meta.get("generation", 1):
        return False
    return (st.get("updatedReplicas", 0) or 0) >= replicas and _ready_replicas(deployment) >= max(replicas, 1) \
        if replicas else True


def plan(isvc: dict, versions: list[dict], deployments: list[dict], pods: list[dict], hpa: dict | None,
         image: str, now: datetime, drain_seconds: float) -> Plan:
    meta, old = isvc["metadata"], isvc.get("status") or {}
    name, namespace, uid, generation = meta["name"], meta["namespace"], meta["uid"], meta.get("generation")
    out = Plan()
    status: dict = {k: old[k] for k in CARRIED if k in old} | {"observedGeneration": generation}
    try:
        spec = InferenceServiceSpec.model_validate(isvc["spec"])
    except ValidationError as e:
        errors = "; ".join(f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        out.status = _finish(status, old, "Failed", "InvalidSpec", errors, False, True, generation, None)
        return out

    by_version = {mv["metadata"]["name"]: mv for mv in versions}
    by_deployment = {d["metadata"]["name"]: d for d in deployments}
    served = old.get("servedModelVersion")
    if served and dep.deployment_name(name, served) not in by_deployment and served not in by_version:
        served = None  # neither its pods nor its ModelVersion exist any more: nothing to keep serving
    resolution = resolve(spec.model, versions)
    target = resolution.version["metadata"]["name"] if resolution.version else None
    replicas = spec.replicas

    def deploy(version_name: str) -> str | None:
        """Apply the version's Deployment; a reason/message problem when it cannot be served."""
        mv = by_version.get(version_name)
        if mv is None:
            return None  # its ModelVersion is gone: leave the running Deployment as it is
        version = dep.ServedVersion.from_model_version(mv)
        layout = model_layout(version.model_name, version.artifact_format, version.signature, spec.runtime,
                              spec.resources.gpus)
        out.apply.append(dep.desired_deployment(name, namespace, uid, spec, version, layout, replicas, image))
        return version_name

    problem: tuple[str, str] | None = None
    keep = set()
    if served:
        try:
            deploy(served)
        except ServingConfigError as e:
            problem = ("InvalidServingConfig", str(e))
    switched_from = None
    if target and target != served:
        try:
            deploy(target)
            keep.add(dep.deployment_name(name, target))
            candidate = by_deployment.get(dep.deployment_name(name, target))
            if served is None or _rolled_out(candidate, replicas):
                switched_from, served = served, target
            else:
                target_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(MODEL_VERSION_LABEL)
                               == dep.bounded(target)]
                problem = next(filter(None, map(pod_problem, target_pods)), None)
        except ServingConfigError as e:
            problem = ("InvalidServingConfig", str(e))

    if served:
        keep.add(dep.deployment_name(name, served))
        out.apply.append(desired_service(name, namespace, uid, served))
    if spec.autoscaling:
        out.apply.append(desired_hpa(name, namespace, uid, spec.autoscaling))
    elif hpa is not None:
        out.delete.append(("autoscaling/v2", "HorizontalPodAutoscaler", hpa_name(name)))

    # Deployments of versions no longer wanted go; the one that served until the last switch drains first.
    previous = switched_from or old.get("previousModelVersion")
    last_switch = now if switched_from else _parse_ts(old.get("lastSwitchTime"))
    for dname in sorted(set(by_deployment) - keep):
        if previous and dname == dep.deployment_name(name, previous) and last_switch:
            left = drain_seconds - (now - last_switch).total_seconds()
            if left > 0:
                out.requeue_after = left
                continue
        out.delete.append(("apps/v1", "Deployment", dname))
    draining = previous and dep.deployment_name(name, previous) in by_deployment and \
        ("apps/v1", "Deployment", dep.deployment_name(name, previous)) not in out.delete
    if previous and draining:
        status["previousModelVersion"] = previous
    if last_switch:
        status["lastSwitchTime"] = _ts(last_switch)

    served_deployment = by_deployment.get(dep.deployment_name(name, served)) if served else None
    ready = _ready_replicas(served_deployment)
    if served and problem is None and ready < replicas:
        served_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(MODEL_VERSION_LABEL)
                       == dep.bounded(served)]
        problem = next(filter(None, map(pod_problem, served_pods)), None)
    if served:
        status["url"], status["grpcUrl"] = urls(name, namespace)
        status["servedModelVersion"] = served
        status["selector"] = dep.selector_string(name, served)
        status["traffic"] = [{"modelVersion": served, "percent": 100}]
    status["replicas"] = ((served_deployment or {}).get("status") or {}).get("replicas", 0) or 0
    status["readyReplicas"] = ready

    # Phase, reason and message, as a person wants to read them.
    waiting_for = None if resolution.version else resolution
    if served and ready:
        phase, reason = "Ready", "Serving"
        message = f"serving {served} ({ready}/{replicas} replicas ready)"
        if target and target != served:
            message += f"; rolling out {target}"
        if waiting_for:
            message += f"; {waiting_for.message}"
        if problem:
            message += f"; {problem[0]}: {problem[1]}"
        in_progress = target != served or ready < replicas or bool(draining)
    elif served and replicas == 0:
        phase, reason, message, in_progress = "Ready", "ScaledToZero", f"{served} is scaled to 0 replicas", False
    elif problem:
        phase, reason, message, in_progress = "Failed", problem[0], problem[1], False
    elif served:
        phase, reason, in_progress = "Loading", "Loading", True
        message = f"loading {served}: waiting for a replica with the model loaded"
    else:
        phase, reason, message, in_progress = "Pending", waiting_for.reason, waiting_for.message, True
    if served and ready:
        loaded = condition("ModelLoaded", True, "Loaded", f"{served} loaded on {ready}/{replicas} replicas", generation)
    else:
        loaded = condition("ModelLoaded", False, *(problem or (reason, message)), generation)
    out.status = _finish(status, old, phase, reason, message, in_progress, problem is not None, generation, loaded,
                         ready=bool(served and (ready or replicas == 0)))
    out.events = _events(old, out.status, switched_from, problem)
    return out


def _finish(status: dict, old: dict, phase: str, reason: str, message: str, in_progress: bool, stalled: bool,
            generation: int | None, loaded: dict | None, ready: bool = False) -> dict:
    conds = kstatus(ready, in_progress, stalled, reason, message, generation)
    if loaded:
        conds.append(loaded)
    return status | {"phase": phase, "message": message,
                     "conditions": merge_conditions(old.get("conditions"), conds)}


def _events(old: dict, new: dict, switched_from: str | None, problem: tuple[str, str] | None) -> list:
    events = []
    if switched_from and new.get("servedModelVersion"):
        events.append(("Normal", "Switched", f"traffic moved from {switched_from} to {new['servedModelVersion']}"))
    if old.get("phase") != new["phase"]:
        events.append(("Warning" if new["phase"] == "Failed" else "Normal", new["phase"], new["message"]))
    old_loaded = next((c for c in old.get("conditions") or [] if c["type"] == "ModelLoaded"), {})
    if problem and old_loaded.get("reason") != problem[0] and new["phase"] != "Failed":
        events.append(("Warning", problem[0], problem[1]))
    return events
