"""Issue 13 on the real control plane with the operator as a process: long and odd names, status that forgets,
and secrets planted in what pods report."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from mlcycle import kube
from mlcycle.localdev.sample import storage_secret
from waiting import wait_for

TJ = "trainingjob.mlcycle.io"
MV = "modelversion.mlcycle.io"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PLANTED = "planted-secret-key-0123456789"


def get(cluster, kind, name, namespace):
    r = cluster.kubectl_run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def items(cluster, kind, namespace, selector=None):
    args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(cluster.kubectl_run(*args).stdout)["items"]


def apply(cluster, *objs):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def trainingjob(name, namespace, **spec):
    base = {"trainer": {"task": "classification", "labelColumn": "label"}, "dataset": {"uri": "s3://data/train.csv"},
            "output": {"uri": "s3://models/out"}, "storage": {"secretRef": {"name": "s3"}}}
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace}, "spec": base | spec}


def long_name(length: int) -> str:
    """A valid object name of `length` characters with dots (a DNS subdomain, not a label)."""
    return ("ab." * 100)[: length - 1] + "z"


@pytest.mark.parametrize("name", [long_name(63), long_name(64), long_name(253), "churn.v2", "2026-churn"],
                         ids=["63", "64", "253", "dotted", "leading-digit"])
def test_a_distributed_trainingjob_of_any_valid_name_gets_its_job_service_and_status(cluster, operator, namespace,
                                                                                   name):
    assert len(name) in (63, 64, 253, 8, 10)
    apply(cluster, trainingjob(name, namespace, workers=2))
    tj = wait_for(lambda: (t := get(cluster, TJ, name, namespace)) and (t.get("status") or {}).get("phase") in (
        "Pending", "Running") and t, what="status written")
    assert tj["status"]["observedGeneration"] == tj["metadata"]["generation"]
    job = wait_for(lambda: next(iter(items(cluster, "jobs", namespace)), None), what="the Job")
    service = wait_for(lambda: next(iter(items(cluster, "services", namespace)), None), what="the Service")
    assert job["metadata"]["name"] == service["metadata"]["name"] and len(job["metadata"]["name"]) <= 52
    label = job["metadata"]["labels"]["mlcycle.io/trainingjob"]
    assert LABEL_VALUE.match(label) and len(label) <= 63
    assert (label == name) is (len(name) <= 63)
    # The pods are found by the label and lead back to the job: its worker counts reach status.
    wait_for(lambda: len(items(cluster, "pods", namespace, f"mlcycle.io/trainingjob={label}")) == 2, what="2 pods")
    wait_for(lambda: (get(cluster, TJ, name, namespace)["status"].get("workers") or {}).get("active") == 2,
             what="2 active workers in status")


@pytest.mark.parametrize("length", [63, 64, 253])
def test_a_model_version_of_any_valid_name_gets_labels_and_status(cluster, operator, namespace, length):
    name, job = long_name(length), long_name(length)
    mv = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
          "metadata": {"name": name, "namespace": namespace},
          "spec": {"modelName": "m", "version": 1, "artifact": {"uri": "s3://models/m/model.pt", "format": "onnx"},
                   "source": {"trainingJob": job}, "storage": {"secretRef": {"name": "absent"}}}}
    apply(cluster, mv)
    st = wait_for(lambda: ((m := get(cluster, MV, name, namespace)) or {}).get("status", {}).get("phase") == "Failed"
                  and m, what="the version's status")
    label = st["metadata"]["labels"]["mlcycle.io/trainingjob"]
    assert LABEL_VALUE.match(label) and (label == job) is (length <= 63)
    assert "mlcycle.io/finalizer" in st["metadata"]["finalizers"]
    cluster.kubectl_run("delete", MV, name, "-n", namespace, "--wait=true", "--timeout=60s")


def test_a_status_field_the_builder_no_longer_returns_disappears(cluster, operator, namespace):
    mv = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
          "metadata": {"name": "km", "namespace": namespace},
          "spec": {"modelName": "km", "version": 1, "metrics": {"accuracy": 0.9},
                   "artifact": {"uri": "s3://models/km/model.onnx", "format": "onnx"},
                   "storage": {"secretRef": {"name": "absent"}}}}
    apply(cluster, mv)
    wait_for(lambda: (get(cluster, MV, "km", namespace).get("status") or {}).get("keyMetric") == "accuracy=0.9",
             what="keyMetric")
    cluster.kubectl_run("patch", MV, "km", "-n", namespace, "--type=json", "-p",
                        '[{"op": "remove", "path": "/spec/metrics"}]')
    st = wait_for(lambda: (m := get(cluster, MV, "km", namespace))["status"].get("observedGeneration") ==
                  m["metadata"]["generation"] and m["status"], what="the new generation's status")
    assert "keyMetric" not in st
    cluster.kubectl_run("delete", MV, "km", "-n", namespace, "--wait=true", "--timeout=60s")


# A kind of its own, with a status subresource, that no controller writes: only the test changes its status.
STATUS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "statustests.test.mlcycle.io"},
    "spec": {"group": "test.mlcycle.io", "scope": "Namespaced",
             "names": {"plural": "statustests", "singular": "statustest", "kind": "StatusTest"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
}


def test_write_status_replaces_the_whole_status_and_refuses_a_stale_read(cluster, kube_api, namespace, monkeypatch):
    monkeypatch.setattr(kube, "api_client", lambda: kube_api)  # the operator's helpers, against this cluster
    monkeypatch.setitem(kube.PLURALS, "StatusTest", "statustests")
    apply(cluster, STATUS_CRD)
    cluster.kubectl_run("wait", "--for=condition=Established", "crd/statustests.test.mlcycle.io", "--timeout=60s")
    apply(cluster, {"apiVersion": "test.mlcycle.io/v1", "kind": "StatusTest",
                    "metadata": {"name": "plain", "namespace": namespace}})
    obj = kube.get("test.mlcycle.io/v1", "StatusTest", namespace, "plain")
    assert kube.write_status(obj, {"phase": "Succeeded", "modelVersionRef": {"name": "m-v1"}, "message": "x"})
    stale = obj
    obj = kube.get("test.mlcycle.io/v1", "StatusTest", namespace, "plain")
    assert obj["status"]["modelVersionRef"] == {"name": "m-v1"}
    assert kube.write_status(obj, {"phase": "Succeeded", "message": "x"})
    obj = kube.get("test.mlcycle.io/v1", "StatusTest", namespace, "plain")
    assert "modelVersionRef" not in obj["status"]  # a merge patch would have kept it
    assert not kube.write_status(obj, {"phase": "Succeeded", "message": "x"})  # unchanged: nothing written
    with pytest.raises(kube.Conflict):
        kube.write_status(stale, {"phase": "Failed"})


def test_secrets_planted_in_a_pods_termination_message_reach_no_status_event_or_log(cluster, operator, namespace):
    apply(cluster, storage_secret("s3", namespace, "minio.local:9000", "AKIAIOSFODNN7EXAMPLE", PLANTED),
          trainingjob("leaky", namespace, runPolicy={"backoffLimit": 0}))
    pods = wait_for(lambda: [p for p in items(cluster, "pods", namespace, "mlcycle.io/trainingjob=leaky")
                             if p["status"].get("phase") == "Running"], what="a running pod")
    # What a user image's last log lines (FallbackToLogsOnError) could hold: the Secret's value, env dumps, URLs.
    log_tail = (f"Traceback ...\nusing secret {PLANTED}\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENG\n"
                "fetching https://admin:hunter2hunter2@minio.local:9000/x\nAuthorization: Bearer tok3ntok3ntok3n")
    status = {"phase": "Failed", "containerStatuses": [{
        "name": "trainer", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": log_tail}}}]}
    cluster.kubectl_run("patch", "pod", pods[0]["metadata"]["name"], "-n", namespace, "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": status}))
    tj = wait_for(lambda: (t := get(cluster, TJ, "leaky", namespace))["status"].get("phase") == "Failed" and t,
                  what="Failed")
    assert "exited with code 1" in tj["status"]["message"]
    events = wait_for(lambda: [e for e in items(cluster, "events", namespace)
                               if e["involvedObject"]["name"] == "leaky" and e["reason"] == "Failed"], what="event")
    everything = json.dumps([tj, events]) + operator.log_path.read_text()
    for planted in (PLANTED, "wJalrXUtnFEMIK7MDENG", "hunter2hunter2", "tok3ntok3ntok3n", "AKIAIOSFODNN7EXAMPLE"):
        assert planted not in everything, planted


def test_a_repeated_event_is_counted_on_one_event_like_kubelets(cluster, kube_api, namespace, monkeypatch):
    monkeypatch.setattr(kube, "api_client", lambda: kube_api)  # the operator's helpers, against this cluster
    cluster.kubectl_run("create", "configmap", "flapping", "-n", namespace)
    cm = json.loads(cluster.kubectl_run("get", "configmap", "flapping", "-n", namespace, "-o", "json").stdout)
    for _ in range(3):
        kube.post_event(cm, "Warning", "Flapping", "the same thing again")
    kube.post_event(cm, "Normal", "Settled", "something else")
    events = sorted(items(cluster, "events", namespace), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("Flapping", 3), ("Settled", 1)]
    assert events[0]["lastTimestamp"] >= events[0]["firstTimestamp"]
