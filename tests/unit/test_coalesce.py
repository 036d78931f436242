"""The Coalescer's scheduling and pool: real threads, short waits on events (no sleeps to hope things happened)."""

import threading
import time

from mlcycle.coalesce import Coalescer


def test_later_fires_once_at_its_time_and_a_new_schedule_replaces_the_old():
    fired = []
    done = threading.Event()

    def reconcile(namespace, name):
        fired.append((name, time.monotonic()))
        done.set()

    c = Coalescer(reconcile, "Test", workers=2)
    start = time.monotonic()
    c.later("ns", "a", 30)
    c.later("ns", "a", 0.2)  # replaces the 30 s schedule
    assert 0 < c.scheduled("ns", "a") <= 0.2
    assert done.wait(5)
    assert [name for name, _ in fired] == ["a"] and fired[0][1] - start >= 0.2
    assert c.scheduled("ns", "a") is None


def test_forget_cancels_the_schedule():
    c = Coalescer(lambda namespace, name: None, "Test")
    c.later("ns", "a", 60)
    c.forget("ns", "a")
    assert c.scheduled("ns", "a") is None


def test_a_burst_of_submits_during_a_reconcile_costs_one_more_reconcile():
    release, started = threading.Event(), threading.Event()
    calls = []
    finished = threading.Semaphore(0)

    def reconcile(namespace, name):
        calls.append(name)
        started.set()
        release.wait(5)
        finished.release()

    c = Coalescer(reconcile, "Test", workers=4)
    c.submit("ns", "a")
    assert started.wait(5)
    for _ in range(50):
        c.submit("ns", "a")
    release.set()
    assert finished.acquire(timeout=5) and finished.acquire(timeout=5)
    assert not finished.acquire(timeout=0.3)
    assert calls == ["a", "a"]


def test_slow_reconciles_of_one_kind_hold_only_that_kinds_pool():
    blocked = threading.Event()
    slow = Coalescer(lambda namespace, name: blocked.wait(10), "Slow", workers=2)
    fast_done = threading.Event()
    fast = Coalescer(lambda namespace, name: fast_done.set(), "Fast", workers=2)
    for i in range(20):
        slow.submit("ns", f"v{i}")
    fast.submit("ns", "job")
    assert fast_done.wait(2)
    blocked.set()


def test_a_failing_scheduled_reconcile_is_retried():
    attempts = []
    healed = threading.Event()

    def reconcile(namespace, name):
        attempts.append(name)
        if len(attempts) == 1:
            raise RuntimeError("apiserver away")
        healed.set()

    reported = []
    c = Coalescer(reconcile, "Test", on_failure=lambda ns, name, error, delay: reported.append((name, str(error),
                                                                                               delay)))
    c.submit("ns", "a")
    assert healed.wait(10)
    assert attempts == ["a", "a"]
    assert reported == [("a", "apiserver away", 2.0)]  # reported once, with the delay of its retry
