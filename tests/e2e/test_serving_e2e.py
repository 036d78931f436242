"""InferenceServices serve for real: a TrainingJob's ModelVersion is fetched by `mlcycle fetch-model` (digest
re-checked), loaded by the real tritonserver (python backend running the TorchScript with torch) in pods on
the local runtime, and answers through the Service like the artifact does in torch."""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml

from kubeview import kubectl_json
from mlcycle.api.inferenceservice import AGENT_PORT
from mlcycle.clients import s3
from mlcycle.localdev.cluster import service_backend
from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from mlcycle.localdev.traffic import Client, infer_once
from modelversion_artifacts import Classifier, torchscript_bytes
from waiting import wait_for

SIGNATURE = {"inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 3]}]}
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.9, 3.1, 5.4, 2.1], [5.7, 2.8, 4.1, 1.3],
                 [4.9, 3.0, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], dtype=np.float32)
# A client inside the cluster: a pod on the local runtime that posts KServe v2 requests to the Service by its
# DNS name, one connection per request (as kube-proxy balances connections), until told to stop.
CLIENT = r"""
import json, os, time, urllib.request
url, out, stop = os.environ["URL"], os.environ["OUT"], os.environ["STOP"]
body = json.dumps({"inputs": [{"name": "INPUT__0", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
ok, failed, errors, outputs = 0, 0, [], []
while not os.path.exists(stop):
    try:
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            outputs.append([round(v, 5) for v in json.loads(r.read())["outputs"][0]["data"]])
        ok += 1
    except Exception as e:
        failed += 1
        errors.append(repr(e)[:300])
    if (ok + failed) % 10 == 0:
        with open(out + ".progress", "w") as f:
            json.dump({"ok": ok, "failed": failed}, f)
with open(out + ".tmp", "w") as f:
    json.dump({"ok": ok, "failed": failed, "errors": errors[:20], "outputs": outputs}, f)
os.rename(out + ".tmp", out)
"""


def apply(cluster, *objs):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(list(objs)))


def isvc_status(cluster, name, ns) -> dict:
    return (kubectl_json(cluster, "inferenceservice", name, "-n", ns) or {}).get("status") or {}


def inference_service(name: str, ns: str, model: dict, on_runtime: bool = True, **spec) -> dict:
    body = {"model": model, "runtime": {"backend": "python"}, "storage": {"secretRef": {"name": "s3"}},
            "resources": {"cpu": "100m", "memory": "1Gi"}} | spec
    if on_runtime:
        body |= {"nodeSelector": RUNTIME_LABEL, "tolerations": [RUNTIME_TOLERATION]}
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": ns}, "spec": body}


def register(cluster, minio, ns, version: int, module: torch.nn.Module, **spec) -> tuple[str, str]:
    """A hand-registered version of model iris; (ModelVersion name, object key)."""
    data = torchscript_bytes(module)
    key = f"iris/hand/{uuid.uuid4().hex[:8]}/model.pt"
    minio.client().put_object("models", key, io.BytesIO(data), len(data))
    name = f"iris-v{version}"
    apply(cluster, {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"modelName": "iris", "version": version, "signature": SIGNATURE,
                             "artifact": {"uri": f"s3://models/{key}", "format": "torchscript",
                                          "digest": f"sha256:{hashlib.sha256(data).hexdigest()}"},
                             "storage": {"secretRef": {"name": "s3"}}} | spec})
    return name, key


def wait_mv(cluster, name, ns, phase="Ready", timeout=180):
    return wait_for(lambda: (mv := kubectl_json(cluster, "modelversion", name, "-n", ns))
                    and (mv.get("status") or {}).get("phase") == phase and mv,
                    f"ModelVersion {name} {phase}", timeout=timeout)


def endpoint(cluster, service, ns) -> str:
    return wait_for(lambda: service_backend(cluster, service, ns), f"a ready pod behind Service {service}",
                    timeout=60)


