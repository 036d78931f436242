"""The built-in model: an MLP behind a feature encoder, exported with the encoding baked in, so that Triton
(or anyone) feeds it the raw float32 feature row: numbers as they are, a categorical value as its code.

Every export has the same tensors (INPUT__0 [-1, n] FP32 -> OUTPUT__0 [-1, k] FP32), the names Triton's
PyTorch backend requires, so one signature describes the TorchScript and the ONNX file alike.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

INPUT_NAME = "INPUT__0"
OUTPUT_NAME = "OUTPUT__0"
ONNX_OPSET = 18


def build_mlp(n_inputs: int, n_outputs: int, hidden_layers: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class FeatureEncoder(nn.Module):
    """raw features [batch, n] -> the network's inputs: the numeric columns standardised, then each
    categorical column one-hot over its categories (a code outside them encodes as all zeros)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, category_counts: dict[int, int]):
        """`mean`/`std` per column (categorical columns' entries are unused); `category_counts` maps a
        categorical column's index to its number of categories."""
        super().__init__()
        n = len(mean)
        numeric = [i for i in range(n) if i not in category_counts]
        self.all_numeric = not category_counts
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("mean", mean.detach().float()[numeric].clone())
        self.register_buffer("std", std.detach().float()[numeric].clone())
        # One-hot as a single comparison: slot s is 1 when column onehot_column[s] holds onehot_code[s].
        columns = [i for i in sorted(category_counts) for _ in range(category_counts[i])]
        codes = [float(c) for i in sorted(category_counts) for c in range(category_counts[i])]
        self.register_buffer("onehot_column", torch.tensor(columns, dtype=torch.long))
        self.register_buffer("onehot_code", torch.tensor(codes, dtype=torch.float32))

    @property
    def width(self) -> int:
        return len(self.numeric_index) + len(self.onehot_column)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.all_numeric:
            return (x - self.mean) / self.std
        numeric = (x.index_select(1, self.numeric_index) - self.mean) / self.std
        onehot = (x.index_select(1, self.onehot_column) == self.onehot_code).to(x.dtype)
        return torch.cat([numeric, onehot], dim=1)


class ServingModel(nn.Module):
    """raw features [batch, n] -> class probabilities [batch, k], or the prediction [batch, 1] in the
    target's own units (regression targets are standardised for training too). `network` (encoder + MLP)
    is what training optimises: it returns logits, or the standardised prediction."""

    def __init__(self, network: nn.Module, classification: bool, target_mean: float = 0.0, target_std: float = 1.0):
        super().__init__()
        self.network = network
        self.classification = classification
        self.register_buffer("target_mean", torch.tensor([target_mean], dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor([target_std], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        if self.classification:
            return torch.softmax(out, dim=1)
        return out * self.target_std + self.target_mean


def torchscript_bytes(model: ServingModel) -> bytes:
    """The model, in eval mode and on the CPU, as a serialized TorchScript module."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is what Triton's PyTorch backend loads.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model.cpu().eval()), buffer)
    return buffer.getvalue()


def onnx_bytes(model: ServingModel, n_features: int) -> bytes:
    """The model, in eval mode and on the CPU, as one self-contained ONNX file with a variable batch."""
    model = model.cpu().eval()
    example = torch.zeros(2, n_features)
    with tempfile.TemporaryDirectory(prefix="mlcycle-onnx-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes about its own internals
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=ONNX_OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
        )
        return path.read_bytes()
