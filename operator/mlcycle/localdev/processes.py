"""The operator and the serving agent as child processes of the local stack (for `mlcycle dev`, the e2e
tests and the benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlcycle.localdev import background, runtime
from mlcycle.localdev.net import free_port, http_ok
from mlcycle.placement import placement_env


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
    # The operator's own workload pods (verification Jobs) run for real, on the local runtime's node.
    local = placement_env({runtime.NODE_LABEL: "true"}, [runtime.TOLERATION])
    process_env = {**os.environ, **local, **(env or {}), "KUBECONFIG": str(kubeconfig)}
    proc = background.spawn([sys.executable, "-m", "mlcycle.cli", "run", *args,
                             f"--health-port={health}", f"--metrics-port={metrics}"], process_env, log_path)
    op = OperatorProcess(proc, health, metrics, log_path, kubeconfig, env, tuple(args))
    background.wait_ready(proc, op.healthy, timeout, "the operator", log_path)
    return op


@dataclass
class AgentProcess:
    """`mlcycle agent` on loopback: its public port, admin port and log."""

    process: subprocess.Popen
    port: int
    admin_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.admin_port}/healthz")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def rss_bytes(self) -> int:
        """Resident memory of the agent process now (VmRSS)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024

    def stop(self, sig: int = signal.SIGTERM, grace: float = 60) -> None:
        background.stop(self.process, sig, grace)


def start_agent(env: dict[str, str], log_path: Path, timeout: float = 60) -> AgentProcess:
    """Run `mlcycle agent` with `env` (MLCYCLE_TRITON_URL, MLCYCLE_MODEL_*, ...) on free loopback ports and
    wait for its admin endpoint."""
    port, admin = free_port(), free_port()
    process_env = {**os.environ, **env, "MLCYCLE_AGENT_HOST": "127.0.0.1", "MLCYCLE_AGENT_PORT": str(port),
                   "MLCYCLE_AGENT_ADMIN_PORT": str(admin)}
    proc = background.spawn([sys.executable, "-m", "mlcycle.cli", "agent"], process_env, log_path)
    agent = AgentProcess(proc, port, admin, log_path)
    background.wait_ready(proc, agent.healthy, timeout, "the agent", log_path)
    return agent
