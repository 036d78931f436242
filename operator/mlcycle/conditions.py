"""kstatus-style conditions (metav1.Condition shape), as pure functions over plain dicts.

Ready / Reconciling / Stalled follow kstatus: Reconciling=True while work is in progress, Stalled=True
when progress needs a person, Ready=True when the object does what its spec asks. Domain conditions sit
beside them.
"""

from __future__ import annotations

from mlcycle.clock import now_iso

# Whether the last reconcile of the object went through (Crossplane's condition): False, with the error, while a
# handler keeps failing and is being retried; the kstatus conditions keep saying what the object itself is doing.
SYNCED = "Synced"
RECONCILE_ERROR = "ReconcileError"


def condition(type_: str, status: bool | str, reason: str, message: str = "", generation: int | None = None,
              ) -> dict:
    if isinstance(status, bool):
        status = "True" if status else "False"
    cond = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def merge_conditions(old: list[dict] | None, new: list[dict], now: str | None = None) -> list[dict]:
    """New conditions, keeping lastTransitionTime from `old` when a condition's status did not change.

    Conditions in `old` whose type is not in `new` are kept as they are (other writers may own them).
    """
    now = now or now_iso()
    previous = {c["type"]: c for c in old or []}
    merged = []
    for cond in new:
        before = previous.pop(cond["type"], None)
        same = before is not None and before.get("status") == cond["status"]
        merged.append({**cond, "lastTransitionTime": before["lastTransitionTime"] if same and
                       before.get("lastTransitionTime") else now})
    return merged + list(previous.values())


def find(conditions: list[dict] | None, type_: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def kstatus(phase_ready: bool, in_progress: bool, stalled: bool, reason: str, message: str,
            generation: int | None) -> list[dict]:
    """The three kstatus conditions for one observation."""
    return [
        condition("Ready", phase_ready, reason, message, generation),
        condition("Reconciling", in_progress, reason if in_progress else "Done",
                  message if in_progress else "", generation),
        condition("Stalled", stalled, reason if stalled else "NotStalled", message if stalled else "", generation),
    ]


def synced(error: str | None, generation: int | None) -> dict:
    """Synced=True, or Synced=False with the error that the retried reconcile hit."""
    if error is None:
        return condition(SYNCED, True, "ReconcileSuccess", "", generation)
    return condition(SYNCED, False, RECONCILE_ERROR, error, generation)
