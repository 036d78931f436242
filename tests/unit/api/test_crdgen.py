"""The generated CRDs are structural, documented and up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlcycle.api import crdgen

pytestmark = pytest.mark.unit

SCHEMAS = {module.KIND: crdgen.openapi_schema(model) for module, model in crdgen.KINDS}  # kind -> openAPIV3Schema


def walk(node: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every schema node with its dotted path (list items as `[]`)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def nodes() -> Iterator[tuple[str, str, dict]]:
    for kind, schema in SCHEMAS.items():
        for path, node in walk(schema):
            yield kind, path, node


def at(kind: str, path: str) -> dict:
    node = SCHEMAS[kind]
    for name in path.split("."):
        node = node["properties"][name]
    return node


@pytest.mark.parametrize("keyword", ["$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const"])
def test_no_non_structural_keywords(keyword):
    offenders = [f"{kind}{path}" for kind, path, node in nodes() if keyword in node]
    assert offenders == []


def test_uniqueItems_is_not_used_list_type_set_is():
    assert [f"{k}{p}" for k, p, n in nodes() if n.get("uniqueItems")] == []


def test_every_node_has_a_type():
    untyped = [
        f"{kind}{path}"
        for kind, path, node in nodes()
        if "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


def test_every_property_has_a_description():
    undocumented = []
    for kind, schema in SCHEMAS.items():
        for path, node in walk(schema):
            undocumented += [
                f"{kind}{path}.{n}" for n, p in node.get("properties", {}).items() if not p.get("description")
            ]
    assert undocumented == [f"{kind}.metadata" for kind in SCHEMAS]  # the apiserver forbids one there


def test_objects_with_properties_do_not_also_set_additional_properties():
    both = [f"{k}{p}" for k, p, n in nodes() if "properties" in n and "additionalProperties" in n]
    assert both == []


def test_optional_fields_are_nullable_without_a_null_default():
    dataset = at("TrainingJob", "spec.dataset.digest")
    assert dataset["nullable"] is True and "default" not in dataset
    assert "nullable" not in at("TrainingJob", "spec.dataset.uri")
    assert all(n.get("default", "") is not None for _, _, n in nodes())


def test_exclusive_bounds_use_the_openapi_v3_form():
    lr = at("TrainingJob", "spec.trainer.hyperparameters.learningRate")
    assert (lr["minimum"], lr["exclusiveMinimum"], lr["default"]) == (0, True, 0.001)
    split = at("TrainingJob", "spec.trainer.hyperparameters.validationSplit")
    assert (split["minimum"], split["maximum"], split["exclusiveMaximum"]) == (0, 1, True)


def test_nested_objects_with_defaults_default_to_empty_so_the_apiserver_fills_them():
    assert at("TrainingJob", "spec.runPolicy")["default"] == {}
    assert at("TrainingJob", "spec.trainer.model")["default"] == {}
    assert at("TrainingJob", "spec.trainer.model.hiddenLayers")["default"] == [64, 64]
    assert at("InferenceService", "spec.runtime.image")["default"] == "nvcr.io/nvidia/tritonserver:25.01-py3"


def test_quantities_are_int_or_string_with_a_pattern():
    cpu = at("TrainingJob", "spec.resources.cpu")
    assert cpu["x-kubernetes-int-or-string"] is True and "type" not in cpu and cpu["pattern"]
    assert at("TrainingJob", "spec.resources.gpus")["type"] == "integer"


def test_free_form_and_typed_maps():
    assert at("ModelVersion", "spec.source.params")["x-kubernetes-preserve-unknown-fields"] is True
    assert at("ModelVersion", "spec.metrics")["additionalProperties"] == {"type": "number"}
    preserved = sorted(f"{k}{p}" for k, p, n in nodes() if n.get("x-kubernetes-preserve-unknown-fields"))
    assert preserved == ["ModelVersion.spec.source.params"]


def test_conditions_are_a_map_list_keyed_by_type():
    for kind in SCHEMAS:
        conditions = at(kind, "status.conditions")
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_immutable_fields_have_transition_rules_on_spec():
    rules = {v["message"]: v["rule"] for v in at("ModelVersion", "spec")["x-kubernetes-validations"]}
    assert "self.modelName == oldSelf.modelName" in rules["spec.modelName is immutable"]
    assert {"spec.version is immutable", "spec.artifact is immutable"} <= rules.keys()
    tj = " ".join(v["rule"] for v in at("TrainingJob", "spec")["x-kubernetes-validations"])
    assert "oldSelf.image" in tj and "runPolicy" not in tj  # suspend stays mutable


def test_an_embedded_training_job_spec_is_not_immutable():
    template = at("InferenceService", "spec.retrain.template")
    assert "oldSelf" not in yaml.safe_dump(template)
    assert any("trainer" in v["rule"] for v in template["x-kubernetes-validations"])


def test_crd_names_subresources_and_columns():
    isvc = yaml.safe_load(crdgen.render()["mlcycle.io_inferenceservices.yaml"])
    assert isvc["metadata"]["name"] == "inferenceservices.mlcycle.io"
    assert isvc["spec"]["names"]["categories"] == ["mlcycle"]
    assert isvc["spec"]["names"]["shortNames"] == ["isvc"]
    version = isvc["spec"]["versions"][0]
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    assert "replicas" in version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_render_is_deterministic():
    assert crdgen.render() == crdgen.render()


def test_crds_folder_is_up_to_date(tmp_path: Path):
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    for path in sorted(tmp_path.iterdir()):
        committed = crdgen.DEFAULT_OUT / path.name
        assert committed.exists() and committed.read_text() == path.read_text(), "run `mlcycle crds`"
    assert crdgen.main(["--check"]) == 0


def test_check_fails_with_a_diff_when_out_of_date(tmp_path: Path, capsys):
    crdgen.main(["--out", str(tmp_path)])
    stale = tmp_path / "mlcycle.io_trainingjobs.yaml"
    stale.write_text(stale.read_text().replace("Desired state.", "Old words."))
    assert crdgen.main(["--check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert "-            description: Old words." in out.out and "mlcycle crds" in out.err
