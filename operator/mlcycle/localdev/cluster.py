"""A real Kubernetes control plane on loopback, without containers.

kwokctl's binary runtime runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok-controller as processes. kwok simulates the nodes declared in NODES (two GPU nodes, one CPU node);
the local pod runtime registers a node of its own that kwok leaves alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlcycle.localdev import binaries, versions
from mlcycle.localdev.binaries import log
from mlcycle.localdev.paths import LOCAL

NAME = "mlcycle"
KWOK_CONFIG = Path(__file__).with_name("kwok-config.yaml")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def fake_node(name: str, cpu: str, memory: str, gpus: int = 0, gpu_product: str = "") -> dict:
    """A Node that kwok manages (annotation kwok.x-k8s.io/node=fake), labelled like the GPU operator does."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "kwok", "node-role.kubernetes.io/worker": ""}
    capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
    spec: dict = {}
    if gpus:
        labels |= {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": gpu_product,
                   "nvidia.com/gpu.count": str(gpus)}
        capacity["nvidia.com/gpu"] = str(gpus)
        spec["taints"] = [GPU_TAINT]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


NODES = [
    fake_node("gpu-a100-0", cpu="32", memory="256Gi", gpus=4, gpu_product="NVIDIA-A100-SXM4-80GB"),
    fake_node("gpu-h100-0", cpu="64", memory="512Gi", gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3"),
    fake_node("cpu-0", cpu="16", memory="64Gi"),
]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    kubectl: Path

    def kubectl_run(self, *args: str, input: str | None = None, check: bool = True,
                    timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def apply(self, *objects: dict) -> None:
        docs = yaml.safe_dump_all(list(objects))
        self.kubectl_run("apply", "--server-side", "--force-conflicts", "-f", "-", input=docs)

    def is_ready(self) -> bool:
        try:
            return self.kubectl_run("get", "--raw", "/readyz", check=False, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _workdir() -> Path:
    return LOCAL / "kwok"


def _kwokctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KWOK_WORKDIR": str(_workdir()), "KWOK_KUBE_VERSION": versions.KUBERNETES}
    return subprocess.run([str(binaries.binary("kwokctl")), "--name", NAME, *args], env=env, check=check,
                          capture_output=True, text=True)


def current() -> Cluster:
    return Cluster(kubeconfig=LOCAL / "kubeconfig", kubectl=LOCAL / "bin" / "kubectl")


def up(timeout: float = 120) -> Cluster:
    """Start the cluster (or reuse the running one) and return how to reach it. Idempotent."""
    cluster = current()
    if cluster.kubeconfig.exists() and cluster.is_ready():
        return cluster
    bins = {name: binaries.binary(name) for name in ("etcd", "kwok", *binaries.KUBE_BINARIES)}
    cluster.kubectl.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(bins["kubectl"], cluster.kubectl)
    started = time.monotonic()
    cluster_dir = _workdir() / "clusters" / NAME
    if (cluster_dir / "kwok.yaml").exists():
        log("starting the existing local cluster")
        result = _kwokctl("start", "cluster", "--timeout", f"{int(timeout)}s", check=False)
    else:
        log("creating the local cluster")
        result = _kwokctl(
            "create", "cluster", "--runtime", "binary", "--config", str(KWOK_CONFIG),
            "--etcd-binary", str(bins["etcd"]),
            "--kube-apiserver-binary", str(bins["kube-apiserver"]),
            "--kube-controller-manager-binary", str(bins["kube-controller-manager"]),
            "--kube-scheduler-binary", str(bins["kube-scheduler"]),
            "--kwok-controller-binary", str(bins["kwok"]),
            "--wait", f"{int(timeout)}s", "--timeout", f"{int(timeout)}s",
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"kwokctl failed:\n{result.stdout}\n{result.stderr}")
    shutil.copy2(cluster_dir / "kubeconfig.yaml", cluster.kubeconfig)
    _wait(cluster.is_ready, timeout, "kube-apiserver /readyz")
    cluster.apply(*NODES)
    _wait(lambda: _nodes_ready(cluster), timeout, "kwok nodes Ready")
    log(f"cluster ready in {time.monotonic() - started:.1f}s; kubeconfig: {cluster.kubeconfig}")
    return cluster


def down() -> None:
    """Delete the cluster and its state (etcd data included)."""
    if (_workdir() / "clusters" / NAME).exists():
        _kwokctl("delete", "cluster", check=False)
    for leftover in (LOCAL / "kubeconfig",):
        leftover.unlink(missing_ok=True)


def _nodes_ready(cluster: Cluster) -> bool:
    out = cluster.kubectl_run("get", "nodes", "-o",
                              "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')]"
                              ".status}{'\\n'}{end}", check=False).stdout
    ready = {line.split("=")[0] for line in out.splitlines() if line.endswith("=True")}
    return all(n["metadata"]["name"] in ready for n in NODES)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def service_backend(cluster: Cluster, service: str, namespace: str) -> str | None:
    """The pod address a Service's name resolves to on the local runtime: its first ready selected pod, by
    name (the control plane publishes no EndpointSlices for the runtime's loopback pod addresses)."""
    svc = json.loads(cluster.kubectl_run("get", "service", service, "-n", namespace, "-o", "json",
                                         check=False).stdout or "{}")
    selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return None
    pods = json.loads(cluster.kubectl_run("get", "pods", "-n", namespace, "-o", "json", "-l",
                                          ",".join(f"{k}={v}" for k, v in selector.items())).stdout)["items"]
    return next((p["status"]["podIP"] for p in sorted(pods, key=lambda p: p["metadata"]["name"])
                 if not p["metadata"].get("deletionTimestamp") and any(
                     c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])),
                None)
