from mlcycle.api.labels import APPLIED_DIGEST_ANNOTATION
from mlcycle.applied import needs_apply, stamped


def job(**spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns",
                                                                  "labels": {"a": "1"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}}
            | spec}


def as_stored(desired):
    """What the apiserver returns: the applied fields plus defaults and bookkeeping of its own."""
    stored = {**desired, "metadata": {**desired["metadata"], "uid": "u", "resourceVersion": "7"},
              "spec": {**desired["spec"], "completionMode": "NonIndexed"}, "status": {"active": 1}}
    container = {**desired["spec"]["template"]["spec"]["containers"][0], "imagePullPolicy": "IfNotPresent"}
    stored["spec"]["template"] = {"spec": {**desired["spec"]["template"]["spec"], "containers": [container],
                                           "restartPolicy": "Never"}}
    return stored


def test_a_child_that_already_is_what_would_be_applied_is_left_alone_defaults_and_all():
    desired = stamped(job())
    assert APPLIED_DIGEST_ANNOTATION in desired["metadata"]["annotations"]
    assert not needs_apply(desired, as_stored(desired))


def test_a_missing_child_a_changed_value_or_a_changed_list_is_applied():
    desired = stamped(job())
    assert needs_apply(desired, None)
    changed = as_stored(desired)
    changed["spec"]["backoffLimit"] = 3  # someone else changed a field we own
    assert needs_apply(desired, changed)
    stored = as_stored(desired)
    stored["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    assert needs_apply(desired, stored)
    assert needs_apply(stamped(job(backoffLimit=True)), as_stored(stamped(job(backoffLimit=1))))


def test_a_field_dropped_from_the_manifest_is_applied_through_the_digest():
    before = stamped(job(activeDeadlineSeconds=60))
    after = stamped(job())  # the apply must remove activeDeadlineSeconds, which the subset check cannot see
    assert needs_apply(after, as_stored(before))


def test_stamping_is_stable_and_ignores_an_old_digest():
    assert stamped(job()) == stamped(stamped(job()))
    assert stamped(job()) != stamped(job(backoffLimit=1))


def test_a_null_in_the_manifest_asks_for_the_field_to_be_absent():
    desired = stamped(job(suspend=None))
    stored = as_stored(desired)
    assert not needs_apply(desired, {**stored, "spec": {k: v for k, v in stored["spec"].items() if k != "suspend"}})
    assert needs_apply(desired, {**stored, "spec": {**stored["spec"], "suspend": True}})
