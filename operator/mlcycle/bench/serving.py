"""Requests/s and p50/p99 latency of the sample model served by an InferenceService on the local stack:
through the Service's backend (what its name resolves to) to the real tritonserver, python backend,
with and without dynamic batching, at 1, 8 and 32 concurrent clients (threads, one keep-alive connection
each, one row per request).

    .venv/bin/python -m mlcycle.bench.serving [--seconds 10]

Brings up the local stack, trains and registers the sample model (`mlcycle dev`'s pipeline), serves it twice
(`plain` and `batched`), measures, and prints a table. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import tritonclient.http as httpclient
import yaml

from mlcycle.bench.trainingjobs import percentile
from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev import minio as minio_mod
from mlcycle.localdev import runtime, sample
from mlcycle.localdev.dev import (
    NAMESPACE,
    RUNTIME_LABEL,
    RUNTIME_NODE,
    RUNTIME_TOLERATION,
    _get,
    follow,
    install_crds,
    upload_sample,
    wait_model_version,
)
from mlcycle.localdev.paths import LOCAL
from mlcycle.localdev.processes import start_operator

VARIANTS = {"plain": {"backend": "python"},
            "batched": {"backend": "python", "maxBatchSize": 32,
                        "dynamicBatching": {"preferredBatchSizes": [8, 16, 32], "maxQueueDelayMicroseconds": 500}}}


def load(address: str, clients: int, seconds: float) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) of `clients` threads sending one-row requests for `seconds`."""
    row = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        c = httpclient.InferenceServerClient(address)
        request = httpclient.InferInput("INPUT__0", [1, 4], "FP32")
        request.set_data_from_numpy(row)
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                c.infer("iris", [request])
                latencies[i].append(time.perf_counter() - t)
            except Exception:
                errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    every = [x for per in latencies for x in per]
    return len(every) / elapsed, percentile(every, 50) * 1e3, percentile(every, 99) * 1e3, sum(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    cluster = cluster_mod.up()
    server = minio_mod.up()
    install_crds(cluster)
    pod_runtime = runtime.start_runtime(cluster.kubeconfig, RUNTIME_NODE, LOCAL / "runtime")
    operator = start_operator(cluster.kubeconfig, LOCAL / "operator-bench.log")
    try:
        upload_sample(server)
        cluster.kubectl_run("create", "namespace", NAMESPACE, check=False)
        secret = sample.storage_secret("sample-s3", NAMESPACE, server.endpoint, server.access_key, server.secret_key)
        tj = sample.training_job("iris-bench", NAMESPACE, "sample-s3", node_selector=RUNTIME_LABEL)
        tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
        cluster.kubectl_run("delete", "trainingjob", "iris-bench", "-n", NAMESPACE, "--ignore-not-found")
        cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
        version = follow(cluster, "iris-bench", 600)["status"]["modelVersionRef"]["name"]
        wait_model_version(cluster, version, 120)
        number = _get(cluster, "modelversion", version, "-n", NAMESPACE)["spec"]["version"]
        for name, runtime_spec in VARIANTS.items():
            isvc = sample.inference_service(f"bench-{name}", NAMESPACE, "sample-s3", node_selector=RUNTIME_LABEL,
                                            tolerations=[RUNTIME_TOLERATION])
            isvc["spec"]["model"] = {"name": "iris", "version": number}
            isvc["spec"]["runtime"] = runtime_spec
            cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(isvc))
        for name in VARIANTS:
            cluster.kubectl_run("wait", "--for=condition=Ready", f"inferenceservice/bench-{name}", "-n", NAMESPACE,
                                "--timeout=300s", timeout=320)
        print(f"\nsample model {version}, {args.seconds:.0f} s per cell, one-row requests over HTTP (tritonclient)")
        print("| runtime | clients | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
        for name in VARIANTS:
            address = f"{cluster_mod.service_backend(cluster, f'bench-{name}', NAMESPACE)}:8000"
            for clients in (1, 8, 32):
                rps, p50, p99, errors = load(address, clients, args.seconds)
                print(f"| {name} | {clients} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {errors} |", flush=True)
        return 0
    finally:
        for name in VARIANTS:
            cluster.kubectl_run("delete", "inferenceservice", f"bench-{name}", "-n", NAMESPACE, "--wait=false",
                                check=False)
        operator.stop()
        pod_runtime.stop()


if __name__ == "__main__":
    raise SystemExit(main())
