"""The TrainingJob controller against the real control plane: kwok nodes, real scheduler, real Job and
garbage-collection controllers, the operator as a process."""

from __future__ import annotations

import json
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

from waiting import wait_for

TJ = "trainingjob.mlcycle.io"



def get(cluster, kind, name, namespace):
    r = cluster.kubectl_run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def items(cluster, kind, namespace, selector):
    return json.loads(cluster.kubectl_run("get", kind, "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]


def trainingjob(name, namespace, **spec):
    base = {
        "trainer": {"task": "classification", "labelColumn": "label"},
        "dataset": {"uri": "s3://data/train.csv"},
        "output": {"uri": f"s3://models/{name}"},
        "storage": {"secretRef": {"name": "s3"}},
    }
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace}, "spec": base | spec}


def apply(cluster, obj):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(obj))


def reconciles(operator, kind: str) -> float:
    """The operator process's count of finished reconciles of `kind` (its Prometheus metric)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "mlcycle_reconcile_total" and sample.labels.get("kind") == kind)


def applies(cluster, resource: str) -> float:
    """The apiserver's own count of server-side applies to `resource` (its Prometheus metric)."""
    text = cluster.kubectl_run("get", "--raw", "/metrics").stdout
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "apiserver_request_total" and sample.labels.get("verb") == "APPLY"
               and sample.labels.get("resource") == resource)


def phase(cluster, name, namespace):
    tj = get(cluster, TJ, name, namespace) or {}
    return (tj.get("status") or {}).get("phase")


def test_distributed_gpu_job_gets_indexed_job_headless_service_and_gpu_nodes(cluster, operator, namespace):
    apply(cluster, trainingjob("ddp", namespace, workers=2, procsPerWorker=2, resources={"gpus": 2},
                               gpuType="NVIDIA-H100-80GB-HBM3"))
    job = wait_for(lambda: get(cluster, "job", "ddp", namespace), what="the Job")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 2
    svc = wait_for(lambda: get(cluster, "service", "ddp", namespace), what="the Service")
    assert svc["spec"]["clusterIP"] == "None"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PET_MASTER_ADDR"]["value"] == f"ddp-0.ddp.{namespace}.svc"
    assert env["PET_NNODES"]["value"] == "2" and env["PET_NPROC_PER_NODE"]["value"] == "2"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3", "key": "secretKey"}

    pods = wait_for(lambda: [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=ddp")
                             if p["spec"].get("nodeName")] or None, what="bound pods")
    assert {p["spec"]["nodeName"] for p in pods} == {"gpu-h100-0"}  # the gpuType's node, not the A100 one
    wait_for(lambda: phase(cluster, "ddp", namespace) == "Running", what="phase Running")
    tj = get(cluster, TJ, "ddp", namespace)
    assert tj["status"]["observedGeneration"] == tj["metadata"]["generation"]
    assert tj["status"]["workers"]["active"] == 2


def test_cpu_job_never_lands_on_gpu_nodes(cluster, operator, namespace):
    apply(cluster, trainingjob("cpu", namespace, workers=3))
    pods = wait_for(lambda: [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=cpu")
                             if p["spec"].get("nodeName")] if len(items(cluster, "pods", namespace,
                                                                     "mlcycle.io/trainingjob=cpu")) == 3 else None,
                    what="3 bound pods")
    gpu_nodes = {n["metadata"]["name"] for n in items(cluster, "nodes", "default", "nvidia.com/gpu.present=true")}
    assert gpu_nodes and not {p["spec"]["nodeName"] for p in pods} & gpu_nodes


