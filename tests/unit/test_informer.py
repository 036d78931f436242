"""The informer's store without a cluster: slimming, the owner index, what triggers on_change, and `remember`
against a deletion the watch has seen."""

from mlcycle import informer
from mlcycle.informer import Informer, without_bookkeeping
from mlcycle.trainingjob.status import observed_pod


def _pod(name, owner, phase="Running", rv="1"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "labels": {"o": owner}, "resourceVersion": rv,
                         "managedFields": [{"manager": "kubelet"}], "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": phase, "podIP": "1.2.3.4"}}


def _informer(monkeypatch, **kwargs):
    monkeypatch.setattr(informer, "INFORMERS", [])
    changes = []
    inf = Informer("v1", "Pod", "o", lambda p: p["metadata"]["labels"].get("o"),
                   lambda ns, owner: changes.append((ns, owner)), **kwargs)
    inf._synced.set()
    return inf, changes


def test_bookkeeping_is_dropped_and_the_rest_kept():
    obj = {"metadata": {"name": "a", "managedFields": [{}], "annotations": {
        informer.LAST_APPLIED: "{...}", "keep": "1"}}, "spec": {"x": 1}}
    assert without_bookkeeping(obj) == {"metadata": {"name": "a", "annotations": {"keep": "1"}}, "spec": {"x": 1}}
    assert obj["metadata"]["managedFields"] == [{}]  # the original is left alone


def test_a_pod_keeps_what_its_trainingjobs_status_reads():
    pod = observed_pod(_pod("p", "tj"))
    assert pod == {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p", "namespace": "ns", "labels": {"o": "tj"}, "resourceVersion": "1"}, "status": {"phase": "Running"}}


def test_children_are_indexed_by_owner_and_follow_events(monkeypatch):
    pods, changes = _informer(monkeypatch, slim=observed_pod)
    pods._apply_event("ADDED", _pod("b", "tj"))
    pods._apply_event("ADDED", _pod("a", "tj"))
    pods._apply_event("ADDED", _pod("x", "other"))
    assert [p["metadata"]["name"] for p in pods.children("ns", "tj")] == ["a", "b"]
    pods._apply_event("MODIFIED", _pod("a", "tj", phase="Succeeded", rv="2"))
    assert pods.get("ns", "a")["status"] == {"phase": "Succeeded"}
    pods._apply_event("DELETED", _pod("b", "tj"))
    assert [p["metadata"]["name"] for p in pods.children("ns", "tj")] == ["a"]
    assert changes == [("ns", "tj"), ("ns", "tj"), ("ns", "other"), ("ns", "tj"), ("ns", "tj")]
    first = pods.get("ns", "a")
    first["status"]["phase"] = "changed by a reader"
    assert pods.get("ns", "a")["status"]["phase"] == "Succeeded"  # each reader gets a copy of its own


def test_trigger_filters_on_change_but_the_store_still_follows(monkeypatch):
    pods, changes = _informer(monkeypatch, trigger=lambda type_, obj: type_ != "MODIFIED")
    pods._apply_event("ADDED", _pod("a", "tj"))
    pods._apply_event("MODIFIED", _pod("a", "tj", phase="Failed", rv="2"))
    assert changes == [("ns", "tj")] and pods.get("ns", "a")["status"]["phase"] == "Failed"


def test_remember_fills_a_gap_but_never_overrides_the_watch(monkeypatch):
    pods, _ = _informer(monkeypatch)
    pods.remember(_pod("new", "tj"))  # created by the operator, not yet seen
    assert pods.get("ns", "new") is not None
    pods._apply_event("MODIFIED", _pod("new", "tj", phase="Succeeded", rv="5"))
    pods.remember(_pod("new", "tj", rv="4"))
    assert pods.get("ns", "new")["status"]["phase"] == "Succeeded"
    pods._apply_event("DELETED", _pod("new", "tj", rv="6"))
    pods.remember(_pod("new", "tj", rv="4"))  # the answer to a write that came after the watch's deletion
    assert pods.get("ns", "new") is None


def test_old_deletions_are_forgotten(monkeypatch):
    pods, _ = _informer(monkeypatch)
    clock = [1000.0]
    monkeypatch.setattr(informer.time, "monotonic", lambda: clock[0])
    pods._apply_event("DELETED", _pod("a", "tj"))
    clock[0] += informer.TOMBSTONE_SECONDS + 1
    pods._apply_event("DELETED", _pod("b", "tj"))
    assert list(pods._deleted) == [("ns", "b")]  # a's is gone: the store does not grow with every deletion
    pods.remember(_pod("a", "tj"))
    assert pods.get("ns", "a") is not None
