import re

import numpy as np
import pytest

from mlcycle.drift import report, stats

pytestmark = pytest.mark.unit


def sketches(reference, current):
    ref = stats.Sketch.of_reference(np.asarray(reference, float))
    cur = ref.empty_like()
    cur.add(np.asarray(current, float))
    return ref, cur


def test_a_column_with_few_values_is_charted_as_shares_per_value_with_the_rest_as_other():
    chart = report.distribution(*sketches([0, 1, 1, 2], [1, 1, 2, 7]))
    assert chart["kind"] == "bars" and chart["values"] == [0.0, 1.0, 2.0, "other"]
    assert chart["reference"] == [0.25, 0.5, 0.25, 0.0] and chart["current"] == [0.0, 0.5, 0.25, 0.25]


def test_a_continuous_column_is_charted_as_densities_on_common_bins():
    rng = np.random.default_rng(0)
    chart = report.distribution(*sketches(rng.normal(size=3000), rng.normal(1, 1, 2000)))
    edges = np.asarray(chart["edges"])
    assert chart["kind"] == "histogram" and len(chart["reference"]) == len(edges) - 1 == 40
    for side in ("reference", "current"):
        assert np.sum(np.asarray(chart[side]) * np.diff(edges)) == pytest.approx(0.99, abs=0.02)


def test_the_html_report_embeds_one_chart_per_feature_and_needs_no_network():
    rng = np.random.default_rng(1)
    refs, curs = {}, {}
    for name, (a, b) in {"x": (rng.normal(size=2000), rng.normal(1, 1, 900)),
                         "c": (rng.integers(0, 3, 2000), rng.integers(0, 3, 900))}.items():
        refs[name], curs[name] = sketches(a, b)
    result = stats.compare_all(refs, curs, ["x", "c"])
    doc = report.report_document(result="DriftDetected", message="1 of 2 <features>", check_time="t",
                                 context={"title": "shop/iris"}, dataset=result, references=refs, currents=curs)
    assert doc["features"]["x"]["drifted"] and doc["driftedFeatures"] == ["x"]
    page = report.render_html(doc, {f: report.distribution(refs[f], curs[f]) for f in refs})
    assert page.count("<img") == 2 and page.count("data:image/png;base64,") == 2
    assert "&lt;features&gt;" in page and not report_fetches(page)
    assert report_fetches("<img src='http://cdn/x.png'><style>a{background:url(//x)}</style><script>")


def report_fetches(page: str) -> list[str]:
    """Every place an HTML page could load something from elsewhere: scripts, links, non-data sources."""
    sources = re.findall(r"""(?:src|href)=['"]([^'"]*)""", page) + re.findall(r"url\(([^)]*)\)", page)
    return [s for s in sources if not s.startswith("data:")] + re.findall(r"<(?:script|link|iframe)", page)


def test_infinite_statistics_are_written_as_strings_in_json():
    assert report.json_number(float("inf")) == "inf" and report.json_number(0.5) == 0.5
    assert report.json_number(None) is None


def test_a_page_charts_at_most_chart_limit_features_drifted_first(monkeypatch):
    rng = np.random.default_rng(2)
    refs, curs = {}, {}
    for name, shift in {"a_calm": 0.0, "b_shifted": 2.0}.items():
        refs[name], curs[name] = sketches(rng.normal(size=2000), rng.normal(shift, 1, 900))
    result = stats.compare_all(refs, curs, ["a_calm", "b_shifted"])
    doc = report.report_document(result="NoDrift", message="", check_time="t", context={}, dataset=result,
                                 references=refs, currents=curs)
    monkeypatch.setattr(report, "CHART_LIMIT", 1)
    page = report.render_html(doc, {f: report.distribution(refs[f], curs[f]) for f in refs})
    assert page.count("<img") == 1 and "alt='b_shifted" in page and "Charts of 1 more features" in page
