"""Thin helpers over the kubernetes client: server-side apply and status patches.

Server-side apply (field manager "mlcycle") makes create-or-update idempotent, and lets other writers
own fields we do not set (e.g. Kueue owning a Job's `suspend`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from mlcycle import applied, clock

FIELD_MANAGER = "mlcycle"
MAX_EVENT_MESSAGE = 1000
log = logging.getLogger(__name__)


@functools.cache
def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def context_namespace() -> str:
    """The namespace kubectl would use: the current kubeconfig context's, else "default"."""
    try:
        _, current = config.list_kube_config_contexts()
        return current.get("context", {}).get("namespace") or "default"
    except (config.ConfigException, FileNotFoundError, TypeError):
        return "default"


def api_path(api_version: str, kind_plural: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{ns}/{kind_plural}" + (f"/{name}" if name else "")


PLURALS = {"Job": "jobs", "Service": "services", "Pod": "pods", "ModelVersion": "modelversions",
           "TrainingJob": "trainingjobs", "InferenceService": "inferenceservices", "Event": "events",
           "Deployment": "deployments", "ConfigMap": "configmaps", "Secret": "secrets",
           "CronJob": "cronjobs", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
           "NetworkPolicy": "networkpolicies", "ServiceAccount": "serviceaccounts",
           "PriorityClass": "priorityclasses"}


def request(method: str, path: str, body=None, content_type: str = "application/json", query=None,
            timeout: float | tuple[float, float] = 60):
    """One request, its answer not yet read (a watch reads it as a stream); ApiException for an error status."""
    api = api_client()
    method_, url, headers, body_, _ = api.param_serialize(
        method, path, query_params=query or [], body=body, auth_settings=["BearerToken"],
        header_params={"Content-Type": content_type, "Accept": "application/json"})
    response = api.call_api(method_, url, header_params=headers, body=body_, _request_timeout=timeout)
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=response.reason,
                           body=response.read().decode(errors="replace"))
    return response


def call(method: str, path: str, body=None, content_type: str = "application/json", query=None):
    """One request; the decoded JSON answer, or ApiException for an error status."""
    data = request(method, path, body, content_type, query).read()
    return json.loads(data) if data else None


