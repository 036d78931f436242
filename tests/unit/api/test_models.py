"""The pydantic models: camelCase on the wire, snake_case in Python, constraints enforced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlcycle.api import (
    API_VERSION,
    INFERENCESERVICE_PLURAL,
    InferenceService,
    ModelVersion,
    TrainingJob,
    TrainingJobSpec,
    TrainingJobStatus,
)
from mlcycle.api.base import CRON_PATTERN, S3_URI_PATTERN
from mlcycle.api.crdgen import DEFAULT_OUT

pytestmark = pytest.mark.unit

EXAMPLES = sorted((DEFAULT_OUT / "examples").glob("*.yaml"))
MODELS = {"TrainingJob": TrainingJob, "ModelVersion": ModelVersion, "InferenceService": InferenceService}


def minimal_spec(**extra) -> dict:
    return {
        "trainer": {"task": "regression", "labelColumn": "y"},
        "dataset": {"uri": "s3://data/x.csv"},
        "output": {"uri": "s3://models/x/"},
        "storage": {"secretRef": {"name": "s3"}},
        **extra,
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path: Path):
    doc = yaml.safe_load(path.read_text())
    obj = MODELS[doc["kind"]].model_validate(doc)
    again = obj.to_api()
    assert MODELS[doc["kind"]].model_validate(again) == obj
    # Everything the example says survives (the dump adds defaults on top).
    assert _contains(again, doc)


def _contains(big, small) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):  # lists of objects get their items' defaults too
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return big == small


def test_examples_cover_all_three_kinds():
    assert {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES} == set(MODELS)


def test_defaults_match_the_trainer_contract():
    spec = TrainingJobSpec.model_validate(minimal_spec())
    assert spec.image is None  # the operator's image (MLCYCLE_IMAGE from the chart) is used
    assert spec.trainer.model.hidden_layers == [64, 64] and spec.trainer.model.dropout == 0
    hp = spec.trainer.hyperparameters
    assert (hp.epochs, hp.batch_size, hp.learning_rate) == (10, 64, 0.001)
    assert (hp.seed, hp.validation_split) == (42, 0.2)
    assert (spec.workers, spec.procs_per_worker, spec.resources.gpus) == (1, 1, 0)
    assert (spec.run_policy.backoff_limit, spec.run_policy.suspend) == (3, False)
    assert spec.dataset.format == "csv"
    assert spec.trainer.export_formats == ["torchscript"] and spec.trainer.precision == "fp32"


def test_wire_names_are_camel_case_and_python_names_work_too():
    wire_in = minimal_spec(procsPerWorker=2, runPolicy={"ttlSecondsAfterFinished": 60})
    spec = TrainingJobSpec.model_validate(wire_in)
    wire = spec.to_api()
    assert wire["procsPerWorker"] == 2 and wire["runPolicy"]["ttlSecondsAfterFinished"] == 60
    assert wire["trainer"]["hyperparameters"]["learningRate"] == 0.001
    assert "procs_per_worker" not in wire
    by_name = TrainingJobSpec(**{**minimal_spec(), "procs_per_worker": 2})
    assert by_name.procs_per_worker == 2


def test_to_api_leaves_unset_optionals_out_and_writes_rfc3339_times():
    status = TrainingJobStatus.model_validate(
        {"phase": "Running", "startTime": "2026-11-26T12:00:00Z", "workers": {"active": 2}}
    )
    assert status.to_api() == {
        "phase": "Running",
        "startTime": "2026-11-26T12:00:00Z",
        "workers": {"active": 2, "ready": 0, "succeeded": 0, "failed": 0},
    }


def test_top_level_models_know_their_api_version_and_kind():
    isvc = InferenceService.model_validate(
        {"spec": {"model": {"name": "m", "alias": "prod"}, "storage": {"secretRef": {"name": "s3"}}}}
    )
    assert (isvc.api_version, isvc.kind) == (API_VERSION, "InferenceService")
    assert INFERENCESERVICE_PLURAL == "inferenceservices"


@pytest.mark.parametrize(
    "change",
    [
        {"workers": 0},
        {"resources": {"gpus": "1.5"}},
        {"resources": {"gpus": -1}},
        {"resources": {"memory": "16GB"}},
        {"dataset": {"uri": "http://data/x.csv"}},
        {"dataset": {"uri": "s3://data/x.csv", "digest": "md5:abc"}},
        {"registerModel": {"name": "Churn_Model"}},
        {"trainer": {"task": "clustering", "labelColumn": "y"}},
        {"trainer": {"task": "regression", "labelColumn": "y", "hyperparameters": {"validationSplit": 0}}},
        {"trainer": {"task": "regression", "labelColumn": "y", "features": ["x", "y"]}},
        {"trainer": {"task": "regression", "labelColumn": "y", "exportFormats": ["onnx", "onnx"]}},
        {"trainer": {"task": "regression", "labelColumn": "y", "exportFormats": ["tensorrt"]}},
        {"unknownField": 1},
    ],
    ids=lambda c: next(iter(c)),
)
def test_invalid_specs_are_refused_by_the_model(change):
    with pytest.raises(ValidationError):
        TrainingJobSpec.model_validate(minimal_spec(**change))


@pytest.mark.parametrize(
    ("schedule", "valid"),
    [
        ("0 * * * *", True),
        ("*/15 2-4 1,15 * 1-5", True),
        ("@daily", True),
        ("0 0 31 12 6", True),
        ("0 0 * * MON", True),
        ("0 0 * * mon-fri", True),
        ("0 0 1 JAN,jul ?", True),
        ("5/15 * * * *", True),
        ("@every 1h30m", True),
        ("@midnight", True),
        ("0 0 31 12 7", False),
        ("*/0 * * * *", False),
        ("0 0 * * MONDAY", False),
        ("TZ=UTC 0 * * * *", False),
        ("* * * *", False),
        ("60 * * * *", False),
        ("0 24 * * *", False),
        ("0 0 0 * *", False),
        ("0 0 * 13 *", False),
        ("every hour", False),
    ],
)
def test_cron_pattern(schedule, valid):
    assert (re.fullmatch(CRON_PATTERN, schedule) is not None) is valid


@pytest.mark.parametrize(
    ("uri", "valid"),
    [("s3://models/a/b.pt", True), ("s3://my.bucket-1", True), ("s3://A/x", False), ("gs://b/x", False)],
)
def test_s3_uri_pattern(uri, valid):
    assert (re.fullmatch(S3_URI_PATTERN, uri) is not None) is valid
