"""mlcycle.informer against the real apiserver: only labelled objects reach it (the apiserver selects them),
it keeps them slimmed, indexed by owner, and follows creations and deletions across watches that end."""

from __future__ import annotations

import threading

import yaml

from mlcycle import informer, kube
from mlcycle.trainingjob.status import observed_pod
from waiting import wait_for

LABEL = "mlcycle.io/trainingjob"


def _pod(name: str, namespace: str, owner: str | None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: owner} if owner else {}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "BIG", "value": "x" * 2000}]}]}}


def test_an_informer_holds_only_labelled_children_slimmed_by_owner_and_follows_them(cluster, kube_api, namespace,
                                                                                    monkeypatch):
    monkeypatch.setattr(kube, "api_client", lambda: kube_api)
    # Watches end after a second, so the changes below arrive on watches resumed from a resourceVersion.
    monkeypatch.setattr(informer, "WATCH_SECONDS", 1)
    monkeypatch.setattr(informer, "PAGE_SIZE", 1)  # the first listing comes in pages
    monkeypatch.setattr(informer, "INFORMERS", [])
    changes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_change(ns: str, owner: str) -> None:
        with lock:
            changes.append((ns, owner))

    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(
        [_pod("a-0", namespace, "a"), _pod("a-1", namespace, "a"), _pod("other", namespace, None)]))
    pods = informer.Informer("v1", "Pod", LABEL, lambda p: p["metadata"]["labels"].get(LABEL), on_change,
                             slim=observed_pod)
    pods.start([namespace])
    assert [p["metadata"]["name"] for p in pods.children(namespace, "a")] == ["a-0", "a-1"]
    assert pods.get(namespace, "other") is None and len(pods) == 2  # the apiserver never sent it
    stored = pods.get(namespace, "a-0")
    assert "spec" not in stored and "managedFields" not in stored["metadata"]
    assert (stored["apiVersion"], stored["kind"]) == ("v1", "Pod")  # as a GET has them, though a list's items lack them
    assert (namespace, "a") in changes

    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(_pod("b-0", namespace, "b")))
    wait_for(lambda: pods.get(namespace, "b-0"), what="b-0 from the watch")
    assert (namespace, "b") in changes
    wait_for(lambda: (pods.get(namespace, "a-0") or {}).get("status", {}).get("phase") == "Running",
             what="a-0's status change from the watch")

    cluster.kubectl_run("delete", "pod", "a-0", "-n", namespace, "--grace-period=0", "--force", "--wait")
    wait_for(lambda: [p["metadata"]["name"] for p in pods.children(namespace, "a")] == ["a-1"], what="a-0 gone")
    # What the operator wrote just before the watch saw it deleted is not put back.
    pods.remember(_pod("a-0", namespace, "a"))
    assert pods.get(namespace, "a-0") is None
    # What it just created and the watch has not brought yet is kept until the watch brings it.
    pods.remember(_pod("c-0", namespace, "c"))
    assert pods.get(namespace, "c-0") is not None
