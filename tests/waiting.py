"""Polling for the integration and e2e tests: the cluster is eventually consistent, so tests wait for a
state instead of sleeping. Generous defaults: CI runs everything on 2 cores."""

import time


def wait_for(predicate, what: str = "condition", timeout: float = 120, interval: float = 0.5):
    """The first truthy value of predicate(); AssertionError naming `what` (and the last value) on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
