"""The chart installed on the local cluster: the operator runs as a pod of the local runtime under the chart's
ServiceAccount only (a projected token from the TokenRequest API, ca.crt, namespace, KUBERNETES_SERVICE_*; no
kubeconfig to fall back on), trains a model and registers a Ready ModelVersion — which proves the RBAC is enough —
and `kubectl auth can-i` shows what it may not do."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import yaml

from fleet import JobCreations, all_succeeded, trainingjob
from mlcycle.localdev import chart
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from waiting import wait_for

RELEASE = "mlcycle"
JOBS = 50
CRDS = ("trainingjobs.mlcycle.io", "modelversions.mlcycle.io", "inferenceservices.mlcycle.io")


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def adopt_crds(cluster, release: str, namespace: str) -> None:
    """CRDs installed by `kubectl apply` before become the release's (the README's upgrade path)."""
    for crd in CRDS:
        cluster.kubectl_run("label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        cluster.kubectl_run("annotate", "crd", crd, f"meta.helm.sh/release-name={release}",
                            f"meta.helm.sh/release-namespace={namespace}", "--overwrite")


def base_values(namespace: str) -> dict:
    """Watch the test's namespace; run on the local runtime; no kubeconfig to fall back on, so the operator has
    the service account's rights or none."""
    return {"watchNamespaces": [namespace], "nodeSelector": RUNTIME_LABEL, "tolerations": [RUNTIME_TOLERATION],
            "workloads": {"nodeSelector": RUNTIME_LABEL, "tolerations": [RUNTIME_TOLERATION]},
            "extraEnv": [{"name": "KUBECONFIG", "value": "/nonexistent/kubeconfig"}]}


@pytest.fixture
def install_chart(cluster, crds, local_runtime, session_operator_stopped, namespace):
    """`install_chart(**values)`: the chart in its own namespace, watching the test's namespace, its pods on the
    local runtime; uninstalled afterwards."""
    releases = []

    def install(**values) -> str:
        system = f"mlcycle-{uuid.uuid4().hex[:6]}"
        adopt_crds(cluster, RELEASE, system)
        releases.append(system)
        chart.install(cluster.kubeconfig, RELEASE, system, base_values(namespace) | values)
        return system

    yield install
    cluster.kubectl_run("delete", "trainingjobs.mlcycle.io,modelversions.mlcycle.io", "--all", "-n", namespace,
                        "--wait=true", "--timeout=60s", check=False)  # the finalizers need the operator
    for system in releases:
        chart.uninstall(cluster.kubeconfig, RELEASE, system)
        cluster.kubectl_run("delete", "namespace", system, "--wait=false", check=False)


@pytest.fixture
def installed(install_chart) -> str:
    return install_chart()


def can_i(cluster, system: str, *args: str) -> bool:
    r = cluster.kubectl_run("auth", "can-i", *args, f"--as=system:serviceaccount:{system}:{RELEASE}", check=False)
    return r.stdout.strip() == "yes"


