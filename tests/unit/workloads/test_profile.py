import numpy as np
import pytest

from mlcycle.workloads import profile

pytestmark = pytest.mark.unit


def test_quantile_edges_split_uniform_data_into_equal_bins():
    values = np.arange(100, dtype=float)  # 0..99
    edges = profile.quantile_edges(values, bins=4)
    assert edges == [0.0, 24.75, 49.5, 74.25, 99.0]
    assert profile.bin_counts(values, edges) == [25, 25, 25, 25]


def test_repeated_quantiles_collapse_and_constant_columns_get_one_bin():
    assert profile.quantile_edges(np.array([1, 1, 1, 1, 2]), bins=4) == [1.0, 2.0]
    edges = profile.quantile_edges(np.full(7, 3.5))
    assert edges == [3.5, 3.5]
    assert profile.bin_counts(np.full(7, 3.5), edges) == [7]


def test_bin_counts_put_out_of_range_values_in_the_end_bins():
    edges = [0.0, 1.0, 2.0, 3.0]
    assert profile.bin_counts(np.array([-5, 0, 0.5, 1, 2.5, 3, 99]), edges) == [3, 1, 3]


def test_reference_profile_has_bins_counts_and_a_bounded_seeded_sample():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1500, 2))
    labels = np.where(features[:, 0] > 0, "b", "a")
    doc = profile.reference_profile(features, ["f1", "f2"], labels=labels, classes=["a", "b"], seed=7)
    assert doc["rows"] == 1500 and set(doc["features"]) == {"f1", "f2"}
    f1 = doc["features"]["f1"]
    assert len(f1["edges"]) == 11 and sum(f1["counts"]) == 1500
    assert max(f1["counts"]) - min(f1["counts"]) <= 1  # equal-frequency bins
    assert len(doc["sample"]["rows"]) == 1000 and doc["sample"]["columns"] == ["f1", "f2"]
    assert doc["label"] == {"classes": ["a", "b"], "counts": [int((labels == "a").sum()), int((labels == "b").sum())]}
    again = profile.reference_profile(features, ["f1", "f2"], labels=labels, classes=["a", "b"], seed=7)
    assert again["sample"] == doc["sample"]


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=5000)
    edges = profile.quantile_edges(reference)
    expected = profile.bin_counts(reference, edges)
    assert profile.psi(expected, expected) == pytest.approx(0.0)
    same = profile.psi(expected, profile.bin_counts(rng.normal(size=5000), edges))
    shifted = profile.psi(expected, profile.bin_counts(rng.normal(1.0, 1.0, size=5000), edges))
    assert same < 0.05 < 0.25 < shifted


def test_ks_statistic_measures_the_largest_cdf_gap():
    assert profile.ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert profile.ks_statistic(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert profile.ks_statistic(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])) == 0.5
