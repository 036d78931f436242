"""The built-in model: an MLP trained on standardised inputs, exported as TorchScript with the
standardisation baked in, so that Triton (or anyone) feeds it raw float32 features."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import torch
from torch import nn


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


class ServingModel(nn.Module):
    """raw features [batch, n] -> class probabilities [batch, k], or the prediction [batch, 1] in the
    target's own units (regression targets are standardised for training too)."""

    def __init__(
        self,
        net: nn.Module,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        classification: bool,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ):
        super().__init__()
        self.net = net
        self.classification = classification
        self.register_buffer("feature_mean", feature_mean.detach().clone().float())
        self.register_buffer("feature_std", feature_std.detach().clone().float())
        self.register_buffer("target_mean", torch.tensor([target_mean], dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor([target_std], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net((x - self.feature_mean) / self.feature_std)
        if self.classification:
            return torch.softmax(out, dim=1)
        return out * self.target_std + self.target_mean


def torchscript_bytes(model: ServingModel) -> bytes:
    """The model, in eval mode and on the CPU, as a serialized TorchScript module."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is what Triton's PyTorch backend loads.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model.cpu().eval()), buffer)
    return buffer.getvalue()
