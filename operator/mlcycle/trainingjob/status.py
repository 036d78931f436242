"""A TrainingJob's status, computed from what is observed: its Job and the Job's pods."""

from __future__ import annotations

import json
import re
from datetime import datetime

from pydantic import ValidationError

from mlcycle import clock
from mlcycle.api.base import MAX_ITEMS, MAX_NAME, S3_URI_PATTERN, SHA256_PATTERN
from mlcycle.api.modelversion import Evaluation
from mlcycle.api.trainingjob import DATA_VALIDATED, DATA_VALIDATION_FAILED, DATA_VALIDATION_PASSED
from mlcycle.conditions import condition, kstatus, merge_conditions
from mlcycle.modelversion import gates
from mlcycle.pods import job_condition, termination_message
from mlcycle.training import EPOCH, is_finite_number
from mlcycle.trainingjob import datavalidation
from mlcycle.trainingjob.manifests import COMPLETION_INDEX

FINISHED = ("Succeeded", "Failed")
# An unfinished job is reconciled again after this long without an event, so a failure is retried anyway.
RESYNC_SECONDS = 60.0


def observed_pod(pod: dict) -> dict:
    """The parts of a pod that a TrainingJob's status is computed from (what the operator keeps of each pod)."""
    meta, status = pod["metadata"], pod.get("status") or {}
    return {"apiVersion": pod.get("apiVersion"), "kind": pod.get("kind"),
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations", "resourceVersion")
                         if k in meta},
            "status": {k: status[k] for k in ("phase", "conditions", "initContainerStatuses", "containerStatuses")
                       if k in status}}


def pod_problem(pod: dict) -> tuple[str, str] | None:
    """(reason, message) for a pod that cannot make progress or has failed, as a person would want it."""
    status = pod.get("status", {})
    name = pod["metadata"]["name"]
    for cond in status.get("conditions") or []:
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond.get("reason") == "Unschedulable":
            return "Unschedulable", f"pod {name} cannot be scheduled: {cond.get('message', '')}"
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                                     "InvalidImageName", "CreateContainerError", "CrashLoopBackOff"):
            return waiting["reason"], f"pod {name} container {cs['name']}: {waiting.get('message', '')}".strip()
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            reason = terminated.get("reason") or "Error"
            msg = _own_message(terminated) or termination_message(pod) or {}
            detail = msg.get("error", {}).get("message") if isinstance(msg.get("error"), dict) else msg.get("log")
            if reason == "OOMKilled":
                return "OOMKilled", f"pod {name} ran out of memory (OOMKilled); raise spec.resources.memory"
            code = terminated.get("exitCode")
            trainer_reason = msg.get("error", {}).get("reason") if isinstance(msg.get("error"), dict) else None
            return trainer_reason or reason, f"pod {name} exited with code {code}" + (f": {detail}" if detail
                                                                                    else "")
    return None


def _own_message(terminated: dict) -> dict | None:
    """The JSON termination message of this container (an init container's too), if it left one."""
    try:
        parsed = json.loads(terminated.get("message") or "")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _worker_zero(pods: list[dict]) -> dict | None:
    succeeded = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
    indexed = [p for p in succeeded if p["metadata"].get("annotations", {}).get(COMPLETION_INDEX) == "0"]
    return (indexed or succeeded or [None])[0]


def reported_results(result: dict) -> dict:
    """What a (possibly user-written) termination message reports, kept only where the status schema accepts
    it: one bad field must not make the apiserver refuse the whole status write."""
    out: dict = {}
    metrics = {k: v for k, v in (result.get("metrics") or {}).items()
               if isinstance(k, str) and len(k) <= MAX_NAME and is_finite_number(v)} if isinstance(
        result.get("metrics"), dict) else {}
    if metrics:
        out["metrics"] = dict(list(metrics.items())[:MAX_ITEMS])
    art = result.get("artifact")
    if isinstance(art, dict) and isinstance(art.get("uri"), str) and re.match(S3_URI_PATTERN, art["uri"]):
        out["artifact"] = {"uri": art["uri"]}
        if isinstance(art.get("digest"), str) and re.match(SHA256_PATTERN, art["digest"]):
            out["artifact"]["digest"] = art["digest"]
        if isinstance(art.get("size"), int) and not isinstance(art["size"], bool) and art["size"] >= 0:
            out["artifact"]["size"] = art["size"]
    digest = result.get("datasetDigest")
    if isinstance(digest, str) and re.match(SHA256_PATTERN, digest):
        out["datasetDigest"] = digest
    if result.get("evaluation"):
        try:
            out["evaluation"] = Evaluation.model_validate(result["evaluation"]).to_api()
        except ValidationError:
            pass  # a hand-written malformed evaluation: no slice results rather than a refused status write
    return out


