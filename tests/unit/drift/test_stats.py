"""Each statistic against scipy's implementation on the raw data, and `auto`'s choice per column."""

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from mlcycle.drift import stats

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(20261126)
SMALL_REF = RNG.normal(size=800)  # <= 1,000 distinct values: the sketch is exact
SHIFTED = RNG.normal(0.2, 1.1, size=5000)
BIG_REF = RNG.lognormal(size=100_000)  # quantile cuts
BIG_CUR = RNG.lognormal(0.1, 1.0, size=200_000)
CATEGORIES = RNG.integers(0, 5, size=3000).astype(float)
CATEGORIES_CUR = RNG.choice(5, size=2000, p=[0.3, 0.2, 0.2, 0.2, 0.1]).astype(float)


def sketches(reference, current, batches: int = 5):
    ref = stats.Sketch.of_reference(reference)
    cur = ref.empty_like()
    for part in np.array_split(current, batches):  # a window arrives in batches
        cur.add(part)
    return ref, cur


def value_counts(reference, current):
    keys = np.union1d(reference, current)
    return (np.array([(reference == k).sum() for k in keys], float),
            np.array([(current == k).sum() for k in keys], float))


@pytest.mark.parametrize("current", [SHIFTED, RNG.normal(0.05, 1, size=30_000)], ids=["exact-p", "asymptotic-p"])
def test_ks_equals_scipy_ks_2samp(current):
    result = stats.ks(*sketches(SMALL_REF, current))
    expected = sps.ks_2samp(SMALL_REF, current)
    assert result.value == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_on_a_quantile_sketch_is_within_a_thousandth():
    result = stats.ks(*sketches(BIG_REF, BIG_CUR))
    assert result.value == pytest.approx(sps.ks_2samp(BIG_REF, BIG_CUR).statistic, abs=1e-3)


@pytest.mark.parametrize(("reference", "current", "rel"), [(SMALL_REF, SHIFTED, 2e-3), (BIG_REF, BIG_CUR, 1e-2)],
                         ids=["exact", "quantiles"])
def test_wasserstein_is_scipys_normalised_by_the_reference_std(reference, current, rel):
    result = stats.wasserstein(*sketches(reference, current))
    expected = sps.wasserstein_distance(reference, current) / np.std(reference)
    assert result.value == pytest.approx(expected, rel=rel)


def test_wasserstein_of_values_beyond_the_reference_range_is_exact():
    reference = np.arange(10.0)
    current = reference + 100.0  # everything right of the reference's last cut
    result = stats.wasserstein_distance(*sketches(reference, current))
    assert result == pytest.approx(sps.wasserstein_distance(reference, current))


def test_chi2_is_scipys_chisquare_on_the_reference_counts_scaled_to_the_window():
    ref_counts, cur_counts = value_counts(CATEGORIES, CATEGORIES_CUR)
    expected = sps.chisquare(cur_counts, ref_counts * len(CATEGORIES_CUR) / len(CATEGORIES))
    result = stats.chi2(*sketches(CATEGORIES, CATEGORIES_CUR))
    assert result.value == pytest.approx(expected.statistic) and result.p_value == pytest.approx(expected.pvalue)


def test_chi2_of_a_category_the_reference_never_had_is_certain_drift():
    result = stats.chi2(*sketches(CATEGORIES, np.append(CATEGORIES_CUR, 7.0)))
    assert result.p_value == 0.0


def test_z_test_is_the_two_proportion_test_on_the_smallest_value():
    reference = (RNG.random(900) < 0.5).astype(float)
    current = (RNG.random(1500) < 0.6).astype(float)
    p1, p2 = (reference != 0).mean(), (current != 0).mean()
    pooled = (p1 * 900 + p2 * 1500) / 2400
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 900 + 1 / 1500))
    result = stats.z_test(*sketches(reference, current))
    assert abs(result.value) == pytest.approx(abs(z)) and result.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert stats.z_test(*sketches(np.ones(10), np.ones(20))).p_value == 1.0


def test_jensenshannon_on_value_counts_equals_scipy():
    ref_counts, cur_counts = value_counts(CATEGORIES, np.append(CATEGORIES_CUR, [7.0, 8.0]))
    expected = distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    result = stats.jensenshannon(*sketches(CATEGORIES, np.append(CATEGORIES_CUR, [7.0, 8.0])), categorical=True)
    assert result.value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("reference", "current"), [(SMALL_REF, SHIFTED), (BIG_REF, BIG_CUR)], ids=["exact", "quantiles"]
)
def test_jensenshannon_of_a_continuous_column_uses_sturges_bins_over_both(reference, current):
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    expected = distance.jensenshannon(np.histogram(reference, edges)[0] / len(reference),
                                      np.histogram(current, edges)[0] / len(current))
    result = stats.jensenshannon(*sketches(reference, current))
    assert result.value == pytest.approx(expected, rel=0.03)


def bin_counts(values, edges):
    """Counts in [e_i, e_i+1), values outside [min, max] in the end bins: PSI's binning, on raw data."""
    return np.bincount(np.searchsorted(edges[1:-1], values, side="right"), minlength=len(edges) - 1)