@pytest.fixture(scope="module")
def ns(cluster, crds, operator):
    name = f"serve-{uuid.uuid4().hex[:6]}"
    cluster.kubectl_run("create", "namespace", name)
    yield name
    # The ModelVersion finalizer needs the operator: remove what holds it before the namespace goes.
    cluster.kubectl_run("delete", "inferenceservices.mlcycle.io,modelversions.mlcycle.io", "--all", "-n", name,
                        "--wait=true", "--timeout=90s", check=False)
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def trained(cluster, operator, local_runtime, minio, ns):
    """Version 1 of model iris, trained by a TrainingJob and holding alias production; (name, artifact bytes)."""
    data = iris_like_csv(rows_per_class=60)
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    tj = training_job("iris-train", ns, "s3", epochs=10, node_selector=RUNTIME_LABEL, model="iris")
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    tj["spec"]["registerModel"]["aliases"] = ["production"]
    apply(cluster, storage_secret("s3", ns, minio.endpoint, minio.access_key, minio.secret_key), tj)
    done = wait_for(lambda: (t := kubectl_json(cluster, "trainingjob", "iris-train", "-n", ns))
                    and (t.get("status") or {}).get("modelVersionRef") and t, "the TrainingJob to register",
                    timeout=600)
    mv = wait_mv(cluster, done["status"]["modelVersionRef"]["name"], ns)
    bucket, key = s3.parse_s3_uri(mv["spec"]["artifact"]["uri"])
    return mv["metadata"]["name"], minio.client().get_object(bucket, key).read()


def torch_outputs(artifact: bytes, rows: np.ndarray) -> np.ndarray:
    module = torch.jit.load(io.BytesIO(artifact))
    with torch.no_grad():
        return module(torch.from_numpy(rows)).numpy()


def test_trained_version_is_served_and_answers_like_torch(cluster, ns, trained):
    mv_name, artifact = trained
    apply(cluster, inference_service("iris", ns, {"name": "iris", "alias": "production"}))
    waited = cluster.kubectl_run("wait", "--for=condition=Ready", "inferenceservice/iris", "-n", ns,
                                 "--timeout=300s", check=False, timeout=320)
    assert waited.returncode == 0, (waited.stderr, isvc_status(cluster, "iris", ns))
    status = isvc_status(cluster, "iris", ns)
    assert status["servedModelVersion"] == mv_name and status["phase"] == "Ready"
    assert status["url"] == f"http://iris.{ns}.svc:8000" and status["readyReplicas"] == 1
    pods = kubectl_json(cluster, "pods", "-n", ns, "-l", status["selector"])["items"]
    assert len(pods) == 1 and pods[0]["status"]["podIP"] == endpoint(cluster, "iris", ns)

    expected = torch_outputs(artifact, ROWS)
    ip = endpoint(cluster, "iris", ns)
    # The Service's http port goes to the serving agent (8080), its grpc port to Triton (8001).
    http = httpclient.InferenceServerClient(f"{ip}:{AGENT_PORT}")
    request = httpclient.InferInput("INPUT__0", list(ROWS.shape), "FP32")
    request.set_data_from_numpy(ROWS)
    got = http.infer("iris", [request]).as_numpy("OUTPUT__0")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    grpc = grpcclient.InferenceServerClient(f"{ip}:8001")
    request = grpcclient.InferInput("INPUT__0", list(ROWS.shape), "FP32")
    request.set_data_from_numpy(ROWS)
    np.testing.assert_allclose(grpc.infer("iris", [request]).as_numpy("OUTPUT__0"), expected, rtol=1e-5, atol=1e-6)
    assert grpc.is_model_ready("iris")

    assert infer_once(ip, ROWS[0])[0] == mv_name  # the agent says which version answered

    # The registry knows who serves the version.
    mv = kubectl_json(cluster, "modelversion", mv_name, "-n", ns)
    assert "iris" in mv["status"]["servedBy"]


