"""Alias resolution: an alias points to the highest Ready version of a model that asks for it."""

from __future__ import annotations


def _rank(mv: dict) -> tuple[int, str]:
    # Version numbers should be unique per model; the name breaks a tie so the answer is still deterministic.
    return mv["spec"]["version"], mv["metadata"]["name"]


def resolve(versions: list[dict], ready: set[str]) -> dict[str, str]:
    """alias -> name of the version that holds it, among the `ready` version names."""
    holders: dict[str, dict] = {}
    for mv in versions:
        if mv["metadata"]["name"] not in ready:
            continue
        for alias in mv["spec"].get("aliases") or []:
            if alias not in holders or _rank(mv) > _rank(holders[alias]):
                holders[alias] = mv
    return {alias: mv["metadata"]["name"] for alias, mv in sorted(holders.items())}


def held_by(holders: dict[str, str], name: str) -> list[str]:
    return sorted(alias for alias, holder in holders.items() if holder == name)


def conflicts(mv: dict, holders: dict[str, str]) -> dict[str, str]:
    """Aliases this version asks for that another version holds: alias -> holder."""
    name = mv["metadata"]["name"]
    return {a: holders[a] for a in mv["spec"].get("aliases") or [] if a in holders and holders[a] != name}
