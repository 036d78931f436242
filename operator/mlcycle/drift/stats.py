"""Per-feature drift statistics on bounded summaries of a column, vectorized with numpy/scipy.

A `Sketch` summarises one column on cut points taken from the reference: how many values equal each cut,
how many fall strictly between two cuts (and their sum), the reference's quantile bins for PSI, moments,
extremes and, while there are at most a few, the values that are not cuts. A window of logged requests
is added batch by batch, so memory does not grow with the window.

When the reference has at most CUT_LIMIT distinct values, every one of them is a cut and the statistics
are the ones scipy computes on the raw data: KS (statistic and p-value), chi², Z and Jensen-Shannon on
value counts exactly, Wasserstein exactly unless the two CDFs cross between two neighbouring reference
values. A larger reference is cut at its quantiles (every 1/CUT_LIMIT, finer in the tails); the statistics
are then exact at the cuts and approximate between them (within about 1/CUT_LIMIT of the reference's mass).

`auto` picks a method per column the way Evidently's DataDriftPreset does by default
(evidently.legacy.calculations.stattests.registry._get_default_stattest): with at most 1,000 reference
rows KS (p <= 0.05), or chi² / Z (p < 0.05) for categorical columns and columns with at most 5 values;
above that normalised Wasserstein (>= 0.1), or Jensen-Shannon (>= 0.1) for categorical columns and
columns with at most 5 values. A column is categorical when, like an integer column Evidently infers,
its reference values are whole numbers with at most 10 distinct values. The dataset drifts when the
share of drifted columns reaches `drift_share` (0.5 by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.spatial import distance
from scipy.stats._stats_py import _attempt_exact_2kssamp  # ks_2samp's exact p-value, for a statistic we compute

# Methods a user can ask for (the API's enum), and the Z-test that `auto` may pick for binary columns.
METHODS = ("auto", "psi", "ks", "chi2", "wasserstein", "jensenshannon")
Z = "z"
# A p-value test drifts below its threshold, a distance at or above it.
P_VALUE_METHODS = frozenset({"ks", "chi2", Z})
DEFAULT_THRESHOLDS = {"psi": 0.2, "ks": 0.05, "chi2": 0.05, Z: 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
DEFAULT_DRIFT_SHARE = 0.5

CUT_LIMIT = 1000  # cut points per column: all distinct reference values up to this many, else quantiles
PSI_BINS = 10
SMALL_REFERENCE = 1000  # Evidently: at most this many reference rows -> statistical tests, else distances
FEW_VALUES = 5  # Evidently: columns with at most this many values (reference and current) are treated as discrete
CATEGORY_LIMIT = 10  # Evidently's INTEGER_CARDINALITY_LIMIT
DISCRETE_JS_LIMIT = 20  # Evidently bins Jensen-Shannon by value below this many reference values, else Sturges
_KS_EXACT_MAX = 10000  # scipy.stats.ks_2samp(method="auto") is exact up to this many rows per sample
_PSI_EPSILON = 1e-4
_WASSERSTEIN_MIN_STD = 0.001


# --- the summary of a column ---------------------------------------------------------------------


def cut_points(values: np.ndarray, limit: int = CUT_LIMIT) -> np.ndarray:
    """The reference's distinct values if there are at most `limit`, else its quantiles at every 1/limit and
    every 1/(100 limit) in the outer 0.5% (data values, so the extremes are cuts and nothing of the
    reference lies outside them)."""
    distinct = np.unique(values)
    if distinct.size <= limit:
        return distinct
    # Finer in the outer 0.5% on each side, where a heavy tail's few values spread over most of the range.
    tails = np.linspace(0.0, 0.005, 51)
    levels = np.concatenate([np.linspace(0.0, 1.0, limit + 1), tails, 1.0 - tails])
    return np.unique(np.quantile(values, levels, method="inverted_cdf"))


def psi_edges(values: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Edges of `bins` equal-frequency bins (min, inner quantiles, max); repeated quantiles collapse, and a
    constant column has edges [c, c]."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return np.repeat(edges, 2) if edges.size == 1 else edges


@dataclass
class Sketch:
    """A bounded summary of a column on fixed cut points (see the module doc); `add` a batch at a time."""

    cuts: np.ndarray  # sorted distinct float64, K of them, the PSI edges among them
    edges: np.ndarray  # the reference's PSI bin edges
    exact: bool  # every distinct reference value is a cut
    at: np.ndarray = field(default=None)  # int64 [K]: values equal to each cut
    cells: np.ndarray = field(default=None)  # int64 [K+1]: values between cuts (cell 0 below the first, K above)
    cell_sums: np.ndarray = field(default=None)  # float64 [K+1]: their sum
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    minimum: float = math.inf
    maximum: float = -math.inf
    nonfinite: int = 0  # NaN/inf values, left out like Evidently does
    # Values that are not cuts, with their counts, while there are at most FEW_VALUES; None past that.
    others: dict[float, int] | None = field(default_factory=dict)

    def __post_init__(self):
        k = self.cuts.size
        self.at = np.zeros(k, np.int64) if self.at is None else self.at
        self.cells = np.zeros(k + 1, np.int64) if self.cells is None else self.cells
        self.cell_sums = np.zeros(k + 1, np.float64) if self.cell_sums is None else self.cell_sums
        if not self.exact:
            self.others = None  # a continuous reference: every current value counts as "many values"

    @classmethod
    def of_reference(cls, values: np.ndarray) -> Sketch:
        """The reference's own sketch: cuts and PSI bins from its values, then its values added."""
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError("cannot summarise a column without finite values")
        edges = psi_edges(finite)
        cuts = cut_points(finite)
        exact = cuts.size == np.unique(finite).size
        sketch = cls(np.union1d(cuts, edges), edges, exact)  # PSI bins are then sums of cells
        sketch.add(values)
        return sketch

    def empty_like(self) -> Sketch:
        """An empty sketch on the same cuts and bins, for a current window."""
        return Sketch(self.cuts, self.edges, self.exact)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        x = values if finite.all() else values[finite]
        self.nonfinite += values.size - x.size
        if x.size == 0:
            return
        k = self.cuts.size
        x = np.sort(x)  # searchsorted is several times faster on sorted keys, and order does not matter here
        index = np.searchsorted(self.cuts, x, side="left")
        equal = self.cuts[np.minimum(index, k - 1)] == x
        # One slot per cell and per cut: 2i for the cell below cut i, 2i+1 for cut i itself.
        slot = 2 * index + equal
        counts = np.bincount(slot, minlength=2 * k + 1)
        self.at += counts[1::2]
        self.cells += counts[0::2]
        self.cell_sums += np.bincount(slot, weights=x, minlength=2 * k + 1)[0::2]
        if self.others is not None:
            self._add_others(x[~equal])
        # Chan et al.'s pairwise update keeps the variance accurate over many batches.
        n, mean = x.size, float(x.mean())
        m2 = float(np.square(x - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(x[0]))
        self.maximum = max(self.maximum, float(x[-1]))

    def _add_others(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        if np.unique(x[: 64 * FEW_VALUES]).size > FEW_VALUES:  # cheap early exit for a continuous column
            self.others = None
            return
        values, counts = np.unique(x, return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.others[v] = self.others.get(v, 0) + c
        if len(self.others) > FEW_VALUES:
            self.others = None

    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0, as numpy and Evidently use)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    # --- derived views -------------------------------------------------------------------------

    def below(self) -> np.ndarray:
        """Count of values strictly below each cut."""
        return np.cumsum(self.cells[:-1]) + np.concatenate([[0], np.cumsum(self.at[:-1])])

    def psi_counts(self) -> np.ndarray:
        """Values in each PSI bin [e_i, e_i+1); values outside [min, max] count in the first or last."""
        below = self.below()[np.searchsorted(self.cuts, self.edges[1:-1])]
        return np.diff(np.concatenate([[0], below, [self.count]]))

    def support(self) -> np.ndarray:
        """Mask of the cuts that hold reference values (meaningful on an exact reference)."""
        return self.at > 0

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": self.mean if self.count else None,
            "std": self.std if self.count else None,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
            "nonFinite": self.nonfinite,
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in reference_profile.json."""
        return {
            "cuts": self.cuts.tolist(),
            "exact": self.exact,
            "at": self.at.tolist(),
            "cells": self.cells.tolist(),
            "cellSums": self.cell_sums.tolist(),
            "edges": self.edges.tolist(),
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "min": self.minimum,
            "max": self.maximum,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Sketch:
        return cls(
            cuts=np.asarray(doc["cuts"], np.float64),
            edges=np.asarray(doc["edges"], np.float64),
            exact=bool(doc["exact"]),
            at=np.asarray(doc["at"], np.int64),
            cells=np.asarray(doc["cells"], np.int64),
            cell_sums=np.asarray(doc["cellSums"], np.float64),
            count=int(doc["count"]),
            mean=float(doc["mean"]),
            m2=float(doc["m2"]),
            minimum=float(doc["min"]),
            maximum=float(doc["max"]),
        )


# --- per-column facts that choose the method -------------------------------------------------------


def is_categorical(reference: Sketch) -> bool:
    """Whole-number reference values, at most CATEGORY_LIMIT of them: what Evidently infers as categorical
    for an integer column."""
    if not reference.exact:
        return False
    values = reference.cuts[reference.support()]
    return values.size <= CATEGORY_LIMIT and bool(np.all(values == np.round(values)))


def distinct_values(reference: Sketch, current: Sketch) -> int | None:
    """How many distinct values the two hold together, or None when more than FEW_VALUES (or unknown)."""
    if not reference.exact or current.others is None:
        return None
    on_cuts = int(np.count_nonzero(reference.support() | (current.at > 0)))
    return on_cuts + len(current.others)


def auto_method(reference_rows: int, n_values: int | None, categorical: bool) -> str:
    """Evidently's default choice (see the module doc); `n_values` None means more than FEW_VALUES."""
    few = n_values is not None and n_values <= FEW_VALUES
    if reference_rows <= SMALL_REFERENCE:
        if categorical or few:
            return "chi2" if n_values is None or n_values > 2 else Z
        return "ks"
    return "jensenshannon" if categorical or few else "wasserstein"


# --- the statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Statistic:
    value: float
    p_value: float | None = None


def psi(reference: Sketch, current: Sketch) -> Statistic:
    """Population stability index on the reference's quantile bins (empty bins count as 1e-4)."""
    e = np.clip(reference.psi_counts() / max(reference.count, 1), _PSI_EPSILON, None)
    a = np.clip(current.psi_counts() / max(current.count, 1), _PSI_EPSILON, None)
    return Statistic(float(np.sum((a - e) * np.log(a / e))))


def ks(reference: Sketch, current: Sketch) -> Statistic:
    """Two-sample Kolmogorov-Smirnov, two-sided, with ks_2samp's p-value (exact up to 10,000 rows)."""
    ref_lt, cur_lt = reference.below(), current.below()
    diffs = np.concatenate(
        [ref_lt / reference.count - cur_lt / current.count,
         (ref_lt + reference.at) / reference.count - (cur_lt + current.at) / current.count]
    )
    d = float(np.abs(diffs).max()) if diffs.size else 0.0
    n1, n2 = reference.count, current.count
    if max(n1, n2) <= _KS_EXACT_MAX:
        success, d_rounded, p = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if success:
            return Statistic(float(d_rounded), float(np.clip(p, 0, 1)))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return Statistic(d, float(np.clip(sps.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1)))


def _discrete_counts(reference: Sketch, current: Sketch) -> tuple[np.ndarray, np.ndarray]:
    """Counts per reference value, and the current's on them plus one last entry with everything else
    (values the reference never had): the statistics below do not depend on how that rest splits."""
    keep = reference.support()
    cur = current.at[keep]
    return (np.append(reference.at[keep], 0).astype(np.float64),
            np.append(cur, current.count - cur.sum()).astype(np.float64))


def chi2(reference: Sketch, current: Sketch) -> Statistic:
    """Pearson's chi² of the current counts against the reference's scaled to the window (Evidently's
    chisquare test). Values the reference never had make it infinite (p = 0). A reference with more than
    CUT_LIMIT values is compared on its quantile bins instead."""
    if reference.exact:
        ref, cur = _discrete_counts(reference, current)
        if cur[-1] == 0:
            ref, cur = ref[:-1], cur[:-1]
    else:
        ref, cur = reference.psi_counts().astype(np.float64), current.psi_counts().astype(np.float64)
    expected = ref * (current.count / reference.count)
    if np.any((expected == 0) & (cur > 0)):
        return Statistic(math.inf, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = sps.chisquare(cur, expected)
    return Statistic(float(result.statistic), float(result.pvalue))


def z_test(reference: Sketch, current: Sketch) -> Statistic:
    """Evidently's two-proportion Z-test on the share of the smallest value, reference vs current."""
    support = reference.support()
    if np.count_nonzero(support) == 1 and current.at[support].sum() == current.count:
        return Statistic(0.0, 1.0)  # both constant, and the same value
    others = current.others or {}
    smallest = reference.cuts[support][0]
    if others and min(others) < smallest:  # a value only the window has comes first
        a, b = 0.0, others[min(others)] / current.count
    else:
        index = int(np.searchsorted(reference.cuts, smallest))
        a, b = reference.at[index] / reference.count, current.at[index] / current.count
    n1, n2 = reference.count, current.count
    pooled = (a * n1 + b * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (b - a) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return Statistic(float(z), float(2 * (1 - sps.norm.cdf(np.abs(z)))))


def wasserstein_distance(reference: Sketch, current: Sketch) -> float:
    """First Wasserstein distance ∫|F_ref - F_cur| dx from two sketches on the same cuts.

    Between two cuts (and beyond the outer ones) each side's values are taken as one point mass at their
    mean. That keeps ∫F over every cell exact (a value v in (a, b) adds b - v to ∫_a^b 1[v <= x] dx), so
    the result is exact wherever the two CDFs do not cross inside a cell, and it respects where the mass
    of a wide cell actually lies when they do."""
    c = reference.cuts
    nr, nc = reference.count, current.count
    a = np.concatenate([[np.nan], c])  # each cell's left end (none below the first cut)
    b = np.concatenate([c, [np.nan]])
    d_start = np.concatenate([[0.0], (reference.below() + reference.at) / nr - (current.below() + current.at) / nc])
    m_ref, m_cur = reference.cells / nr, current.cells / nc
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_ref = np.where(reference.cells > 0, reference.cell_sums / reference.cells, np.nan)
        mu_cur = np.where(current.cells > 0, current.cell_sums / current.cells, np.nan)
    mu_ref = np.where(np.isnan(mu_ref), np.where(np.isnan(a), mu_cur, a), mu_ref)
    mu_cur = np.where(np.isnan(mu_cur), np.where(np.isnan(a), mu_ref, a), mu_cur)
    p1, p2 = np.minimum(mu_ref, mu_cur), np.maximum(mu_ref, mu_cur)
    a = np.where(np.isnan(a), p1, a)
    b = np.where(np.isnan(b), p2, b)
    d_mid = d_start + np.where(mu_ref <= mu_cur, m_ref, -m_cur)
    d_end = d_start + m_ref - m_cur
    area = np.abs(d_start) * (p1 - a) + np.abs(d_mid) * (p2 - p1) + np.abs(d_end) * (b - p2)
    return float(np.nansum(area))


def wasserstein(reference: Sketch, current: Sketch) -> Statistic:
    """Wasserstein distance normalised by the reference's standard deviation (at least 0.001), as
    Evidently's `wasserstein` test."""
    return Statistic(wasserstein_distance(reference, current) / max(reference.std, _WASSERSTEIN_MIN_STD))


def count_below(s: Sketch, x: np.ndarray) -> np.ndarray:
    """How many values of `s` are below each x; inside a cell the cell's values are taken as spread
    evenly between its ends (the column's extremes for the outer cells)."""
    c, k = s.cuts, s.cuts.size
    index = np.searchsorted(c, x, side="left")
    lt = np.append(s.below(), s.count - s.cells[-1])  # below each cut, and below "+inf's cell"
    on_cut = (index < k) & (c[np.minimum(index, k - 1)] == x)
    lo = np.where(index > 0, c[np.maximum(index - 1, 0)], min(s.minimum, c[0]))
    hi = np.where(index < k, c[np.minimum(index, k - 1)], max(s.maximum, c[-1]))
    start = np.where(index > 0, lt[np.maximum(index - 1, 0)] + s.at[np.maximum(index - 1, 0)], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(np.where(hi > lo, (x - lo) / (hi - lo), 0.0), 0.0, 1.0)
    return np.where(on_cut, lt[np.minimum(index, k)], start + fraction * s.cells[index])


def jensenshannon(reference: Sketch, current: Sketch, categorical: bool = False) -> Statistic:
    """Jensen-Shannon distance (natural log) as Evidently computes it: on value counts for categorical
    columns and columns with at most 20 reference values, else on Sturges bins over both samples' range."""
    if reference.exact and (categorical or np.count_nonzero(reference.support()) <= DISCRETE_JS_LIMIT):
        ref, cur = _discrete_counts(reference, current)
        return Statistic(float(distance.jensenshannon(ref / reference.count, cur / current.count)))
    lo, hi = min(reference.minimum, current.minimum), max(reference.maximum, current.maximum)
    n = reference.count + current.count
    width = (hi - lo) / (np.log2(n) + 1.0)
    bins = int(np.ceil((hi - lo) / width)) if width else 1
    edges = np.linspace(lo, hi, bins + 1)

    def shares(s: Sketch) -> np.ndarray:
        below = count_below(s, edges[1:-1])
        cumulative = np.concatenate([[0.0], below, [float(s.count)]])
        return np.diff(cumulative) / s.count

    return Statistic(float(distance.jensenshannon(shares(reference), shares(current))))


# --- one check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool

    @property
    def score(self) -> float:
        """Drift magnitude, higher is more drift: the distance, or 1 - p for a test."""
        return 1.0 - self.p_value if self.p_value is not None else self.statistic


_STATISTICS = {"psi": psi, "ks": ks, "chi2": chi2, Z: z_test, "wasserstein": wasserstein}


def compare(
    feature: str,
    reference: Sketch,
    current: Sketch,
    method: str = "auto",
    threshold: float | None = None,
) -> FeatureResult:
    """One feature's statistic and decision. In `auto` mode each column takes its method's default
    threshold, like Evidently's preset without a threshold; otherwise `threshold` (or the default)."""
    if current.count == 0:
        raise ValueError(f"feature {feature!r} has no finite values in the window")
    categorical = is_categorical(reference)
    if method == "auto":
        method = auto_method(reference.count, distinct_values(reference, current), categorical)
        threshold = None
    elif method not in _STATISTICS and method != "jensenshannon":
        raise ValueError(f"unknown drift method {method!r} (known: {', '.join(METHODS)})")
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    if method == "jensenshannon":
        result = jensenshannon(reference, current, categorical)
    else:
        result = _STATISTICS[method](reference, current)
    if method in P_VALUE_METHODS:
        # Evidently's KS drifts at p <= threshold, its chi² and Z at p < threshold.
        p = result.p_value
        drifted = p <= threshold if method == "ks" else p < threshold
    else:
        drifted = result.value >= threshold
    return FeatureResult(feature, method, result.value, result.p_value, threshold, bool(drifted))


@dataclass(frozen=True)
class DatasetResult:
    features: list[FeatureResult]
    drift_share: float

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def detected(self) -> bool:
        """Evidently's dataset drift: the drifted share reaches drift_share."""
        return bool(self.features) and self.share >= self.drift_share

    @property
    def score(self) -> float:
        return max((f.score for f in self.features), default=0.0)


def compare_all(
    references: Mapping[str, Sketch],
    currents: Mapping[str, Sketch],
    features: Sequence[str],
    method: str = "auto",
    threshold: float | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DatasetResult:
    return DatasetResult(
        [compare(f, references[f], currents[f], method, threshold) for f in features], drift_share
    )
