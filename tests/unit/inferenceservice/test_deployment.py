"""The serving pod: fetch-model init container, Triton with model-aware probes, GPU placement, ports."""

from mlcycle.api.inferenceservice import InferenceServiceSpec
from mlcycle.inferenceservice.deployment import ServedVersion, deployment_name, desired_deployment
from mlcycle.inferenceservice.tritonconfig import model_layout
from unit.inferenceservice.factories import isvc, model_version


def build(**spec):
    parsed = InferenceServiceSpec.model_validate(isvc(**spec)["spec"])
    version = ServedVersion.from_model_version(model_version(3))
    layout = model_layout(version.model_name, version.artifact_format, version.signature, parsed.runtime,
                          parsed.resources.gpus)
    return desired_deployment("iris", "ns", "uid-isvc", parsed, version, layout, parsed.replicas, "reg/mlcycle:1")


def test_one_deployment_per_version_owned_by_the_service():
    d = build(replicas=2)
    assert d["metadata"]["name"] == "iris-iris-v3"
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["selector"]["matchLabels"] == {"mlcycle.io/inferenceservice": "iris",
                                                    "mlcycle.io/model-version": "iris-v3"}
    owner = d["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("InferenceService", "uid-isvc", True)


def test_fetch_model_checks_the_verified_digest_and_gets_credentials_by_reference():
    pod = build()["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["command"] == ["mlcycle", "fetch-model"] and init["image"] == "reg/mlcycle:1"
    env = {e["name"]: e for e in init["env"]}
    assert env["MLCYCLE_ARTIFACT_DIGEST"]["value"] == "sha256:" + "a" * 64
    assert env["MLCYCLE_TRITON_BACKEND"]["value"] == "python"
    assert 'backend: "python"' in env["MLCYCLE_TRITON_CONFIG"]["value"]
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3", "key": "secretKey"}
    assert all("value" not in e for n, e in env.items() if n.startswith("AWS_"))
    assert pod["automountServiceAccountToken"] is False


def test_triton_is_ready_only_when_the_model_is():
    triton = build()["spec"]["template"]["spec"]["containers"][0]
    assert "--load-model=iris" in triton["args"] and "--model-control-mode=explicit" in triton["args"]
    assert "--disable-auto-complete-config" in triton["args"]
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/models/iris/ready", "port": 8000}
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/models/iris/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}


def test_gpu_replicas_are_placed_like_training_workers():
    pod = build(resources={"gpus": 2, "memory": "8Gi"}, gpuType="NVIDIA-H100-80GB-HBM3")["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "2"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_long_names_stay_within_kubernetes_limits():
    name = deployment_name("x" * 200, "y" * 200)
    assert len(name) <= 63 and name == deployment_name("x" * 200, "y" * 200)
    assert deployment_name("iris", "iris-v3") == "iris-iris-v3"