def key_metric(spec, metrics: dict | None) -> str | None:
    """`name=value` for `kubectl get trainingjobs`: the metric the registration gate compares, else the first
    validation metric (val_*), else the first."""
    validation = spec.register_model.validation if spec and spec.register_model else None
    names = sorted(set(metrics or {}) - {EPOCH})  # the final metrics carry the epoch they are from
    return gates.named_metric(metrics, gates.gated_metrics(validation) + [n for n in names if n.startswith("val_")]
                              + names)


def ttl_remaining(spec, status: dict, now: datetime) -> float | None:
    """Seconds until spec.runPolicy.ttlSecondsAfterFinished passes (<= 0: it has); None without a TTL or
    before the job finished."""
    ttl = spec.run_policy.ttl_seconds_after_finished if spec else None
    if ttl is None or status["phase"] not in FINISHED or not status.get("completionTime"):
        return None
    return ttl - (now - clock.parse(status["completionTime"])).total_seconds()


def next_reconcile(spec, status: dict, now: datetime, registration_retry: float | None) -> float | None:
    """Seconds until the job needs a reconcile that no event brings: its resync while unfinished, its TTL
    when finished, a registration retry (`registration_retry`, when one is due); None when nothing is."""
    delays = [RESYNC_SECONDS] if status["phase"] not in FINISHED else []
    ttl = ttl_remaining(spec, status, now)
    delays += [d for d in (ttl, registration_retry) if d is not None]
    return min(delays, default=None)


def ttl_expired(spec, status: dict, now: datetime) -> bool:
    """Whether spec.runPolicy.ttlSecondsAfterFinished has passed since the job finished."""
    remaining = ttl_remaining(spec, status, now)
    return remaining is not None and remaining <= 0


