"""Where the operator's own workload pods run (the ModelVersion verification Job), which no spec field places:
`MLCYCLE_WORKLOAD_NODE_SELECTOR` (a JSON object of node labels) and `MLCYCLE_WORKLOAD_TOLERATIONS` (a JSON list of
core/v1 tolerations) in the operator's env, read here only. The chart sets them from its values; the local stack
points them at the local runtime's node."""

from __future__ import annotations

import json
import os

NODE_SELECTOR_ENV = "MLCYCLE_WORKLOAD_NODE_SELECTOR"
TOLERATIONS_ENV = "MLCYCLE_WORKLOAD_TOLERATIONS"


def workload_placement() -> dict:
    """`nodeSelector` and `tolerations` for a pod spec (only those that are set)."""
    placement = {"nodeSelector": json.loads(os.environ.get(NODE_SELECTOR_ENV) or "{}"),
                 "tolerations": json.loads(os.environ.get(TOLERATIONS_ENV) or "[]")}
    return {k: v for k, v in placement.items() if v}


def placement_env(node_selector: dict, tolerations: list[dict]) -> dict[str, str]:
    """The operator env that places workload pods with `node_selector` and `tolerations`."""
    return {NODE_SELECTOR_ENV: json.dumps(node_selector), TOLERATIONS_ENV: json.dumps(tolerations)}
