"""The local control plane is a real one: scheduling onto kwok GPU nodes, CRDs, watches."""

import json
import threading

import yaml
from kubernetes import client, watch

from waiting import wait_for


def test_gpu_job_pod_binds_to_a_gpu_node_and_runs(cluster, namespace):
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "gpu-smoke", "namespace": namespace},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "main", "image": "example.com/train:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        }}},
    }
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(job))

    def running_pod():
        pods = json.loads(cluster.kubectl_run("get", "pods", "-n", namespace, "-l", "job-name=gpu-smoke",
                                              "-o", "json").stdout)["items"]
        return next((p for p in pods if p["status"].get("phase") == "Running"), None)

    pod = wait_for(running_pod, what="the Job's pod to be Running on a kwok node")
    node = json.loads(cluster.kubectl_run("get", "node", pod["spec"]["nodeName"], "-o", "json").stdout)
    assert int(node["status"]["capacity"]["nvidia.com/gpu"]) >= 1
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "smokes.test.mlcycle.io"},
    "spec": {
        "group": "test.mlcycle.io", "scope": "Namespaced",
        "names": {"plural": "smokes", "singular": "smoke", "kind": "Smoke"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"value": {"type": "integer"}}}},
        }}}],
    },
}


def test_crd_becomes_established_and_objects_round_trip_through_a_watch(cluster, kube_api, namespace):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(CRD))
    cluster.kubectl_run("wait", "--for=condition=Established", "crd/smokes.test.mlcycle.io", "--timeout=60s")
    api = client.CustomObjectsApi(kube_api)
    seen = []
    w = watch.Watch()
    # Watching from the list's resourceVersion delivers every later event, however late the watch connects.
    since = api.list_namespaced_custom_object("test.mlcycle.io", "v1", namespace, "smokes")["metadata"][
        "resourceVersion"]

    def watch_smokes():
        for event in w.stream(api.list_namespaced_custom_object, "test.mlcycle.io", "v1", namespace, "smokes",
                              resource_version=since, timeout_seconds=30):
            seen.append((event["type"], event["object"]["spec"]["value"]))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=watch_smokes)
    thread.start()
    body = {"apiVersion": "test.mlcycle.io/v1", "kind": "Smoke", "metadata": {"name": "a"}, "spec": {"value": 1}}
    api.create_namespaced_custom_object("test.mlcycle.io", "v1", namespace, "smokes", body)
    api.patch_namespaced_custom_object("test.mlcycle.io", "v1", namespace, "smokes", "a", {"spec": {"value": 2}})
    thread.join(40)
    assert seen == [("ADDED", 1), ("MODIFIED", 2)]
