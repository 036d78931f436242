"""The Helm chart ships the same CRDs as crds/ (Helm installs charts/mlcycle/crds/ before the release)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_chart_crds_match_generated_crds():
    generated = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (ROOT / "charts" / "mlcycle" / "crds").glob("*.yaml")}
    assert generated and shipped == generated, "run `make crds`"


def test_chart_values_and_metadata_parse():
    chart = yaml.safe_load((ROOT / "charts" / "mlcycle" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "mlcycle" / "values.yaml").read_text())
    assert chart["name"] == "mlcycle" and values["metrics"]["port"] and values["healthPort"]