def test_the_operator_pod_trains_and_registers_under_the_charts_service_account(cluster, installed, local_runtime,
                                                                               minio, namespace):
    system = installed
    (pod,) = get_json(cluster, "pods", "-n", system, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert pod["spec"]["serviceAccountName"] == RELEASE and pod["spec"]["nodeName"] == "mlcycle-local"
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts  # the projected token the runtime provides
    lease = get_json(cluster, "lease", RELEASE, "-n", system)
    assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"])
    (log,) = local_runtime.state_dir.glob(f"pods/{system}_{pod['metadata']['name']}_*/operator.log")
    assert "leads (lease" in log.read_text()

    data = iris_like_csv(rows_per_class=100)
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    tj = training_job("iris", namespace, "s3", epochs=10, node_selector=RUNTIME_LABEL, model="iris-chart")
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))

    def registered():
        st = (get_json(cluster, "trainingjob", "iris", "-n", namespace) or {}).get("status") or {}
        return st if st.get("phase") == "Failed" or st.get("modelVersionRef") else None

    status = wait_for(registered, what="the TrainingJob to register its ModelVersion", timeout=600)
    assert status["phase"] == "Succeeded", status.get("message")
    name = status["modelVersionRef"]["name"]
    mv = wait_for(lambda: (m := get_json(cluster, "modelversion", name, "-n", namespace))
                  and (m.get("status") or {}).get("phase") in ("Ready", "Failed", "Rejected") and m,
                  what="the ModelVersion verified", timeout=180)
    assert mv["status"]["phase"] == "Ready", mv["status"].get("message")
    job = get_json(cluster, "job", "iris", "-n", namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == pod["spec"]["containers"][0]["image"]


def test_the_service_account_may_do_what_the_operator_needs_and_nothing_else(cluster, installed, namespace):
    system, other = installed, "default"
    allowed = [("get", "secrets", namespace), ("patch", "trainingjobs.mlcycle.io/status", namespace),
               ("create", "modelversions.mlcycle.io", namespace), ("create", "jobs.batch", namespace),
               ("update", "leases.coordination.k8s.io/" + RELEASE, system),
               # what the InferenceService controller applies and deletes (its e2e does not run under the chart)
               ("patch", "inferenceservices.mlcycle.io", namespace), ("delete", "deployments.apps", namespace),
               ("create", "horizontalpodautoscalers.autoscaling", namespace), ("delete", "services", namespace),
               ("list", "pods", namespace)]
    for verb, resource, ns in allowed:
        assert can_i(cluster, system, verb, resource, "-n", ns), (verb, resource, ns)
    forbidden = [
        ("get", "secrets", other),  # Secrets of a namespace it does not watch
        ("list", "secrets", namespace),  # Secrets are read by name only
        ("create", "secrets", namespace),
        ("get", "trainingjobs.mlcycle.io", other),
        ("update", "trainingjobs.mlcycle.io", namespace),  # a PUT would replace the user's spec
        ("update", "modelversions.mlcycle.io", namespace),
        ("delete", "modelversions.mlcycle.io", namespace),  # registry entries outlive the operator's wishes
        ("create", "pods", namespace),
        ("delete", "pods", namespace),
        ("patch", "nodes", ""),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
        ("update", "leases.coordination.k8s.io/someone-else", system),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ]
    granted = [f for f in forbidden if can_i(cluster, system, f[0], f[1], *(["-n", f[2]] if f[2] else []))]
    assert not granted


def operator_process(pod_name: str) -> int:
    """The pid of the operator process the local runtime runs for `pod_name` (its env has the pod's name)."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            env = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"POD_NAME={pod_name}".encode() in env and any(e.startswith(b"MLCYCLE_POD_IP=") for e in env):
            return int(environ.parent.name)
    raise AssertionError(f"no process of pod {pod_name}")


def test_two_replicas_the_standby_takes_over_when_the_leader_process_is_killed(cluster, install_chart, kube_api,
                                                                             namespace):
    lease = {"leaseDurationSeconds": 6, "renewDeadlineSeconds": 4, "retryPeriodSeconds": 1}
    system = install_chart(replicas=2, leaderElection={"enabled": True} | lease)
    pods = get_json(cluster, "pods", "-n", system, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    holder = wait_for(lambda: (get_json(cluster, "lease", RELEASE, "-n", system) or {}).get("spec", {})
                      .get("holderIdentity"), what="a leader")
    leader = holder.rsplit("_", 1)[0]
    standby = next(p["metadata"]["name"] for p in pods if p["metadata"]["name"] != leader)

    created = JobCreations(kube_api, namespace)
    try:
        cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(
            [trainingjob(f"tj-{i:02d}", namespace) for i in range(JOBS)]))
        wait_for(lambda: len(created.uids) >= 10, what="the leader creating Jobs")
        os.kill(operator_process(leader), signal.SIGKILL)
        killed = time.monotonic()
        new_holder = wait_for(lambda: (h := get_json(cluster, "lease", RELEASE, "-n", system)["spec"]
                                       .get("holderIdentity")) != holder and h,
                              what="the standby taking the lease", timeout=lease["leaseDurationSeconds"] * 4,
                              interval=0.2)
        print(f"standby pod took over {time.monotonic() - killed:.1f}s after SIGKILL "
              f"(lease duration {lease['leaseDurationSeconds']}s)")
        assert new_holder.startswith(standby)
        wait_for(lambda: all_succeeded(cluster, namespace, JOBS), what=f"all {JOBS} TrainingJobs Succeeded",
                 timeout=600, interval=2)
        assert len(created.uids) == JOBS and all(len(uids) == 1 for uids in created.uids.values()), created.uids
    finally:
        created.stop()


def test_upgrade_keeps_working_and_uninstall_keeps_the_crds_and_the_users_resources(cluster, installed, namespace):
    system = installed
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(trainingjob("kept", namespace)))
    wait_for(lambda: get_json(cluster, "job", "kept", "-n", namespace), what="the operator at work")
    chart.install(cluster.kubeconfig, RELEASE, system, base_values(namespace) | {"tempDir": {"sizeLimit": "3Gi"}},
                  upgrade=True)
    deployment = get_json(cluster, "deployment", RELEASE, "-n", system)
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "3Gi"
    for crd in CRDS:
        assert get_json(cluster, "crd", crd)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    assert chart.uninstall(cluster.kubeconfig, RELEASE, system).returncode == 0
    assert all(get_json(cluster, "crd", crd) for crd in CRDS)
    assert get_json(cluster, "trainingjob", "kept", "-n", namespace)
    assert get_json(cluster, "clusterrole", RELEASE + "-cluster") is None  # the release itself is gone
    # The operator is gone with it: let the fixture's operator-less clean-up find nothing to wait for.
    cluster.kubectl_run("delete", "trainingjob", "kept", "-n", namespace, "--wait=false")
