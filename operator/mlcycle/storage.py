"""S3 access for the operator itself, from the Secret a resource references (read, never copied).

A client per Secret is kept (`using`), so an S3 operation costs no apiserver request and no new connection
pool. The operator may only GET Secrets by name (never list or watch them: the chart grants no more), so it
cannot be told that a Secret changed; it finds out instead. An operation that storage refuses with the cached
credentials (a key rotated and the old one revoked) reads the Secret again and runs once more, so the next
operation after a rotation uses the new key; and an entry older than CACHE_SECONDS is read again, so a change
that breaks nothing (a new endpoint while the old one still answers) takes effect within that time.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import minio

from mlcycle import kube
from mlcycle.clients import s3
from mlcycle.clients.s3 import S3Config

CACHE_SECONDS = float(os.environ.get("MLCYCLE_SECRET_CACHE_SECONDS", "60"))
T = TypeVar("T")


class SecretProblem(Exception):
    """The referenced Secret is missing or lacks a key; the message names which and how to fix it."""


def _secret(namespace: str, secret_name: str) -> dict | None:
    return kube.get("v1", "Secret", namespace, secret_name)


def _decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}


# Keys of a storage Secret that are not credentials (and too common as text to redact everywhere).
NOT_SECRET = ("endpoint", "secure", "region")


def secret_values(namespace: str, secret_name: str) -> list[str]:
    """The credential values of the referenced Secret (none when it is absent), to redact what pods report.
    Read fresh, never from the cache: a key rotated a moment ago must be redacted too."""
    secret = _secret(namespace, secret_name)
    return [v for k, v in _decoded(secret).items() if k not in NOT_SECRET] if secret else []


def _config(namespace: str, secret_name: str, secret: dict | None) -> S3Config:
    if secret is None:
        raise SecretProblem(f"Secret {namespace}/{secret_name} (spec.storage.secretRef) does not exist")
    data = _decoded(secret)
    missing = [k for k in ("endpoint", "accessKey", "secretKey") if not data.get(k)]
    if missing:
        raise SecretProblem(f"Secret {namespace}/{secret_name} lacks key(s) {', '.join(missing)}")
    secure = data.get("secure")
    return S3Config.create(data["endpoint"], data["accessKey"], data["secretKey"],
                           None if secure is None else secure.strip().lower() == "true", data.get("region"))


@dataclass(frozen=True)
class _Entry:
    config: S3Config
    client: minio.Minio
    read_at: float  # time.monotonic() of the GET


_cache: dict[tuple[str, str], _Entry] = {}
_guard = threading.Lock()


def _entry(namespace: str, secret_name: str, fresh: bool = False) -> _Entry:
    key = (namespace, secret_name)
    with _guard:
        entry = _cache.get(key)
    if entry is not None and not fresh and time.monotonic() - entry.read_at < CACHE_SECONDS:
        return entry
    read_at = time.monotonic()
    try:
        cfg = _config(namespace, secret_name, _secret(namespace, secret_name))
    except (SecretProblem, ValueError):
        forget(namespace, secret_name)
        raise
    # Same settings as before (the Secret was only touched): keep the client and its open connections.
    entry = _Entry(cfg, entry.client if entry is not None and entry.config == cfg else s3.client(cfg), read_at)
    with _guard:
        _cache[key] = entry
    return entry


def s3_config(namespace: str, secret_name: str) -> S3Config:
    """The settings in the referenced Secret, read now (it also renews the cached client): for a check that the
    Secret is usable before something relies on it, such as a verification Job."""
    return _entry(namespace, secret_name, fresh=True).config


def using(namespace: str, secret_name: str, operation: Callable[[minio.Minio], T]) -> T:
    """`operation(client)` with the client of the referenced Secret. When storage refuses the cached
    credentials or cannot be reached at the cached endpoint, the Secret is read again and, if it changed,
    the operation runs once more with what it says now."""
    entry = _entry(namespace, secret_name)
    try:
        return operation(entry.client)
    except s3.ObjectNotFound:
        raise  # an answer from storage, not a refusal
    except s3.StorageError:
        fresh = _entry(namespace, secret_name, fresh=True)
        if fresh.config == entry.config:
            raise
        return operation(fresh.client)


def forget(namespace: str, secret_name: str) -> None:
    with _guard:
        _cache.pop((namespace, secret_name), None)
