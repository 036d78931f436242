import json

import numpy as np
import pytest

from mlcycle.drift import stats
from mlcycle.workloads import profile

pytestmark = pytest.mark.unit


def test_reference_profile_has_bins_counts_a_sketch_and_a_bounded_seeded_sample():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(1500, 2))
    labels = np.where(features[:, 0] > 0, "b", "a")
    doc = profile.reference_profile(features, ["f1", "f2"], labels=labels, classes=["a", "b"], seed=7)
    assert doc["version"] == 2 and doc["rows"] == 1500 and set(doc["features"]) == {"f1", "f2"}
    f1 = doc["features"]["f1"]
    assert len(f1["edges"]) == 11 and sum(f1["counts"]) == 1500
    assert max(f1["counts"]) - min(f1["counts"]) <= 1  # equal-frequency bins
    assert f1["sketch"]["count"] == 1500 and not f1["sketch"]["exact"] and 1001 <= len(f1["sketch"]["cuts"]) <= 1111
    assert len(doc["sample"]["rows"]) == 1000 and doc["sample"]["columns"] == ["f1", "f2"]
    assert doc["label"] == {"classes": ["a", "b"], "counts": [int((labels == "a").sum()), int((labels == "b").sum())]}
    again = profile.reference_profile(features, ["f1", "f2"], labels=labels, classes=["a", "b"], seed=7)
    assert again["sample"] == doc["sample"]


def test_reference_sketches_round_trip_through_json():
    features = np.random.default_rng(3).normal(size=(300, 2))
    doc = json.loads(json.dumps(profile.reference_profile(features, ["a", "b"])))
    sketches = profile.reference_sketches(doc)
    direct = stats.Sketch.of_reference(features[:, 1])
    assert sketches["b"].exact and sketches["b"].count == 300
    assert np.array_equal(sketches["b"].cuts, direct.cuts) and np.array_equal(sketches["b"].at, direct.at)
    assert sketches["b"].std == pytest.approx(features[:, 1].std())


def test_a_version_1_profile_is_read_from_its_sample():
    features = np.random.default_rng(4).normal(size=(400, 2))
    doc = profile.reference_profile(features, ["a", "b"])
    for f in doc["features"].values():
        del f["sketch"]
    doc["version"] = 1
    sketches = profile.reference_sketches(doc)
    assert sketches["a"].count == 400 and sketches["a"].exact  # the sample holds every row
    assert sketches["a"].psi_counts().tolist() == doc["features"]["a"]["counts"]
