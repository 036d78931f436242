"""Polling for the integration and e2e tests: the cluster is eventually consistent, so tests wait for a
state instead of sleeping. Generous defaults: CI runs everything on 2 cores."""

import time


def wait_for(predicate, what: str = "condition", timeout: float = 120, interval: float = 0.5):
    """The first truthy value of predicate(); AssertionError naming `what` (and the last value) on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


class Recorder:
    """Every version of the objects of one custom resource in a namespace, as a watch delivers them, from now
    on: for assertions about the order of what the operator wrote. Use as a context manager."""

    def __init__(self, api_client, group: str, version: str, namespace: str, plural: str):
        from kubernetes import client, watch

        self.objects: list[dict] = []
        self._api = client.CustomObjectsApi(api_client)
        self._args = (group, version, namespace, plural)
        self._watch = watch.Watch()
        # Watching from the list's resourceVersion delivers every later event, however late the thread starts.
        self._since = self._api.list_namespaced_custom_object(*self._args)["metadata"]["resourceVersion"]

    def _run(self):
        from urllib3.exceptions import ProtocolError

        try:
            for event in self._watch.stream(self._api.list_namespaced_custom_object, *self._args,
                                            resource_version=self._since, timeout_seconds=900):
                self.objects.append(event["object"])
        except ProtocolError:
            pass  # the connection closed under a stopped watch (or a namespace being deleted): recording is over

    def __enter__(self):
        import threading

        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._watch.stop()

    def statuses(self, name: str) -> list[dict]:
        return [o.get("status") or {} for o in list(self.objects) if o["metadata"]["name"] == name]
