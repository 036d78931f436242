"""The API server as the local pod runtime talks to it: raw JSON requests, list+watch, and the
Secrets/ConfigMaps/tokens that pods refer to (runtime_spec.Resolver)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from pathlib import Path

from kubernetes import config
from kubernetes.watch.watch import iter_resp_lines

from mlcycle.localdev.runtime_spec import ConfigError, decode_config_map, decode_secret

log = logging.getLogger("mlcycle.runtime")


class ApiError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """Raw JSON requests to the API server (dicts in, dicts out) with the kubeconfig's credentials."""

    def __init__(self, kubeconfig: Path):
        self.client = config.new_client_from_config(config_file=str(kubeconfig))
        self.server = urllib.parse.urlsplit(self.client.configuration.host)

    def _send(self, method: str, path: str, body, query, content_type: str, timeout):
        method, url, headers, body, post = self.client.param_serialize(
            method, path, query_params=query or [], body=body, auth_settings=["BearerToken"],
            header_params={"Content-Type": content_type, "Accept": "application/json"})
        return self.client.call_api(method, url, headers, body, post, _request_timeout=timeout)

    def call(self, method: str, path: str, body=None, query=None,
             content_type: str = "application/json") -> dict:
        resp = self._send(method, path, body, query, content_type, 30)
        data = resp.read().decode()
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, data)
        return json.loads(data) if data else {}

    def get(self, path: str) -> dict | None:
        try:
            return self.call("GET", path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def watch(self, path: str, query: list, on_event, stop: threading.Event) -> None:
        """List then watch `path` until `stop`; `on_event(type, obj)` gets 'SYNC' with the full list after
        every (re)list, then ADDED/MODIFIED/DELETED. Relists when the watch expires (410)."""
        version = None
        while not stop.is_set():
            try:
                if version is None:
                    listed = self.call("GET", path, query=query)
                    version = listed["metadata"]["resourceVersion"]
                    on_event("SYNC", listed["items"])
                resp = self._send("GET", path, None, [*query, ("watch", "true"), ("resourceVersion", version),
                                                      ("allowWatchBookmarks", "true"), ("timeoutSeconds", "290")],
                                  "application/json", (10, 300))
                if resp.status != 200:
                    raise ApiError(resp.status, resp.read().decode())
                for line in iter_resp_lines(resp.response):
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        version = None if obj.get("code") == 410 else version
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], obj)
                    if stop.is_set():
                        return
            except Exception as e:  # the API server restarted, a network blip: try again
                if isinstance(e, ApiError) and e.status == 410:
                    version = None
                log.warning("watch %s: %s; retrying", path, e)
                stop.wait(2)


class ApiResolver:
    """runtime_spec.Resolver over the API."""

    def __init__(self, api: Api):
        self.api = api

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return None if obj is None else decode_secret(obj.get("data"))

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self.api.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        return None if obj is None else decode_config_map(obj)

    def token(self, namespace: str, service_account: str, audience: str | None, seconds: int) -> str:
        spec: dict = {"expirationSeconds": seconds, **({"audiences": [audience]} if audience else {})}
        try:
            out = self.api.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        except ApiError as e:
            raise ConfigError(f"token for service account {namespace}/{service_account}: {e}") from e
        return out["status"]["token"]
