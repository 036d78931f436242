"""Polling for the integration and e2e tests: the cluster is eventually consistent, so tests wait for a
state instead of sleeping. Generous defaults: CI runs everything on 2 cores."""

import json
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
    """Every version of the objects of one custom resource (or of the pods) in a namespace, as a watch delivers
    them, from now on: for assertions about what the operator wrote, in order, or about short-lived pods. Use
    as a context manager."""

    def __init__(self, api_client, group: str, version: str, namespace: str, plural: str):
        from kubernetes import client, watch

        self.objects: list[dict] = []
        if plural == "pods":
            core = client.CoreV1Api(api_client)
            self._list, self._args = core.list_namespaced_pod, (namespace,)
            # Raw JSON, as kubectl shows it (not the client's snake_case models).
            self._kwargs = {"_preload_content": False}
        else:
            self._list = client.CustomObjectsApi(api_client).list_namespaced_custom_object
            self._args, self._kwargs = (group, version, namespace, plural), {}
        self._watch = watch.Watch()
        # Watching from the list's resourceVersion delivers every later event, however late the thread starts.
        listed = self._list(*self._args, **self._kwargs)
        listed = json.loads(listed.data) if hasattr(listed, "data") else listed
        self._since = listed["metadata"]["resourceVersion"]

    def _run(self):
        from urllib3.exceptions import ProtocolError

        try:
            for event in self._watch.stream(self._list, *self._args, resource_version=self._since,
                                            timeout_seconds=900):
                obj = event["raw_object"] if "raw_object" in event else event["object"]
                self.objects.append(obj)
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
