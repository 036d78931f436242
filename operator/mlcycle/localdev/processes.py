"""The operator as a child process of the local stack (for `mlcycle dev` and the e2e tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlcycle.localdev import background
from mlcycle.localdev.net import free_port, http_ok


@dataclass
class OperatorProcess:
    process: subprocess.Popen
    health_port: int
    metrics_port: int
    log_path: Path
    kubeconfig: Path
    env: dict[str, str] | None = None
    args: tuple[str, ...] = ()

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.health_port}/healthz")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        background.stop(self.process, sig)

    def restart(self, sig: int = signal.SIGKILL, timeout: float = 60) -> None:
        """Kill the operator (SIGKILL: no clean shutdown, like a crashed pod) and start it again."""
        self.stop(sig)
        fresh = start_operator(self.kubeconfig, self.log_path, timeout, self.health_port, self.metrics_port,
                               self.env, self.args)
        self.process = fresh.process


def start_operator(kubeconfig: Path, log_path: Path, timeout: float = 60, health: int | None = None,
                   metrics: int | None = None, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = ("--standalone",)) -> OperatorProcess:
    """Run `mlcycle run *args` against `kubeconfig` and wait for its liveness endpoint."""
    health, metrics = health or free_port(), metrics or free_port()
    process_env = {**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig)}
    proc = background.spawn([sys.executable, "-m", "mlcycle.cli", "run", *args,
                             f"--health-port={health}", f"--metrics-port={metrics}"], process_env, log_path)
    op = OperatorProcess(proc, health, metrics, log_path, kubeconfig, env, tuple(args))
    background.wait_ready(proc, op.healthy, timeout, "the operator", log_path)
    return op
