"""Triton's model configuration (`config.pbtxt`) for one ModelVersion, from its signature and the
InferenceService's runtime. Written for the server, never auto-completed: Triton cannot complete a PyTorch
model's config, and a config generated from the registry's signature is the same for every backend.

The text is produced from Triton's own ModelConfig protobuf (shipped with tritonclient), so field names and
enum values are exactly what the server parses.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from mlcycle.api.inferenceservice import Runtime
from mlcycle.api.modelversion import Signature

# runtime.backend → (platform, backend) as config.pbtxt names them; the file Triton loads from `<model>/1/`.
BACKENDS = {
    "pytorch": ("pytorch_libtorch", "", "model.pt"),
    "onnxruntime": ("onnxruntime_onnx", "", "model.onnx"),
    "tensorrt": ("tensorrt_plan", "", "model.plan"),
    "python": ("", "python", "model.pt"),
}
# The backend an artifact format gets when spec.runtime.backend is left out.
FORMAT_BACKEND = {"torchscript": "pytorch", "onnx": "onnxruntime", "tensorrt": "tensorrt", "python": "python"}
# Which artifact formats each backend can serve (the python backend runs TorchScript with torch).
SERVES = {"pytorch": {"torchscript"}, "onnxruntime": {"onnx"}, "tensorrt": {"tensorrt"}, "python": {"torchscript"}}


class ServingConfigError(ValueError):
    """The version cannot be served with this runtime; the message names the field and the fix."""


@dataclass(frozen=True)
class ModelLayout:
    backend: str  # a key of BACKENDS
    artifact_file: str  # name of the artifact inside `<model>/1/`
    config: str  # config.pbtxt text


def backend_for(runtime: Runtime, artifact_format: str) -> str:
    backend = runtime.backend or FORMAT_BACKEND.get(artifact_format)
    if backend is None or backend not in BACKENDS:
        raise ServingConfigError(
            f"artifact format {artifact_format} has no Triton backend here; set spec.runtime.backend to one of "
            f"{', '.join(sorted(BACKENDS))}")
    if artifact_format not in SERVES[backend]:
        raise ServingConfigError(
            f"spec.runtime.backend {backend} cannot serve a {artifact_format} artifact (it serves "
            f"{', '.join(sorted(SERVES[backend]))}); pick another backend or another version")
    return backend


def _dims(shape: list[int], batched: bool, where: str) -> list[int]:
    if not batched:
        return list(shape)
    if not shape or shape[0] != -1:
        raise ServingConfigError(
            f"{where} has shape {shape}: with spec.runtime.maxBatchSize > 0 the first dimension must be the "
            "batch (-1); set maxBatchSize to 0 or register a signature with a batch dimension")
    return list(shape[1:]) or [1]


def model_layout(model_name: str, artifact_format: str, signature: Signature | None, runtime: Runtime,
                 gpus: int) -> ModelLayout:
    """The Triton model for one version. Raises ServingConfigError when it cannot be served."""
    if signature is None:
        raise ServingConfigError(
            "the ModelVersion has no spec.signature; Triton needs the input and output tensors to serve it")
    backend = backend_for(runtime, artifact_format)
    platform, backend_name, artifact_file = BACKENDS[backend]
    batched = runtime.max_batch_size > 0
    config = mc.ModelConfig(name=model_name, max_batch_size=runtime.max_batch_size)
    if platform:
        config.platform = platform
    if backend_name:
        config.backend = backend_name
    for role, tensors, target in (("inputs", signature.inputs, config.input),
                                  ("outputs", signature.outputs, config.output)):
        for i, tensor in enumerate(tensors):
            entry = target.add()
            entry.name = tensor.name
            entry.data_type = mc.DataType.Value(f"TYPE_{tensor.dtype}")
            entry.dims.extend(_dims(tensor.shape, batched, f"signature.{role}[{i}] ({tensor.name})"))
    if runtime.dynamic_batching is not None:
        batching = runtime.dynamic_batching
        too_big = [s for s in batching.preferred_batch_sizes or [] if s > runtime.max_batch_size]
        if too_big:
            raise ServingConfigError(f"spec.runtime.dynamicBatching.preferredBatchSizes {too_big} exceed "
                                     f"maxBatchSize {runtime.max_batch_size}")
        config.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes or [])
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_microseconds
    group = config.instance_group.add()
    group.count = runtime.instance_group.count
    kind = runtime.instance_group.kind or ("GPU" if gpus else "CPU")
    if kind == "GPU" and not gpus:
        raise ServingConfigError("spec.runtime.instanceGroup.kind GPU needs spec.resources.gpus > 0")
    group.kind = mc.ModelInstanceGroup.KIND_GPU if kind == "GPU" else mc.ModelInstanceGroup.KIND_CPU
    return ModelLayout(backend, artifact_file, text_format.MessageToString(config))
