"""The operator's own writes, until the watch brings them back.

A store fed by watch events (kopf's indexes) lags the operator's writes by a moment: reading it right after a
write would see the object as it was and write again with a stale resourceVersion (409). The object each write
returns is kept here and preferred while it is newer than the store's; when the write's watch event arrives it
is recognised as the operator's own echo, which needs no reconcile. As client-go's MutationCache does,
resourceVersions are compared as integers (etcd revisions); one that is not an integer is never taken as
newer, so the store's copy wins.
"""

from __future__ import annotations

import threading


def _revision(obj: dict) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


class Mutations:
    def __init__(self) -> None:
        self._written: dict[str, dict] = {}  # uid -> the object as the last write returned it
        self._guard = threading.Lock()

    def record(self, written: dict | None) -> None:
        """Keep what a write returned (None: nothing was written)."""
        if written is None or _revision(written) is None:
            return
        with self._guard:
            kept = self._written.get(uid := written["metadata"]["uid"])
            if kept is None or _revision(kept) < _revision(written):
                self._written[uid] = written

    def newest(self, stored: dict) -> dict:
        """`stored` (from the watch-fed store), or what the operator wrote to it when that is newer."""
        uid, revision = stored["metadata"].get("uid"), _revision(stored)
        with self._guard:
            kept = self._written.get(uid)
            if kept is None:
                return stored
            if revision is not None and revision >= _revision(kept):
                del self._written[uid]  # the store has caught up
                return stored
            return kept

    def echo(self, event_body: dict) -> bool:
        """Whether a watch event brings nothing the operator has not already seen: its own write, or a version
        older than the one a write of it returned."""
        uid, revision = event_body["metadata"].get("uid"), _revision(event_body)
        with self._guard:
            kept = self._written.get(uid)
            if kept is None or revision is None:
                return False
            if revision == _revision(kept):
                del self._written[uid]
            return revision <= _revision(kept)

    def forget(self, uid: str) -> None:
        with self._guard:
            self._written.pop(uid, None)