def test_psi_on_the_reference_quantile_bins():
    ref, cur = sketches(SMALL_REF, SHIFTED)
    e = bin_counts(SMALL_REF, ref.edges) / len(SMALL_REF)
    a = bin_counts(SHIFTED, ref.edges) / len(SHIFTED)
    assert stats.psi(ref, cur).value == pytest.approx(np.sum((a - e) * np.log(a / e)))
    assert stats.psi(*sketches(SMALL_REF, SMALL_REF)).value == pytest.approx(0.0)
    assert stats.psi(*sketches(SMALL_REF, RNG.normal(1.0, 1.0, 5000))).value > 0.25


def test_psi_edges_collapse_repeated_quantiles_and_outliers_count_in_the_end_bins():
    assert stats.psi_edges(np.arange(100.0), bins=4).tolist() == [0.0, 24.75, 49.5, 74.25, 99.0]
    assert stats.psi_edges(np.full(7, 3.5)).tolist() == [3.5, 3.5]
    constant, cur = sketches(np.full(7, 3.5), np.array([1.0, 3.5, 9.0]))
    assert constant.psi_counts().tolist() == [7] and cur.psi_counts().tolist() == [3]
    ref, cur = sketches(np.arange(100.0), np.array([-5.0, 0, 24.75, 50, 99, 1000]))
    assert cur.psi_counts().tolist() == bin_counts(np.array([-5.0, 0, 24.75, 50, 99, 1000]), ref.edges).tolist()


def test_non_finite_values_are_left_out_and_counted():
    ref, cur = sketches(SMALL_REF, np.append(SHIFTED, [np.nan, np.inf]))
    assert cur.count == len(SHIFTED) and cur.nonfinite == 2
    assert stats.ks(ref, cur).value == pytest.approx(sps.ks_2samp(SMALL_REF, SHIFTED).statistic)


def test_sketch_moments_do_not_depend_on_batching():
    ref, cur = sketches(SMALL_REF, SHIFTED, batches=17)
    assert cur.mean == pytest.approx(SHIFTED.mean()) and cur.std == pytest.approx(SHIFTED.std())
    assert (cur.minimum, cur.maximum) == (SHIFTED.min(), SHIFTED.max())


# Evidently's _get_default_stattest: (reference rows, distinct values in both, categorical) -> method.
@pytest.mark.parametrize(
    ("rows", "n_values", "categorical", "method"),
    [
        (1000, None, False, "ks"),
        (1000, 6, False, "ks"),
        (1000, 5, False, "chi2"),
        (1000, 3, False, "chi2"),
        (1000, 2, False, "z"),
        (1000, 1, False, "z"),
        (1000, 8, True, "chi2"),
        (1000, 2, True, "z"),
        (1001, None, False, "wasserstein"),
        (1001, 6, False, "wasserstein"),
        (1001, 5, False, "jensenshannon"),
        (1001, 2, False, "jensenshannon"),
        (1001, 8, True, "jensenshannon"),
        (100_000, 2, True, "jensenshannon"),
    ],
)
def test_auto_chooses_like_evidentlys_data_drift_preset(rows, n_values, categorical, method):
    assert stats.auto_method(rows, n_values, categorical) == method


def test_categorical_columns_are_whole_numbers_with_at_most_ten_values():
    assert stats.is_categorical(stats.Sketch.of_reference(CATEGORIES))
    assert not stats.is_categorical(stats.Sketch.of_reference(CATEGORIES + 0.5))
    assert not stats.is_categorical(stats.Sketch.of_reference(np.arange(11.0)))


def test_distinct_values_count_both_sides_up_to_five():
    ref, cur = sketches(np.array([0.0, 1.0, 1.0]), np.array([1.0, 2.0, 2.0, 3.0]))
    assert stats.distinct_values(ref, cur) == 4
    ref, cur = sketches(np.array([0.0, 1.0]), np.arange(10.0))
    assert stats.distinct_values(ref, cur) is None


def test_compare_decides_by_method_and_threshold():
    ref, cur = sketches(SMALL_REF, SHIFTED)
    auto = stats.compare("x", ref, cur)
    assert (auto.method, auto.threshold, auto.drifted) == ("ks", 0.05, True)
    same = stats.compare("x", *sketches(SMALL_REF, SMALL_REF))
    assert not same.drifted and same.p_value == pytest.approx(1.0)
    psi = stats.compare("x", ref, cur, "psi", threshold=10.0)
    assert psi.method == "psi" and psi.threshold == 10.0 and not psi.drifted


def test_dataset_drift_when_the_drifted_share_reaches_drift_share():
    refs = {"a": stats.Sketch.of_reference(SMALL_REF), "b": stats.Sketch.of_reference(SMALL_REF)}
    curs = {name: ref.empty_like() for name, ref in refs.items()}
    curs["a"].add(SHIFTED)
    curs["b"].add(SMALL_REF)
    result = stats.compare_all(refs, curs, ["a", "b"])
    assert result.drifted == ["a"] and result.share == 0.5 and result.detected
    assert not stats.compare_all(refs, curs, ["a", "b"], drift_share=0.6).detected
