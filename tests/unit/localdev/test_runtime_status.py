from mlcycle.localdev.runtime_status import (
    Run,
    container_status,
    merge_conditions,
    pod_conditions,
    pod_phase,
    terminated_state,
    termination_message,
)


def done(code: int) -> Run:
    return Run("c", "img", waiting=None, terminated=terminated_state(code, "", "t0", "t1", "local://1"))


def running() -> Run:
    return Run("c", "img", waiting=None, running_since="t0", started=True)


def test_terminated_state_from_returncode():
    assert terminated_state(0, "ok", "a", "b", "id")["reason"] == "Completed"
    killed = terminated_state(-9, "", "a", "b", "id")
    assert killed["exitCode"] == 137 and killed["signal"] == 9 and killed["reason"] == "Error"
    assert "message" not in killed


def test_termination_message_file_then_log_fallback():
    assert termination_message(b"x" * 5000, b"", "File", 1) == "x" * 4096
    assert termination_message(b"", b"a\nb\nboom", "FallbackToLogsOnError", 1) == "a\nb\nboom"
    assert termination_message(b"", b"boom", "FallbackToLogsOnError", 0) == ""
    assert termination_message(b"", b"boom", "File", 1) == ""


def test_phase():
    creating = Run("c", "img")
    assert pod_phase([], [creating], "Never") == "Pending"
    assert pod_phase([creating], [running()], "Never") == "Pending"  # init not done
    assert pod_phase([done(1)], [creating], "Never") == "Failed"
    assert pod_phase([done(1)], [creating], "OnFailure") == "Pending"
    assert pod_phase([done(0)], [running()], "Never") == "Running"
    assert pod_phase([], [done(0), done(0)], "Never") == "Succeeded"
    assert pod_phase([], [done(0), done(3)], "Never") == "Failed"
    assert pod_phase([], [done(0), running()], "Never") == "Running"
    backoff = Run("c", "img", waiting=("CrashLoopBackOff", ""), last_terminated=done(1).terminated,
                  restart_count=1)
    assert pod_phase([], [backoff], "OnFailure") == "Running"
    assert pod_phase([], [done(0)], "OnFailure") == "Succeeded"


def test_container_status_shape():
    s = container_status(done(3), "local://mlcycle")
    assert s["state"]["terminated"]["exitCode"] == 3 and s["lastState"] == {} and s["ready"] is False
    s = container_status(Run("c", "img", waiting=("ErrImagePull", "cannot run")), "x")
    assert s["state"] == {"waiting": {"reason": "ErrImagePull", "message": "cannot run"}}


def test_conditions_keep_transition_times_and_foreign_conditions():
    previous = [{"type": "Ready", "status": "False", "lastTransitionTime": "old"},
                {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": "x"}]
    out = {c["type"]: c for c in merge_conditions(previous, {"Ready": (False, "R")}, "now")}
    assert out["Ready"]["lastTransitionTime"] == "old" and out["DisruptionTarget"]["status"] == "True"
    out = {c["type"]: c for c in merge_conditions(previous, {"Ready": (True, "")}, "now")}
    assert out["Ready"]["lastTransitionTime"] == "now"


def test_ready_needs_every_container_ready_and_gates():
    ready = Run("c", "img", waiting=None, running_since="t", started=True, ready=True)
    conds = {c["type"]: c["status"] for c in pod_conditions("Running", [], [ready], [], [], "t")}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
    conds = {c["type"]: c["status"] for c in pod_conditions("Running", [], [ready, running()], [], [], "t")}
    assert conds["Ready"] == "False"
    conds = {c["type"]: c["status"] for c in pod_conditions("Running", [], [ready], [], ["gate"], "t")}
    assert conds["Ready"] == "False" and conds["ContainersReady"] == "True"
    conds = {c["type"]: c["status"] for c in pod_conditions("Succeeded", [], [done(0)], [], [], "t")}
    assert conds["Ready"] == "False"
