"""An unexpected exception in a handler is reported on the resource and retried until it heals. Here the
cluster itself refuses the operator: a ValidatingAdmissionPolicy (a platform team's rule, on the real apiserver)
denies the ModelVersion's verification Job; once the policy goes, the version verifies."""

from __future__ import annotations

import json
import urllib.request

import yaml

from argocd_lua import health, record
from mlcycle.clients import s3
from mlcycle.localdev.sample import storage_secret
from modelversion_artifacts import model_version, torchscript_bytes
from waiting import wait_for


def _apply(cluster, obj):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(obj))


def _get(cluster, name, namespace) -> dict:
    r = cluster.kubectl_run("get", "modelversion.mlcycle.io", name, "-n", namespace, "-o", "json")
    return json.loads(r.stdout)


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def _metric(operator, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: NAME}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}
  validations:
    - expression: "!has(object.metadata.labels) || !('mlcycle.io/modelversion-uid' in object.metadata.labels)"
      message: verification Jobs are frozen here by a cluster policy
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: NAME}
spec:
  policyName: NAME
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: NAMESPACE}}
"""


def _denied(cluster, namespace) -> bool:
    """Whether the apiserver refuses a verification-like Job now (a server-side dry run: nothing is created)."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe", "namespace": namespace,
                                                                  "labels": {"mlcycle.io/modelversion-uid": "x"}},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox"}]}}}}
    r = cluster.kubectl_run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(job), check=False)
    return r.returncode != 0 and "frozen here" in r.stderr


def test_a_refused_verification_job_is_reported_on_the_version_and_it_recovers(cluster, operator, local_runtime,
                                                                               minio, bucket, namespace):
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key))
    uri = f"s3://{bucket}/iris/1/model.pt"
    s3.upload_bytes(minio.client(), bucket, "iris/1/model.pt", torchscript_bytes())
    policy = POLICY.replace("NAMESPACE", namespace).replace("NAME", f"freeze-{namespace}")
    cluster.kubectl_run("apply", "-f", "-", input=policy)
    wait_for(lambda: _denied(cluster, namespace), what="the policy in force")
    failures_before = _metric(operator, "mlcycle_handler_failures_total")
    try:
        _apply(cluster, model_version("iris-v1", namespace, "iris", 1, uri))
        failing = wait_for(lambda: (mv := _get(cluster, "iris-v1", namespace)) and
                           _condition(mv, "Synced").get("status") == "False" and mv, what="Synced=False")
        synced = _condition(failing, "Synced")
        assert synced["reason"] == "ReconcileError"
        assert "frozen here by a cluster policy" in synced["message"] and "retrying in" in synced["message"]
        assert failing["status"]["phase"] != "Ready"
        assert health("ModelVersion", failing) == {"status": "Degraded", "message": synced["message"]}
        record(failing, "synced-false")
        # Retried with backoff (2 s, 4 s, ...): the failure counter goes on rising while the policy holds, one
        # attempt at a time, not in a storm of attempts triggered by the failure's own status write.
        failures = wait_for(lambda: (n := _metric(operator, "mlcycle_handler_failures_total") - failures_before)
                            >= 3 and n, what="a third failed attempt")
        assert failures <= 4
        reasons = json.loads(cluster.kubectl_run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        assert any(e["reason"] == "ReconcileError" and e["type"] == "Warning" for e in reasons)
    finally:
        cluster.kubectl_run("delete", "-f", "-", input=policy, check=False)
    wait_for(lambda: not _denied(cluster, namespace), what="the policy gone")
    ready = wait_for(lambda: (mv := _get(cluster, "iris-v1", namespace)) and
                     mv.get("status", {}).get("phase") == "Ready" and mv, what="Ready after the fix", timeout=300)
    assert _condition(ready, "Synced")["status"] == "True"
    assert operator.healthy()
    cluster.kubectl_run("delete", "modelversion.mlcycle.io", "iris-v1", "-n", namespace, "--wait=true",
                        "--timeout=60s")