def training_status(spec, generation: int, job: dict | None, pods: list[dict], previous: dict | None,
                    invalid: list[str] | None = None, missing: list[str] | None = None) -> dict:
    """The whole status for one observation. `previous` keeps results a deleted pod can no longer give.
    `invalid`: spec errors (the job fails); `missing`: objects the spec names that the cluster lacks (the job
    is Stalled while it has not started: its pods cannot be created until someone creates them)."""
    previous = previous or {}
    status: dict = {"observedGeneration": generation}
    for kept in ("metrics", "artifact", "datasetDigest", "modelVersionRef", "startTime", "completionTime",
                 "dataValidation", "evaluation"):
        if previous.get(kept) is not None:
            status[kept] = previous[kept]

    if invalid:
        phase, reason, message = "Failed", "InvalidSpec", "; ".join(invalid)
    elif job is None:
        phase, reason, message = "Pending", "Creating", "creating the Job for the workers"
    else:
        js = job.get("status", {})
        status["workers"] = {"active": js.get("active", 0), "ready": js.get("ready", 0) or 0,
                             "succeeded": js.get("succeeded", 0), "failed": js.get("failed", 0)}
        if js.get("startTime"):
            status["startTime"] = js["startTime"]
        status["attempts"] = (1 if js.get("startTime") else 0) + js.get("failed", 0)
        problems = [p for p in map(pod_problem, pods) if p]
        complete, failed = job_condition(job, "Complete"), job_condition(job, "Failed")
        if complete:
            phase, reason = "Succeeded", "Succeeded"
            status["completionTime"] = js.get("completionTime") or complete.get("lastTransitionTime")
            status |= reported_results(termination_message(_worker_zero(pods) or {}) or {})
            message = "training finished" + (
                f"; {', '.join(f'{k}={v:.4g}' for k, v in sorted(status.get('metrics', {}).items()))}"
                if status.get("metrics") else "")
        elif failed:
            phase = "Failed"
            status["completionTime"] = failed.get("lastTransitionTime")
            reason = failed.get("reason") or "Failed"
            message = failed.get("message") or "the Job failed"
            if reason == "DeadlineExceeded":
                message = f"DeadlineExceeded: ran longer than spec.runPolicy.activeDeadlineSeconds; {message}"
            if problems:
                reason, detail = problems[0] if reason == "BackoffLimitExceeded" else (reason, problems[0][1])
                message = f"{detail} ({failed.get('reason')}: {failed.get('message', '')})"
        elif job.get("spec", {}).get("suspend"):
            phase, reason = "Suspended", "Suspended"
            message = ("suspended by spec.runPolicy.suspend" if spec.run_policy.suspend
                       else "the Job is suspended by another controller (e.g. a Kueue queue); waiting for it")
        elif js.get("active", 0) and any(p.get("status", {}).get("phase") == "Running" for p in pods):
            phase, reason = "Running", "Running"
            message = f"{js.get('ready', 0) or 0}/{spec.workers} workers ready"
            if problems:
                reason, message = problems[0][0], f"{message}; {problems[0][1]}"
        elif previous.get("phase") == "Running":
            # A phase only moves forward: between a worker's exit and the Job counting it (or while a failed
            # worker is replaced) no pod runs, but the job has started: still Running, not Pending again.
            phase, reason = "Running", problems[0][0] if problems else "Running"
            message = problems[0][1] if problems else f"{js.get('ready', 0) or 0}/{spec.workers} workers ready"
        else:
            phase, reason = "Pending", "Pending"
            message = problems[0][1] if problems else "waiting for the workers to start"
            if problems:
                reason = problems[0][0]

    validated = datavalidation.validation_result(pods) or previous.get("dataValidation")
    if validated:
        status["dataValidation"] = validated
        if phase == "Failed" and validated["result"] == DATA_VALIDATION_FAILED:
            reason = DATA_VALIDATION_FAILED
            message = f"the dataset fails spec.dataValidation: {validated.get('message', '')}" + (
                f" (report: {validated['reportUri']})" if validated.get("reportUri") else "")

    stalled = phase == "Failed"
    if missing and phase == "Pending":
        reason, message, stalled = "ReferenceNotFound", "; ".join(missing), True
    status["phase"] = phase
    status["message"] = message
    if key := key_metric(spec, status.get("metrics")):
        status["keyMetric"] = key
    in_progress = phase in ("Pending", "Running") and not stalled
    conds = kstatus(phase == "Succeeded", in_progress, stalled, reason, message, generation)
    conds += [
        condition("Running", phase == "Running", reason, message if phase == "Running" else "", generation),
        condition("Succeeded", phase == "Succeeded", reason if phase == "Succeeded" else "NotSucceeded", "",
                  generation),
        condition("Failed", phase == "Failed", reason if phase == "Failed" else "NotFailed",
                  message if phase == "Failed" else "", generation),
        condition("Suspended", phase == "Suspended", reason if phase == "Suspended" else "NotSuspended",
                  message if phase == "Suspended" else "", generation),
    ]
    if spec is not None and spec.data_validation is not None:
        conds.append(_validated_condition(validated, generation))
    status["conditions"] = merge_conditions(previous.get("conditions"), conds)
    return status


def _validated_condition(validated: dict | None, generation: int) -> dict:
    """DataValidated: True once the dataset met spec.dataValidation, False when it did not, Unknown before."""
    if validated is None:
        return condition(DATA_VALIDATED, "Unknown", "Validating", "the dataset is not validated yet", generation)
    passed = validated["result"] == DATA_VALIDATION_PASSED
    return condition(DATA_VALIDATED, passed, validated["result"], validated.get("message", ""), generation)
