"""What pods and their Jobs report: a Job's true conditions, a pod's termination message."""

from __future__ import annotations

import json


def job_condition(job: dict, type_: str) -> dict | None:
    """The Job's condition `type_` (Complete, Failed, ...) when it is True."""
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c["type"] == type_ and c["status"] == "True"), None)


def termination_message(pod: dict) -> dict | None:
    """The JSON termination message of a pod's first terminated container, if any; a message that is not
    JSON (a log tail, with FallbackToLogsOnError) as {"log": its last 500 characters}."""
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
        if terminated and terminated.get("message"):
            try:
                parsed = json.loads(terminated["message"])
            except ValueError:
                return {"log": terminated["message"][-500:]}
            return parsed if isinstance(parsed, dict) else None
    return None
