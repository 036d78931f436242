"""Model files and ModelVersion objects for the ModelVersion tests: a tiny TorchScript module, a hand-encoded
ONNX ModelProto (no onnx package needed) and a ModelVersion manifest builder."""

from __future__ import annotations

import io
import warnings

import torch

SIGNATURE = {"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "probs", "dtype": "FP32", "shape": [-1, 3]}]}


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).softmax(-1)


def torchscript_bytes(module: torch.nn.Module | None = None) -> bytes:
    """A scripted module (by default Linear(4, 3) + softmax), as torch.jit.save writes it."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated upstream; Triton's pytorch backend still needs it
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(module or Classifier()), buffer)
    return buffer.getvalue()


SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class TokenThief(torch.nn.Module):
    """A model whose forward() reads the pod's ServiceAccount token (torch.from_file is scriptable) and, if it
    finds one, puts it in its error, which the probe reports: what a hostile artifact would try."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = torch.from_file("/var/run/secrets/kubernetes.io/serviceaccount/token", shared=False, size=64,
                                dtype=torch.uint8)
        stolen = ""
        values: list[int] = token.tolist()
        for b in values:
            stolen += chr(b)
        raise RuntimeError("STOLEN " + stolen)


class Leaker(torch.nn.Module):
    """A model whose forward() fails with `message`: whatever a model author puts there reaches the probe's
    report."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(self.message)


def checkpoint_bytes() -> bytes:
    """A torch.save() state dict: a zip too, but not TorchScript."""
    buffer = io.BytesIO()
    torch.save(Classifier().state_dict(), buffer)
    return buffer.getvalue()


# --- ONNX, written field by field in the protobuf wire format (numbers from onnx.proto) ---

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    payload = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def onnx_bytes(inputs=(("x", 1, ["batch", 4]),), outputs=(("probs", 1, ["batch", 3]),),
               weights: int = 48) -> bytes:
    """A ModelProto with one Gemm node, a weight initializer of `weights` raw bytes (listed as an input too,
    as older exporters do), and the given (name, elem_type, dims) inputs and outputs."""
    node = _field(1, "x") + _field(1, "W") + _field(2, "probs") + _field(4, "Gemm")
    initializer = _field(1, 3) + _field(1, 4) + _field(2, 1) + _field(8, "W") + _field(9, bytes(weights))
    graph = (_field(1, node) + _field(2, "g") + _field(5, initializer)
             + b"".join(_field(11, _value_info(*i)) for i in inputs) + _field(11, _value_info("W", 1, [3, 4]))
             + b"".join(_field(12, _value_info(*o)) for o in outputs))
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(2, "test") + _field(7, graph) + _field(8, opset)


def model_version(name: str, namespace: str, model: str, version: int, uri: str, secret: str = "s3",
                  **spec) -> dict:
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"modelName": model, "version": version,
                     "artifact": {"uri": uri, "format": "torchscript"}, "signature": SIGNATURE,
                     "storage": {"secretRef": {"name": secret}}} | spec}
