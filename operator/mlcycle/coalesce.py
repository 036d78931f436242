"""One reconcile per object at a time, bursts coalesced, failures retried later.

Events of an object and of its children arrive on different kopf workers. A trigger that finds a reconcile
of the same object already waiting is dropped: the waiting one reads the state after it, so a burst of pod
events costs one reconcile, not one each. `later` schedules a reconcile for when something falls due (a
drain ending, a retry after an error) without a kopf timer, which would put kopf's finalizer on every object.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable

log = logging.getLogger(__name__)


class Coalescer:
    def __init__(self, reconcile: Callable[[str, str], None], what: str):
        self._reconcile = reconcile
        self._what = what
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._waiting: set[tuple[str, str]] = set()
        self._guard = threading.Lock()
        self._timers: dict[tuple[str, str], threading.Timer] = {}

    def __call__(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._guard:
            if key in self._waiting:
                return
            self._waiting.add(key)
        with self._locks[key]:
            with self._guard:
                self._waiting.discard(key)
            self._reconcile(namespace, name)

    def later(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile again in `delay` seconds (an earlier schedule for the same object is replaced)."""
        key = (namespace, name)

        def fire() -> None:
            with self._guard:
                self._timers.pop(key, None)
            try:
                self(namespace, name)
            except Exception:  # the reconcile itself records and reschedules what it can
                log.exception("%s %s/%s: scheduled reconcile failed", self._what, namespace, name)

        timer = threading.Timer(max(delay, 0.1), fire)
        timer.daemon = True
        with self._guard:
            old = self._timers.pop(key, None)
            if old:
                old.cancel()
            self._timers[key] = timer
        timer.start()

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._guard:
            timer = self._timers.pop(key, None)
        if timer:
            timer.cancel()
        self._locks.pop(key, None)
