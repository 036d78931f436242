"""S3 access for the operator itself, from the Secret a resource references (read, never copied)."""

from __future__ import annotations

import base64

from mlcycle import kube
from mlcycle.clients.s3 import S3Config


class SecretProblem(Exception):
    """The referenced Secret is missing or lacks a key; the message names which and how to fix it."""


def s3_config(namespace: str, secret_name: str) -> S3Config:
    secret = kube.get("v1", "Secret", namespace, secret_name)
    if secret is None:
        raise SecretProblem(f"Secret {namespace}/{secret_name} (spec.storage.secretRef) does not exist")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    missing = [k for k in ("endpoint", "accessKey", "secretKey") if not data.get(k)]
    if missing:
        raise SecretProblem(f"Secret {namespace}/{secret_name} lacks key(s) {', '.join(missing)}")
    secure = data.get("secure")
    return S3Config.create(data["endpoint"], data["accessKey"], data["secretKey"],
                           None if secure is None else secure.strip().lower() == "true", data.get("region"))
