"""The local pod runtime against the real control plane: pods bound to its node run as processes."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from mlcycle.localdev.runtime import TOLERATION
from waiting import wait_for

IMAGE = "ghcr.io/mlcycle/mlcycle:0.1.0"

HTTP_SERVER = """
import http.server, os
class Name(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(os.environ["POD_NAME"].encode())
http.server.HTTPServer(("", 8000), Name).serve_forever()
"""


@pytest.fixture(scope="module")
def runtime(local_runtime):
    # The session's one runtime: runtimes do not coordinate pod addresses, so only one runs at a time.
    yield local_runtime
    print(f"--- runtime log (tail)\n{local_runtime.log()[-4000:]}")


def apply(cluster, namespace: str, *objects: dict) -> None:
    cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(list(objects)))


def get(cluster, namespace: str, kind: str, name: str) -> dict | None:
    out = cluster.kubectl_run("get", "-n", namespace, kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(out.stdout) if out.stdout.strip() else None



def pod(name: str, node: str, command: list[str], image: str = IMAGE, **spec) -> dict:
    container = {"name": "main", "image": image, "command": command, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": spec.pop("labels", {})},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [container],
                     "terminationGracePeriodSeconds": 5, **spec}}


def python(code: str) -> list[str]:
    return ["python", "-c", code]


def finished(cluster, namespace: str, name: str) -> dict:
    def terminal():
        p = get(cluster, namespace, "pod", name)
        return p if p and p["status"].get("phase") in ("Succeeded", "Failed") else None
    return wait_for(terminal, f"pod {name} to finish")


def running(cluster, namespace: str, name: str) -> dict:
    def phase_running():
        p = get(cluster, namespace, "pod", name)
        return p if p and p["status"].get("phase") == "Running" else None
    return wait_for(phase_running, f"pod {name} to run")


def condition(p: dict, type_: str) -> str | None:
    return next((c["status"] for c in p["status"].get("conditions", []) if c["type"] == type_), None)


def test_node_registers_and_keeps_its_lease(cluster, runtime):
    node = get(cluster, "default", "node", runtime.node)
    assert node["metadata"]["labels"]["mlcycle.io/local-runtime"] == "true"
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    assert condition(node, "Ready") == "True"
    assert {"key": "mlcycle.io/local-runtime", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    lease = get(cluster, "kube-node-lease", "lease", runtime.node)
    renewed = wait_for(lambda: (get(cluster, "kube-node-lease", "lease", runtime.node)["spec"]["renewTime"]
                                != lease["spec"]["renewTime"]), "the node lease to be renewed", timeout=30)
    assert renewed
    assert condition(get(cluster, "default", "node", runtime.node), "Ready") == "True"


def test_pod_succeeds_with_its_termination_message(cluster, runtime, namespace):
    apply(cluster, namespace, pod("ok", runtime.node, python(
        "open('/dev/termination-log', 'w').write('model saved'); print('hello from the pod')")))
    p = finished(cluster, namespace, "ok")
    assert p["status"]["phase"] == "Succeeded"
    state = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"], state["message"]) == (0, "Completed", "model saved")
    logs = list(runtime.state_dir.glob(f"pods/{namespace}_ok_*/main.log"))
    assert logs and "hello from the pod" in logs[0].read_text()


def test_pod_scheduled_by_node_selector_fails_with_its_exit_code(cluster, runtime, namespace):
    spec = pod("exit3", runtime.node, python("import sys; sys.exit(3)"))
    del spec["spec"]["nodeName"]
    spec["spec"]["nodeSelector"] = {"kubernetes.io/hostname": runtime.node}
    spec["spec"]["tolerations"] = [TOLERATION]
    apply(cluster, namespace, spec)
    p = finished(cluster, namespace, "exit3")
    assert p["status"]["phase"] == "Failed"
    state = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (3, "Error")


def test_env_from_secret_and_pod_ip(cluster, runtime, namespace):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"password": "hunter2"}}
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
           {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "GREETING", "value": "ip=$(MY_IP)"}]
    apply(cluster, namespace, secret, pod("env", runtime.node, python(
        "import os; open('/dev/termination-log', 'w').write(os.environ['PASSWORD'] + ' ' + os.environ['GREETING'])"),
        container={"env": env}))
    p = finished(cluster, namespace, "env")
    ip = p["status"]["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == f"hunter2 ip={ip}"


def test_missing_secret_waits_with_config_error(cluster, runtime, namespace):
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    apply(cluster, namespace, pod("nosecret", runtime.node, python("pass"), container={"env": env}))

    def waiting():
        p = get(cluster, namespace, "pod", "nosecret")
        statuses = p["status"].get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting")
    state = wait_for(lambda: (w := waiting()) and w["reason"] == "CreateContainerConfigError" and w, "config error")
    assert state["message"] == 'secret "absent" not found'


def test_unknown_image_is_a_clear_failure(cluster, runtime, namespace):
    apply(cluster, namespace, pod("busybox", runtime.node, ["sh", "-c", "true"], image="busybox:1.36"))
    p = finished(cluster, namespace, "busybox")
    assert p["status"]["phase"] == "Failed"
    waiting = p["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ErrImagePull"
    assert "busybox:1.36 cannot run on the local runtime" in waiting["message"]


def test_pods_share_a_port_on_their_own_addresses_behind_services(cluster, runtime, namespace):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grp"},
               "spec": {"clusterIP": "None", "selector": {"app": "srv"}, "ports": [{"port": 8000}]}}
    front = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front"},
             "spec": {"selector": {"app": "srv"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    probe = {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 1}
    servers = [pod(f"server-{i}", runtime.node, python(HTTP_SERVER), labels={"app": "srv"},
                   hostname=f"srv-{i}", subdomain="grp",
                   container={"ports": [{"name": "http", "containerPort": 8000}], "readinessProbe": probe,
                              "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {
                                  "fieldPath": "metadata.name"}}}]})
               for i in range(2)]
    apply(cluster, namespace, service, front, *servers)
    ready = [wait_for(lambda n=s["metadata"]["name"]: (p := get(cluster, namespace, "pod", n))
                      and condition(p, "Ready") == "True" and p, "server ready") for s in servers]
    ips = {p["status"]["podIP"] for p in ready}
    assert len(ips) == 2 and "127.0.0.1" not in ips

    client = python(
        "import urllib.request\n"
        f"a = urllib.request.urlopen('http://srv-1.grp.{namespace}.svc.cluster.local:8000', timeout=5).read()\n"
        "b = urllib.request.urlopen('http://grp:8000', timeout=5).read()\n"
        "c = urllib.request.urlopen('http://front', timeout=5).read()\n"  # port 80 -> targetPort http (8000)
        "open('/dev/termination-log', 'wb').write(b' '.join([a, b, c]))")
    apply(cluster, namespace, pod("client", runtime.node, client))
    p = finished(cluster, namespace, "client")
    assert p["status"]["containerStatuses"][0]["state"]["terminated"].get("message") == "server-1 server-0 server-0", p


def test_localhost_inside_a_pod_is_the_pod(cluster, runtime, namespace):
    apply(cluster, namespace, pod("selfcall", runtime.node, python(
        "import http.server, threading, urllib.request\n"
        "server = http.server.HTTPServer(('', 8080), http.server.SimpleHTTPRequestHandler)\n"
        "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
        "status = urllib.request.urlopen('http://localhost:8080/', timeout=5).status\n"
        "open('/dev/termination-log', 'w').write(f'{server.server_address[0]} {status}')")))
    p = finished(cluster, namespace, "selfcall")
    message = p["status"]["containerStatuses"][0]["state"]["terminated"].get("message")
    assert message == f"{p['status']['podIP']} 200", p["status"]


def test_torchrun_job_rendezvous_across_pods(cluster, runtime, namespace):
    script = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ddp"}, "data": {"ddp.py": (
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([dist.get_rank() + 1.0])\n"
        "dist.all_reduce(t)\n"
        "open('/dev/termination-log', 'w').write(f'rank {dist.get_rank()} sum {t.item():.0f}')\n"
        "dist.destroy_process_group()\n")}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ddp"},
               "spec": {"clusterIP": "None", "selector": {"batch.kubernetes.io/job-name": "ddp"},
                        "publishNotReadyAddresses": True}}
    torchrun = ["torchrun", "--nnodes=2", "--nproc-per-node=1", "--node-rank=$(JOB_COMPLETION_INDEX)",
                "--master-addr=ddp-0.ddp", "--master-port=29500", "/code/ddp.py"]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ddp"},
           "spec": {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 0,
                    "template": {"spec": {
                        "subdomain": "ddp", "restartPolicy": "Never", "tolerations": [TOLERATION],
                        "nodeSelector": {"kubernetes.io/hostname": runtime.node},
                        "containers": [{"name": "main", "image": IMAGE, "command": torchrun,
                                        "volumeMounts": [{"name": "code", "mountPath": "/code"}]}],
                        "volumes": [{"name": "code", "configMap": {"name": "ddp"}}]}}}}
    apply(cluster, namespace, script, service, job)
    wait_for(lambda: condition(get(cluster, namespace, "job", "ddp"), "Complete") == "True", "job complete",
             timeout=180)
    assert job_messages(cluster, namespace, "ddp") == ["rank 0 sum 3", "rank 1 sum 3"]


def test_readiness_probe_gates_ready(cluster, runtime, namespace, tmp_path):
    # The probe leaves a mark each time it runs and passes once the test creates `ready` (processes of the
    # local runtime share the host's file system): Ready is checked after a failed probe, not after a delay.
    probe = f"touch {tmp_path}/probed && test -f {tmp_path}/ready"
    apply(cluster, namespace, pod("slow", runtime.node, python("import time; time.sleep(300)"),
                                  container={"readinessProbe": {"exec": {"command": ["sh", "-c", probe]},
                                                                "periodSeconds": 1}}))
    running(cluster, namespace, "slow")
    wait_for(lambda: (tmp_path / "probed").exists(), "a readiness probe to run")
    assert condition(get(cluster, namespace, "pod", "slow"), "Ready") == "False"
    (tmp_path / "ready").touch()
    wait_for(lambda: condition(get(cluster, namespace, "pod", "slow"), "Ready") == "True", "pod ready")


def test_deleting_a_running_pod_kills_its_process(cluster, runtime, namespace):
    apply(cluster, namespace, pod("sleeper", runtime.node, python("import time; time.sleep(600)")))
    p = running(cluster, namespace, "sleeper")
    pid = int(p["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))
    os.kill(pid, 0)  # the process runs
    cluster.kubectl_run("delete", "-n", namespace, "pod", "sleeper", "--wait=false")
    wait_for(lambda: get(cluster, namespace, "pod", "sleeper") is None, "pod removed", timeout=30)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_indexed_job_completes(cluster, runtime, namespace):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
           "spec": {"completions": 2, "parallelism": 2, "completionMode": "Indexed", "backoffLimit": 0,
                    "template": {"spec": {
                        "restartPolicy": "Never", "tolerations": [TOLERATION],
                        "nodeSelector": {"mlcycle.io/local-runtime": "true", "kubernetes.io/hostname": runtime.node},
                        "containers": [{"name": "main", "image": IMAGE, "command": python(
                            "import os, socket; open('/dev/termination-log', 'w').write("
                            "os.environ['JOB_COMPLETION_INDEX'] + ' ' + socket.gethostname())")}]}}}}
    apply(cluster, namespace, job)
    done = wait_for(lambda: (j := get(cluster, namespace, "job", "idx")) and condition(j, "Complete") == "True"
                    and j, "job complete")
    assert done["status"]["succeeded"] == 2
    assert job_messages(cluster, namespace, "idx") == ["0 idx-0", "1 idx-1"]  # hostname: <job>-<index>


def job_messages(cluster, namespace: str, job: str) -> list[str]:
    pods = json.loads(cluster.kubectl_run("get", "-n", namespace, "pods", "-l", f"batch.kubernetes.io/job-name={job}",
                                          "-o", "json").stdout)["items"]
    return sorted(p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] for p in pods)
