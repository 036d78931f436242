"""Fleets of resources on the local cluster for the operator's scale benchmarks (footprint, idle): running and
finished TrainingJobs (kwok nodes keep pods Running until labelled to finish), ModelVersions already verified
(the record an earlier operator left, so none starts a verification pod), InferenceServices; the operator as a
process (optionally another checkout's code, for a before/after in one run), its peak RSS, CPU and reconciles,
and the apiserver's own count of the requests it served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from mlcycle import clock
from mlcycle.api.labels import VERIFICATION_ANNOTATION
from mlcycle.localdev import background
from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev.dev import install_crds
from mlcycle.localdev.net import free_port, http_ok
from mlcycle.localdev.paths import LOCAL
from mlcycle.localdev.sample import inference_service, storage_secret, training_job
from mlcycle.modelversion.verification import fingerprint

GROUP, VERSION = "mlcycle.io", "v1alpha1"
THREADS = 8
SECRET = "bench-s3"
PODS_PER_NODE = 110  # kubelet's default, as localdev.cluster.fake_node declares it
SIGNATURE = {"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "probs", "dtype": "FP32", "shape": [-1, 3]}]}
# Run the operator under tracemalloc; SIGUSR1 writes where its Python memory is, by file, to MLCYCLE_TRACEMALLOC_OUT.
TRACED = """
import os, signal, sys, tracemalloc
tracemalloc.start(1)
def dump(*_):
    stats = tracemalloc.take_snapshot().statistics("filename")
    with open(os.environ["MLCYCLE_TRACEMALLOC_OUT"], "w") as out:
        out.write(f"{sum(s.size for s in stats) / 2**20:.1f} MiB traced in all\\n")
        for s in stats[:25]:
            out.write(f"{s.size / 2**20:8.1f} MiB {s.count:9d} blocks  {s.traceback[0].filename}\\n")
