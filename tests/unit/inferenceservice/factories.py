"""Small builders of InferenceService-side objects for the pure tests."""

from mlcycle.inferenceservice.deployment import deployment_name

SIGNATURE = {"inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 3]}],
             "featureNames": ["a", "b", "c", "d"]}


def model_version(version: int, phase: str = "Ready", aliases=(), model: str = "iris", message: str = "") -> dict:
    name = f"{model}-v{version}"
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"modelName": model, "version": version,
                     "artifact": {"uri": f"s3://models/{model}/{version}/model.pt", "format": "torchscript"},
                     "signature": SIGNATURE, "storage": {"secretRef": {"name": "s3"}}},
            "status": {"phase": phase, "aliases": list(aliases), "verifiedDigest": "sha256:" + "a" * 64,
                       "message": message}}


def isvc(status: dict | None = None, **spec) -> dict:
    base = {"model": {"name": "iris", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}},
            "runtime": {"backend": "python"}}
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": "ns", "uid": "uid-isvc", "generation": 1},
            "spec": base | spec, "status": status or {}}


def deployment(version: str, ready: int, replicas: int = 1, generation: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": deployment_name("iris", version), "namespace": "ns", "generation": generation},
            "status": {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": ready}}
