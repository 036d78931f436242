"""One reconcile per object at a time, bursts coalesced, reconciles of one kind on a bounded pool of their own,
reconciles scheduled for when something falls due.

Events of an object and of its children arrive on different kopf workers. A trigger that finds a reconcile
of the same object already queued is dropped: the queued one reads the state after it, so a burst of pod
events costs one reconcile, not one each; a trigger during a reconcile makes it run once more afterwards.
`submit` hands the reconcile to this kind's own pool, so a kopf worker returns at once and slow work of one
kind (a download, a verification) never holds the workers that other kinds need.

`later` schedules a reconcile (a TTL, a retry with backoff, a resync, a drain ending) without a kopf timer,
which would put kopf's finalizer on every object and make its deletion wait for a running operator. One
clock thread per kind serves every schedule; kopf's initial listing after a restart re-arms them.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
MIN_DELAY_SECONDS = 0.1
MAX_RETRY_SECONDS = 300.0


class Coalescer:
    def __init__(self, reconcile: Callable[[str, str], None], what: str, workers: int = 4,
                 on_failure: Callable[[str, str, Exception, float], None] | None = None):
        """`on_failure(namespace, name, error, delay)` reports a failed pool reconcile, retried after `delay`."""
        self._reconcile = reconcile
        self._on_failure = on_failure
        self._what = what
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._waiting: set[tuple[str, str]] = set()
        self._queued: set[tuple[str, str]] = set()
        self._running: set[tuple[str, str]] = set()
        self._again: set[tuple[str, str]] = set()
        self._guard = threading.Condition()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=what)
        self._due: dict[tuple[str, str], float] = {}  # key -> monotonic deadline of its one schedule
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._order = itertools.count()
        self._clock: threading.Thread | None = None
        self._failures: dict[tuple[str, str], int] = {}  # failed pool reconciles in a row, per object

    def __call__(self, namespace: str, name: str) -> None:
        """Reconcile in the calling thread (errors reach the caller)."""
        key = (namespace, name)
        with self._guard:
            if key in self._waiting:
                return
            self._waiting.add(key)
        with self._locks[key]:
            with self._guard:
                self._waiting.discard(key)
            self._reconcile(namespace, name)

    def submit(self, namespace: str, name: str) -> None:
        """Reconcile on this kind's pool; returns at once. The reconcile handles (and reschedules) its own errors."""
        key = (namespace, name)
        with self._guard:
            if key in self._queued:
                return
            if key in self._running:
                self._again.add(key)
                return
            self._queued.add(key)
        self._pool.submit(self._run, key)

    def _run(self, key: tuple[str, str]) -> None:
        with self._guard:
            self._queued.discard(key)
            self._running.add(key)
        while True:
            try:
                self(*key)
                self._failures.pop(key, None)
            except Exception as e:
                # Nothing else would retry a scheduled reconcile: try again later, backing off.
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(2.0 ** failures, MAX_RETRY_SECONDS)
                log.exception("%s %s/%s: reconcile failed; retrying in %.0fs", self._what, *key, delay)
                self.later(*key, delay)
                if self._on_failure:
                    self._on_failure(*key, e, delay)
            with self._guard:
                if key not in self._again:
                    self._running.discard(key)
                    return
                self._again.discard(key)

    def offloaded(self, key: Callable[[dict], Hashable]):
        """Decorate a kopf handler to run on this kind's pool: kopf's worker returns at once. A call whose
        `key(kwargs)` is already queued for the same handler is dropped (the queued one reads the state after
        it). Errors are the handler's to report (`failures.retried` inside this decorator); here only logged."""

        def decorate(fn):
            @functools.wraps(fn)
            def handler(**kwargs):
                k = (fn.__name__, key(kwargs))
                with self._guard:
                    if k in self._queued:
                        return
                    self._queued.add(k)

                def run():
                    with self._guard:
                        self._queued.discard(k)
                    try:
                        fn(**kwargs)
                    except Exception:
                        log.exception("%s: %s failed", self._what, fn.__name__)

                self._pool.submit(run)

            return handler

        return decorate

    def later(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile (on the pool) in `delay` seconds; an earlier schedule for the same object is replaced."""
        key = (namespace, name)
        due = time.monotonic() + max(delay, MIN_DELAY_SECONDS)
        with self._guard:
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key))
            if self._clock is None:
                self._clock = threading.Thread(target=self._tick, name=f"{self._what}-clock", daemon=True)
                self._clock.start()
            self._guard.notify()

    def scheduled(self, namespace: str, name: str) -> float | None:
        """Seconds until the scheduled reconcile of this object, None when none is."""
        with self._guard:
            due = self._due.get((namespace, name))
        return None if due is None else due - time.monotonic()

    def _tick(self) -> None:
        while True:
            with self._guard:
                while True:
                    while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                        heapq.heappop(self._heap)  # replaced or forgotten
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._guard.wait(wait)
                _, _, key = heapq.heappop(self._heap)
                del self._due[key]
            self.submit(*key)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._guard:
            self._due.pop(key, None)
        self._failures.pop(key, None)
        self._locks.pop(key, None)
