"""The ModelVersion controller end to end: the operator as a process, the real control plane and a real
MinIO holding the artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest
import yaml

from mlcycle.api.labels import VERIFICATION_ANNOTATION
from mlcycle.clients import s3
from mlcycle.localdev.sample import storage_secret
from mlcycle.modelversion import deletion
from mlcycle.modelversion.verification import fingerprint
from modelversion_artifacts import (
    SERVICE_ACCOUNT_TOKEN,
    Leaker,
    TokenThief,
    checkpoint_bytes,
    model_version,
    onnx_bytes,
    torchscript_bytes,
)
from waiting import Recorder, wait_for

MV = "modelversion.mlcycle.io"



def apply(cluster, obj):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(obj))


def get(cluster, kind, name, namespace):
    r = cluster.kubectl_run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def status(cluster, name, namespace) -> dict:
    return (get(cluster, MV, name, namespace) or {}).get("status") or {}


def condition(st: dict, type_: str) -> dict:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


def wait_phase(cluster, name, namespace, phase, timeout=90) -> dict:
    return wait_for(lambda: (st := status(cluster, name, namespace)).get("phase") == phase and st,
                    what=f"{name} phase {phase} (status {status(cluster, name, namespace)})", timeout=timeout)


def events(cluster, namespace, name) -> list[tuple[str, str]]:
    out = json.loads(cluster.kubectl_run("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    return [(e["reason"], e["message"]) for e in out if e["involvedObject"]["name"] == name]


@pytest.fixture(autouse=True)
def delete_versions_while_the_operator_runs(cluster, operator, local_runtime, namespace):
    """The finalizer needs the operator: remove the test's versions before the namespace goes. (Verification
    Jobs run on the local runtime.)"""
    yield
    cluster.kubectl_run("delete", "inferenceservices.mlcycle.io,modelversions.mlcycle.io", "--all", "-n", namespace,
                        "--wait=true", "--timeout=60s", check=False)


def upload(minio, bucket, key, data) -> str:
    digest, _ = s3.upload_bytes(minio.client(), bucket, key, data)
    return f"sha256:{digest}"


def setup_secret(cluster, minio, namespace, name="s3", secret_key=None, annotations=None):
    secret = storage_secret(name, namespace, minio.endpoint, minio.access_key, secret_key or minio.secret_key)
    secret["metadata"]["annotations"] = annotations or {}
    apply(cluster, secret)


def test_a_good_artifact_becomes_ready_with_its_digest_size_labels_and_event(cluster, operator, minio, bucket,
                                                                            namespace):
    setup_secret(cluster, minio, namespace)
    data = torchscript_bytes()
    digest = upload(minio, bucket, "iris/1/model.pt", data)
    apply(cluster, model_version("iris-v1", namespace, "iris", 1, f"s3://{bucket}/iris/1/model.pt",
                                 artifact={"uri": f"s3://{bucket}/iris/1/model.pt", "format": "torchscript",
                                           "digest": digest},
                                 metrics={"accuracy": 0.95}, aliases=["production"],
                                 source={"trainingJob": "train-1", "dataset": {"uri": "s3://data/iris.csv"}}))
    st = wait_phase(cluster, "iris-v1", namespace, "Ready")
    assert st["verifiedDigest"] == digest and st["size"] == len(data)
    assert st["aliases"] == ["production"] and st["keyMetric"] == "accuracy=0.95"
    assert condition(st, "ArtifactVerified")["status"] == "True"
    assert "TorchScript loads" in condition(st, "ArtifactVerified")["message"]
    assert condition(st, "Ready")["status"] == "True" and condition(st, "Stalled")["status"] == "False"
    mv = get(cluster, MV, "iris-v1", namespace)
    assert mv["metadata"]["labels"] == {"mlcycle.io/model": "iris", "mlcycle.io/trainingjob": "train-1"}
    assert "mlcycle.io/finalizer" in mv["metadata"]["finalizers"]
    assert st["observedGeneration"] == mv["metadata"]["generation"]
    wait_for(lambda: {"Ready", "AliasAssigned"} <= {r for r, _ in events(cluster, namespace, "iris-v1")},
             what="Ready and AliasAssigned events")

    table = cluster.kubectl_run("get", "modelversions", "-n", namespace, "-l", "mlcycle.io/model=iris").stdout
    assert table.split("\n")[0].split() == ["NAME", "MODEL", "VERSION", "PHASE", "ALIASES", "METRIC", "AGE"]
    assert table.split("\n")[1].split()[:6] == ["iris-v1", "iris", "1", "Ready", '["production"]', "accuracy=0.95"]
    assert operator.healthy()


def test_a_model_that_reads_the_service_account_token_finds_none_and_fails_clearly(cluster, operator, minio, bucket,
                                                                                  namespace, kube_api):
    setup_secret(cluster, minio, namespace)
    upload(minio, bucket, "thief.pt", torchscript_bytes(TokenThief()))
    with Recorder(kube_api, "", "v1", namespace, "pods") as pods:
        apply(cluster, model_version("thief-v1", namespace, "thief", 1, f"s3://{bucket}/thief.pt"))
        st = wait_phase(cluster, "thief-v1", namespace, "Failed", timeout=180)
    # The model ran (the probe calls forward) and the token file was not there to read.
    verified = condition(st, "ArtifactVerified")
    assert verified["reason"] == "SignatureMismatch" and "STOLEN" not in st["message"]
    assert SERVICE_ACCOUNT_TOKEN in verified["message"] and "No such file" in verified["message"]
    # ... in a pod without a token volume (the apiserver adds one to every pod that does not refuse it), without
    # service links, whose container reads the storage credentials by reference only.
    verify_pods = [p for p in pods.objects if p["metadata"].get("labels", {}).get("app.kubernetes.io/component")
                   == "verify"]
    assert verify_pods
    for pod in verify_pods:
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
        assert not [v for v in spec.get("volumes") or [] if "projected" in v]
        assert not [m for m in spec["containers"][0].get("volumeMounts") or []
                    if m["mountPath"].startswith("/var/run/secrets")]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert "value" not in env["AWS_SECRET_ACCESS_KEY"] and "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"][
            "valueFrom"]
    assert minio.secret_key not in json.dumps(st)
    # The verification Job is gone once its result is in status.
    wait_for(lambda: not json.loads(cluster.kubectl_run("get", "jobs", "-n", namespace, "-o", "json").stdout)[
        "items"], what="the verification Job removed")


def test_secrets_planted_in_a_models_error_reach_no_status_event_or_log(cluster, operator, minio, bucket,
                                                                         namespace):
    setup_secret(cluster, minio, namespace)
    planted = [minio.secret_key, "wJalrXUtnFEMIK7MDENG", "hunter2hunter2", "AKIAIOSFODNN7EXAMPLE"]
    message = (f"the key is {planted[0]}; AWS_SECRET_ACCESS_KEY={planted[1]}; see https://admin:{planted[2]}@s3.local/x;"
               f" id {planted[3]}")
    upload(minio, bucket, "leaker.pt", torchscript_bytes(Leaker(message)))
    apply(cluster, model_version("leak-v1", namespace, "leak", 1, f"s3://{bucket}/leaker.pt"))
    st = wait_phase(cluster, "leak-v1", namespace, "Failed", timeout=180)
    assert condition(st, "ArtifactVerified")["reason"] == "SignatureMismatch" and "the key is ***" in st["message"]
    wait_for(lambda: events(cluster, namespace, "leak-v1"), what="an event")
    everything = json.dumps([st, events(cluster, namespace, "leak-v1")]) + operator.log_path.read_text()
    for secret in planted:
        assert secret not in everything


def test_an_onnx_artifact_is_parsed_and_becomes_ready(cluster, operator, minio, bucket, namespace):
    setup_secret(cluster, minio, namespace)
    upload(minio, bucket, "m/model.onnx", onnx_bytes())
    apply(cluster, model_version("onnx-v1", namespace, "onnx", 1, f"s3://{bucket}/m/model.onnx",
                                 artifact={"uri": f"s3://{bucket}/m/model.onnx", "format": "onnx"}))
    st = wait_phase(cluster, "onnx-v1", namespace, "Ready")
    assert "ONNX parses" in condition(st, "ArtifactVerified")["message"]


def test_artifact_failures_end_in_clear_conditions_and_the_operator_stays_healthy(cluster, operator, minio, bucket,
                                                                                namespace):
    setup_secret(cluster, minio, namespace)
    setup_secret(cluster, minio, namespace, "wrong", secret_key="not-the-secret-key")
    good = upload(minio, bucket, "good.pt", torchscript_bytes())
    upload(minio, bucket, "checkpoint.pt", checkpoint_bytes())
    wrong_digest = "sha256:" + "0" * 64
    apply(cluster, model_version("corrupt-v1", namespace, "corrupt", 1, "", artifact={
        "uri": f"s3://{bucket}/good.pt", "format": "torchscript", "digest": wrong_digest}))
    apply(cluster, model_version("ckpt-v1", namespace, "ckpt", 1, f"s3://{bucket}/checkpoint.pt"))
    apply(cluster, model_version("creds-v1", namespace, "creds", 1, f"s3://{bucket}/good.pt", secret="wrong"))
    apply(cluster, model_version("nosecret-v1", namespace, "nosecret", 1, f"s3://{bucket}/good.pt", secret="absent"))

    corrupt = wait_phase(cluster, "corrupt-v1", namespace, "Failed")
    verified = condition(corrupt, "ArtifactVerified")
    assert verified["reason"] == "DigestMismatch"
    assert f"spec.artifact.digest is {wrong_digest}, the object's is {good}" in verified["message"]
    assert condition(corrupt, "Stalled")["status"] == "True"  # not retried: the spec or the object must change

    ckpt = wait_phase(cluster, "ckpt-v1", namespace, "Failed")
    assert condition(ckpt, "ArtifactVerified")["reason"] == "InvalidFormat"
    assert "not TorchScript (a torch.save() checkpoint?" in ckpt["message"]

    creds = wait_phase(cluster, "creds-v1", namespace, "Failed")
    assert condition(creds, "ArtifactVerified")["reason"] == "StorageAuthFailed"
    assert "check the S3 access key and secret key" in creds["message"] and f"{namespace}/wrong" in creds["message"]
    assert condition(creds, "Reconciling")["status"] == "True"  # retried with backoff: the Secret may be fixed

    nosecret = wait_phase(cluster, "nosecret-v1", namespace, "Failed")
    assert condition(nosecret, "ArtifactVerified")["reason"] == "SecretProblem"
    assert f"Secret {namespace}/absent (spec.storage.secretRef) does not exist" in nosecret["message"]

    wait_for(lambda: ("Failed", corrupt["message"]) in events(cluster, namespace, "corrupt-v1"), what="Failed event")
    everything = json.dumps([corrupt, ckpt, creds, nosecret, events(cluster, namespace, "creds-v1")])
    assert "not-the-secret-key" not in everything and minio.secret_key not in everything
    assert "not-the-secret-key" not in operator.log_path.read_text()
    assert operator.healthy()

    # Fixing the Secret heals the version on a later retry.
    setup_secret(cluster, minio, namespace, "wrong")
    wait_phase(cluster, "creds-v1", namespace, "Ready", timeout=120)


def test_a_missing_object_fails_then_becomes_ready_once_uploaded(cluster, operator, minio, bucket, namespace):
    setup_secret(cluster, minio, namespace)
    apply(cluster, model_version("late-v1", namespace, "late", 1, f"s3://{bucket}/late/model.pt"))
    st = wait_phase(cluster, "late-v1", namespace, "Failed")
    assert condition(st, "ArtifactVerified")["reason"] == "ArtifactNotFound"
    assert "retry 1 at" in st["message"]
    assert condition(st, "Reconciling")["status"] == "True" and condition(st, "Stalled")["status"] == "False"
    record = json.loads(get(cluster, MV, "late-v1", namespace)["metadata"]["annotations"]["mlcycle.io/verification"])
    assert record["attempts"] >= 1 and "retryAt" in record

    digest = upload(minio, bucket, "late/model.pt", torchscript_bytes())
    st = wait_phase(cluster, "late-v1", namespace, "Ready", timeout=120)
    assert st["verifiedDigest"] == digest
    assert operator.healthy()


def test_the_highest_ready_version_holds_a_contested_alias_and_the_other_reports_it(cluster, operator, minio,
                                                                                   bucket, namespace):
    setup_secret(cluster, minio, namespace)
    uri = f"s3://{bucket}/shared.pt"
    upload(minio, bucket, "shared.pt", torchscript_bytes())
    apply(cluster, model_version("m-v1", namespace, "m", 1, uri, aliases=["production", "stable"]))
    wait_for(lambda: status(cluster, "m-v1", namespace).get("aliases") == ["production", "stable"], what="v1 aliases")
    apply(cluster, model_version("m-v2", namespace, "m", 2, uri, aliases=["production"]))
    wait_for(lambda: status(cluster, "m-v2", namespace).get("aliases") == ["production"], what="v2 takes production")
    v1 = wait_for(lambda: (st := status(cluster, "m-v1", namespace)).get("aliases") == ["stable"] and st,
                  what="v1 keeps only stable")
    conflict = condition(v1, "AliasConflict")
    assert conflict["status"] == "True" and "production is held by m-v2 (version 2)" in conflict["message"]
    assert v1["phase"] == "Ready"
    assert get(cluster, MV, "m-v1", namespace)["spec"]["aliases"] == ["production", "stable"]  # spec untouched
    wait_for(lambda: ("AliasRemoved", "no longer holds alias production") in events(cluster, namespace, "m-v1"),
             what="AliasRemoved event")

    # v2 goes away: production falls back to v1.
    cluster.kubectl_run("delete", MV, "m-v2", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: status(cluster, "m-v1", namespace).get("aliases") == ["production", "stable"],
             what="production back on v1")
    assert condition(status(cluster, "m-v1", namespace), "AliasConflict")["status"] == "False"


def test_threshold_and_champion_gates_through_the_operator(cluster, operator, minio, bucket, namespace):
    setup_secret(cluster, minio, namespace)
    uri = f"s3://{bucket}/gate.pt"
    upload(minio, bucket, "gate.pt", torchscript_bytes())
    threshold = {"thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.9},
                                {"metric": "rmse", "op": "<=", "value": 3}]}
    apply(cluster, model_version("t-v1", namespace, "t", 1, uri, metrics={"accuracy": 0.9, "rmse": 3},
                                 validation=threshold))
    apply(cluster, model_version("t-v2", namespace, "t", 2, uri, metrics={"accuracy": 0.95, "rmse": 3.01},
                                 validation=threshold))
    assert [r["passed"] for r in wait_phase(cluster, "t-v1", namespace, "Ready")["validation"]] == [True, True]
    rejected = wait_phase(cluster, "t-v2", namespace, "Rejected")
    assert "rmse <= 3 failed (rmse is 3.01)" in rejected["message"]
    assert condition(rejected, "Validated")["status"] == "False"
    wait_for(lambda: "Rejected" in {r for r, _ in events(cluster, namespace, "t-v2")}, what="Rejected event")

    champion = {"champion": {"alias": "production", "metric": "accuracy", "minImprovement": 0.02}}
    apply(cluster, model_version("c-v1", namespace, "c", 1, uri, metrics={"accuracy": 0.90}, aliases=["production"],
                                 validation=champion))
    wait_for(lambda: status(cluster, "c-v1", namespace).get("aliases") == ["production"], what="c-v1 champion")
    apply(cluster, model_version("c-v2", namespace, "c", 2, uri, metrics={"accuracy": 0.915}, aliases=["production"],
                                 validation=champion))
    weak = wait_phase(cluster, "c-v2", namespace, "Rejected")
    assert "accuracy 0.915 vs 0.9 of c-v1 (production)" in weak["message"]
    apply(cluster, model_version("c-v3", namespace, "c", 3, uri, metrics={"accuracy": 0.92}, aliases=["production"],
                                 validation=champion))
    wait_for(lambda: status(cluster, "c-v3", namespace).get("aliases") == ["production"], what="c-v3 takes production")
    assert wait_for(lambda: status(cluster, "c-v1", namespace).get("aliases") == [], what="c-v1 loses it") is True


def test_deletion_waits_while_an_inference_service_serves_the_version(cluster, operator, minio, bucket, namespace):
    setup_secret(cluster, minio, namespace)
    upload(minio, bucket, "served.pt", torchscript_bytes())
    upload(minio, bucket, "doomed.pt", torchscript_bytes())
    apply(cluster, model_version("s-v1", namespace, "s", 1, f"s3://{bucket}/served.pt", aliases=["production"]))
    # The Secret's owner lets deletionPolicy: Delete remove what these credentials reach.
    setup_secret(cluster, minio, namespace, "s3-deletable", annotations={deletion.ALLOW_ANNOTATION: "true"})
    apply(cluster, model_version("s-v2", namespace, "s", 2, f"s3://{bucket}/doomed.pt", secret="s3-deletable",
                                 deletionPolicy="Delete"))
    wait_phase(cluster, "s-v1", namespace, "Ready")
    wait_phase(cluster, "s-v2", namespace, "Ready")
    isvc = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "s-svc", "namespace": namespace},
            "spec": {"model": {"name": "s", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}}}}
    apply(cluster, isvc)
    wait_for(lambda: status(cluster, "s-v1", namespace).get("servedBy") == ["s-svc"], what="servedBy")

    cluster.kubectl_run("delete", MV, "s-v1", "-n", namespace, "--wait=false")
    blocked = wait_for(lambda: (st := status(cluster, "s-v1", namespace)).get("message", "").startswith(
        "deletion waits") and st, what="the deletion to wait")
    assert "served by InferenceService(s) s-svc" in blocked["message"] and blocked["servedBy"] == ["s-svc"]
    # kopf records each attempt of the finalizer in its progress annotation: after a retry it still holds.
    wait_for(lambda: any(json.loads(v).get("retries", 0) >= 1 for k, v in (get(cluster, MV, "s-v1", namespace)[
        "metadata"].get("annotations") or {}).items() if "delete" in k and v.startswith("{")),
             timeout=60, what="the finalizer to run again and still hold the version")
    assert get(cluster, MV, "s-v1", namespace)["metadata"]["deletionTimestamp"]

    cluster.kubectl_run("delete", "inferenceservice.mlcycle.io", "s-svc", "-n", namespace)
    wait_for(lambda: get(cluster, MV, "s-v1", namespace) is None, timeout=60, what="s-v1 to be deleted")
    assert minio.client().stat_object(bucket, "served.pt")  # Retain (the default) keeps the artifact

    cluster.kubectl_run("delete", MV, "s-v2", "-n", namespace, "--wait=true", "--timeout=60s")
    assert "doomed.pt" not in s3.list_keys(minio.client(), bucket, "")  # deletionPolicy: Delete


def test_delete_policy_keeps_an_artifact_the_operator_did_not_write_and_says_why(cluster, operator, minio, bucket,
                                                                                namespace, kube_api):
    setup_secret(cluster, minio, namespace)
    upload(minio, bucket, "someone-elses.pt", torchscript_bytes())
    apply(cluster, model_version("d-v1", namespace, "d", 1, f"s3://{bucket}/someone-elses.pt", deletionPolicy="Delete"))
    wait_phase(cluster, "d-v1", namespace, "Ready")
    with Recorder(kube_api, "mlcycle.io", "v1alpha1", namespace, "modelversions") as written:
        cluster.kubectl_run("delete", MV, "d-v1", "-n", namespace, "--wait=true", "--timeout=60s")
        kept = wait_for(lambda: [c for st in written.statuses("d-v1") for c in st.get("conditions") or []
                                 if c["type"] == "ArtifactDeleted"], what="the ArtifactDeleted condition")
    assert get(cluster, MV, "d-v1", namespace) is None  # the version went away all the same
    assert kept[-1]["status"] == "False" and kept[-1]["reason"] == "NotWrittenByOperator"
    assert "the operator did not write it" in kept[-1]["message"] and deletion.ALLOW_ANNOTATION in kept[-1]["message"]
    assert minio.client().stat_object(bucket, "someone-elses.pt")  # still there
    wait_for(lambda: "ArtifactKept" in {r for r, _ in events(cluster, namespace, "d-v1")}, what="ArtifactKept event")


def test_lineage_prints_the_chain_from_dataset_to_inference_services(cluster, operator, minio, bucket, namespace):
    setup_secret(cluster, minio, namespace)
    upload(minio, bucket, "l.pt", torchscript_bytes())
    dataset = {"uri": "s3://data/iris.csv", "digest": "sha256:" + hashlib.sha256(b"d").hexdigest()}
    apply(cluster, model_version("l-v1", namespace, "l", 1, f"s3://{bucket}/l.pt", aliases=["production"],
                                 source={"trainingJob": "gone-job", "dataset": dataset, "params": {"epochs": 3}}))
    apply(cluster, {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
                    "metadata": {"name": "l-svc", "namespace": namespace},
                    "spec": {"model": {"name": "l", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}}}})
    wait_for(lambda: status(cluster, "l-v1", namespace).get("servedBy") == ["l-svc"], what="servedBy")
    done = subprocess.run([sys.executable, "-m", "mlcycle.cli", "lineage", "l:1", "-n", namespace],
                          env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}, capture_output=True, text=True,
                          check=True)
    assert f"dataset           s3://data/iris.csv  {dataset['digest']}" in done.stdout
    assert "→ training job    gone-job (deleted)" in done.stdout
    # ", status: ..." follows once the InferenceService has a status of its own, which may come first.
    assert re.search(r"→ inference svcs  l-svc \(model alias production(, status: \w+)?\)", done.stdout)
    cluster.kubectl_run("delete", "inferenceservice.mlcycle.io", "l-svc", "-n", namespace)


def test_an_artifact_overwritten_after_ready_is_reported_and_restoring_it_heals(cluster, operator, minio, bucket,
                                                                               namespace):
    setup_secret(cluster, minio, namespace)
    original = torchscript_bytes()
    digest = upload(minio, bucket, "w.pt", original)
    apply(cluster, model_version("w-v1", namespace, "w", 1, f"s3://{bucket}/w.pt", aliases=["production"]))
    wait_phase(cluster, "w-v1", namespace, "Ready")

    other = upload(minio, bucket, "w.pt", checkpoint_bytes())
    # The recheck timer (a HEAD every MLCYCLE_ARTIFACT_RECHECK_SECONDS: 60 by default, 5 in the tests)
    # notices the new ETag.
    st = wait_phase(cluster, "w-v1", namespace, "Failed", timeout=180)
    assert condition(st, "ArtifactVerified")["reason"] == "DigestChanged"
    assert f"the object changed after it was verified: it was {digest}, it is now {other}" in st["message"]
    assert st["verifiedDigest"] == digest and st["aliases"] == []
    wait_for(lambda: "AliasRemoved" in {r for r, _ in events(cluster, namespace, "w-v1")}, what="AliasRemoved")

    upload(minio, bucket, "w.pt", original)
    st = wait_phase(cluster, "w-v1", namespace, "Ready", timeout=180)
    assert st["aliases"] == ["production"] and st["verifiedDigest"] == digest


def _as_verified(cluster, mv: dict) -> None:
    """Create a version as the operator leaves a verified one (the record with the artifact's ETag and an
    ArtifactVerified status), so that no verification Job runs."""
    spec = mv["spec"]
    record = {"for": fingerprint(spec["artifact"], spec.get("signature")), "etag": "0123"}
    mv["metadata"]["annotations"] = {VERIFICATION_ANNOTATION: json.dumps(record)}
    apply(cluster, mv)
    verified = {"type": "ArtifactVerified", "status": "True", "reason": "Verified", "message": "test",
                "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    cluster.kubectl_run("patch", MV, mv["metadata"]["name"], "-n", mv["metadata"]["namespace"], "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": {"conditions": [verified]}}))


def _reconciles(operator) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('mlcycle_reconcile_total{kind="ModelVersion",result="ok"}'))


def test_a_restarted_operator_sees_every_version_before_it_moves_an_alias(cluster, operator, namespace):
    """Every version asks for the alias, the highest holds it. A restarted operator that computed the model's
    statuses from part of its versions (its watch still listing) would hand the alias to a lower version and
    back, each with an Event; it waits for the whole listing, so no lower version is ever told it holds it."""
    count = 30
    for i in range(count, 0, -1):  # the highest first: no lower version ever holds the alias before the restart
        _as_verified(cluster, model_version(f"r-v{i}", namespace, "r", i, f"s3://models/r/{i}.pt",
                                            aliases=["production"]))
    top, next_highest = f"r-v{count}", f"r-v{count - 1}"
    wait_for(lambda: all((st := status(cluster, f"r-v{i}", namespace)).get("phase") == "Ready" and
                         st.get("aliases") == (["production"] if i == count else []) for i in range(1, count + 1)),
             what=f"{count} versions Ready, {top} holding production", timeout=180)

    operator.restart()
    wait_for(lambda: _reconciles(operator) >= 1, what="the restarted operator's first ModelVersion reconciles")
    cluster.kubectl_run("patch", MV, top, "-n", namespace, "--type=merge", "-p", '{"spec": {"aliases": []}}')
    wait_for(lambda: status(cluster, next_highest, namespace).get("aliases") == ["production"],
             what="production moves to the next highest version")
    assert status(cluster, top, namespace).get("aliases") == []
    assigned = [f"r-v{i}" for i in range(1, count + 1)
                if ("AliasAssigned", "now holds alias production") in events(cluster, namespace, f"r-v{i}")]
    assert assigned == [next_highest, top]
