"""The agent's Prometheus metrics, in one registry per agent (served on the admin port's `/metrics`).

The rollout analysis (`mlcycle.inferenceservice.analysis`) reads these names; change them together.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REQUESTS = "mlcycle_agent_requests"
REQUEST_DURATION = "mlcycle_agent_request_duration_seconds"
CANARY_FORWARD_FAILURES = "mlcycle_agent_canary_forward_failures"

# Loopback inference takes about a millisecond; a big model on a busy GPU, seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FLUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Memory and CPU of the agent itself (process_resident_memory_bytes): the buffer bound shows here.
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(REQUESTS, "Inference requests answered, by model version and HTTP status code",
                                ["model_version", "code"], registry=r)
        self.request_duration = Histogram(REQUEST_DURATION, "Inference request latency through the agent",
                                          ["model_version"], buckets=LATENCY_BUCKETS, registry=r)
        self.canary_forward_failures = Counter(
            CANARY_FORWARD_FAILURES,
            "Requests meant for the canary that got no answer from it (served locally instead)",
            ["model_version"], registry=r)
        self.log_records = Counter("mlcycle_agent_log_records", "Payload log rows written to object storage",
                                   registry=r)
        self.log_dropped = Counter("mlcycle_agent_log_dropped",
                                   "Payload log rows dropped: the oldest, when the buffer was full", registry=r)
        self.log_write_failures = Counter("mlcycle_agent_log_write_failures",
                                          "Failed attempts to write a payload log object (each is retried)",
                                          registry=r)
        self.log_undecodable = Counter("mlcycle_agent_log_undecodable",
                                    "Sampled requests that were served but could not be decoded for the log",
                                    registry=r)
        self.log_queue_depth = Gauge("mlcycle_agent_log_queue_depth",
                                     "Payload log rows buffered, not yet written (including the batch in flight)",
                                     registry=r)
        self.log_flush_duration = Histogram("mlcycle_agent_log_flush_duration_seconds",
                                            "Time to write one payload log object", buckets=FLUSH_BUCKETS,
                                            registry=r)
