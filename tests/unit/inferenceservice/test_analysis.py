"""Rollout analysis from agent /metrics text: per-version requests, failures and p99 over an interval."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from mlcycle.inferenceservice.analysis import histogram_quantile, measure, window
from mlcycle.workloads.agent_metrics import AgentMetrics

pytestmark = pytest.mark.unit


class Pod:
    """A serving pod's agent metrics: the real metric objects the agent uses, rendered as it serves them."""

    def __init__(self):
        self.metrics = AgentMetrics()

    def serve(self, version: str, n: int, code: int = 200, seconds: float = 0.002) -> Pod:
        for _ in range(n):
            self.metrics.requests.labels(version, str(code)).inc()
            self.metrics.request_duration.labels(version).observe(seconds)
        return self

    def unanswered(self, version: str, n: int) -> Pod:
        self.metrics.canary_forward_failures.labels(version).inc(n)
        return self

    def text(self) -> str:
        return generate_latest(self.metrics.registry).decode()


def test_counts_only_the_interval_between_two_scrapes():
    pod = Pod().serve("v2", 50).serve("v2", 5, code=500)
    before = {"p": pod.text()}
    pod.serve("v2", 90).serve("v2", 10, code=503).serve("v1", 400)
    m = measure(window(before, {"p": pod.text()}), "v2")
    assert (m.requests, m.failures, m.success_rate) == (100, 10, 0.9)
    assert m.codes == {"200": 90, "503": 10}


def test_sums_over_pods_and_versions_stay_apart():
    stable, candidate_a, candidate_b = Pod(), Pod(), Pod()
    before = {"s": stable.text(), "a": candidate_a.text(), "b": candidate_b.text()}
    stable.serve("v1", 800)
    candidate_a.serve("v2", 100)
    candidate_b.serve("v2", 99).serve("v2", 1, code=500)
    after = {"s": stable.text(), "a": candidate_a.text(), "b": candidate_b.text()}
    assert measure(window(before, after), "v2").success_rate == pytest.approx(199 / 200)
    assert measure(window(before, after), "v1").requests == 800


def test_4xx_is_the_clients_fault_not_the_versions():
    pod = Pod()
    before = {"p": pod.text()}
    pod.serve("v2", 10, code=400).serve("v2", 10)
    assert measure(window(before, {"p": pod.text()}), "v2").success_rate == 1.0


def test_requests_the_candidate_never_answered_are_its_failures():
    stable = Pod()
    before = {"s": stable.text()}
    stable.serve("v1", 80).unanswered("v2", 20)
    m = measure(window(before, {"s": stable.text()}), "v2")
    assert (m.requests, m.failures, m.success_rate, m.latency_p99_ms) == (20, 20, 0.0, None)


def test_a_restarted_pod_counts_from_zero_and_a_new_pod_counts_whole():
    old = Pod().serve("v2", 1000)
    before = {"p": old.text()}
    restarted, new = Pod().serve("v2", 30), Pod().serve("v2", 20, code=500)
    m = measure(window(before, {"p": restarted.text(), "q": new.text()}), "v2")
    assert (m.requests, m.failures) == (50, 20)


def test_no_traffic_measures_zero_requests_and_no_rate():
    pod = Pod().serve("v1", 5)
    m = measure(window({"p": pod.text()}, {"p": pod.text()}), "v2")
    assert (m.requests, m.success_rate, m.latency_p99_ms) == (0, None, None)


def test_p99_interpolates_within_the_bucket():
    pod = Pod()
    before = {"p": pod.text()}
    pod.serve("v2", 98, seconds=0.0008).serve("v2", 2, seconds=0.2)  # 2% in the (0.1, 0.25] bucket
    m = measure(window(before, {"p": pod.text()}), "v2")
    # rank 99 of 100: halfway into the bucket holding the 99th and 100th -> 100 + 150 * 0.5 ms
    assert m.latency_p99_ms == pytest.approx(175.0)


def test_histogram_quantile():
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.99, {0.1: 10.0, math.inf: 20.0}) == math.inf
    assert histogram_quantile(0.99, {0.1: 0.0, math.inf: 0.0}) is None
