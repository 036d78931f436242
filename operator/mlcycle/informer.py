"""Informers: the TrainingJobs and the children the operator owns (Jobs, Services, pods), listed and then
watched (children with a label selector that the apiserver applies), kept in memory as slim copies that
reconciles read instead of a GET or LIST each.

Why not kopf's own watch: a handler's `labels=` filter runs client-side, so every Job and pod of the cluster
would reach the operator and hold a slot of kopf's per-object state; kopf's server-side selectors
(settings.watching.label_selectors) are one per resource, and the TrainingJobs' Jobs and the verification
Jobs carry different labels (kopf's Job watch is selected on the verification Jobs' label: operator_main).
Why not kubernetes.informer.SharedInformer: it deserialises every event into the client's typed models (the
memory and CPU this module saves), has neither a transform to slim an object nor an index by owner, and with
raw objects it loses the resourceVersion it resumes from.

An informer lists (in pages), then watches from the list's resourceVersion, resumes from the last event's
(bookmarks included) when a watch ends, and lists again when the apiserver says that version is gone (410).
Each object is stored slimmed, as compact JSON (a fraction of the memory of its dicts), and decoded when read,
so every reader gets a copy of its own. The store changes before `on_change` runs: the reconcile it triggers
reads the change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

from kubernetes.client.rest import ApiException

from mlcycle import kube, memory

log = logging.getLogger(__name__)
WATCH_SECONDS = 300  # the server ends each watch after this long; the informer resumes at once
PAGE_SIZE = 100  # a page of whole objects is what a listing holds at once
SYNC_TIMEOUT_SECONDS = 120.0
# How long a deletion seen by the watch keeps `remember` from putting back an object the operator wrote
# just before (the write's answer can arrive after the watch's DELETED).
TOMBSTONE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

Key = tuple[str, str]  # (namespace, name)


class Gone(Exception):
    """The resourceVersion to resume from is too old (410): list again."""


def without_bookkeeping(obj: dict) -> dict:
    """The object without metadata.managedFields and kubectl's last-applied copy of the whole object, which no
    reconcile reads (together often more than half an object's size)."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    if LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


def always(type_: str, obj: dict) -> bool:
    return True


class Informer:
    """One kind of object, label-selected (`label_selector` None: all of them). `slim` keeps what reconciles
    read; `owner` names the object of ours a child belongs to (None: not ours) and indexes the children by it;
    `on_change(namespace, owner)` runs on the informer's thread after every change for which
    `trigger(type, object)` holds (type: ADDED, MODIFIED or DELETED), and must return at once (e.g.
    Coalescer.submit)."""

    def __init__(self, api_version: str, kind: str, label_selector: str | None, owner: Callable[[dict], str | None],
                 on_change: Callable[[str, str], None], slim: Callable[[dict], dict] = without_bookkeeping,
                 trigger: Callable[[str, dict], bool] = always):
        self.api_version, self.kind, self.label_selector = api_version, kind, label_selector
        self._owner, self._on_change, self._slim, self._trigger = owner, on_change, slim, trigger
        self._lock = threading.Lock()
        self._objects: dict[Key, tuple[str, str | None, bytes]] = {}  # key -> (resourceVersion, owner, JSON)
        self._children: defaultdict[Key, set[str]] = defaultdict(set)  # (namespace, owner) -> names
        self._deleted: dict[Key, float] = {}  # key -> monotonic time its deletion was seen
        self._synced = threading.Event()
        self._unsynced_scopes = 0
        INFORMERS.append(self)

    # Reading -----------------------------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> dict | None:
        self._wait_synced()
        with self._lock:
            entry = self._objects.get((namespace, name))
        return None if entry is None else json.loads(entry[2])

    def children(self, namespace: str, owner: str) -> list[dict]:
        """Every stored object of `owner` in `namespace`, by name."""
        self._wait_synced()
        with self._lock:
            raw = [self._objects[(namespace, n)][2] for n in sorted(self._children.get((namespace, owner), ()))]
        return [json.loads(r) for r in raw]

    def __len__(self) -> int:
        return len(self._objects)

    def _wait_synced(self) -> None:
        # A reconcile that read an empty store before the first listing would take every child for missing.
        if not self._synced.wait(SYNC_TIMEOUT_SECONDS):
            raise TimeoutError(f"{self.kind} informer ({self.label_selector}) has not listed yet")

    def remember(self, obj: dict) -> None:
        """Store what the operator itself just wrote when the watch has not brought it yet, so the next
        reconcile does not take it for missing. Never over what the watch brought, nor over a deletion it
        saw (the write's answer may arrive after the watch's events)."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            if key in self._objects or time.monotonic() - self._deleted.get(key, -TOMBSTONE_SECONDS) < \
                    TOMBSTONE_SECONDS:
                return
            self._store(key, obj)

    # Writing (the informer's threads) ---------------------------------------------------------------------

    def _store(self, key: Key, obj: dict) -> str | None:
        return self._put(key, self._entry(obj))

    def _entry(self, obj: dict) -> tuple[str, str | None, bytes]:
        return (obj["metadata"].get("resourceVersion", ""), self._owner(obj),
                json.dumps(self._slim(obj), separators=(",", ":")).encode())

    def _put(self, key: Key, entry: tuple[str, str | None, bytes]) -> str | None:
        self._drop(key)
        self._objects[key] = entry
        if entry[1] is not None:
            self._children[(key[0], entry[1])].add(key[1])
        return entry[1]

    def _drop(self, key: Key) -> str | None:
        entry = self._objects.pop(key, None)
        if entry is None or entry[1] is None:
            return None
        siblings = self._children.get((key[0], entry[1]))
        if siblings is not None:
            siblings.discard(key[1])
            if not siblings:
                del self._children[(key[0], entry[1])]
        return entry[1]

    def _changed(self, namespace: str, owner: str | None) -> None:
        if owner is not None:
            try:
                self._on_change(namespace, owner)
            except Exception:
                log.exception("%s informer: on_change(%s, %s) failed", self.kind, namespace, owner)

    def _apply_event(self, type_: str, obj: dict) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        with self._lock:
            if type_ == "DELETED":
                owner = self._drop(key) or self._owner(obj)
                now = time.monotonic()
                # Oldest first (insertion order): forget the deletions too old to matter.
                while self._deleted and now - next(iter(self._deleted.values())) >= TOMBSTONE_SECONDS:
                    del self._deleted[next(iter(self._deleted))]
                self._deleted[key] = now
            else:
                owner = self._store(key, obj)
                self._deleted.pop(key, None)
        if self._trigger(type_, obj):
            self._changed(key[0], owner)

    # Listing and watching -------------------------------------------------------------------------------------

    def start(self, namespaces: list[str]) -> None:
        """Watch `namespaces` (none: the whole cluster), one thread each."""
        scopes = namespaces or [None]
        self._unsynced_scopes = len(scopes)
        for namespace in scopes:
            threading.Thread(target=self._run, args=(namespace,), daemon=True,
                             name=f"informer-{self.kind}-{namespace or 'all'}").start()

    def _run(self, namespace: str | None) -> None:
        version, failures = None, 0
        while True:
            try:
                if version is None:
                    version = self._list(namespace)
                version = self._watch(namespace, version)
                failures = 0
            except Gone:
                version = None
            except Exception as e:  # the apiserver restarting, a dropped connection: resume after a pause
                failures += 1
                delay = min(2.0 ** failures, MAX_BACKOFF_SECONDS)
                log.warning("%s informer (%s): %s; resuming in %.0fs", self.kind, namespace or "all namespaces",
                            e, delay)
                time.sleep(delay)

    def _list(self, namespace: str | None) -> str:
        """Replace this scope's store with a fresh listing; on_change for what differs. Returns its version.
        Each page is slimmed as it arrives, so a listing never holds more than one page of whole objects."""
        path = kube.api_path(self.api_version, kube.PLURALS[self.kind], namespace)
        listed: dict[Key, tuple[tuple[str, str | None, bytes], bool]] = {}  # key -> (entry, trigger)
        token = None
        while True:
            query = self._selector() + [("limit", str(PAGE_SIZE))]
            try:
                page = kube.call("GET", path, query=query + ([("continue", token)] if token else []))
            except ApiException as e:
                if e.status == 410:  # the continue token expired: list again from the start
                    raise Gone() from e
                raise
            for obj in page.pop("items", None) or []:
                # A list's items lack apiVersion and kind, which a GET and a watch event have (and a desired
                # manifest compares).
                obj = {"apiVersion": self.api_version, "kind": self.kind, **obj}
                key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                with self._lock:
                    known = key in self._objects
                listed[key] = (self._entry(obj), self._trigger("MODIFIED" if known else "ADDED", obj))
            token = page["metadata"].get("continue")
            if not token:
                break
        changed: list[tuple[str, str | None]] = []
        with self._lock:
            gone = [k for k in self._objects if (namespace is None or k[0] == namespace) and k not in listed]
            for key in gone:
                changed.append((key[0], self._drop(key)))
            for key, (entry, trigger) in listed.items():
                old = self._objects.get(key)
                if old is None or old[0] != entry[0]:
                    self._put(key, entry)
                    if trigger:
                        changed.append((key[0], entry[1]))
        self._scope_synced()
        for ns, owner in dict.fromkeys(changed):
            self._changed(ns, owner)
        memory.release_freed()
        return page["metadata"]["resourceVersion"]

    def _selector(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.label_selector)] if self.label_selector else []

    def _scope_synced(self) -> None:
        with self._lock:
            if not self._synced.is_set():
                self._unsynced_scopes -= 1
                if self._unsynced_scopes <= 0:
                    self._synced.set()

    def _watch(self, namespace: str | None, version: str) -> str:
        """Apply the watch's events until the server ends it; returns the version to resume from."""
        path = kube.api_path(self.api_version, kube.PLURALS[self.kind], namespace)
        query = self._selector() + [("watch", "true"), ("resourceVersion", version),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(WATCH_SECONDS))]
        try:
            response = kube.request("GET", path, query=query, timeout=(30, WATCH_SECONDS + 30))
        except ApiException as e:
            if e.status == 410:
                raise Gone() from e
            raise
        try:
            for line in _lines(response.response):
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self._apply_event(event["type"], obj)
        except BaseException:
            response.response.close()  # not back to the pool with an unread answer in it
            raise
        response.response.release_conn()
        return version


def _lines(response) -> Iterator[bytes]:
    """The lines of a streamed (chunked) answer, one watch event each, as each arrives."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from (line for line in lines if line.strip())
    if buffer.strip():
        yield buffer


INFORMERS: list[Informer] = []


def start_all(namespaces: list[str]) -> None:
    """Start every informer the handlers declared (`mlcycle run`, once leading)."""
    for informer in INFORMERS:
        informer.start(namespaces)
