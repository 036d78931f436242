"""Rollout analysis from the serving agents' own metrics, with no Prometheus in between.

The operator scrapes `/metrics` on the admin port of every serving pod (stable and candidate) each
analysis interval and keeps the last scrape. The difference between two scrapes is what happened in the
interval; `measure` turns it into one version's request count, failures and p99 latency:

- requests: `mlcycle_agent_requests_total{model_version}`, counted by the agent that answered (a request
  a stable agent forwards is counted by the candidate's agent only);
- failures: those with a 5xx code, plus `mlcycle_agent_canary_forward_failures_total{model_version}`:
  requests meant for the candidate that it did not answer at all (its pods down or not ready);
- p99: from `mlcycle_agent_request_duration_seconds`, interpolated within the bucket like PromQL's
  histogram_quantile.

A counter that went down between two scrapes belongs to a restarted pod: its new value is the increase,
as in PromQL's rate(). Everything here is pure: text in, numbers out. prometheus_client parses the text;
it has no quantile function, hence the few lines of histogram_quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from mlcycle.workloads.agent_metrics import CANARY_FORWARD_FAILURES, REQUEST_DURATION, REQUESTS

# A series: (sample name, sorted label pairs) -> value, for one pod.
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """The agent series of one pod's /metrics text (other metrics are ignored)."""
    wanted = {f"{REQUESTS}_total", f"{CANARY_FORWARD_FAILURES}_total", f"{REQUEST_DURATION}_bucket"}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in wanted
    }


def increase(before: Series | None, after: Series) -> Series:
    """What each counter of one pod grew by between two scrapes (a reset counts from zero)."""
    before = before or {}
    return {key: value - before[key] if before.get(key, math.inf) <= value else value
            for key, value in after.items()}


def window(before: Mapping[str, str], after: Mapping[str, str]) -> Series:
    """The increase summed over pods, from two scrapes given as pod name -> /metrics text. A pod absent
    before is new: all its counts fall in the window. A pod absent after is gone: its last interval is lost,
    as it is to Prometheus."""
    total: Series = {}
    for pod, text in after.items():
        for key, value in increase(parse(before[pod]) if pod in before else None, parse(text)).items():
            total[key] = total.get(key, 0.0) + value
    return total


@dataclass(frozen=True)
class Measurement:
    """One version's requests in an analysis window."""

    requests: int
    failures: int
    latency_p99_ms: float | None = None  # None without requests; inf above the highest bucket
    codes: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return None if not self.requests else (self.requests - self.failures) / self.requests


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram {upper bound: count}, interpolated linearly within its
    bucket (PromQL's histogram_quantile); inf when it lies in the +Inf bucket, None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return math.inf


def measure(series: Series, model_version: str) -> Measurement:
    """The requests, failures and p99 latency of `model_version` in a window."""
    codes: dict[str, int] = {}
    unanswered = 0
    buckets: dict[float, float] = {}
    for (name, labels), value in series.items():
        label = dict(labels)
        if label.get("model_version") != model_version:
            continue
        if name == f"{REQUESTS}_total":
            codes[label["code"]] = codes.get(label["code"], 0) + round(value)
        elif name == f"{CANARY_FORWARD_FAILURES}_total":
            unanswered += round(value)
        else:
            le = float(label["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    codes = {code: n for code, n in codes.items() if n}
    answered = sum(codes.values())
    failed = sum(n for code, n in codes.items() if code.startswith("5")) + unanswered
    p99 = histogram_quantile(0.99, buckets) if answered else None
    return Measurement(answered + unanswered, failed, None if p99 is None else p99 * 1000, codes)
