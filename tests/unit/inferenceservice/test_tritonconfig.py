"""Golden config.pbtxt for each backend, with and without dynamic batching and GPU instance groups."""

import pytest

from mlcycle.api.inferenceservice import Runtime
from mlcycle.api.modelversion import Signature
from mlcycle.inferenceservice.tritonconfig import ServingConfigError, model_layout

SIGNATURE = Signature.model_validate({
    "inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 3]}],
})


def layout(fmt="torchscript", gpus=0, **runtime):
    return model_layout("iris", fmt, SIGNATURE, Runtime.model_validate(runtime), gpus)


def test_torchscript_gets_libtorch_with_whole_tensor_dims():
    got = layout()
    assert (got.backend, got.artifact_file) == ("pytorch", "model.pt")
    assert got.config == '''name: "iris"
platform: "pytorch_libtorch"
input {
  name: "INPUT__0"
  data_type: TYPE_FP32
  dims: -1
  dims: 4
}
output {
  name: "OUTPUT__0"
  data_type: TYPE_FP32
  dims: -1
  dims: 3
}
instance_group {
  count: 1
  kind: KIND_CPU
}
'''


def test_onnx_with_dynamic_batching_drops_the_batch_dimension():
    got = layout("onnx", maxBatchSize=32,
                 dynamicBatching={"preferredBatchSizes": [8, 16], "maxQueueDelayMicroseconds": 500})
    assert (got.backend, got.artifact_file) == ("onnxruntime", "model.onnx")
    assert got.config == '''name: "iris"
platform: "onnxruntime_onnx"
max_batch_size: 32
input {
  name: "INPUT__0"
  data_type: TYPE_FP32
  dims: 4
}
output {
  name: "OUTPUT__0"
  data_type: TYPE_FP32
  dims: 3
}
instance_group {
  count: 1
  kind: KIND_CPU
}
dynamic_batching {
  preferred_batch_size: 8
  preferred_batch_size: 16
  max_queue_delay_microseconds: 500
}
'''


def test_python_backend_on_gpus_gets_gpu_instances():
    got = layout(backend="python", gpus=1, instanceGroup={"count": 2})
    assert (got.backend, got.artifact_file) == ("python", "model.pt")
    assert 'backend: "python"' in got.config and "platform" not in got.config
    assert "instance_group {\n  count: 2\n  kind: KIND_GPU\n}" in got.config


def test_explicit_cpu_instances_on_a_gpu_replica():
    assert "kind: KIND_CPU" in layout(gpus=1, instanceGroup={"kind": "CPU"}).config


@pytest.mark.parametrize("fmt, runtime, words", [
    ("onnx", {"backend": "pytorch"}, "spec.runtime.backend pytorch cannot serve a onnx artifact"),
    ("savedmodel", {}, "set spec.runtime.backend"),
    ("torchscript", {"instanceGroup": {"kind": "GPU"}}, "needs spec.resources.gpus"),
    ("torchscript", {"maxBatchSize": 4, "dynamicBatching": {"preferredBatchSizes": [8]}}, "exceed maxBatchSize 4"),
])
def test_what_cannot_be_served_names_the_field(fmt, runtime, words):
    with pytest.raises(ServingConfigError, match=words):
        layout(fmt, **runtime)


def test_batching_needs_a_batch_dimension():
    fixed = Signature.model_validate({"inputs": [{"name": "x", "dtype": "FP32", "shape": [4]}],
                                      "outputs": [{"name": "y", "dtype": "FP32", "shape": [3]}]})
    with pytest.raises(ServingConfigError, match=r"signature.inputs\[0\] \(x\) has shape \[4\]"):
        model_layout("m", "torchscript", fixed, Runtime(maxBatchSize=8), 0)


def test_no_signature_is_refused():
    with pytest.raises(ServingConfigError, match="no spec.signature"):
        model_layout("m", "torchscript", None, Runtime(), 0)