signal.signal(signal.SIGUSR1, dump)
from mlcycle.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Fleet:
    def __init__(self):
        self.cluster = cluster_mod.up()
        install_crds(self.cluster)
        self.api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        self.core, self.custom = client.CoreV1Api(self.api), client.CustomObjectsApi(self.api)

    def nodes(self, pods: int) -> list[str]:
        """Extra kwok nodes with room for `pods` more running pods: the cluster's own three hold 330 pods and
        16 CPUs for CPU-only workers, so a thousand running TrainingJobs would leave no room for others to run."""
        names = [f"bench-{uuid.uuid4().hex[:6]}" for _ in range(-(-pods // PODS_PER_NODE))]
        self.cluster.apply(*(cluster_mod.fake_node(name, cpu="256", memory="2Ti") for name in names))
        return names

    def delete_nodes(self, names: list[str]) -> None:
        self.cluster.kubectl_run("delete", "nodes", *names, "--wait=false", check=False)

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name}})
        # Storage that refuses connections: nothing in these benchmarks reads an artifact.
        self.core.create_namespaced_secret(name, storage_secret(SECRET, name, "127.0.0.1:1", "a", "b"))
        return name

    def create(self, plural: str, objects: list[dict]) -> None:
        def one(obj: dict) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, obj["metadata"]["namespace"], plural, obj)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, objects))

    def trainingjobs(self, namespace: str, count: int, prefix: str = "tj") -> None:
        """Running TrainingJobs once the operator gave them their Jobs (kwok runs their pods until told)."""
        jobs = [training_job(f"{prefix}-{i:05d}", namespace, SECRET, epochs=1) for i in range(count)]
        for tj in jobs:  # finished jobs with nothing left to do: no registration to retry against no storage
            tj["spec"].pop("registerModel")
        self.create("trainingjobs", jobs)

    def model_versions(self, prefix: str, count: int, per_model: int = 10, per_namespace: int = 50) -> list[str]:
        """`count` ModelVersions as an earlier operator left them once verified (the record in the annotation, the
        ArtifactVerified condition in status), `per_namespace` in each of new namespaces; returns those."""
        namespaces = [self.namespace(prefix) for _ in range(-(-count // per_namespace))]
        verified = {"type": "ArtifactVerified", "status": "True", "reason": "Verified", "message": "verified",
                    "lastTransitionTime": clock.now_iso()}

        def one(i: int) -> None:
            namespace, model, version = namespaces[i // per_namespace], f"m{i // per_model}", i % per_model + 1
            artifact = {"uri": f"s3://models/{model}/v{version}/model.pt", "format": "torchscript"}
            record = {"for": fingerprint(artifact, SIGNATURE), "etag": "0123"}
            mv = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelVersion",
                  "metadata": {"name": f"{model}-v{version}", "namespace": namespace,
                               "annotations": {VERIFICATION_ANNOTATION: json.dumps(record)}},
                  "spec": {"modelName": model, "version": version, "artifact": artifact, "signature": SIGNATURE,
                           "storage": {"secretRef": {"name": SECRET}}}}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions", mv)
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "modelversions",
                                                              mv["metadata"]["name"],
                                                              {"status": {"conditions": [verified]}})

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(count)))
        return namespaces

    def wait_all_phases(self, namespaces: list[str], count: int, plural: str) -> None:
        """Until `count` objects across `namespaces` have a phase."""
        while sum(sum(1 for p in self.phases(ns, plural).values() if p) for ns in namespaces) < count:
            time.sleep(2)

    def inference_services(self, namespace: str, count: int) -> None:
        self.create("inferenceservices", [inference_service(f"isvc-{i}", namespace, SECRET, model=f"m{i}")
                                          for i in range(count)])

    def phases(self, namespace: str, plural: str = "trainingjobs") -> dict[str, str | None]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in items}

    def wait_phases(self, namespace: str, count: int, phases: set | None, plural: str = "trainingjobs",
                    timeout: float = 1200, poke=None) -> float:
        """Seconds until `count` objects have a phase in `phases` (None: any phase); `poke()` runs between looks."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            current = self.phases(namespace, plural)
            if sum(1 for p in current.values() if p and (phases is None or p in phases)) >= count:
                return time.monotonic() - started
            if poke:
                poke()
            time.sleep(2)
        raise TimeoutError(f"{plural} in {namespace}: not {count} in {phases} after {timeout:.0f}s")

    def wait_pods(self, namespace: str, count: int) -> None:
        """Until the namespace has `count` pods (read raw: the typed models of thousands of pods are slow)."""
        while len(json.loads(self.core.list_namespaced_pod(namespace, _preload_content=False).data)["items"]) < count:
            time.sleep(5)

    def finish_pods(self, namespace: str) -> None:
        """kwok's pod-complete stage finishes pods with this label (localdev/kwok-config.yaml)."""
        self.cluster.kubectl_run("label", "pods", "-l", "!mlcycle.io/kwok-complete", "-n", namespace,
                                 "mlcycle.io/kwok-complete=true", check=False)

    def delete_namespace(self, namespace: str) -> None:
        """Delete it with the operator stopped: ModelVersions' finalizers (kopf's, for their deletion handler)
        would hold it Terminating, so they are removed first (nothing of theirs is in storage)."""
        versions = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")["items"]

        def release(mv: dict) -> None:
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions",
                                                       mv["metadata"]["name"], {"metadata": {"finalizers": None}})

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(release, versions))
        self.core.delete_namespace(namespace)

    def apiserver_requests(self) -> dict[tuple[str, str], float]:
        """The apiserver's apiserver_request_total, summed by (verb, resource)."""
        text = self.cluster.kubectl_run("get", "--raw", "/metrics").stdout
        out: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "apiserver_request_total":
                    key = (s.labels.get("verb", ""), s.labels.get("resource", ""))
                    out[key] = out.get(key, 0.0) + s.value
        return out


class Operator:
    """`mlcycle run` as a process; `source`: another checkout's operator/ directory to run instead of this one."""

    def __init__(self, fleet: Fleet, source: Path | None = None, traced: Path | None = None):
        self.health, self.metrics = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(fleet.cluster.kubeconfig)}
        if source:
            env["PYTHONPATH"] = str(source)
        if traced:
            env["MLCYCLE_TRACEMALLOC_OUT"] = str(traced)
        head = [sys.executable, "-c", TRACED] if traced else [sys.executable, "-m", "mlcycle.cli"]
        self.log = LOCAL / "bench-operator.log"
        self.process = background.spawn([*head, "run", "--standalone", f"--health-port={self.health}",
                                         f"--metrics-port={self.metrics}"], env, self.log)
        background.wait_ready(self.process, lambda: http_ok(f"http://127.0.0.1:{self.health}/healthz"), 120,
                              "the operator", self.log)

    def reconciles(self) -> float:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10).read().decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "mlcycle_reconcile_total")

    def settle(self, quiet: float = 20, timeout: float = 90) -> None:
        """Wait until no reconcile ran for `quiet` seconds, `timeout` at most (unfinished TrainingJobs resync
        every minute: with many of them some reconcile is always running)."""
        last, since, deadline = self.reconciles(), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(2)
            now = self.reconciles()
            if now != last:
                last, since = now, time.monotonic()

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory."""
        fields = dict(line.split(":", 1) for line in open(f"/proc/{self.process.pid}/status"))
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self) -> None:
        background.stop(self.process)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
