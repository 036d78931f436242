"""The Argo CD health checks and actions (charts/mlcycle/argocd) in Lua 5.1 on objects recorded from the e2e runs
(TrainingJob, ModelVersion; InferenceService's are written from its API's status fields, rollout included), Argo CD's
health_test.yaml style; and the argocd-cm snippet is generated from the scripts."""

from pathlib import Path
from typing import get_args

import pytest
import yaml

from argocd_lua import action, discovery, health
from mlcycle.api.inferenceservice import InferenceServiceStatus
from mlcycle.api.labels import RETRAIN_REQUESTED_ANNOTATION, ROLLOUT_ACTION_ANNOTATION
from mlcycle.api.modelversion import ModelVersionStatus
from mlcycle.api.trainingjob import TrainingJobStatus
from mlcycle.localdev import argocd

TESTDATA = argocd.CHART / "argocd" / "testdata"
PHASES = {"TrainingJob": TrainingJobStatus, "ModelVersion": ModelVersionStatus,
          "InferenceService": InferenceServiceStatus}


def cases():
    for kind in argocd.KINDS:
        for case in yaml.safe_load((TESTDATA / kind / "health_test.yaml").read_text())["tests"]:
            yield pytest.param(kind, case, id=f"{kind}-{case['inputPath']}")


def load(kind: str, name: str) -> dict:
    return yaml.safe_load((TESTDATA / kind / name).read_text())


@pytest.mark.parametrize("kind, case", list(cases()))
def test_health_of_each_recorded_object(kind, case):
    assert health(kind, load(kind, case["inputPath"])) == case["healthStatus"]


@pytest.mark.parametrize("kind", argocd.KINDS)
def test_every_phase_of_every_kind_has_a_recorded_object(kind):
    phases = set(get_args(get_args(PHASES[kind].model_fields["phase"].annotation)[0]))
    recorded = {load(kind, p.name)["status"]["phase"] for p in (TESTDATA / kind).glob("*.yaml")
                if p.name != "health_test.yaml"}
    # A ModelVersion is Pending only before its first status write, which the operator makes Verifying at once.
    assert phases - recorded <= ({"Pending"} if kind == "ModelVersion" else set())


def test_an_object_without_status_is_progressing():
    obj = load("TrainingJob", "pending.yaml")
    del obj["status"]
    assert health("TrainingJob", obj) == {"status": "Progressing", "message": "Waiting for the mlcycle operator"}


def test_discovery_offers_retrain_with_a_template_and_promote_abort_during_a_canary():
    serving, canary = load("InferenceService", "ready.yaml"), load("InferenceService", "canary.yaml")
    assert discovery(serving) == {"retrain": {"disabled": False}, "promote": {"disabled": True},
                                  "abort": {"disabled": True}}
    assert discovery(canary)["promote"] == discovery(canary)["abort"] == {"disabled": False}
    paused, aborted = load("InferenceService", "rollout-paused.yaml"), load("InferenceService", "rollout-aborted.yaml")
    assert discovery(paused)["promote"] == {"disabled": False} and discovery(aborted)["promote"] == {"disabled": True}
    del serving["spec"]["retrain"]
    assert discovery(serving)["retrain"] == {"disabled": True}


def test_actions_only_annotate_never_touch_spec():
    obj = load("InferenceService", "canary.yaml")
    retrained = action("retrain", obj)
    assert retrained["spec"] == obj["spec"]
    assert retrained["metadata"]["annotations"][RETRAIN_REQUESTED_ANNOTATION].endswith("Z")
    for name in ("promote", "abort"):
        assert action(name, obj)["metadata"]["annotations"] == {ROLLOUT_ACTION_ANNOTATION: name}


def test_the_argocd_cm_snippet_is_generated_from_the_scripts():
    assert Path(argocd.SNIPPET).read_text() == argocd.render(), "run `python -m mlcycle.localdev.argocd`"
    data = yaml.safe_load(argocd.render())["data"]
    assert data["resource.customizations.health.mlcycle.io_TrainingJob"] == argocd.health_script("TrainingJob")
    actions = yaml.safe_load(data["resource.customizations.actions.mlcycle.io_InferenceService"])
    assert [d["name"] for d in actions["definitions"]] == ["retrain", "promote", "abort"]
