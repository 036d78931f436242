"""`mlcycle runtime`: a stand-in for kubelet + container runtime on machines without containers.

It registers one Node (kwok leaves it alone: it lacks the kwok.x-k8s.io/node=fake annotation; it is tainted
`mlcycle.io/local-runtime=true:NoSchedule`, so only pods that select and tolerate it, or name it in
spec.nodeName, land there), keeps it Ready with a Lease heartbeat, and runs its Pods as host processes:

- each pod gets a loopback address 127.0.0.N as podIP. An LD_PRELOAD shim (runtime_shim.c) makes its
  processes' wildcard bind() bind that address (pods can share ports, like in a cluster), sends a connect()
  to localhost to the pod's own address when the pod listens on that port, redirects opening (and stat) of
  the terminationMessagePath and of files in secret/configMap/downwardAPI/projected mounts to the pod's own
  files (so in-cluster config finds the service account token, ca.crt and namespace that the ServiceAccount
  admission mounts, with a token from the TokenRequest API), and kills the process if the runtime dies;
- cluster DNS names of its pods (`<hostname>.<subdomain>.<ns>.svc.cluster.local` and shorter) and of the
  Services selecting them resolve through nss_wrapper (Debian package `libnss-wrapper`) from a hosts file per
  namespace, rewritten atomically on change (nss_wrapper re-reads a replaced file on the next lookup);
  a Service name resolves to its first ready pod, and the shim sends its port to the targetPort there;
  gethostname() answers the pod's hostname;
- init containers, then containers, run from the pod's own command, args and env for the images it knows:
  the mlcycle image (this venv's `mlcycle`, `python`, `torchrun`…, then the host's `sh` etc.) and the Triton
  image (the pytriton wheel's `tritonserver`); any other image fails the pod with ErrImagePull;
- volumeMount paths, workingDir and terminationMessagePath are rewritten in command, args and env to
  per-pod directories under `<state-dir>/pods/<ns>_<name>_<uid>/`; logs go to `<pod dir>/<container>.log`;
- readiness/liveness/startup probes (httpGet, tcpSocket, exec; grpc as a TCP connect), restartPolicy with
  kubelet's back-off, activeDeadlineSeconds, graceful deletion (SIGTERM, grace period, SIGKILL, then the
  pod is removed with grace 0), and container/pod status written back like kubelet does.

Limits: there is no kubelet API (`kubectl logs/exec/port-forward` do not work; read the log files); a
Service has no ClusterIP of its own here and no load balancing (one ready pod answers); only processes
started by the runtime see the pod addresses' names (the host resolves none of them); other paths a program
hardcodes (not in argv, env or workingDir, where mount paths are rewritten) are host paths; no resource
isolation, and the processes run as the runtime's user (runAsUser and readOnlyRootFilesystem are not enforced);
one runtime per machine (pod addresses are not coordinated between runtimes).

Modules: runtime_spec (what a container runs: image, argv, env, paths), runtime_status (kubelet's status),
runtime_hosts (the DNS stand-in) are pure; runtime_api talks to the API server; runtime_pod runs one pod;
this module owns the node, the watches and the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle.clock import now_iso as now
from mlcycle.localdev.runtime_api import Api, ApiError, ApiResolver
from mlcycle.localdev.runtime_hosts import PodAddress, hosts_files, service_ports
from mlcycle.localdev.runtime_pod import HOST_IP, PodWorker, write_atomic

log = logging.getLogger("mlcycle.runtime")

SHIM_SOURCE = Path(__file__).with_name("runtime_shim.c")
SHIM_CACHE = Path(os.environ.get("MLCYCLE_CACHE", Path.home() / ".cache" / "mlcycle")) / "runtime"
# First pod address 127.0.0.N is N=IP_BASE. Two runtimes on one machine (two checkouts testing at once) keep
# apart by giving each its own range, e.g. MLCYCLE_RUNTIME_IP_BASE=131072 starts at 127.2.0.0.
IP_BASE = max(2, int(os.environ.get("MLCYCLE_RUNTIME_IP_BASE", "2")))
HEARTBEAT = 10  # seconds between Lease renewals and node status updates
LEASE_SECONDS = 40
# The node is tainted so that only pods meant for it land there (others would fail on unknown images):
# such pods select it by NODE_LABEL and tolerate the taint with TOLERATION (or set spec.nodeName).
NODE_LABEL = "mlcycle.io/local-runtime"
TOLERATION = {"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}


# --------------------------------------------------------------------------------------- host helpers


def build_shim() -> Path:
    """Compile runtime_shim.c once per source version into the cache."""
    source = SHIM_SOURCE.read_bytes()
    out = SHIM_CACHE / f"runtime_shim-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if not out.exists():
        if shutil.which("cc") is None:
            raise RuntimeError("the local runtime needs a C compiler (`cc`) to build its bind() shim")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SHIM_SOURCE), "-ldl"], check=True)
        tmp.rename(out)
    return out


def find_nss_wrapper() -> Path:
    for pattern in ("/usr/lib/*/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so",
                    "/usr/local/lib/libnss_wrapper.so"):
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise RuntimeError("the local runtime needs nss_wrapper for cluster DNS names: "
                       "apt-get install libnss-wrapper (Debian/Ubuntu) or dnf install nss_wrapper")


def tritonserver_command_env() -> tuple[Path | None, dict[str, str]]:
    try:
        from mlcycle.localdev import triton
    except ImportError:  # the local extra (nvidia-pytriton) is not installed
        return None, {}
    try:
        return triton.tritonserver_command_env()
    except RuntimeError as e:
        log.warning("no tritonserver for the Triton image: %s", e)
        return None, {}


# ------------------------------------------------------------------------------------------------ node


def node_object(name: str) -> dict:
    labels = {NODE_LABEL: "true", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"taints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}]}}


def node_status(name: str, cpu: str, memory: str, at: str, since: str) -> dict:
    capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    healthy = [("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
               ("PIDPressure", "KubeletHasSufficientPID")]
    conditions = [{"type": t, "status": "False", "reason": r, "message": "", "lastHeartbeatTime": at,
                   "lastTransitionTime": since} for t, r in healthy]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "mlcycle local runtime is posting ready status", "lastHeartbeatTime": at,
                       "lastTransitionTime": since})
    return {"capacity": capacity, "allocatable": capacity, "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "mlcycle-local",
                         "kubeProxyVersion": "", "containerRuntimeVersion": "mlcycle-local://processes",
                         "kernelVersion": os.uname().release, "osImage": "host processes", "machineID": "",
                         "systemUUID": "", "bootID": ""}}


def machine_memory() -> str:
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return f"{kib}Ki"


# --------------------------------------------------------------------------------------------- runtime


class Runtime:
    def __init__(self, kubeconfig: Path, node: str, state_dir: Path, echo: bool = False,
                 cpu: str | None = None, memory: str | None = None):
        self.api = Api(kubeconfig)
        self.resolver = ApiResolver(self.api)
        self.node, self.state_dir, self.echo = node, state_dir.resolve(), echo
        self.cpu, self.memory = cpu or str(os.cpu_count() or 1), memory or machine_memory()
        self.allocatable = {"cpu": self.cpu, "memory": self.memory}
        self.shim, self.nss_wrapper = build_shim(), find_nss_wrapper()
        self._tritonserver: tuple[Path | None, dict[str, str]] | None = None
        self.triton_lock = threading.Lock()  # preparing it copies the wheel's tree once; pods wait for it
        server = self.api.server
        port = str(server.port or 443)
        self.kube_env = {"KUBERNETES_SERVICE_HOST": server.hostname or HOST_IP, "KUBERNETES_SERVICE_PORT": port,
                         "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{server.hostname}:{port}"}
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()  # uids of pods this runtime ran to the end
        self.ips: dict[str, str] = {}  # uid -> pod IP
        self.addresses: dict[str, PodAddress] = {}
        self.services: dict[tuple[str, str], dict] = {}
        self.written: dict[Path, str] = {}  # hosts and service ports files as last written
        self.service_ports_file = self.state_dir / "service-ports"
        self.ready_file = self.state_dir / "runtime.ready"

    def tritonserver(self) -> tuple[Path | None, dict[str, str]]:
        """The pytriton tritonserver that stands in for the Triton image, prepared on first use."""
        with self.triton_lock:
            if self._tritonserver is None:
                self._tritonserver = tritonserver_command_env()
            return self._tritonserver

    # ---- addresses and DNS

    def allocate_ip(self, uid: str, previous: str | None, host_network: bool) -> str:
        if host_network:
            return HOST_IP
        with self.lock:
            used = set(self.ips.values())
            if previous and previous.startswith("127.") and previous not in used:
                ip = previous
            else:
                n = next(n for n in range(IP_BASE, 1 << 24) if ip_of(n) not in used)
                ip = ip_of(n)
            self.ips[uid] = ip
            return ip

    def hosts_file(self, namespace: str) -> Path:
        return self.state_dir / "hosts" / namespace

    def set_address(self, uid: str, address: PodAddress | None) -> None:
        with self.lock:
            if self.addresses.get(uid) == address:
                return
            if address is None:
                self.addresses.pop(uid, None)
            else:
                self.addresses[uid] = address
            self.write_hosts()

    def write_hosts(self) -> None:
        """Rewrite the hosts files and the Service port translations that changed."""
        with self.lock:
            pods, services = list(self.addresses.values()), list(self.services.values())
            files = {self.hosts_file(ns): content for ns, content in hosts_files(pods, services).items()}
            files[self.service_ports_file] = service_ports(pods, services)
            for path, content in files.items():
                if self.written.get(path) != content:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(path, content.encode())
                    self.written[path] = content

    # ---- pods

    def on_pod_event(self, type_: str, obj) -> None:
        if type_ == "SYNC":
            listed = {p["metadata"]["uid"] for p in obj}
            with self.lock:
                for uid, worker in list(self.workers.items()):
                    if uid not in listed:
                        worker.mark_gone()
            for pod in obj:
                self.on_pod(pod)
        elif type_ == "DELETED":
            self.on_pod_deleted(obj)
        else:
            self.on_pod(obj)

    def on_pod(self, pod: dict) -> None:
        uid, phase = pod["metadata"]["uid"], (pod.get("status") or {}).get("phase")
        with self.lock:
            if self.stop_event.is_set():
                return
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            if uid in self.finished or phase in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
                if pod["metadata"].get("deletionTimestamp"):
                    self.delete_pod(pod)
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()

    def on_pod_deleted(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            self.finished.discard(uid)
        if worker is not None:
            worker.mark_gone()
        else:
            self.remove_pod_dir(pod)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            self.workers.pop(worker.uid, None)
            self.ips.pop(worker.uid, None)
            if not worker.gone and not worker.shutdown:
                self.finished.add(worker.uid)
        self.set_address(worker.uid, None)
        if worker.gone:
            shutil.rmtree(worker.dir, ignore_errors=True)

    def delete_pod(self, pod: dict) -> None:
        """Remove a pod whose processes are gone (kubelet's final delete, grace period 0)."""
        meta = pod["metadata"]
        try:
            self.api.call("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                          {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("deleting pod %s/%s: %s", meta["namespace"], meta["name"], e)

    def remove_pod_dir(self, pod: dict) -> None:
        meta = pod["metadata"]
        shutil.rmtree(self.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}",
                      ignore_errors=True)

    # ---- services

    def on_service_event(self, type_: str, obj) -> None:
        with self.lock:
            if type_ == "SYNC":
                self.services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in obj}
            elif type_ == "DELETED":
                self.services.pop((obj["metadata"]["namespace"], obj["metadata"]["name"]), None)
            else:
                self.services[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
            self.write_hosts()

    # ---- node

    def register_node(self) -> None:
        node = node_object(self.node)
        try:
            self.api.call("POST", "/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
            self.api.call("PATCH", f"/api/v1/nodes/{self.node}", {"metadata": node["metadata"], "spec": node["spec"]},
                          content_type="application/merge-patch+json")
        self.node_since = now()
        self.heartbeat()

    def heartbeat(self) -> None:
        at = now()
        self.api.call("PATCH", f"/api/v1/nodes/{self.node}/status",
                      {"status": node_status(self.node, self.cpu, self.memory, at, self.node_since)},
                      content_type="application/merge-patch+json")
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        micro = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro}
        if self.api.get(lease_path) is None:
            node = self.api.call("GET", f"/api/v1/nodes/{self.node}")
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": node["metadata"]["uid"]}
            self.api.call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                "spec": spec})
        else:
            self.api.call("PATCH", lease_path, {"spec": spec}, content_type="application/merge-patch+json")

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except ApiError as e:
                if e.status == 404:  # someone deleted the node: register again
                    with contextlib.suppress(Exception):
                        self.register_node()
                log.warning("node heartbeat: %s", e)
            except Exception as e:
                log.warning("node heartbeat: %s", e)

    # ---- main loop

    def run(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        (self.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        self.register_node()
        threads = [
            threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
            threading.Thread(target=self.api.watch, name="services", daemon=True,
                             args=("/api/v1/services", [], self.on_service_event, self.stop_event)),
            threading.Thread(target=self.api.watch, name="pods", daemon=True,
                             args=("/api/v1/pods", [("fieldSelector", f"spec.nodeName={self.node}")],
                                   self.on_pod_event, self.stop_event)),
        ]
        for t in threads:
            t.start()
        self.ready_file.write_text(str(os.getpid()))
        log.info("local runtime ready: node %s, state in %s", self.node, self.state_dir)
        self.stop_event.wait()
        log.info("stopping: killing the processes of %d pod(s)", len(self.workers))
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.stop()
        for w in workers:
            w.join(15)
        self.ready_file.unlink(missing_ok=True)


def ip_of(n: int) -> str:
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# ------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, default=Path(os.environ.get("KUBECONFIG",
                                                                               Path.home() / ".kube/config")))
    parser.add_argument("--node", default="mlcycle-local")
    parser.add_argument("--state-dir", type=Path, default=Path(".local/runtime"))
    parser.add_argument("--cpu", help="the node's cpu capacity (default: this machine's)")
    parser.add_argument("--memory", help="the node's memory capacity (default: this machine's)")
    parser.add_argument("--echo", action="store_true", help="copy container output to stderr, prefixed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runtime %(levelname)s %(message)s")
    rt = Runtime(args.kubeconfig, args.node, args.state_dir, echo=args.echo, cpu=args.cpu, memory=args.memory)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: rt.stop_event.set())
    rt.run()
    return 0


@dataclass
class RuntimeHandle:
    process: subprocess.Popen
    node: str
    state_dir: Path
    log_path: Path

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_runtime(kubeconfig: Path, node: str = "mlcycle-local", state_dir: Path = Path(".local/runtime"),
                  echo: bool = False, timeout: float = 60) -> RuntimeHandle:
    """Start `mlcycle runtime` as a subprocess (log in `<state_dir>/runtime.log`); return once its node
    is registered and it watches its pods."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "runtime.ready").unlink(missing_ok=True)
    log_path = state_dir / "runtime.log"
    cmd = [sys.executable, "-m", "mlcycle.cli", "runtime", "--kubeconfig", str(kubeconfig), "--node", node,
           "--state-dir", str(state_dir), *(["--echo"] if echo else [])]
    with open(log_path, "ab") as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = RuntimeHandle(proc, node, state_dir, log_path)
    deadline = time.monotonic() + timeout
    while not (state_dir / "runtime.ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError(f"mlcycle runtime did not start; its log:\n{handle.log()[-3000:]}")
        time.sleep(0.2)
    return handle