def test_more_gpus_than_any_node_has_is_reported_unschedulable(cluster, operator, namespace):
    apply(cluster, trainingjob("huge", namespace, resources={"gpus": 16}))

    def unschedulable():
        tj = get(cluster, TJ, "huge", namespace) or {}
        ready = next((c for c in (tj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})
        return tj if ready.get("reason") == "Unschedulable" else None

    tj = wait_for(unschedulable, what="Unschedulable in status")
    assert tj["status"]["phase"] == "Pending"
    assert "nvidia.com/gpu" in tj["status"]["message"]


def test_suspend_and_resume(cluster, operator, namespace):
    apply(cluster, trainingjob("sus", namespace))
    wait_for(lambda: phase(cluster, "sus", namespace) == "Running", what="Running")
    cluster.kubectl_run("patch", TJ, "sus", "-n", namespace, "--type=merge", "-p",
                        '{"spec":{"runPolicy":{"suspend":true}}}')
    wait_for(lambda: phase(cluster, "sus", namespace) == "Suspended", what="Suspended")
    assert get(cluster, "job", "sus", namespace)["spec"]["suspend"] is True
    wait_for(lambda: not items(cluster, "pods", namespace, "mlcycle.io/trainingjob=sus"), what="pods gone")
    cluster.kubectl_run("patch", TJ, "sus", "-n", namespace, "--type=merge", "-p",
                        '{"spec":{"runPolicy":{"suspend":false}}}')
    wait_for(lambda: phase(cluster, "sus", namespace) == "Running", what="Running again")
    assert get(cluster, "job", "sus", namespace)["spec"]["suspend"] is False


def test_job_suspended_by_another_controller_is_honoured(cluster, operator, namespace):
    apply(cluster, trainingjob("kueue", namespace))
    wait_for(lambda: get(cluster, "job", "kueue", namespace), what="the Job")
    # What Kueue does: suspend the Job with its own field manager.
    cluster.kubectl_run("patch", "job", "kueue", "-n", namespace, "--type=merge", "--field-manager=kueue",
                        "-p", '{"spec":{"suspend":true}}')
    tj = wait_for(lambda: (get(cluster, TJ, "kueue", namespace) or {}).get("status", {}).get("phase") == "Suspended"
                  and get(cluster, TJ, "kueue", namespace), what="Suspended")
    assert "another controller" in tj["status"]["message"]
    # A spec change forces a reconcile (metadata-only events are dropped), observable as observedGeneration.
    cluster.kubectl_run("patch", TJ, "kueue", "-n", namespace, "--type=merge", "-p",
                        '{"spec":{"runPolicy":{"activeDeadlineSeconds":3600}}}')
    wait_for(lambda: (t := get(cluster, TJ, "kueue", namespace))["status"]["observedGeneration"] ==
             t["metadata"]["generation"], what="a reconcile of the new generation")
    job = get(cluster, "job", "kueue", namespace)
    assert job["spec"]["activeDeadlineSeconds"] == 3600  # the reconcile applied the Job...
    assert job["spec"]["suspend"] is True  # ...and left Kueue's suspend alone


def test_deleting_the_trainingjob_garbage_collects_job_pods_and_service(cluster, operator, namespace):
    apply(cluster, trainingjob("gc", namespace, workers=2))
    wait_for(lambda: len(items(cluster, "pods", namespace, "mlcycle.io/trainingjob=gc")) == 2, what="2 pods")
    assert get(cluster, "service", "gc", namespace)
    cluster.kubectl_run("delete", TJ, "gc", "-n", namespace, "--wait=false")
    wait_for(lambda: get(cluster, "job", "gc", namespace) is None and get(cluster, "service", "gc", namespace)
             is None and not items(cluster, "pods", namespace, "mlcycle.io/trainingjob=gc"),
             timeout=90, what="children garbage-collected")


def test_ttl_deletes_the_finished_trainingjob(cluster, operator, namespace):
    apply(cluster, trainingjob("ttl", namespace, runPolicy={"ttlSecondsAfterFinished": 3}))
    pods = wait_for(lambda: [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=ttl")
                             if p["status"].get("phase") == "Running"], what="a running pod")
    # kwok's pod-complete stage finishes pods that carry this label (see localdev/kwok-config.yaml).
    cluster.kubectl_run("label", "pod", pods[0]["metadata"]["name"], "-n", namespace, "mlcycle.io/kwok-complete=true")
    wait_for(lambda: phase(cluster, "ttl", namespace) == "Succeeded", what="Succeeded")
    wait_for(lambda: get(cluster, TJ, "ttl", namespace) is None, timeout=60, what="the TrainingJob deleted by TTL")


def test_reserved_env_is_refused_with_the_field_named(cluster, operator, namespace):
    apply(cluster, trainingjob("env", namespace, env=[{"name": "PET_MASTER_ADDR", "value": "evil"}]))
    wait_for(lambda: phase(cluster, "env", namespace) == "Failed", what="Failed")
    tj = get(cluster, TJ, "env", namespace)
    assert "spec.env[0].name" in tj["status"]["message"]
    assert get(cluster, "job", "env", namespace) is None


def test_operator_restart_mid_run_creates_nothing_twice(cluster, operator, namespace):
    apply(cluster, trainingjob("restart", namespace, workers=2))
    wait_for(lambda: ((get(cluster, TJ, "restart", namespace) or {}).get("status") or {}).get("workers", {})
             .get("ready") == 2 and phase(cluster, "restart", namespace) == "Running", what="both workers ready")
    job_uid = get(cluster, "job", "restart", namespace)["metadata"]["uid"]
    pods_before = {p["metadata"]["uid"] for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=restart")}
    rv_before = get(cluster, TJ, "restart", namespace)["metadata"]["resourceVersion"]
    # The count is the cluster's: a namespace of an earlier test still being deleted (its Jobs collected
    # before its TrainingJobs) would have its Jobs applied again.
    wait_for(lambda: all(n["status"]["phase"] == "Active" for n in json.loads(cluster.kubectl_run(
        "get", "namespaces", "-o", "json").stdout)["items"]), what="earlier tests' namespaces gone")
    applied_before = applies(cluster, "jobs"), applies(cluster, "services")
    operator.restart()
    # The restarted operator lists every TrainingJob again and reconciles each at least once.
    total = len(json.loads(cluster.kubectl_run("get", TJ, "-A", "-o", "json").stdout)["items"])
    wait_for(lambda: reconciles(operator, "TrainingJob") >= total, what=f"{total} reconciles after the restart")
    assert get(cluster, "job", "restart", namespace)["metadata"]["uid"] == job_uid
    assert len(json.loads(cluster.kubectl_run("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"]) == 1
    pods_after = {p["metadata"]["uid"] for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=restart")}
    assert pods_after == pods_before
    assert get(cluster, TJ, "restart", namespace)["metadata"]["resourceVersion"] == rv_before  # status unchanged
    # Compare-then-apply: the Job and the Service already are what it would apply, so it applies neither.
    assert (applies(cluster, "jobs"), applies(cluster, "services")) == applied_before


def test_a_worker_failing_for_good_fails_the_job_and_leaves_no_worker_running(cluster, operator, namespace):
    apply(cluster, trainingjob("fail", namespace, workers=2, runPolicy={"backoffLimit": 0}))
    pods = wait_for(lambda: [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=fail")
                             if p["status"].get("phase") == "Running"] if len(items(
                                 cluster, "pods", namespace, "mlcycle.io/trainingjob=fail")) == 2 else None,
                    what="2 running pods")
    # What a kubelet reports when the trainer exits 3.
    status = {"phase": "Failed", "containerStatuses": [{
        "name": "trainer", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 3, "reason": "Error",
                                 "message": '{"error": {"reason": "TrainerError", "message": "loss is NaN"}}'}}}]}
    cluster.kubectl_run("patch", "pod", pods[0]["metadata"]["name"], "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": status}))
    wait_for(lambda: phase(cluster, "fail", namespace) == "Failed", what="Failed")
    tj = get(cluster, TJ, "fail", namespace)
    assert "exited with code 3" in tj["status"]["message"] and "loss is NaN" in tj["status"]["message"]
    wait_for(lambda: not [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=fail")
                          if p["status"].get("phase") in ("Running", "Pending")], what="no worker left running")


