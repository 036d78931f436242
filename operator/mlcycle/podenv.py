"""Env that every operator-written pod shares: the storage credentials, by reference to the user's Secret.

The names are the ones `clients.s3.S3Config.from_env` reads, so each workload (trainer, fetch-model, agent,
drift) finds its object store the same way, and no credential is ever copied into a pod spec.
"""

from __future__ import annotations


def secret_env(env_name: str, secret: str, key: str, optional: bool = False) -> dict:
    ref = {"name": secret, "key": key} | ({"optional": True} if optional else {})
    return {"name": env_name, "valueFrom": {"secretKeyRef": ref}}


def storage_env(secret: str) -> list[dict]:
    """MLCYCLE_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (+ optional secure/region) from `secret`."""
    return [
        secret_env("MLCYCLE_S3_ENDPOINT", secret, "endpoint"),
        secret_env("AWS_ACCESS_KEY_ID", secret, "accessKey"),
        secret_env("AWS_SECRET_ACCESS_KEY", secret, "secretKey"),
        secret_env("MLCYCLE_S3_SECURE", secret, "secure", optional=True),
        secret_env("AWS_REGION", secret, "region", optional=True),
    ]
