import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def blobs_csv(rows: int = 400, seed: int = 0) -> str:
    """Two Gaussian blobs ("cat" around (40, -1), "dog" around (60, 1)) with features on different scales."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,label"]
    for i in range(rows):
        label, sign = ("cat", -1) if i % 2 == 0 else ("dog", 1)
        x1, x2 = rng.normal(50 + 10 * sign, 6), rng.normal(sign, 0.6)
        lines.append(f"{x1:.4f},{x2:.4f},{label}")
    return "\n".join(lines) + "\n"


def line_csv(rows: int = 300, seed: int = 0) -> str:
    """y = 3*a - 2*b + 100 with a little noise."""
    rng = np.random.default_rng(seed)
    lines = ["a,b,y"]
    for _ in range(rows):
        a, b = rng.uniform(-5, 5), rng.uniform(0, 10)
        lines.append(f"{a:.4f},{b:.4f},{3 * a - 2 * b + 100 + rng.normal(0, 0.1):.4f}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def blobs_path(tmp_path):
    path = tmp_path / "blobs.csv"
    path.write_text(blobs_csv())
    return path


@pytest.fixture
def line_path(tmp_path):
    path = tmp_path / "line.csv"
    path.write_text(line_csv())
    return path