def test_alias_move_switches_serving_without_a_failed_request(cluster, ns, trained, minio, tmp_path):
    status = wait_for(lambda: (s := isvc_status(cluster, "iris", ns)).get("phase") == "Ready" and s,
                      "iris serving")
    old_deployment = f"iris-{status['servedModelVersion']}"
    out = tmp_path / "client"
    out.mkdir()
    os.chmod(out, 0o777)
    result, progress, stop = out / "result.json", out / "result.json.progress", out / "stop"
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
                    "spec": {"restartPolicy": "Never", "nodeSelector": RUNTIME_LABEL,
                             "tolerations": [RUNTIME_TOLERATION],
                             "containers": [{"name": "client", "image": "ghcr.io/mlcycle/mlcycle:0.1.0",
                                             "command": ["python", "-c", CLIENT],
                                             "env": [{"name": "URL", "value": f"http://iris.{ns}.svc:8000/v2/"
                                                                               "models/iris/infer"},
                                                     {"name": "OUT", "value": "/out/result.json"},
                                                     {"name": "STOP", "value": "/out/stop"}],
                                             "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
                             "volumes": [{"name": "out", "hostPath": {"path": str(out)}}]}})

    def answered() -> int:
        try:
            return json.loads(progress.read_text())["ok"]
        except (OSError, ValueError):
            return 0

    wait_for(lambda: answered() >= 20, "the client to get answers from version 1", timeout=120)
    v2, _ = register(cluster, minio, ns, 2, Classifier(), aliases=["production"])
    wait_mv(cluster, v2, ns)
    wait_for(lambda: isvc_status(cluster, "iris", ns).get("servedModelVersion") == v2, "traffic on v2", timeout=300)
    wait_for(lambda: kubectl_json(cluster, "deployment", old_deployment, "-n", ns) is None,
             "the old version's Deployment to drain and go", timeout=120)
    after = answered()
    wait_for(lambda: answered() >= after + 20, "answers after the old version is gone", timeout=60)
    stop.touch()
    outcome = wait_for(lambda: result.exists() and json.loads(result.read_text()), "the client's result", timeout=60)
    print(f"\nclient during the switch: {outcome['ok']} requests answered, {outcome['failed']} failed")
    assert outcome["failed"] == 0, outcome["errors"]
    first, last = outcome["outputs"][0], outcome["outputs"][-1]
    assert first != last, "answers should come from v1 first and from v2 at the end"
    expected_v2 = torch_outputs(torchscript_bytes_of(cluster, minio, ns, v2), ROWS[:1])[0]
    np.testing.assert_allclose(last, expected_v2, rtol=1e-4, atol=1e-5)
    assert ("Switched" in [e["reason"] for e in events_of(cluster, ns, "iris")])


def torchscript_bytes_of(cluster, minio, ns, mv_name) -> bytes:
    mv = kubectl_json(cluster, "modelversion", mv_name, "-n", ns)
    bucket, key = s3.parse_s3_uri(mv["spec"]["artifact"]["uri"])
    return minio.client().get_object(bucket, key).read()


def events_of(cluster, ns, name) -> list[dict]:
    items = kubectl_json(cluster, "events", "-n", ns)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] ==
            "InferenceService"]


def test_artifact_replaced_after_verification_is_refused_and_reported(cluster, ns, minio, trained):
    v3, key = register(cluster, minio, ns, 3, Classifier())
    wait_mv(cluster, v3, ns)
    apply(cluster, inference_service("pinned", ns, {"name": "iris", "version": 3}))
    wait_for(lambda: isvc_status(cluster, "pinned", ns).get("readyReplicas") == 1, "pinned serving v3", timeout=300)
    tampered = torchscript_bytes(torch.nn.Sequential(torch.nn.Linear(4, 3)))
    minio.client().put_object("models", key, io.BytesIO(tampered), len(tampered))
    cluster.kubectl_run("scale", "inferenceservice/pinned", "-n", ns, "--replicas=2")
    wait_for(lambda: any(e["reason"] == "DigestMismatch" for e in events_of(cluster, ns, "pinned")),
             "a DigestMismatch event", timeout=180)
    status = isvc_status(cluster, "pinned", ns)
    assert "DigestMismatch" in status["message"] and "was verified with" in status["message"], status["message"]
    assert status["readyReplicas"] == 1  # the replica that fetched the verified artifact keeps serving
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"


