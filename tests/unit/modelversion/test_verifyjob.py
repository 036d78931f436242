import json

from mlcycle.api import labels as keys
from mlcycle.modelversion import verification, verifyjob

MV = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
      "metadata": {"name": "iris-v1", "namespace": "ns", "uid": "uid-1"},
      "spec": {"modelName": "iris", "version": 1, "artifact": {"uri": "s3://models/iris/model.pt",
                                                                "format": "torchscript"},
               "signature": {"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 4]}],
                             "outputs": [{"name": "y", "dtype": "FP32", "shape": [-1, 3]}]},
               "storage": {"secretRef": {"name": "s3"}}},
      "status": {"verifiedDigest": "sha256:" + "a" * 64}}
PLACEMENT = {"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "k", "operator": "Exists"}]}


def test_the_verification_pod_has_no_token_no_service_links_limits_and_credentials_by_reference():
    job = verifyjob.desired_job(MV, "fp1", "registry.example/mlcycle:1", PLACEMENT)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["tolerations"] == PLACEMENT["tolerations"]
    assert container["command"] == ["mlcycle", "verify"] and container["image"] == "registry.example/mlcycle:1"
    assert container["resources"]["limits"] == verifyjob.DEFAULT_LIMITS
    assert container["terminationMessagePolicy"] == "File"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3", "key": "secretKey"}
    assert json.loads(env["MLCYCLE_ARTIFACT"]["value"]) == MV["spec"]["artifact"]
    assert env["MLCYCLE_PREVIOUS_DIGEST"]["value"] == MV["status"]["verifiedDigest"]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] > verification.PROBE_TIMEOUT
    assert job["metadata"]["annotations"][keys.FINGERPRINT_ANNOTATION] == "fp1"
    assert job["metadata"]["labels"][keys.MODEL] == "iris"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert verifyjob.desired_job(MV, "fp1", "i", {}, {"memory": "8Gi"})["spec"]["template"]["spec"]["containers"][0][
        "resources"]["limits"] == {"memory": "8Gi"}


def test_a_long_version_name_gives_a_valid_job_name_prefix_and_label():
    long = {**MV, "metadata": {**MV["metadata"], "name": "v" * 253}}
    job = verifyjob.desired_job(long, "fp", "i", {})
    assert len(job["metadata"]["generateName"]) <= 58  # + 5 random characters <= 63
    assert len(job["metadata"]["labels"][keys.MODELVERSION]) <= 63


def test_the_network_policy_lets_out_dns_and_the_storage_port_only():
    policy = verifyjob.desired_network_policy(MV, 9000)
    assert policy["spec"]["podSelector"]["matchLabels"] == verifyjob.selector(MV)
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 9000] and "ingress" not in policy["spec"]
    assert verifyjob.storage_port("minio:9000", False) == 9000
    assert verifyjob.storage_port("s3.example.com", True) == 443 and verifyjob.storage_port("[::1]", False) == 80


def pod(message=None, terminated=None):
    state = {"terminated": {"exitCode": 0, **({"message": message} if message else {}), **(terminated or {})}}
    return {"status": {"containerStatuses": [{"name": "verify", "state": state}]}}


def job(*conditions):
    return {"status": {"conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]}}


def test_outcomes_from_the_termination_message_and_from_pods_that_ended_without_one():
    ok = verification.Verified("sha256:" + "b" * 64, 10, "etag", "TorchScript loads")
    assert verifyjob.outcome(job(("Complete", "")), [pod(verification.result_message(ok))]) == ok
    bad = verifyjob.outcome(job(("Complete", "")), [pod(verification.result_message(
        verification.VerificationFailed("InvalidFormat", "not a zip")))])
    assert (bad.reason, bad.message, bad.healable) == ("InvalidFormat", "not a zip", False)
    oom = verifyjob.outcome(job(("Failed", "BackoffLimitExceeded")),
                            [pod(terminated={"exitCode": 137, "reason": "OOMKilled"})])
    assert oom.reason == "ProbeFailed" and oom.healable and "OOMKilled" in oom.message
    late = verifyjob.outcome(job(("Failed", "DeadlineExceeded")), [])
    assert late.reason == "ProbeFailed" and "longer than" in late.message
    assert verifyjob.finished(job(("Complete", ""))) and not verifyjob.finished(job())


def test_a_result_is_checked_before_it_is_believed():
    forged = {"failed": {"reason": "Hacked reason!", "message": "x" * 5000}}
    parsed = verification.parse_result(forged)
    assert parsed.reason == "ProbeFailed" and len(parsed.message) == verification.RESULT_MESSAGE_LIMIT
    assert verification.parse_result({"verified": {"digest": "md5:1", "size": 1}}) is None
    assert verification.parse_result(None) is None


def test_the_model_loader_sees_no_credentials_and_no_cluster():
    env = {"PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ACCESS_KEY_ID": "a", "MLCYCLE_S3_ENDPOINT": "e",
           "KUBERNETES_SERVICE_HOST": "10.0.0.1", "PYTHONPATH": "/p", "NSS_WRAPPER_HOSTS": "/h"}
    assert verification.probe_env(env) == {"PATH": "/bin", "PYTHONPATH": "/p", "NSS_WRAPPER_HOSTS": "/h"}