def error_message(error: ApiException) -> str:
    """The apiserver's own message of a refusal (it names the field), else the HTTP reason."""
    try:
        return json.loads(error.body).get("message") or str(error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


def namespace_terminating(error: ApiException) -> bool:
    """Whether the apiserver refused a write because the namespace is being deleted."""
    try:
        causes = (json.loads(error.body).get("details") or {}).get("causes") or []
    except (TypeError, ValueError):
        return False
    return error.status == 403 and any(c.get("reason") == "NamespaceTerminating" for c in causes)


def apply(obj: dict, force: bool = True) -> dict:
    """Server-side apply one object (create or update; a no-op when nothing changed)."""
    meta = obj["metadata"]
    path = api_path(obj["apiVersion"], PLURALS[obj["kind"]], meta.get("namespace"), meta["name"])
    query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
    return call("PATCH", path, obj, "application/apply-patch+yaml", query)


def ensure(desired: dict, observed: dict | None) -> dict:
    """Apply `desired` unless `observed` (the child as read) already is what it says (mlcycle.applied)."""
    desired = applied.stamped(desired)
    return apply(desired) if applied.needs_apply(desired, observed) else observed


def get(api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
    try:
        return call("GET", api_path(api_version, PLURALS[kind], namespace, name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def selector(labels: dict[str, str]) -> str:
    """A label selector that matches all of `labels`."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def list_(api_version: str, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict]:
    query = [("labelSelector", label_selector)] if label_selector else []
    return call("GET", api_path(api_version, PLURALS[kind], namespace), query=query).get("items", [])


def delete(api_version: str, kind: str, namespace: str | None, name: str, propagation: str = "Background"):
    try:
        return call("DELETE", api_path(api_version, PLURALS[kind], namespace, name),
                    {"propagationPolicy": propagation})
    except ApiException as e:
        if e.status != 404:
            raise


class Conflict(Exception):
    """The object changed since it was read; read it again and recompute."""


def _pruned(value):
    """Without null values: an absent field and a null one mean the same, and the apiserver keeps nulls."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def status_changed(old: dict, new: dict) -> bool:
    """Whether writing `new` would change the stored status `old` (status is written only when it does)."""
    return json.dumps(_pruned(old), sort_keys=True, default=str) != json.dumps(_pruned(new), sort_keys=True,
                                                                                default=str)


def write_status(obj: dict, status: dict) -> dict | None:
    """Make `obj`'s status exactly `status`, when it differs from the status `obj` holds; the object as written,
    None when nothing was.

    A JSON patch that sets /status as a whole, not a merge patch: a merge patch never removes a key, so a
    field the builder no longer returns (a keyMetric, a modelVersionRef) would stay forever."""
    if not status_changed(obj.get("status") or {}, status):
        return None
    meta = obj["metadata"]
    path = api_path(obj["apiVersion"], PLURALS[obj["kind"]], meta["namespace"], meta["name"]) + "/status"
    patch = [{"op": "add", "path": "/status", "value": _pruned(status)}]
    if meta.get("resourceVersion"):
        # Optimistic concurrency: status computed from this version of the object replaces only this version
        # (409 Conflict otherwise), so a field another writer added meanwhile is not dropped unseen.
        patch.insert(0, {"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]})
    try:
        return call("PATCH", path, patch, "application/json-patch+json")
    except ApiException as e:
        if e.status == 409:
            raise Conflict(f"{obj['kind']} {meta['namespace']}/{meta['name']} changed meanwhile") from e
        raise


def add_status_fields(api_version: str, kind: str, namespace: str, name: str, fields: dict) -> None:
    """Add fields to a status, leaving the rest as it is (a merge patch, which creates status if needed)."""
    call("PATCH", api_path(api_version, PLURALS[kind], namespace, name) + "/status", {"status": fields},
         "application/merge-patch+json")


def create(obj: dict) -> dict | None:
    """Create; None when it already exists (callers that need create-once semantics use this)."""
    meta = obj["metadata"]
    try:
        return call("POST", api_path(obj["apiVersion"], PLURALS[obj["kind"]], meta.get("namespace")), obj)
    except ApiException as e:
        if e.status == 409:
            return None
        raise


def event_name(obj: dict, type_: str, reason: str, message: str) -> str:
    """The one Event that every repeat of (object, type, reason, message) is counted on, as kubelet aggregates
    its events: a flapping state raises a `count` instead of filling etcd with copies."""
    meta = obj["metadata"]
    digest = hashlib.sha256(json.dumps([meta["uid"], type_, reason, message[:MAX_EVENT_MESSAGE]]).encode())
    return f"{meta['name'][:200]}.{digest.hexdigest()[:16]}"


def post_event(obj: dict, type_: str, reason: str, message: str) -> None:
    """Post an Event about `obj` now, best effort; a repeat raises `count` and `lastTimestamp` of the Event
    already there. Not through kopf's queue: kopf retries one failing event (e.g. into a namespace being
    deleted) for about a minute and a half while every later event of the operator waits behind it."""
    meta, now = obj["metadata"], clock.now_iso()
    name = event_name(obj, type_, reason, message)
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": meta["namespace"]},
             "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                                "namespace": meta["namespace"], "uid": meta["uid"]},
             "type": type_, "reason": reason, "message": message[:MAX_EVENT_MESSAGE], "count": 1,
             "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "mlcycle"}}
    try:
        if create(event) is None:  # a repeat
            path = api_path("v1", "events", meta["namespace"], name)
            current = call("GET", path)
            call("PATCH", path, {"count": (current.get("count") or 1) + 1, "lastTimestamp": now,
                                 "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}},
                 "application/merge-patch+json")
    except ApiException as e:  # a concurrent repeat (409 on the patch) loses one count: best effort
        log.warning("%s %s/%s: event %s not posted: %s", obj["kind"], meta["namespace"], meta["name"], reason,
                    e.reason)
