"""500 TrainingJobs applied at once on the local cluster (kwok nodes): how fast does the operator give each
one its Job and a status, and how much memory does it take? Baseline: the same 500 Jobs created directly by
a plain client loop.

    .venv/bin/python -m mlcycle.bench.trainingjobs [--count 500]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config, watch

from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev.dev import install_crds
from mlcycle.localdev.paths import LOCAL
from mlcycle.localdev.processes import start_operator
from mlcycle.localdev.sample import training_job
from mlcycle.trainingjob.manifests import desired_job

GROUP, VERSION, PLURAL = "mlcycle.io", "v1alpha1", "trainingjobs"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def watch_jobs(batch: client.BatchV1Api, namespace: str, seen: dict[str, float], want: int, stop: threading.Event):
    w = watch.Watch()
    for event in w.stream(batch.list_namespaced_job, namespace, timeout_seconds=600):
        seen.setdefault(event["object"].metadata.name, time.monotonic())
        if len(seen) >= want or stop.is_set():
            w.stop()


def rss_peak_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_operator_case(api_client, cluster, count: int) -> dict:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    operator = start_operator(cluster.kubeconfig, LOCAL / "bench-operator.log")
    seen: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_jobs, args=(batch, namespace, seen, count, stop), daemon=True)
    watcher.start()
    time.sleep(1)
    applied: dict[str, float] = {}
    started = time.monotonic()

    def create(i: int) -> None:
        name = f"tj-{i:04d}"
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                               training_job(name, namespace, "bench-s3", epochs=1))
        applied[name] = time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    apply_done = time.monotonic() - started
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        with_status = sum(1 for tj in items if (tj.get("status") or {}).get("phase"))
        if len(seen) >= count and with_status >= count:
            break
        time.sleep(1)
    all_done = time.monotonic() - started
    stop.set()
    latencies = [seen[n] - applied[n] for n in applied if n in seen]
    peak = rss_peak_mib(operator.process.pid)
    operator.stop()
    core.delete_namespace(namespace)
    return {"apply_all_s": apply_done, "all_jobs_and_status_s": all_done, "jobs": len(latencies),
            "with_status": with_status, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 99), "operator_peak_rss_mib": peak}


def run_baseline_case(api_client, count: int) -> dict:
    namespace = f"bench-base-{uuid.uuid4().hex[:6]}"
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    from mlcycle.api.trainingjob import TrainingJobSpec

    jobs = []
    for i in range(count):
        tj = training_job(f"job-{i:04d}", namespace, "bench-s3", epochs=1)
        job = desired_job(tj["metadata"]["name"], namespace, "0", TrainingJobSpec.model_validate(tj["spec"]))
        job["metadata"].pop("ownerReferences")
        jobs.append(job)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda j: batch.create_namespaced_job(namespace, j), jobs))
    elapsed = time.monotonic() - started
    core.delete_namespace(namespace)
    return {"create_all_s": elapsed, "per_job_ms": 1000 * elapsed / count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    cluster = cluster_mod.up()
    install_crds(cluster)
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    result = run_operator_case(api_client, cluster, args.count)
    baseline = run_baseline_case(api_client, args.count)
    print(f"TrainingJobs applied: {args.count} (8 client threads)")
    print(f"  apply of all TrainingJobs:            {result['apply_all_s']:.1f} s")
    print(f"  until every one has a Job and status: {result['all_jobs_and_status_s']:.1f} s "
          f"({result['jobs']} Jobs, {result['with_status']} statuses)")
    print(f"  apply→Job latency p50 / p99:          {result['p50_ms']:.0f} ms / {result['p99_ms']:.0f} ms")
    print(f"  operator peak RSS:                    {result['operator_peak_rss_mib']:.0f} MiB")
    print(f"Baseline, {args.count} Jobs by a plain client loop (8 threads): {baseline['create_all_s']:.1f} s "
          f"({baseline['per_job_ms']:.1f} ms/Job)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
