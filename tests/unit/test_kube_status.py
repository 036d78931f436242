from mlcycle import kube


def test_status_changes_when_a_key_disappears_and_not_for_nulls():
    old = {"phase": "Ready", "keyMetric": "acc=0.9"}
    assert kube.status_changed(old, {"phase": "Ready"})  # a merge patch would never remove keyMetric
    assert not kube.status_changed(old, {"phase": "Ready", "keyMetric": "acc=0.9", "size": None})
    assert kube.selector({"b": "2", "a": "1"}) == "a=1,b=2"
