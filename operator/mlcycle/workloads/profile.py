"""The reference profile of a training set: what a drift check compares logged requests with.

Per feature: count, mean, std, min, max, the PSI bins (quantile edges with the training counts in each)
and a `sketch` (mlcycle.drift.stats.Sketch: every distinct value up to 1,000 of them with its count, or
about 1,100 quantile cut points with the counts and sums between them), so the checker reproduces KS, chi²,
Wasserstein and Jensen-Shannon on the full training column without the data. Plus a bounded, seeded
random sample of raw rows. The trainer writes the profile as reference_profile.json next to the model.

Version 1 profiles (no sketch) are still read: their sketches are rebuilt from the sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlcycle.drift.stats import Sketch

PROFILE_VERSION = 2
DEFAULT_SAMPLE_SIZE = 1000


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot profile an empty column")
    sketch = Sketch.of_reference(values)
    return {
        "edges": sketch.edges.tolist(),
        "counts": sketch.psi_counts().tolist(),
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "sketch": sketch.to_json(),
    }


def reference_profile(
    features: np.ndarray,
    feature_names: Sequence[str],
    *,
    labels: Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
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
        "features": {name: numeric_profile(features[:, i]) for i, name in enumerate(feature_names)},
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
            profile["label"] = numeric_profile(np.asarray(labels, dtype=np.float64))
    return profile


def reference_sketches(profile: Mapping[str, Any]) -> dict[str, Sketch]:
    """The sketch of every feature of a profile. A version 1 profile has none: its sketch is built from
    the sample (all rows when the training set was no larger than the sample)."""
    features = profile.get("features") or {}
    if all("sketch" in f for f in features.values()):
        return {name: Sketch.from_json(f["sketch"]) for name, f in features.items()}
    sample = profile.get("sample") or {}
    columns = list(sample.get("columns") or [])
    rows = np.asarray(sample.get("rows") or [], dtype=np.float64).reshape(-1, len(columns))
    return {name: Sketch.of_reference(rows[:, columns.index(name)])
            for name in features if name in columns and rows.shape[0]}

