"""Run the Argo CD scripts of charts/mlcycle/argocd (as the argocd-cm snippet has them) in Lua 5.1, the Lua of
Argo CD's gopher-lua, with the object in the global `obj` as Argo CD does."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from lupa.lua51 import LuaRuntime

from mlcycle.localdev import argocd


def _run(script: str, obj: dict):
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return lua.execute(script)


def _plain(value):
    """A Lua table as dicts (lists where its keys are 1..n)."""
    if hasattr(value, "items"):
        items = {k: _plain(v) for k, v in value.items()}
        return [items[i] for i in range(1, len(items) + 1)] if items and set(items) == set(
            range(1, len(items) + 1)) else items
    return value


def health(kind: str, obj: dict) -> dict:
    return _plain(_run(argocd.health_script(kind), obj))


def discovery(obj: dict) -> dict:
    return _plain(_run((argocd.LUA / "actions" / "discovery.lua").read_text(), obj))


def action(name: str, obj: dict) -> dict:
    return _plain(_run(argocd.action_scripts()[name], obj))


def record(obj: dict, phase: str) -> None:
    """With MLCYCLE_ARGOCD_TESTDATA=<dir>, keep a live object as Argo CD's testdata do (no server bookkeeping, no
    kopf annotations): how charts/mlcycle/argocd/testdata were recorded from the e2e runs."""
    folder = os.environ.get("MLCYCLE_ARGOCD_TESTDATA")
    if not folder:
        return
    meta = obj["metadata"]
    kept = {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "metadata": {k: meta[k] for k in ("name", "namespace", "generation", "labels") if k in meta},
            "spec": obj["spec"], "status": obj.get("status")}
    path = Path(folder) / obj["kind"] / f"{phase}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kept, sort_keys=False))
