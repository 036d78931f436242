"""Servers of the local stack as background process groups: start with a log file, wait until ready,
stop (TERM, then KILL after a grace period). MinIO, Triton and the operator process share these."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start `args` in a new session (so its whole group can be stopped), output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logfile:
        return subprocess.Popen(args, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, what: str,
               log_path: Path, interval: float = 0.3) -> None:
    """Return once `ready()`; if the process exits or `timeout` passes first, stop it and raise with the
    tail of its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"{what} did not become ready; log {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(interval)
