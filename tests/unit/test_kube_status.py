import json

from kubernetes.client.rest import ApiException

from mlcycle import kube


def test_status_changes_when_a_key_disappears_and_not_for_nulls():
    old = {"phase": "Ready", "keyMetric": "acc=0.9"}
    assert kube.status_changed(old, {"phase": "Ready"})  # a merge patch would never remove keyMetric
    assert not kube.status_changed(old, {"phase": "Ready", "keyMetric": "acc=0.9", "size": None})
    assert kube.selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_repeats_of_an_event_share_one_name_and_other_events_do_not():
    obj = {"metadata": {"name": "tj", "namespace": "ns", "uid": "u1"}}
    name = kube.event_name(obj, "Warning", "Failed", "boom")
    assert name.startswith("tj.") and name == kube.event_name(obj, "Warning", "Failed", "boom")
    assert len({name, kube.event_name(obj, "Warning", "Failed", "other"), kube.event_name(obj, "Normal", "Failed",
                "boom"), kube.event_name({"metadata": {**obj["metadata"], "uid": "u2"}}, "Warning", "Failed",
                                         "boom")}) == 4
    assert len(kube.event_name({"metadata": {**obj["metadata"], "name": "x" * 253}}, "W", "R", "m")) <= 253


def test_a_refusal_because_the_namespace_is_being_deleted_is_told_apart():
    def refusal(status, reason):
        return ApiException(status=status, reason="x", body=json.dumps(
            {"kind": "Status", "code": status, "details": {"causes": [{"reason": reason}]}}))

    assert kube.namespace_terminating(refusal(403, "NamespaceTerminating"))
    assert not kube.namespace_terminating(refusal(403, "Forbidden"))
    assert not kube.namespace_terminating(ApiException(status=403, reason="Forbidden", body="not json"))
