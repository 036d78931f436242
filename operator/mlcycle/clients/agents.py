"""The operator's side of the serving agents' admin port: read their metrics, set their traffic split.

Both go to each pod's address directly (no Service: every stable replica must get the split, and every
replica's counters count). Failures are logged and left to the next reconcile: a pod that is starting or
going away misses one push or one scrape, never the rollout."""

from __future__ import annotations

import json
import logging
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from mlcycle.api.inferenceservice import AGENT_ADMIN_PORT

log = logging.getLogger(__name__)
TIMEOUT = 3.0


def _ready(pod: dict) -> bool:
    return bool(pod.get("status", {}).get("podIP")) and not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def _url(pod: dict, path: str) -> str:
    return f"http://{pod['status']['podIP']}:{AGENT_ADMIN_PORT}{path}"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()


def scrape(pods: list[dict]) -> dict[str, str]:
    """pod name → its agent's /metrics text, for the ready pods that answered."""
    ready = [p for p in pods if _ready(p)]

    def one(pod: dict) -> tuple[str, str | None]:
        try:
            return pod["metadata"]["name"], _get(_url(pod, "/metrics")).decode()
        except OSError as e:
            log.warning("agent of pod %s: no metrics (%s)", pod["metadata"]["name"], e)
            return pod["metadata"]["name"], None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {name: text for name, text in pool.map(one, ready) if text is not None}


def push_split(pods: list[dict], split) -> None:
    """PUT /traffic on each ready pod whose agent's split differs from `split` (a Split of the plan)."""
    wanted = split.to_api()
    for pod in filter(_ready, pods):
        try:
            if json.loads(_get(_url(pod, "/traffic"))) == wanted:
                continue
            request = urllib.request.Request(_url(pod, "/traffic"), json.dumps(wanted).encode(), method="PUT",
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=TIMEOUT).close()
        except (OSError, ValueError) as e:
            log.warning("agent of pod %s: traffic split not set (%s); next reconcile retries",
                        pod["metadata"]["name"], e)
