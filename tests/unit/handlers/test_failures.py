from mlcycle import conditions
from mlcycle.handlers.failures import MAX_BACKOFF_SECONDS, backoff, failure_message


def test_backoff_doubles_from_two_seconds_up_to_five_minutes():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff(9) == backoff(50) == MAX_BACKOFF_SECONDS == 300


def test_the_failure_message_names_the_handler_the_error_and_the_retry():
    error = NotADirectoryError(20, "Not a directory", "/tmp/x/mlcycle-artifact-1")
    message = failure_message("on_modelversion_event", error, 8)
    assert message.startswith("on_modelversion_event: NotADirectoryError: [Errno 20] Not a directory")
    assert message.endswith("; retrying in 8s")
    assert len(failure_message("h", RuntimeError("x" * 5000), 2)) < 1000


def test_synced_is_false_with_the_error_and_true_once_it_heals():
    failing = conditions.synced("boom", 3)
    assert failing == {"type": "Synced", "status": "False", "reason": "ReconcileError", "message": "boom",
                       "observedGeneration": 3}
    assert conditions.synced(None, 3)["status"] == "True"
