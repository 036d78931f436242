"""The reference profile of a training set, and the drift statistics computed against it.

The profile holds, per feature, quantile bin edges with the training counts in each bin (for PSI) and a
bounded, seeded random sample of raw rows (for KS). Pure functions on numpy arrays; the trainer writes
the profile as reference_profile.json and the drift checker reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PROFILE_VERSION = 1
DEFAULT_BINS = 10
DEFAULT_SAMPLE_SIZE = 1000


def quantile_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Edges of `bins` equal-frequency bins: min, the inner quantiles, max. Repeated quantiles (few
    distinct values) collapse, so there may be fewer bins; a constant column has edges [c, c]."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot profile an empty column")
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        edges = np.repeat(edges, 2)
    return [float(e) for e in edges]


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """How many `values` fall in each bin [e_i, e_i+1); the last bin includes the max, and values outside
    [min, max] count in the first or last bin, so new data can be binned with the training edges."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    index = np.searchsorted(inner, np.asarray(values, dtype=np.float64), side="right")
    return [int(c) for c in np.bincount(index, minlength=len(edges) - 1)]


def numeric_profile(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    edges = quantile_edges(values, bins)
    return {
        "edges": edges,
        "counts": bin_counts(values, edges),
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def reference_profile(
    features: np.ndarray,
    feature_names: Sequence[str],
    *,
    labels: Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> dict[str, Any]:
    """The profile of a [rows, features] matrix. `labels` (class names or their indices in `classes` when
    `classes` is given, else numbers) is profiled too, so drift in the target or in predictions can be
    checked the same way. Columns are converted to float64 one at a time: the matrix may be large."""
    features = np.asarray(features)
    rows, n = features.shape
    if n != len(feature_names):
        raise ValueError(f"{n} feature columns but {len(feature_names)} names")
    take = min(sample_size, rows)
    sample = np.sort(np.random.default_rng(seed).choice(rows, size=take, replace=False))
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION,
        "rows": rows,
        "bins": bins,
        "features": {name: numeric_profile(features[:, i], bins) for i, name in enumerate(feature_names)},
        "sample": {"columns": list(feature_names), "rows": features[sample].astype(np.float64).tolist()},
    }
    if labels is not None:
        if classes is not None:
            label_array = np.asarray(labels)
            if np.issubdtype(label_array.dtype, np.integer):
                counts = [int(c) for c in np.bincount(label_array, minlength=len(classes))]
            else:
                label_array = label_array.astype(str)
                counts = [int((label_array == c).sum()) for c in classes]
            profile["label"] = {"classes": list(classes), "counts": counts}
        else:
            profile["label"] = numeric_profile(np.asarray(labels, dtype=np.float64), bins)
    return profile


def psi(expected_counts: Sequence[int], actual_counts: Sequence[int], epsilon: float = 1e-4) -> float:
    """Population stability index between two histograms over the same bins (empty bins get `epsilon`)."""
    expected = np.asarray(expected_counts, dtype=np.float64)
    actual = np.asarray(actual_counts, dtype=np.float64)
    if expected.shape != actual.shape:
        raise ValueError(f"histograms differ in bins: {expected.size} vs {actual.size}")
    e = np.clip(expected / max(expected.sum(), 1.0), epsilon, None)
    a = np.clip(actual / max(actual.sum(), 1.0), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(reference: np.ndarray, values: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    reference = np.sort(np.asarray(reference, dtype=np.float64))
    values = np.sort(np.asarray(values, dtype=np.float64))
    points = np.concatenate([reference, values])
    cdf_ref = np.searchsorted(reference, points, side="right") / reference.size
    cdf_val = np.searchsorted(values, points, side="right") / values.size
    return float(np.max(np.abs(cdf_ref - cdf_val)))
