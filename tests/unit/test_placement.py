from mlcycle import placement


def test_workload_placement_comes_from_the_operator_env(monkeypatch):
    monkeypatch.delenv(placement.NODE_SELECTOR_ENV, raising=False)
    monkeypatch.delenv(placement.TOLERATIONS_ENV, raising=False)
    assert placement.workload_placement() == {}
    for name, value in placement.placement_env({"pool": "cpu"}, [{"key": "k", "operator": "Exists"}]).items():
        monkeypatch.setenv(name, value)
    assert placement.workload_placement() == {"nodeSelector": {"pool": "cpu"},
                                              "tolerations": [{"key": "k", "operator": "Exists"}]}
