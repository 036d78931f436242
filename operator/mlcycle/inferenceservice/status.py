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

from mlcycle import names
from mlcycle.api.inferenceservice import InferenceServiceSpec, RolloutStatus
from mlcycle.api.labels import MODEL_VERSION, ROLLOUT_ACTION_ANNOTATION
from mlcycle.conditions import condition, kstatus, merge_conditions
from mlcycle.inferenceservice import deployment as dep
from mlcycle.inferenceservice.analysis import Measurement
from mlcycle.inferenceservice.cronjob import cronjob_name
from mlcycle.inferenceservice.hpa import desired_hpa, hpa_name
from mlcycle.inferenceservice.monitoring import monitoring
from mlcycle.inferenceservice.performance_status import Gauges
from mlcycle.inferenceservice.resolve import resolve
from mlcycle.inferenceservice.rollout import Observation, next_rollout
from mlcycle.inferenceservice.service import canary_url, desired_service, service_name, urls
from mlcycle.inferenceservice.tritonconfig import ServingConfigError, model_layout

# Status fields carried over unless this reconcile recomputes them.
CARRIED = ("drift", "retrain", "rollout")
# Container waiting reasons that need a person, as kubelet reports them.
STUCK_WAITING = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError")


@dataclass(frozen=True)
class Split:
    """What the stable version's agents do with the candidate's share (their PUT /traffic body)."""

    canary_url: str | None = None
    canary_percent: int = 0
    canary_model_version: str | None = None

    def to_api(self) -> dict:
        return {"canaryUrl": self.canary_url, "canaryPercent": self.canary_percent,
                "canaryModelVersion": self.canary_model_version}


