"""One pod on the local runtime: its processes from start to end, its probes and its status."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlcycle.clock import now_iso as now
from mlcycle.localdev.runtime_api import ApiError
from mlcycle.localdev.runtime_hosts import PodAddress
from mlcycle.localdev.runtime_spec import (
    ConfigError,
    StartError,
    container_argv,
    container_dir,
    container_env,
    expand,
    file_mounts,
    image_kind,
    map_paths,
    path_mapping,
    probe_port,
    probe_settings,
    resolve_executable,
    termination_message_file,
    unsupported_image_message,
    volume_dir,
    volume_files,
)
from mlcycle.localdev.runtime_status import (
    Run,
    container_status,
    exit_code,
    pod_conditions,
    pod_phase,
    start_error_state,
    terminated_state,
    termination_message,
)


class PodHost(Protocol):
    """What a pod's worker needs from the runtime that runs it (runtime.Runtime is the one): a protocol, so
    that this module does not import the runtime that imports it."""

    api: Any
    resolver: Any
    state_dir: Path
    echo: bool
    allocatable: dict[str, Any]
    shim: Path
    nss_wrapper: Path
    kube_env: dict[str, str]
    service_ports_file: Path

    def tritonserver(self) -> tuple[Path | None, dict[str, str]]: ...
    def allocate_ip(self, uid: str, previous: str | None, host_network: bool) -> str: ...
    def hosts_file(self, namespace: str) -> Path: ...
    def set_address(self, uid: str, address: PodAddress | None) -> None: ...
    def worker_done(self, worker: PodWorker) -> None: ...
    def delete_pod(self, pod: dict) -> None: ...

log = logging.getLogger("mlcycle.runtime")

HOST_IP = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
TICK = 0.25  # seconds between looks at a pod's processes
BACKOFF_MAX = 300  # kubelet's longest restart back-off, seconds
OUR_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_processes(procs: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM each process group, give them `grace` seconds, then SIGKILL what is left."""
    for p in procs:
        kill_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in procs:
        kill_group(p.pid, signal.SIGKILL)
        p.wait()


# ------------------------------------------------------------------------------------------- a container


@dataclass
class Probe:
    spec: dict
    settings: dict[str, int]
    next_at: float
    successes: int = 0
    failures: int = 0


@dataclass
class Container:
    """One container of a pod: its spec, its status (`run`) and, while it runs, its process."""

    spec: dict
    run: Run
    init: bool
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    mapping: dict[str, str] = field(default_factory=dict)
    retry_at: float = 0.0
    probes: dict[str, Probe] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- pod


