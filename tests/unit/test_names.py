import re

import pytest

from mlcycle import names

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize("length", [63, 64, 253])
def test_child_names_of_long_names_are_dns_labels_within_the_limit_and_stable(length):
    base = "a" * (length - 1) + "b"
    for suffix, limit in (("", 63), ("canary", 63), ("drift", 52)):
        name = names.child_name(base, suffix, limit)
        assert len(name) <= limit and DNS1035.match(name)
        assert name == names.child_name(base, suffix, limit)
        assert name.endswith(f"-{suffix}") or not suffix
    assert names.child_name(base) != names.child_name(base[:-1] + "c")


def test_child_names_that_fit_are_unchanged_and_others_become_rfc1035():
    assert names.child_name("iris") == "iris" and names.child_name("iris", "canary") == "iris-canary"
    for odd in ("churn.v2", "2026-churn", "churn.v2.2026"):
        assert DNS1035.match(names.child_name(odd))
    assert names.child_name("churn.v2") != names.child_name("churn-v2") == "churn-v2"


@pytest.mark.parametrize("length", [63, 64, 253])
def test_label_values_stay_within_63_and_stay_distinct(length):
    text = "x" * (length - 4) + ".abc"
    value = names.label_value(text)
    assert len(value) <= 63 and LABEL_VALUE.match(value) and value == names.label_value(text)
    assert (value == text) is (length <= 63)
    assert names.label_value(text[:-1] + "d") != value


def test_label_value_cleans_characters_labels_cannot_hold():
    value = names.label_value("-a b/c-")
    assert LABEL_VALUE.match(value) and value.startswith("a-b-c-")