@dataclass
class Plan:
    apply: list[dict] = field(default_factory=list)
    delete: list[tuple[str, str, str]] = field(default_factory=list)  # (apiVersion, kind, name)
    status: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None  # seconds until something is due (a drain ending, a rollout step)
    split: Split = field(default_factory=Split)  # pushed to the agents of the served version
    clear_action: bool = False  # the rollout-action annotation was acted on: remove it
    create: dict | None = None  # an object to create once (a retrain's TrainingJob)
    drift_scores: dict[str, tuple[float, bool]] | None = None  # a drift check just finished: for the metrics
    drift_check_time: float | None = None
    performance: Gauges | None = None  # a check with performance just finished: for the metrics

    def due_in(self, seconds: float | None) -> None:
        if seconds is not None:
            self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


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
         image: str, now: datetime, drain_seconds: float, measurement: Measurement | None = None,
         canary_service: dict | None = None, drift_jobs: list[dict] = (), drift_pods: list[dict] = (),
         drift_cronjob: dict | None = None) -> Plan:
    """`measurement`: the rollout candidate's requests since the last analysis, when one was due
    (`analysis_due`). `hpa`, `canary_service` and `drift_cronjob`: the objects if they exist, read only when
    the spec does not want them (so they can be removed). `drift_jobs`/`drift_pods`: the drift checks."""
    meta, old = isvc["metadata"], isvc.get("status") or {}
    name, namespace, uid, generation = meta["name"], meta["namespace"], meta["uid"], meta.get("generation")
    out = Plan()
    status: dict = {k: old[k] for k in CARRIED if k in old} | {"observedGeneration": generation}
    try:
        spec = InferenceServiceSpec.model_validate(isvc["spec"])
    except ValidationError as e:
        errors = "; ".join(f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        out.status = _finish(status, old, "Failed", "InvalidSpec", errors, False, True, generation, [])
        return out

    by_version = {mv["metadata"]["name"]: mv for mv in versions}
    by_deployment = {d["metadata"]["name"]: d for d in deployments}
    replicas = spec.replicas

    def deployment_of(version: str) -> dict | None:
        return by_deployment.get(dep.deployment_name(name, version))

    def problem_of(version: str) -> tuple[str, str] | None:
        mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(MODEL_VERSION) == names.label_value(version)]
        return next(filter(None, map(pod_problem, mine)), None)

    def deploy(version: str) -> None:
        """Apply the version's Deployment (nothing when its ModelVersion is gone: leave what runs)."""
        mv = by_version.get(version)
        if mv is not None:
            served_version = dep.ServedVersion.from_model_version(mv)
            layout = model_layout(served_version.model_name, served_version.artifact_format,
                                  served_version.signature, spec.runtime, spec.resources.gpus)
            out.apply.append(dep.desired_deployment(name, namespace, uid, spec, served_version, layout, replicas,
                                                    image))

    served = old.get("servedModelVersion")
    if served and deployment_of(served) is None and served not in by_version:
        served = None  # neither its pods nor its ModelVersion exist any more: nothing to keep serving
    resolution = resolve(spec.model, versions)
    target = resolution.version["metadata"]["name"] if resolution.version else None
    problem: tuple[str, str] | None = None
    conditions: list[dict] = []
    switched_from = candidate = starting = None
    weight = 0

    try:
        if served:
            deploy(served)
        if spec.rollout is not None and target:
            # Progressive: the candidate walks the steps next to the served version (inferenceservice.rollout).
            previous = RolloutStatus.model_validate(old["rollout"]) if old.get("rollout") else None
            rolling = served is not None and target != served
            if served is None or rolling:
                deploy(target)
            ready = rolling and _rolled_out(deployment_of(target), replicas)
            failure = problem_of(target) if rolling and not ready else None
            decision = next_rollout(spec.rollout, previous, Observation(
                now, generation or 0, served, target, ready, _final(failure), measurement,
                (meta.get("annotations") or {}).get(ROLLOUT_ACTION_ANNOTATION)))
            if decision.status is not None:
                status["rollout"] = decision.status.to_api()
            if decision.condition:
                conditions.append(decision.condition)
            out.events += [(e.type, e.reason, e.message) for e in decision.events]
            out.due_in(decision.requeue_after)
            out.clear_action = decision.action_done
            if served is None:
                served = target  # the first version goes straight in
            elif rolling and decision.promoted:
                switched_from, served = served, target
            elif rolling and decision.status is not None and decision.status.phase in ("Progressing", "Paused"):
                candidate, weight = target, decision.weight
                problem = failure
            else:  # aborted, or not tried again: the candidate's Deployment goes
                out.apply = [o for o in out.apply if o["metadata"]["name"] != dep.deployment_name(name, target)]
        elif target and target != served:
            # Without a rollout: the new version starts beside the served one and takes over once ready.
            deploy(target)
            if served is None or _rolled_out(deployment_of(target), replicas):
                switched_from, served = served, target
            else:
                starting = target
                problem = problem_of(target)
        if spec.canary is not None:
            # A fixed canary: trafficPercent of the requests to another version, once its pods are ready.
            canary = resolve(spec.canary.model, versions)
            name_ = canary.version["metadata"]["name"] if canary.version else None
            if name_ and name_ != served:
                deploy(name_)
                candidate = name_
                ready = _rolled_out(deployment_of(name_), replicas)
                weight = spec.canary.traffic_percent if ready else 0
                trouble = None if ready else problem_of(name_)
                conditions.append(condition("CanaryReady", ready, "Ready" if ready else (trouble or ("Starting",))[0],
                                            f"{name_} receives {weight}%" if ready else
                                            (trouble or ("", f"waiting for the pods of {name_}"))[1], generation))
            else:
                why = canary.message if not name_ else f"{name_} is the served version"
                conditions.append(condition("CanaryReady", False, canary.reason if not name_ else "SameVersion", why,
                                            generation))
    except ServingConfigError as e:
        problem = ("InvalidServingConfig", str(e))

    keep = {dep.deployment_name(name, v) for v in (served, candidate, starting) if v}
    if served:
        out.apply.append(desired_service(name, namespace, uid, served))
    if candidate:
        out.apply.append(desired_service(name, namespace, uid, candidate, canary=True))
        status["canaryModelVersion"] = candidate
        if weight:
            out.split = Split(canary_url(name, namespace), weight, candidate)
    elif canary_service is not None:
        out.delete.append(("v1", "Service", service_name(name, canary=True)))
    watch = monitoring(isvc, spec, by_version.get(served) if served else None, list(drift_jobs), list(drift_pods),
                       now)
    if watch.cronjob is not None:
        out.apply.append(watch.cronjob)
    elif drift_cronjob is not None:
        out.delete.append(("batch/v1", "CronJob", cronjob_name(name)))
    out.create = watch.training_job
    out.drift_scores, out.drift_check_time = watch.scores, watch.check_time
    out.performance = watch.performance
    status.update(watch.status)
    conditions += watch.conditions
    out.events += watch.events
    if spec.autoscaling:
        out.apply.append(desired_hpa(name, namespace, uid, spec.autoscaling))
    elif hpa is not None:
        out.delete.append(("autoscaling/v2", "HorizontalPodAutoscaler", hpa_name(name)))

    # Deployments of versions no longer wanted go; the one that served until the last switch drains first.
    previous_version = switched_from or old.get("previousModelVersion")
    last_switch = now if switched_from else _parse_ts(old.get("lastSwitchTime"))
    draining = False
    for dname in sorted(set(by_deployment) - keep):
        if previous_version and dname == dep.deployment_name(name, previous_version) and last_switch:
            left = drain_seconds - (now - last_switch).total_seconds()
            if left > 0:
                out.due_in(left)
                draining = True
                continue
        out.delete.append(("apps/v1", "Deployment", dname))
    if draining:
        status["previousModelVersion"] = previous_version
    if last_switch:
        status["lastSwitchTime"] = _ts(last_switch)

    served_deployment = deployment_of(served) if served else None
    ready = _ready_replicas(served_deployment)
    if served and problem is None and ready < replicas:
        problem = problem_of(served)
    if served:
        status["url"], status["grpcUrl"] = urls(name, namespace)
        status["servedModelVersion"] = served
        status["selector"] = dep.selector_string(name, served)
        status["traffic"] = [{"modelVersion": served, "percent": 100 - weight}] + (
            [{"modelVersion": candidate, "percent": weight}] if candidate else [])
    status["replicas"] = ((served_deployment or {}).get("status") or {}).get("replicas", 0) or 0
    status["readyReplicas"] = ready

    # Phase, reason and message, as a person wants to read them.
    waiting_for = None if resolution.version else resolution
    rollout_message = (status.get("rollout") or {}).get("message") if spec.rollout and status.get("rollout", {}).get(
        "phase") in ("Progressing", "Paused", "Aborted") and target != served else None
    if served and ready:
        phase, reason = "Ready", "Serving"
        message = f"serving {served} ({ready}/{replicas} replicas ready)"
        if rollout_message:
            message += f"; rollout: {rollout_message}"
        elif target and target != served and not spec.rollout:
            message += f"; rolling out {target}"
        if candidate and spec.canary is not None:
            message += f"; canary {candidate} at {weight}%"
        if waiting_for:
            message += f"; {waiting_for.message}"
        if problem:
            message += f"; {problem[0]}: {problem[1]}"
        in_progress = (target is not None and target != served and not rollout_message) or ready < replicas or \
            draining or bool(rollout_message and "Aborted" != status["rollout"]["phase"])
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
    out.status = _finish(status, old, phase, reason, message, in_progress, problem is not None, generation,
                         [loaded, *conditions], ready=bool(served and (ready or replicas == 0)))
    out.events = _events(old, out.status, switched_from, problem) + out.events
    return out


def _final(problem: tuple[str, str] | None) -> str | None:
    """A candidate's problem that waiting cannot cure, as the rollout's failure text."""
    if problem and problem[0] not in ("Unschedulable", "ErrImagePull", "ImagePullBackOff"):
        return f"{problem[0]}: {problem[1]}"
    return None


def _finish(status: dict, old: dict, phase: str, reason: str, message: str, in_progress: bool, stalled: bool,
            generation: int | None, extra: list[dict], ready: bool = False) -> dict:
    conds = kstatus(ready, in_progress, stalled, reason, message, generation) + extra
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
