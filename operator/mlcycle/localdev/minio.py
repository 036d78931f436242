"""A real MinIO server on loopback, with generated credentials and data under .local/minio."""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio

from mlcycle.localdev import background, binaries
from mlcycle.localdev.binaries import log
from mlcycle.localdev.net import free_port, http_ok
from mlcycle.localdev.paths import LOCAL

STATE = LOCAL / "minio"


@dataclass(frozen=True)
class MinioServer:
    endpoint: str  # host:port
    access_key: str
    secret_key: str = field(repr=False)  # never printed
    pid: int = 0

    def client(self) -> Minio:
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)

    def make_bucket(self, name: str) -> str:
        client = self.client()
        if not client.bucket_exists(name):
            client.make_bucket(name)
        return name

    def healthy(self) -> bool:
        return http_ok(f"http://{self.endpoint}/minio/health/ready")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def current() -> MinioServer | None:
    """The running server recorded in .local/minio/server.json, if it is alive."""
    try:
        server = MinioServer(**json.loads((STATE / "server.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return server if _pid_alive(server.pid) and server.healthy() else None


def up(port: int | None = None, timeout: float = 60) -> MinioServer:
    """Start MinIO (or reuse the running one). Idempotent."""
    running = current()
    if running:
        return running
    STATE.mkdir(parents=True, exist_ok=True)
    server = start(STATE, port or free_port(), "mlcycle-" + secrets.token_hex(4), secrets.token_urlsafe(24),
                   timeout)
    record = STATE / "server.json"
    record.write_text(json.dumps(server.__dict__))
    record.chmod(0o600)  # it holds the root credentials
    log(f"MinIO on {server.endpoint} (credentials in {record})")
    return server


def start(state: Path, port: int, access_key: str, secret_key: str, timeout: float = 60) -> MinioServer:
    """A MinIO server with its data and log under `state`, on 127.0.0.1:`port`. Starting again with the
    same arguments after a stop brings back the same server (what a test of an outage needs)."""
    env = {**os.environ, "MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
    proc = background.spawn([str(binaries.binary("minio")), "server", str(state / "data"), "--address",
                             f"127.0.0.1:{port}", "--quiet"], env, state / "minio.log")
    server = MinioServer(f"127.0.0.1:{port}", access_key, secret_key, proc.pid)
    background.wait_ready(proc, server.healthy, timeout, "MinIO", state / "minio.log", interval=0.2)
    return server


def down() -> None:
    server = current()
    if server:
        os.killpg(server.pid, signal.SIGTERM)
    (STATE / "server.json").unlink(missing_ok=True)
