from mlcycle.modelversion.aliases import conflicts, held_by, resolve


def mv(name, version, aliases):
    return {"metadata": {"name": name}, "spec": {"version": version, "aliases": aliases}}


def test_the_highest_ready_version_that_asks_for_an_alias_holds_it():
    versions = [mv("m-v1", 1, ["production", "stable"]), mv("m-v3", 3, ["production"]), mv("m-v2", 2, ["production"])]
    holders = resolve(versions, {"m-v1", "m-v2", "m-v3"})
    assert holders == {"production": "m-v3", "stable": "m-v1"}
    assert held_by(holders, "m-v1") == ["stable"]
    assert conflicts(versions[0], holders) == {"production": "m-v3"}
    assert conflicts(versions[1], holders) == {}


def test_versions_that_are_not_ready_do_not_take_aliases():
    versions = [mv("m-v1", 1, ["production"]), mv("m-v2", 2, ["production"])]
    assert resolve(versions, {"m-v1"}) == {"production": "m-v1"}
    assert resolve(versions, set()) == {}


def test_a_duplicate_version_number_is_still_resolved_deterministically():
    versions = [mv("b", 1, ["p"]), mv("a", 1, ["p"])]
    assert resolve(versions, {"a", "b"}) == resolve(list(reversed(versions)), {"a", "b"}) == {"p": "b"}
