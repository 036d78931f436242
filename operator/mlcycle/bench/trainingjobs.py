"""1,000 TrainingJobs applied at once on the local cluster (kwok nodes): how fast does the operator give each
one its Job and a status, and what does it cost (CPU seconds, peak RSS)? Two baselines in the same run, each
with the same 8 client threads: (a) the same Jobs created by a plain client loop; (b) a plain client doing the
writes the operator does per job: create the TrainingJob, create its Job, write its status, post an Event.

    .venv/bin/python -m mlcycle.bench.trainingjobs [--count 1000]
"""

from __future__ import annotations

import argparse
import os
import signal
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


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


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
    peak, cpu = rss_peak_mib(operator.process.pid), cpu_seconds(operator.process.pid)
    operator.stop()
    core.delete_namespace(namespace)
    return {"apply_all_s": apply_done, "all_jobs_and_status_s": all_done, "jobs": len(latencies),
            "with_status": with_status, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 99), "operator_peak_rss_mib": peak,
            "operator_cpu_s": cpu}


def run_sigterm_case(api_client, cluster, count: int) -> dict:
    """SIGTERM right after `count` TrainingJobs were created (mid-burst): seconds until the operator exits; then
    a new operator: seconds until every one has its Job and a status."""
    namespace = f"bench-term-{uuid.uuid4().hex[:6]}"
    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    batch = client.BatchV1Api(api_client)
    operator = start_operator(cluster.kubeconfig, LOCAL / "bench-operator.log")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, training_job(f"tj-{i:04d}", namespace, "bench-s3", epochs=1)),
            range(count)))
    term = time.monotonic()
    operator.process.send_signal(signal.SIGTERM)
    operator.process.wait(120)
    stop_s = time.monotonic() - term
    jobs_before = len(batch.list_namespaced_job(namespace).items)
    restart = time.monotonic()
    operator = start_operator(cluster.kubeconfig, LOCAL / "bench-operator.log")
    while True:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        jobs = len(batch.list_namespaced_job(namespace).items)
        if jobs >= count and all((tj.get("status") or {}).get("phase") for tj in items):
            break
        time.sleep(0.5)
    converge_s = time.monotonic() - restart
    operator.stop()
    core.delete_namespace(namespace)
    return {"stop_s": stop_s, "jobs_at_stop": jobs_before, "converge_s": converge_s}


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


def run_writes_baseline_case(api_client, count: int) -> dict:
    """Baseline (b): the operator's writes per job, by a plain client: TrainingJob, Job, status, Event."""
    namespace = f"bench-writes-{uuid.uuid4().hex[:6]}"
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    from mlcycle.api.trainingjob import TrainingJobSpec

    latencies: list[float] = []

    def one(i: int) -> None:
        name = f"tj-{i:04d}"
        body = training_job(name, namespace, "bench-s3", epochs=1)
        began = time.monotonic()
        tj = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        batch.create_namespaced_job(namespace, desired_job(name, namespace, tj["metadata"]["uid"],
                                                           TrainingJobSpec.model_validate(body["spec"])))
        latencies.append(time.monotonic() - began)
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, {"status": {
            "phase": "Pending", "observedGeneration": 1, "message": "waiting for workers"}})
        core.create_namespaced_event(namespace, {
            "metadata": {"generateName": f"{name}."}, "type": "Normal", "reason": "Pending",
            "message": "waiting for workers", "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}",
                                                                 "kind": "TrainingJob", "name": name,
                                                                 "namespace": namespace, "uid": tj["metadata"]["uid"]},
            "source": {"component": "bench"}})

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.monotonic() - started
    core.delete_namespace(namespace)
    return {"all_s": elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--restart-count", type=int, default=300, help="TrainingJobs of the SIGTERM/restart case")
    args = parser.parse_args(argv)
    cluster = cluster_mod.up()
    install_crds(cluster)
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    result = run_operator_case(api_client, cluster, args.count)
    baseline = run_baseline_case(api_client, args.count)
    writes = run_writes_baseline_case(api_client, args.count)
    term = run_sigterm_case(api_client, cluster, args.restart_count)
    print(f"TrainingJobs applied: {args.count} (8 client threads)")
    print(f"  apply of all TrainingJobs:            {result['apply_all_s']:.1f} s")
    print(f"  until every one has a Job and status: {result['all_jobs_and_status_s']:.1f} s "
          f"({result['jobs']} Jobs, {result['with_status']} statuses)")
    print(f"  apply→Job latency p50 / p99:          {result['p50_ms']:.0f} ms / {result['p99_ms']:.0f} ms")
    print(f"  operator peak RSS:                    {result['operator_peak_rss_mib']:.0f} MiB")
    print(f"  operator CPU (user + system):         {result['operator_cpu_s']:.1f} s")
    print(f"Baseline (a), {args.count} Jobs by a plain client loop (8 threads): {baseline['create_all_s']:.1f} s "
          f"({baseline['per_job_ms']:.1f} ms/Job)")
    print(f"Baseline (b), the same writes per job by a plain client (TrainingJob, Job, status, Event; 8 threads): "
          f"{writes['all_s']:.1f} s, TrainingJob→Job p50 / p99 {writes['p50_ms']:.0f} ms / {writes['p99_ms']:.0f} ms")
    print(f"SIGTERM right after {args.restart_count} TrainingJobs were created: the operator exited in "
          f"{term['stop_s']:.1f} s ({term['jobs_at_stop']} Jobs by then); a new operator gave every one its Job "
          f"and status in {term['converge_s']:.1f} s (including its start)")
    print(f"Operator / baseline (b): {result['all_jobs_and_status_s'] / writes['all_s']:.1f}x; "
          f"operator / baseline (a): {result['all_jobs_and_status_s'] / baseline['create_all_s']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
