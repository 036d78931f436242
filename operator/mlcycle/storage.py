"""S3 access for the operator itself, from the Secret a resource references (read, never copied)."""

from __future__ import annotations

import base64

from mlcycle import kube
from mlcycle.clients.s3 import S3Config


class SecretProblem(Exception):
    """The referenced Secret is missing or lacks a key; the message names which and how to fix it."""


def _secret(namespace: str, secret_name: str) -> dict | None:
    return kube.get("v1", "Secret", namespace, secret_name)


def _decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}


# Keys of a storage Secret that are not credentials (and too common as text to redact everywhere).
NOT_SECRET = ("endpoint", "secure", "region")


def secret_values(namespace: str, secret_name: str) -> list[str]:
    """The credential values of the referenced Secret (none when it is absent), to redact what pods report."""
    secret = _secret(namespace, secret_name)
    return [v for k, v in _decoded(secret).items() if k not in NOT_SECRET] if secret else []


def s3_config(namespace: str, secret_name: str) -> S3Config:
    secret = _secret(namespace, secret_name)
    if secret is None:
        raise SecretProblem(f"Secret {namespace}/{secret_name} (spec.storage.secretRef) does not exist")
    data = _decoded(secret)
    missing = [k for k in ("endpoint", "accessKey", "secretKey") if not data.get(k)]
    if missing:
        raise SecretProblem(f"Secret {namespace}/{secret_name} lacks key(s) {', '.join(missing)}")
    secure = data.get("secure")
    return S3Config.create(data["endpoint"], data["accessKey"], data["secretKey"],
                           None if secure is None else secure.strip().lower() == "true", data.get("region"))
