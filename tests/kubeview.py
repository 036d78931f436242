"""Reading objects back in e2e tests the way a person would, with kubectl."""

from __future__ import annotations

import json


def kubectl_json(cluster, *args):
    """`kubectl get ARGS -o json`, or None when kubectl refuses (e.g. the object does not exist yet)."""
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def condition(status: dict, type_: str) -> dict:
    """The condition of that type in a status, or {}."""
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})
