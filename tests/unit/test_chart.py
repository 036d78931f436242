"""The chart's generated parts match their sources: the CRDs (rendered as templates from files/crds) and
values.schema.json; values.yaml holds exactly the model's defaults."""

from pathlib import Path

import yaml

from mlcycle import chartvalues

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mlcycle"


def test_chart_crds_match_generated_crds():
    generated = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_text() for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert generated and shipped == generated, "run `make crds`"


def test_chart_has_no_helm_crds_folder():
    # Helm installs charts/*/crds/ once and never upgrades it; the CRDs are templates (templates/crds.yaml).
    assert not (CHART / "crds").exists(), "CRDs go to charts/mlcycle/files/crds (`make crds`)"


def test_values_schema_is_generated_from_the_model():
    assert (CHART / "values.schema.json").read_text() == chartvalues.render(), "run `mlcycle chart-schema`"


def test_values_yaml_holds_the_model_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chartvalues.ChartValues.model_validate(values)
    assert values == chartvalues.ChartValues().model_dump(by_alias=True, mode="json")


def test_every_object_in_the_schema_forbids_unknown_keys():
    schema = chartvalues.schema()
    objects = [schema, *schema["$defs"].values()]
    assert all(obj.get("additionalProperties") is False for obj in objects)