def test_a_missing_priority_class_or_service_account_stalls_the_job_with_the_field_named(cluster, operator,
                                                                                          namespace):
    apply(cluster, trainingjob("refs", namespace, priorityClassName="no-such-class", serviceAccountName="nobody"))

    def stalled():
        tj = get(cluster, TJ, "refs", namespace) or {}
        cond = next((c for c in (tj.get("status") or {}).get("conditions", []) if c["type"] == "Stalled"), {})
        return tj if cond.get("status") == "True" else None

    tj = wait_for(stalled, what="Stalled")
    assert "spec.priorityClassName: PriorityClass no-such-class does not exist" in tj["status"]["message"]
    assert "spec.serviceAccountName: ServiceAccount nobody does not exist" in tj["status"]["message"]


def test_a_job_the_apiserver_refuses_is_reported_with_its_field_not_retried_silently(cluster, operator, namespace):
    # A Secret key Kubernetes cannot hold: admission cannot tell, the Job's validation does.
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "bad key!"}}}]
    apply(cluster, trainingjob("refused", namespace, env=env))
    wait_for(lambda: phase(cluster, "refused", namespace) == "Failed", what="Failed")
    tj = get(cluster, TJ, "refused", namespace)
    assert "the apiserver refuses the children this spec asks for: Job.batch" in tj["status"]["message"]
    assert "valueFrom.secretKeyRef.key: Invalid value" in tj["status"]["message"]


def test_with_the_operator_stopped_a_namespace_of_trainingjobs_is_deleted_in_seconds(cluster, operator, namespace):
    names = [f"del-{i}" for i in range(20)]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        trainingjob(name, namespace, runPolicy={"suspend": True}) for name in names]}))
    listed = wait_for(lambda: (tjs := json.loads(cluster.kubectl_run("get", TJ, "-n", namespace, "-o", "json")
                                                 .stdout)["items"]) and all(
        (t.get("status") or {}).get("phase") == "Suspended" for t in tjs) and len(tjs) == len(names) and tjs,
        what="every TrainingJob reconciled")
    # Nothing needs cleaning up on deletion (owner references do it): no finalizer for an operator to remove.
    assert [t["metadata"].get("finalizers") for t in listed] == [None] * len(names)
    operator.stop()
    try:
        cluster.kubectl_run("delete", "namespace", namespace, "--wait=false")
        wait_for(lambda: cluster.kubectl_run("get", "namespace", namespace, check=False).returncode != 0,
                 timeout=60, interval=0.2, what="the namespace gone while no operator runs")
    finally:
        operator.restart()