class PodWorker(threading.Thread):
    """Runs one pod from start to end: address, volumes, init containers, containers, status, deletion."""

    def __init__(self, rt: PodHost, pod: dict):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.rt, self.pod, self.uid = rt, pod, meta["uid"]
        self.ns, self.pod_name = meta["namespace"], meta["name"]
        self.dir = rt.state_dir / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        spec = pod["spec"]
        self.policy = spec.get("restartPolicy", "Always")
        self.hostname = spec.get("hostname") or self.pod_name
        self.inits = [Container(c, Run(c["name"], c["image"], waiting=("PodInitializing", "")), True)
                      for c in spec.get("initContainers") or []]
        waiting = ("PodInitializing", "") if self.inits else ("ContainerCreating", "")
        self.containers = [Container(c, Run(c["name"], c["image"], waiting=waiting), False)
                           for c in spec["containers"]]
        self.ip = ""
        self.start_time = ""
        self.started_mono = time.monotonic()
        self.failure: tuple[str, str] | None = None  # pod-level (reason, message) that fails the pod
        self.sent: dict = {}
        self.deleting = threading.Event()  # deletionTimestamp set, or the pod is gone
        self.gone = False  # the pod no longer exists in the API
        self.shutdown = False  # the runtime is stopping: kill processes, leave the API alone

    # ---- events from the runtime (watch thread)

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def mark_gone(self) -> None:
        self.gone = True
        self.deleting.set()

    def stop(self) -> None:
        self.shutdown = True
        self.deleting.set()

    # ---- the pod's life

    def run(self) -> None:
        try:
            self._live()
        except Exception:
            log.exception("pod %s/%s: runtime error", self.ns, self.pod_name)
            self._kill_all(0)
            if not self.shutdown and not self.gone:
                self.failure = ("RuntimeError", "the local runtime failed to run this pod; see its log")
                self.publish()
        finally:
            self.rt.worker_done(self)

    def _live(self) -> None:
        status = self.pod.get("status") or {}
        self.ip = self.rt.allocate_ip(self.uid, status.get("podIP"), self.pod["spec"].get("hostNetwork", False))
        self.start_time = status.get("startTime") or now()
        self.dir.mkdir(parents=True, exist_ok=True)
        if status.get("phase") == "Running" and self.policy == "Never":
            # Started by an earlier runtime process whose children died with it; it cannot resume.
            self.failure = ("RuntimeRestarted", "the local runtime restarted while this pod ran")
        self.publish()
        for c in self.inits:
            while not c.run.succeeded() and self.phase() != "Failed":
                if self._stopping():
                    return self._terminate()
                self._tick([c])
        while self.phase() not in ("Succeeded", "Failed"):
            if self._stopping():
                return self._terminate()
            self._tick(self.containers)
        self._kill_all(self._grace())
        self.publish()
        log.info("pod %s/%s finished: %s", self.ns, self.pod_name, self.sent.get("phase"))

    def phase(self) -> str:
        if self.failure:
            return "Failed"
        return pod_phase([c.run for c in self.inits], [c.run for c in self.containers], self.policy)

    def _stopping(self) -> bool:
        return self.deleting.is_set()

    def _tick(self, containers: list[Container]) -> None:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.monotonic() - self.started_mono > deadline:
            self.failure = ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            return
        for c in containers:
            self._step(c)
        self.publish()
        time.sleep(TICK)

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        return float(grace if grace is not None else spec.get("terminationGracePeriodSeconds", 30))

    def _terminate(self) -> None:
        """The pod is being deleted (or the runtime stops): stop its processes, report, remove it."""
        self.rt.set_address(self.uid, None)
        self._kill_all(min(self._grace(), 5) if self.shutdown else self._grace())
        if self.shutdown:
            return
        self.policy = "Never"  # a deleted pod's containers do not restart: its phase becomes terminal
        if not self.gone:
            self.publish()
            self.rt.delete_pod(self.pod)
        log.info("pod %s/%s deleted", self.ns, self.pod_name)

    def _kill_all(self, grace: float) -> None:
        running = [c for c in self.inits + self.containers if c.proc is not None]
        stop_processes([c.proc for c in running], grace)
        for c in running:
            self._exited(c, restart=False)

    # ---- one container

    def _step(self, c: Container) -> None:
        """Start the container when due, notice its exit, run its probes."""
        if c.proc is None:
            if c.run.terminated is None and time.monotonic() >= c.retry_at:
                self._start(c)
            return
        if c.proc.poll() is not None:
            code = c.proc.returncode
            restart = code != 0 and self.policy != "Never" if c.init else (
                self.policy == "Always" or (self.policy == "OnFailure" and code != 0))
            self._exited(c, restart)
            return
        self._probe(c)

    def _start(self, c: Container) -> None:
        kind = image_kind(c.spec["image"])
        if kind is None:
            message = unsupported_image_message(c.spec["image"])
            c.run.waiting = ("ErrImagePull", message)
            self.failure = ("ErrImagePull", message)
            return
        try:
            argv, c.env, c.cwd, c.mapping = self._plan(c, kind)
        except ConfigError as e:
            c.run.waiting = ("CreateContainerConfigError", str(e))
            c.retry_at = time.monotonic() + 2
            return
        except StartError as e:
            at = now()
            self._finish_run(c, start_error_state(str(e), at), restart=self.policy != "Never")
            return
        cdir = container_dir(self.dir, c.spec["name"])
        cdir.mkdir(parents=True, exist_ok=True)
        termination_message_file(self.dir, c.spec["name"]).write_bytes(b"")
        log_path = self.dir / f"{c.spec['name']}.log"
        # Started from the pod's own thread, which outlives the process: the shim's PR_SET_PDEATHSIG fires
        # when the thread that forked the process ends.
        with open(log_path, "ab") as logfile:
            out = subprocess.PIPE if self.rt.echo else logfile
            c.proc = subprocess.Popen(argv, env=c.env, cwd=c.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        if self.rt.echo:
            prefix = f"[{self.ns}/{self.pod_name}/{c.spec['name']}] "
            threading.Thread(target=tee, args=(c.proc.stdout, log_path, prefix), daemon=True).start()
        log.info("pod %s/%s: started %s (pid %d): %s", self.ns, self.pod_name, c.spec["name"], c.proc.pid,
                 " ".join(argv))
        c.run.waiting, c.run.running_since = None, now()
        c.run.container_id = f"local://{c.proc.pid}"
        c.run.started = "startupProbe" not in c.spec
        t0 = time.monotonic()
        c.probes = {kind_: Probe(c.spec[kind_], probe_settings(c.spec[kind_]),
                                 t0 + probe_settings(c.spec[kind_])["initialDelaySeconds"])
                    for kind_ in ("startupProbe", "readinessProbe", "livenessProbe") if kind_ in c.spec}

    def _plan(self, c: Container, kind: str) -> tuple[list[str], dict[str, str], str, dict[str, str]]:
        """argv, environment, working directory and path mapping of a container's process."""
        rt, pod = self.rt, self.pod
        base = {**rt.kube_env, "HOSTNAME": self.hostname}
        env = container_env(pod, c.spec, rt.resolver, pod_ip=self.ip, host_ip=HOST_IP,
                            allocatable=rt.allocatable, base=base)
        self._materialize_volumes()
        mapping = path_mapping(pod, c.spec, self.dir, rt.state_dir / "claims", env)
        message_file = str(termination_message_file(self.dir, c.spec["name"]))
        for host in mapping.values():
            if host != message_file and not os.path.exists(host):
                os.makedirs(host)
        argv = [map_paths(expand(a, env), mapping) for a in container_argv(c.spec, kind)]
        tritonserver, image_env = rt.tritonserver() if kind == "tritonserver" else (None, {})
        argv[0] = resolve_executable(argv[0], kind, VENV_BIN, tritonserver)
        env = {k: map_paths(v, mapping) for k, v in env.items()}
        cwd = map_paths(c.spec.get("workingDir") or "", mapping)
        cwd = cwd if cwd and os.path.isdir(cwd) else str(self.dir)
        preload = " ".join(filter(None, [str(rt.shim), str(rt.nss_wrapper), env.get("LD_PRELOAD", "")]))
        process_env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()),
                       "LANG": "C.UTF-8", **image_env, **env,
                       "LD_PRELOAD": preload, "MLCYCLE_POD_IP": self.ip, "MLCYCLE_RUNTIME_PID": str(os.getpid()),
                       "NSS_WRAPPER_HOSTS": str(rt.hosts_file(self.ns)), "NSS_WRAPPER_HOSTNAME": self.hostname,
                       "MLCYCLE_SERVICE_PORTS": str(rt.service_ports_file),
                       "MLCYCLE_FILE_MOUNTS": file_mounts(pod, c.spec, mapping)}
        return argv, process_env, cwd, mapping

    def _materialize_volumes(self) -> None:
        """Create the pod's volume directories, with the files of secret/configMap/downwardAPI/projected ones.
        (hostPath and PVC mounts map to directories outside the pod directory.)"""
        for volume in self.pod["spec"].get("volumes") or []:
            if "hostPath" in volume or "persistentVolumeClaim" in volume:
                continue
            target = volume_dir(self.dir, volume["name"])
            target.mkdir(parents=True, exist_ok=True)
            files = volume_files(volume, self.pod, self.rt.resolver, pod_ip=self.ip, host_ip=HOST_IP,
                                 allocatable=self.rt.allocatable)
            for rel, content in (files or {}).items():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target / rel, content)

    def _exited(self, c: Container, restart: bool) -> None:
        proc, c.proc = c.proc, None
        kill_group(proc.pid, signal.SIGKILL)  # what is left of the container goes with its main process
        proc.wait()
        name = c.spec["name"]
        code = proc.returncode
        message_file = termination_message_file(self.dir, name)
        log_path = self.dir / f"{name}.log"
        content = message_file.read_bytes() if message_file.exists() else b""
        tail = read_tail(log_path, 64 * 1024)
        message = termination_message(content, tail, c.spec.get("terminationMessagePolicy", "File"),
                                      exit_code(code))
        state = terminated_state(code, message, c.run.running_since or now(), now(), c.run.container_id)
        log.info("pod %s/%s: %s exited with %d", self.ns, self.pod_name, name, state["exitCode"])
        self._finish_run(c, state, restart)

    def _finish_run(self, c: Container, state: dict, restart: bool) -> None:
        run = c.run
        run.running_since, run.ready, run.started = None, False, False
        if restart:
            delay = min(10 * 2 ** run.restart_count, BACKOFF_MAX)
            run.last_terminated, run.restart_count = state, run.restart_count + 1
            run.waiting = ("CrashLoopBackOff",
                           f"back-off {delay}s restarting failed container={run.name} pod={self.pod_name}")
            c.retry_at = time.monotonic() + delay
        else:
            run.terminated, run.waiting = state, None

    # ---- probes

    def _probe(self, c: Container) -> None:
        t = time.monotonic()
        if "readinessProbe" not in c.probes:
            c.run.ready = c.run.started and not c.init
        for kind, probe in c.probes.items():
            if t < probe.next_at or (kind != "startupProbe" and not c.run.started):
                continue
            if kind == "startupProbe" and c.run.started:
                continue
            probe.next_at = t + probe.settings["periodSeconds"]
            ok = self._probe_once(c, probe)
            probe.successes, probe.failures = (probe.successes + 1, 0) if ok else (0, probe.failures + 1)
            if kind == "startupProbe" and ok:
                c.run.started = True
            elif kind == "readinessProbe":
                if probe.successes >= probe.settings["successThreshold"]:
                    c.run.ready = True
                elif probe.failures >= probe.settings["failureThreshold"]:
                    c.run.ready = False
            if kind != "readinessProbe" and probe.failures >= probe.settings["failureThreshold"]:
                log.info("pod %s/%s: %s failed its %s; killing it", self.ns, self.pod_name, c.spec["name"], kind)
                stop_processes([c.proc], float(c.spec[kind].get("terminationGracePeriodSeconds")
                                               or self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
                return

    def _probe_once(self, c: Container, probe: Probe) -> bool:
        spec, timeout = probe.spec, probe.settings["timeoutSeconds"]
        try:
            if "exec" in spec:
                argv = [map_paths(a, c.mapping) for a in spec["exec"]["command"]]
                kind = image_kind(c.spec["image"]) or ""
                tritonserver = self.rt.tritonserver()[0] if kind == "tritonserver" else None
                argv[0] = resolve_executable(argv[0], kind, VENV_BIN, tritonserver)
                done = subprocess.run(argv, env=c.env, cwd=c.cwd, capture_output=True, timeout=timeout)
                return done.returncode == 0
            if "httpGet" in spec:
                get = spec["httpGet"]
                host, port = get.get("host") or self.ip, probe_port(get["port"], c.spec)
                conn = (http.client.HTTPSConnection(host, port, timeout=timeout,
                                                    context=ssl._create_unverified_context())
                        if get.get("scheme") == "HTTPS" else http.client.HTTPConnection(host, port, timeout=timeout))
                try:
                    conn.request("GET", get.get("path", "/"),
                                 headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []})
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            sock = spec.get("tcpSocket") or spec.get("grpc") or {}
            with socket.create_connection((sock.get("host") or self.ip, probe_port(sock["port"], c.spec)),
                                          timeout=timeout):
                return True
        except (OSError, ValueError, StartError, subprocess.TimeoutExpired, http.client.HTTPException):
            return False

    # ---- status

    def publish(self) -> None:
        """Write the pod's status when it changed (merge patch on pods/status, as kubelet)."""
        if self.gone:
            return
        runs = [c.run for c in self.containers]
        phase = self.phase()
        latest = (self.pod.get("status") or {}).get("conditions") or []
        previous = [c for c in latest if c["type"] not in OUR_CONDITIONS] + [
            c for c in (self.sent.get("conditions") or latest) if c["type"] in OUR_CONDITIONS]
        gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
        image_id = {c.spec["name"]: f"local://{image_kind(c.spec['image']) or 'unsupported'}"
                    for c in self.inits + self.containers}
        status = {
            "phase": phase, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
            "podIP": self.ip, "podIPs": [{"ip": self.ip}], "startTime": self.start_time,
            "conditions": pod_conditions(phase, [c.run for c in self.inits], runs, previous, gates, now()),
            "containerStatuses": [container_status(r, image_id[r.name]) for r in runs],
            "reason": self.failure[0] if self.failure else None,
            "message": self.failure[1] if self.failure else None,
        }
        if self.inits:
            status["initContainerStatuses"] = [container_status(c.run, image_id[c.run.name]) for c in self.inits]
        self._publish_address(status)
        if status == self.sent:
            return
        try:
            self.rt.api.call("PATCH", f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status",
                             {"status": status}, content_type="application/merge-patch+json")
            self.sent = status
        except ApiError as e:
            if e.status == 404:
                self.mark_gone()
            else:
                log.warning("pod %s/%s: status update failed: %s", self.ns, self.pod_name, e)

    def _publish_address(self, status: dict) -> None:
        """The pod's names in the DNS stand-in: gone once it ends or is being deleted."""
        if status["phase"] in ("Succeeded", "Failed") or self.deleting.is_set():
            self.rt.set_address(self.uid, None)
            return
        spec = self.pod["spec"]
        ready = next(c["status"] == "True" for c in status["conditions"] if c["type"] == "Ready")
        ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports") or []
                 if p.get("name")}
        self.rt.set_address(self.uid, PodAddress(self.ns, self.pod_name, self.ip, self.hostname,
                                                 spec.get("subdomain", ""), self.pod["metadata"].get("labels") or {},
                                                 ready, ports))


def read_tail(path: Path, size: int) -> bytes:
    if not path.exists():
        return b""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read()


def tee(stream, log_path: Path, prefix: str) -> None:
    """--echo: copy a container's output to its log file and, prefixed, to the runtime's stderr."""
    with open(log_path, "ab") as logfile:
        for line in iter(stream.readline, b""):
            logfile.write(line)
            logfile.flush()
            sys.stderr.write(prefix + line.decode("utf-8", errors="replace"))
            sys.stderr.flush()
