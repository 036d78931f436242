"""An unexpected exception in a kopf handler (an OS error, an API error, a bug) ends in a retry with backoff
and a `Synced=False` condition saying what failed, never in a resource stuck without status.

kopf never retries event-watching handlers (`on.event`): without this an exception there is only a log line.
`@retried(kind)` reports the failure on the resource (condition, Warning event, metric) and calls the handler
again after a backoff; timers and `on.delete` handlers are retried by kopf itself, so there it reports and
re-raises. The next success writes `Synced=True`. While a retry is pending, events of the same object (our own
status write among them) wait for it, unless its spec changed: otherwise each failure's status write would
trigger the next attempt at once.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import kopf
from kubernetes.client.rest import ApiException

from mlcycle import conditions, kube, metrics
from mlcycle.api.base import API_VERSION

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 300.0
_attempts: dict[tuple, int] = {}  # failures in a row per (kind, namespace, name, handler)
_scheduled: dict[tuple, int | None] = {}  # keys with a retry pending -> the generation that failed
_guard = threading.Lock()


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): doubling from 2 s, at most five minutes."""
    return min(2.0 ** attempt, MAX_BACKOFF_SECONDS)


def failure_message(handler: str, error: BaseException, delay: float) -> str:
    return f"{handler}: {type(error).__name__}: {error}"[:900] + f"; retrying in {delay:.0f}s"


def _own(kwargs: dict) -> tuple[str, str]:
    return kwargs["namespace"], kwargs["name"]


def retried(kind: str, target: Callable[[dict], tuple[str, str]] = _own):
    """Decorate a kopf handler of resources of `kind` (or of children: `target(kwargs)` names the `kind` object
    that the failure is reported on)."""

    def decorate(fn):
        @functools.wraps(fn)
        def handler(**kwargs):
            namespace, name = target(kwargs)
            key = (kind, namespace, name, fn.__name__)
            generation = _generation(kwargs) if target is _own else None
            if "event" in kwargs and _waiting_for_retry(key, generation):
                return None
            try:
                result = fn(**kwargs)
            except (kopf.TemporaryError, kopf.PermanentError):
                raise  # the handler asked kopf for a retry or a stop itself
            except Exception as e:
                with _guard:
                    attempt = _attempts[key] = _attempts.get(key, 0) + 1
                delay = backoff(attempt)
                log.exception("%s %s/%s: %s failed (attempt %d); retrying in %.0fs", kind, namespace, name,
                              fn.__name__, attempt, delay)
                metrics.HANDLER_FAILURES.labels(kind, type(e).__name__).inc()
                report(kind, namespace, name, failure_message(fn.__name__, e, delay))
                if "event" not in kwargs:
                    raise  # a timer or a deletion handler: kopf retries it
                _schedule(key, generation, delay, handler, kwargs)
                return None
            with _guard:
                failed_before = _attempts.pop(key, None)
            if failed_before or _synced_false(kwargs.get("status") if target is _own else None):
                report(kind, namespace, name, None)
            return result

        return handler

    return decorate


def _generation(kwargs: dict) -> int | None:
    return ((kwargs.get("body") or {}).get("metadata") or {}).get("generation")


def _waiting_for_retry(key: tuple, generation: int | None) -> bool:
    """A retry of `key` is pending and the object's spec is the one that failed."""
    with _guard:
        return key in _scheduled and (generation is None or _scheduled[key] == generation)


def _schedule(key: tuple, generation: int | None, delay: float, handler, kwargs: dict) -> None:
    with _guard:
        if key in _scheduled:
            return
        _scheduled[key] = generation

    def again():
        with _guard:
            _scheduled.pop(key, None)
        handler(**kwargs)

    timer = threading.Timer(delay, again)
    timer.daemon = True
    timer.start()


def _synced_false(status) -> bool:
    cond = conditions.find((status or {}).get("conditions"), conditions.SYNCED)
    return bool(cond) and cond.get("status") == "False"


def report(kind: str, namespace: str, name: str, message: str | None) -> None:
    """Write Synced (False with `message`, or True when `message` is None) and, on failure, a Warning event.
    Best effort: the apiserver may be what failed."""
    try:
        obj = kube.get(API_VERSION, kind, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        if message is None and not _synced_false(obj.get("status")):
            return  # nothing to clear: a success writes Synced only after a failure
        obj["apiVersion"], obj["kind"] = API_VERSION, kind
        new = conditions.synced(message, obj["metadata"]["generation"])
        kube.add_status_fields(API_VERSION, kind, namespace, name, {
            "conditions": conditions.merge_conditions((obj.get("status") or {}).get("conditions"), [new])})
        if message:
            kube.post_event(obj, "Warning", conditions.RECONCILE_ERROR, message)
    except (ApiException, OSError) as e:
        log.warning("%s %s/%s: cannot report the handler failure: %s", kind, namespace, name, e)