def test_rejected_version_is_not_served(cluster, ns, minio, trained):
    v4, _ = register(cluster, minio, ns, 4, Classifier(), metrics={"accuracy": 0.1},
                     validation={"thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.9}]})
    wait_mv(cluster, v4, ns, phase="Rejected")
    apply(cluster, inference_service("rejected", ns, {"name": "iris", "version": 4}))
    status = wait_for(lambda: (s := isvc_status(cluster, "rejected", ns)).get("phase") == "Pending" and s,
                      "the rejected version's service to wait")
    assert f"ModelVersion {v4} is Rejected" in status["message"] and "not served" in status["message"]
    deployments = kubectl_json(cluster, "deployments", "-n", ns, "-l", "mlcycle.io/inferenceservice=rejected")
    assert deployments["items"] == []


def test_scale_subresource_drives_the_deployment_and_the_hpa_targets_it(cluster, ns, trained):
    mv_name, _ = trained
    # On kwok's nodes: the pods are simulated (ready at once), which is all scaling needs.
    apply(cluster, inference_service("scaled", ns, {"name": "iris", "version": 1}, on_runtime=False,
                                     autoscaling={"minReplicas": 1, "maxReplicas": 5, "metric": "cpu-utilization",
                                                  "target": 60}))
    wait_for(lambda: isvc_status(cluster, "scaled", ns).get("phase") == "Ready", "scaled Ready", timeout=120)
    hpa = kubectl_json(cluster, "hpa", "scaled", "-n", ns)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
                                             "name": "scaled"}
    wait_for(lambda: any(c["type"] == "AbleToScale" and c["status"] == "True" for c in
                         (kubectl_json(cluster, "hpa", "scaled", "-n", ns).get("status") or {}).get("conditions")
                         or []), "the HPA to read the InferenceService's scale subresource", timeout=120)

    cluster.kubectl_run("scale", "inferenceservice/scaled", "-n", ns, "--replicas=3")
    deployment = f"scaled-{mv_name}"
    wait_for(lambda: (kubectl_json(cluster, "deployment", deployment, "-n", ns).get("status") or {})
             .get("readyReplicas") == 3, "3 ready replicas", timeout=120)
    status = wait_for(lambda: (s := isvc_status(cluster, "scaled", ns)).get("readyReplicas") == 3 and s,
                      "status.readyReplicas 3")
    selected = {p["metadata"]["name"] for p in kubectl_json(cluster, "pods", "-n", ns, "-l",
                                                             status["selector"])["items"]}
    owned = {p["metadata"]["name"] for p in kubectl_json(cluster, "pods", "-n", ns)["items"]
             if p["metadata"]["name"].startswith(f"{deployment}-")}
    assert selected == owned and len(selected) == 3
    scale = json.loads(cluster.kubectl_run("get", "--raw", f"/apis/mlcycle.io/v1alpha1/namespaces/{ns}/"
                                           "inferenceservices/scaled/scale").stdout)
    assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == status["selector"]


class Flaky(torch.nn.Module):
    """Linear(4, 3) + softmax that fails for rows whose first feature is above 5.5: half of ROWS."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x[:, 0] > 5.5).any()):
            raise RuntimeError("feature 0 out of range")
        return self.linear(x).softmax(-1)


def test_canary_gets_its_share_by_the_response_header(cluster, ns, minio, trained):
    stable, _ = trained
    v5, _ = register(cluster, minio, ns, 5, Classifier())
    wait_mv(cluster, v5, ns)
    apply(cluster, inference_service("canaried", ns, {"name": "iris", "version": 1},
                                     canary={"model": {"name": "iris", "version": 5}, "trafficPercent": 20}))
    wait_for(lambda: {"modelVersion": v5, "percent": 20} in (isvc_status(cluster, "canaried", ns).get("traffic")
                                                               or []), "20% to the canary", timeout=300)
    status = isvc_status(cluster, "canaried", ns)
    assert next(c for c in status["conditions"] if c["type"] == "CanaryReady")["status"] == "True"
    address = endpoint(cluster, "canaried", ns)
    answered = [infer_once(address, ROWS[i % len(ROWS)]) for i in range(1000)]
    by_version = {v: sum(1 for a in answered if a[0] == v) for v in (stable, v5)}
    print(f"\ncanary at 20%: {by_version} of 1000 requests")
    assert all(code == 200 for _, code in answered)
    assert 150 <= by_version[v5] <= 250 and by_version[stable] + by_version[v5] == 1000


ROLLOUT = {"steps": [{"weight": 25, "pause": "5s"}, {"weight": 50, "pause": "5s"}],
           "analysis": {"interval": "5s", "successRateMin": 0.95, "failureLimit": 1, "minRequests": 5},
           "progressDeadline": "5m"}


def rollout_of(cluster, ns) -> dict:
    return isvc_status(cluster, "progressive", ns).get("rollout") or {}


def test_progressive_rollout_promotes_a_good_version_and_rolls_back_a_broken_one(cluster, ns, minio, trained):
    v6, _ = register(cluster, minio, ns, 6, Classifier(), aliases=["stage"])
    wait_mv(cluster, v6, ns)
    apply(cluster, inference_service("progressive", ns, {"name": "iris", "alias": "stage"}, rollout=ROLLOUT))
    wait_for(lambda: isvc_status(cluster, "progressive", ns).get("readyReplicas") == 1, "v6 serving", timeout=300)

    client = Client(cluster, "progressive", ns, ROWS)
    v7, _ = register(cluster, minio, ns, 7, Classifier(), aliases=["stage"])
    wait_for(lambda: rollout_of(cluster, ns).get("phase") == "Progressing", "the rollout of v7 to start", timeout=120)
    wait_for(lambda: isvc_status(cluster, "progressive", ns).get("servedModelVersion") == v7 and
             rollout_of(cluster, ns).get("phase") == "Promoted", "v7 promoted", timeout=300)
    sent, failed = client.close()
    reasons = [e["reason"] for e in events_of(cluster, ns, "progressive")]
    print(f"\npromotion of {v7}: {sent} requests, {failed} failed; events:")
    for e in sorted(events_of(cluster, ns, "progressive"), key=lambda e: e["metadata"]["creationTimestamp"]):
        print(f"  {e['metadata']['creationTimestamp']} {e['reason']}: {e['message']}")
    assert failed == 0 and sent > 0, client.failures()[:10]
    assert reasons.count("RolloutStep") == 2 and reasons.count("Switched") == 1 and "RolloutPromoted" in reasons

    client = Client(cluster, "progressive", ns, ROWS)
    v8, _ = register(cluster, minio, ns, 8, Flaky(), aliases=["stage"])
    aborted = wait_for(lambda: (r := rollout_of(cluster, ns)).get("phase") == "Aborted" and r, "the rollback",
                       timeout=300)
    sent, failed = client.close()
    status = isvc_status(cluster, "progressive", ns)
    condition = next(c for c in status["conditions"] if c["type"] == "RolloutAborted")
    print(f"\nrollback of {v8}: {sent} requests, {failed} failed ({failed / max(sent, 1):.1%}); {condition['message']}")
    assert aborted["failedVersion"] == v8 and status["servedModelVersion"] == v7
    assert condition["status"] == "True" and "successRate" in condition["message"]
    assert failed / sent <= 0.25  # no more than the first step's share
    assert "RolloutAborted" in [e["reason"] for e in events_of(cluster, ns, "progressive")]
    wait_for(lambda: kubectl_json(cluster, "deployment", f"progressive-{v8}", "-n", ns) is None,
             "the broken version's Deployment to go")
