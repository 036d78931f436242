"""The canary split: validation of the traffic document and which requests go to the canary."""

from __future__ import annotations

import pytest

from mlcycle.workloads.agent_traffic import InvalidTraffic, Splitter, Traffic

pytestmark = pytest.mark.unit

CANARY = "http://iris-canary.ns:8080"


@pytest.mark.parametrize("percent", [0, 1, 5, 20, 33, 50, 99, 100])
def test_splitter_sends_exactly_the_percent_of_every_hundred(percent):
    splitter = Splitter(Traffic(CANARY, percent, "iris-v2"))
    for _ in range(3):
        assert sum(splitter.to_canary() for _ in range(100)) == percent


def test_splitter_spreads_the_canary_requests_evenly():
    splitter = Splitter(Traffic(CANARY, 20, "iris-v2"))
    picks = [i for i in range(100) if splitter.to_canary()]
    assert [b - a for a, b in zip(picks, picks[1:], strict=False)] == [5] * 19


def test_set_changes_the_split_at_once():
    splitter = Splitter(Traffic(CANARY, 100, "iris-v2"))
    assert splitter.to_canary()
    splitter.set(Traffic())
    assert not any(splitter.to_canary() for _ in range(100))


def test_traffic_round_trips_through_json():
    doc = {"canaryUrl": CANARY, "canaryPercent": 25, "canaryModelVersion": "iris-v2"}
    assert Traffic.from_json(doc).to_json() == doc
    assert Traffic.from_json({}).to_json() == {"canaryUrl": None, "canaryPercent": 0, "canaryModelVersion": None}


@pytest.mark.parametrize("doc, message", [
    ({"canaryPercent": 10}, "needs a canaryUrl"),
    ({"canaryUrl": CANARY, "canaryPercent": 101}, "0 to 100"),
    ({"canaryUrl": CANARY, "canaryPercent": 2.5}, "integer"),
    ({"canaryUrl": CANARY, "canaryPercent": True}, "integer"),
    ({"canaryUrl": "ftp://x", "canaryPercent": 1}, "http"),
    ({"canaryUrl": "http://x/v2/models", "canaryPercent": 1}, "http"),
    ({"canaryWeight": 5}, "unknown fields: canaryWeight"),
    ([], "JSON object"),
])
def test_bad_traffic_is_refused(doc, message):
    with pytest.raises(InvalidTraffic, match=message):
        Traffic.from_json(doc)


def test_traffic_from_env():
    env = {"MLCYCLE_CANARY_URL": CANARY, "MLCYCLE_CANARY_PERCENT": "20", "MLCYCLE_CANARY_MODEL_VERSION": "iris-v2"}
    assert Traffic.from_env(env) == Traffic(CANARY, 20, "iris-v2")
    assert Traffic.from_env({}) == Traffic()
    with pytest.raises(InvalidTraffic, match="integer"):
        Traffic.from_env({"MLCYCLE_CANARY_PERCENT": "x"})
