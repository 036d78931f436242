from mlcycle.mutations import Mutations


def obj(rv, uid="u1", phase="Ready"):
    return {"metadata": {"uid": uid, "resourceVersion": str(rv)}, "status": {"phase": phase}}


def test_a_write_newer_than_the_store_is_read_until_the_store_catches_up():
    written = Mutations()
    written.record(obj(12, phase="Failed"))
    assert written.newest(obj(10))["status"]["phase"] == "Failed"
    assert written.newest(obj(12, phase="Ready"))["status"]["phase"] == "Ready"  # caught up: the store's copy
    assert written.newest(obj(10))["status"]["phase"] == "Ready"  # and the write is forgotten


def test_the_watch_event_of_an_own_write_is_an_echo_and_a_later_change_is_not():
    written = Mutations()
    written.record(obj(12))
    assert written.echo(obj(11))  # older than what the operator wrote: already seen
    assert written.echo(obj(12))
    assert not written.echo(obj(12))  # forgotten once its echo came
    written.record(obj(20))
    assert not written.echo(obj(21))  # someone else's change after the write


def test_an_older_write_never_replaces_a_newer_one_and_other_objects_are_apart():
    written = Mutations()
    written.record(obj(12, phase="Failed"))
    written.record(obj(11, phase="Ready"))
    assert written.newest(obj(10))["status"]["phase"] == "Failed"
    assert written.newest(obj(10, uid="u2"))["status"]["phase"] == "Ready"
    assert not written.echo(obj(12, uid="u2"))


def test_resource_versions_that_are_not_integers_are_never_taken_as_newer():
    written = Mutations()
    written.record({"metadata": {"uid": "u1", "resourceVersion": "abc"}})
    written.record(None)
    assert written.newest(obj(10)) == obj(10)
    assert not written.echo({"metadata": {"uid": "u1", "resourceVersion": "abc"}})


def test_a_deleted_object_is_forgotten():
    written = Mutations()
    written.record(obj(12, phase="Failed"))
    written.forget("u1")
    assert written.newest(obj(10))["status"]["phase"] == "Ready"
