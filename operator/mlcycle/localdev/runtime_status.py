"""Pod status as kubelet reports it, computed from the local runtime's view of its processes (pure)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


@dataclass
class Run:
    """One container as the runtime knows it. Exactly one of waiting / running_since / terminated is set."""

    name: str
    image: str
    waiting: tuple[str, str] | None = ("ContainerCreating", "")  # (reason, message)
    running_since: str | None = None
    terminated: dict | None = None  # the final state; a container that will restart is waiting instead
    last_terminated: dict | None = None
    container_id: str = ""
    restart_count: int = 0
    started: bool = False
    ready: bool = False

    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated["exitCode"] == 0


def exit_code(returncode: int) -> int:
    """Popen's returncode (negative for a signal) as a container exit code (128 + signal)."""
    return 128 - returncode if returncode < 0 else returncode


def terminated_state(returncode: int, message: str, started_at: str, finished_at: str,
                     container_id: str) -> dict:
    code = exit_code(returncode)
    state = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started_at,
             "finishedAt": finished_at, "containerID": container_id}
    if returncode < 0:
        state["signal"] = -returncode
    if message:
        state["message"] = message
    return state


def start_error_state(message: str, at: str) -> dict:
    """What containerd reports for a process that could not be exec'd."""
    return {"exitCode": 128, "reason": "StartError", "message": message, "startedAt": at, "finishedAt": at}


def termination_message(file_content: bytes, log_tail: bytes, policy: str, code: int) -> str:
    """The termination message: the file's first 4 KiB, or with FallbackToLogsOnError the log's last
    80 lines (at most 2 KiB) when the file is empty and the container failed."""
    message = file_content[:MAX_MESSAGE_BYTES]
    if not message.strip() and policy == "FallbackToLogsOnError" and code != 0:
        message = b"\n".join(log_tail.splitlines()[-FALLBACK_LOG_LINES:])[-FALLBACK_LOG_BYTES:]
    return message.decode("utf-8", errors="replace")


def container_status(run: Run, image_id: str) -> dict:
    if run.waiting is not None:
        reason, message = run.waiting
        state: dict = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    elif run.running_since is not None:
        state = {"running": {"startedAt": run.running_since}}
    else:
        state = {"terminated": run.terminated}
    status = {"name": run.name, "image": run.image, "imageID": image_id, "state": state,
              "lastState": {"terminated": run.last_terminated} if run.last_terminated else {},
              "ready": run.ready, "started": run.started, "restartCount": run.restart_count}
    if run.container_id:
        status["containerID"] = run.container_id
    return status


def pod_phase(init_runs: list[Run], runs: list[Run], restart_policy: str) -> str:
    """kubelet's phase: Pending until every init container succeeded and every container started once;
    terminal when no container runs or will restart; Running otherwise."""
    if restart_policy == "Never" and any(r.terminated and not r.succeeded() for r in init_runs):
        return "Failed"
    if not all(r.succeeded() for r in init_runs):
        return "Pending"
    if any(r.running_since for r in runs):
        return "Running"
    if any(r.waiting and r.restart_count == 0 and r.last_terminated is None for r in runs):
        return "Pending"
    if all(r.terminated for r in runs):
        if all(r.succeeded() for r in runs):
            return "Succeeded" if restart_policy != "Always" else "Running"
        if restart_policy == "Never":
            return "Failed"
    return "Running"


def merge_conditions(previous: list[dict], wanted: dict[str, tuple[bool, str]], at: str) -> list[dict]:
    """The pod's conditions: ours set to `wanted` (type → (status, reason)), keeping lastTransitionTime
    while a status holds and every condition other writers own (DisruptionTarget, readiness gates)."""
    old = {c["type"]: c for c in previous}
    out = [c for c in previous if c["type"] not in wanted]
    for type_, (ok, reason) in wanted.items():
        status = "True" if ok else "False"
        kept = type_ in old and old[type_].get("status") == status and old[type_].get("lastTransitionTime")
        cond = {"type": type_, "status": status, "lastProbeTime": None,
                "lastTransitionTime": old[type_]["lastTransitionTime"] if kept else at}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    return out


def pod_conditions(phase: str, init_runs: list[Run], runs: list[Run], previous: list[dict],
                   readiness_gates: list[str], at: str) -> list[dict]:
    terminal = phase in ("Succeeded", "Failed")
    initialized = all(r.succeeded() for r in init_runs)
    containers_ready = not terminal and all(r.ready for r in runs)
    gates = {c["type"]: c.get("status") == "True" for c in previous}
    ready = containers_ready and all(gates.get(g, False) for g in readiness_gates)
    not_ready = "PodCompleted" if terminal else "ContainersNotReady"
    return merge_conditions(previous, {
        "PodReadyToStartContainers": (not terminal, ""),
        "Initialized": (initialized, "" if initialized else "ContainersNotInitialized"),
        "ContainersReady": (containers_ready, "" if containers_ready else not_ready),
        "Ready": (ready, "" if ready else ("ReadinessGatesNotReady" if containers_ready else not_ready)),
        "PodScheduled": (True, ""),
    }, at)
