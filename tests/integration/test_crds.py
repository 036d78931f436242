"""The CRDs on a real kube-apiserver: they install, the examples apply, and bad objects are refused at
apply time with the offending field named in the error."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable

import pytest
import yaml

from mlcycle.api import crdgen

pytestmark = pytest.mark.integration

CRDS = [f"{plural}.mlcycle.io" for plural in ("trainingjobs", "modelversions", "inferenceservices")]
EXAMPLES = sorted((crdgen.DEFAULT_OUT / "examples").glob("*.yaml"))
DELETE = object()  # marks a field to remove in `edited`

STORAGE = {"secretRef": {"name": "s3-credentials"}}
TRAINING_JOB = {
    "apiVersion": "mlcycle.io/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "tj"},
    "spec": {
        "trainer": {"task": "classification", "labelColumn": "label"},
        "dataset": {"uri": "s3://data/train.csv"},
        "output": {"uri": "s3://models/m/"},
        "resources": {"gpus": 1},
        "storage": STORAGE,
    },
}
MODEL_VERSION = {
    "apiVersion": "mlcycle.io/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "mv"},
    "spec": {
        "modelName": "m",
        "version": 1,
        "artifact": {"uri": "s3://models/m/1/model.pt", "format": "torchscript"},
        "storage": STORAGE,
    },
}
INFERENCE_SERVICE = {
    "apiVersion": "mlcycle.io/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "isvc"},
    "spec": {
        "model": {"name": "m", "alias": "production"},
        "logging": {"destination": "s3://logs/m/"},
        "monitoring": {"drift": {"schedule": "0 * * * *"}},
        "storage": STORAGE,
    },
}


def edited(base: dict, **changes) -> dict:
    """A copy of `base` with dotted paths (`spec__resources__gpus`) set, or removed when DELETE."""
    doc = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return doc


@pytest.fixture(scope="module")
def kubectl(cluster) -> Callable:
    """Install the CRDs (server-side apply) and wait until they are Established."""
    result = cluster.kubectl_run(
        "apply", "--server-side", "--force-conflicts", "-f", str(crdgen.DEFAULT_OUT), check=False
    )
    assert result.returncode == 0, result.stderr
    cluster.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    return cluster.kubectl_run


@pytest.fixture(scope="module")
def ns(kubectl):
    name = f"crds-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(kubectl, ns: str, doc: dict, *flags: str):
    return kubectl("apply", "-n", ns, *flags, "-f", "-", input=yaml.safe_dump(doc), check=False)


def get(kubectl, ns: str, doc: dict) -> dict:
    out = kubectl("get", "-n", ns, doc["kind"].lower(), doc["metadata"]["name"], "-o", "json").stdout
    return json.loads(out)


def delete(kubectl, ns: str, doc: dict) -> None:
    kubectl("delete", "-n", ns, doc["kind"].lower(), doc["metadata"]["name"], "--wait=false", check=False)


def eventually(check: Callable[[], bool], timeout: float = 30) -> bool:
    """Discovery and the published OpenAPI follow a new CRD by a few seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def test_crds_are_established(kubectl):
    for name in CRDS:
        crd = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
        assert "NonStructuralSchema" not in conditions


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_applies_and_deletes(kubectl, ns, path):
    doc = yaml.safe_load(path.read_text())
    result = apply(kubectl, ns, doc)
    assert result.returncode == 0, result.stderr
    stored = get(kubectl, ns, doc)
    assert stored["spec"]["storage"] == STORAGE
    kubectl("delete", "-n", ns, "-f", str(path), "--wait=false")


def test_defaults_are_filled_in_by_the_apiserver(kubectl, ns):
    doc = edited(TRAINING_JOB, metadata__name="tj-defaults")
    assert apply(kubectl, ns, doc).returncode == 0
    spec = get(kubectl, ns, doc)["spec"]
    delete(kubectl, ns, doc)
    assert "image" not in spec  # the operator's image, chosen when the Job is created
    assert (spec["workers"], spec["procsPerWorker"]) == (1, 1)
    assert spec["runPolicy"] == {"backoffLimit": 3, "suspend": False}
    assert spec["trainer"]["model"] == {"hiddenLayers": [64, 64], "dropout": 0}
    hyper = spec["trainer"]["hyperparameters"]
    assert hyper == {"epochs": 10, "batchSize": 64, "learningRate": 0.001, "seed": 42, "validationSplit": 0.2}
    assert spec["dataset"]["format"] == "csv"
    assert (spec["trainer"]["exportFormats"], spec["trainer"]["precision"]) == (["torchscript"], "fp32")


TJ, MV, ISVC = TRAINING_JOB, MODEL_VERSION, INFERENCE_SERVICE
INVALID = {
    # TrainingJob
    "tj-missing-dataset": (edited(TJ, spec__dataset=DELETE), ["spec.dataset", "Required value"]),
    "tj-missing-storage": (edited(TJ, spec__storage=DELETE), ["spec.storage", "Required value"]),
    "tj-neither-command-nor-trainer": (edited(TJ, spec__trainer=DELETE), ["spec.command or spec.trainer"]),
    "tj-zero-workers": (edited(TJ, spec__workers=0), ["spec.workers"]),
    "tj-negative-workers": (edited(TJ, spec__workers=-1), ["spec.workers"]),
    "tj-zero-procs-per-worker": (edited(TJ, spec__procsPerWorker=0), ["spec.procsPerWorker"]),
    "tj-procs-exceed-gpus": (edited(TJ, spec__procsPerWorker=2), ["spec.procsPerWorker must not exceed"]),
    "tj-gpus-string": (edited(TJ, spec__resources__gpus="1.5"), ["spec.resources.gpus", "integer"]),
    "tj-gpus-fraction": (edited(TJ, spec__resources__gpus=1.5), ["spec.resources.gpus", "integer"]),
    "tj-gpus-negative": (edited(TJ, spec__resources__gpus=-1), ["spec.resources.gpus"]),
    "tj-memory-not-a-quantity": (edited(TJ, spec__resources__memory="16GB"), ["spec.resources.memory"]),
    "tj-dataset-http-uri": (edited(TJ, spec__dataset__uri="http://data/x.csv"), ["spec.dataset.uri"]),
    "tj-output-uppercase-bucket": (edited(TJ, spec__output__uri="s3://Models/x"), ["spec.output.uri"]),
    "tj-dataset-bad-digest": (edited(TJ, spec__dataset__digest="md5:1234"), ["spec.dataset.digest"]),
    "tj-dataset-unknown-format": (edited(TJ, spec__dataset__format="xls"), ["spec.dataset.format"]),
    "tj-unknown-task": (edited(TJ, spec__trainer__task="clustering"), ["spec.trainer.task"]),
    "tj-zero-epochs": (
        edited(TJ, spec__trainer__hyperparameters={"epochs": 0}),
        ["spec.trainer.hyperparameters.epochs"],
    ),
    "tj-zero-learning-rate": (
        edited(TJ, spec__trainer__hyperparameters={"learningRate": 0}),
        ["spec.trainer.hyperparameters.learningRate"],
    ),
    "tj-validation-split-one": (
        edited(TJ, spec__trainer__hyperparameters={"validationSplit": 1}),
        ["spec.trainer.hyperparameters.validationSplit"],
    ),
    "tj-validation-split-zero": (
        edited(TJ, spec__trainer__hyperparameters={"validationSplit": 0}),
        ["spec.trainer.hyperparameters.validationSplit"],
    ),
    "tj-export-format-twice": (
        edited(TJ, spec__trainer__exportFormats=["onnx", "onnx"]),
        ["spec.trainer.exportFormats"],
    ),
    "tj-unknown-export-format": (
        edited(TJ, spec__trainer__exportFormats=["savedmodel"]),
        ["spec.trainer.exportFormats"],
    ),
    "tj-label-is-a-feature": (
        edited(TJ, spec__trainer__features=["x", "label"]),
        ["spec.trainer.features"],
    ),
    "tj-dropout-above-one": (edited(TJ, spec__trainer__model={"dropout": 1.5}), ["spec.trainer.model.dropout"]),
    "tj-negative-backoff": (edited(TJ, spec__runPolicy={"backoffLimit": -1}), ["spec.runPolicy.backoffLimit"]),
    "tj-zero-deadline": (
        edited(TJ, spec__runPolicy={"activeDeadlineSeconds": 0}),
        ["spec.runPolicy.activeDeadlineSeconds"],
    ),
    "tj-register-name-not-dns-label": (
        edited(TJ, spec__registerModel={"name": "Churn_Model"}),
        ["spec.registerModel.name"],
    ),
    "tj-env-value-and-value-from": (
        edited(TJ, spec__env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]),
        ["spec.env[0]", "value or valueFrom"],
    ),
    "tj-unknown-field": (edited(TJ, spec__gpuCount=2), ['unknown field "spec.gpuCount"']),
    # ModelVersion
    "mv-missing-artifact": (edited(MV, spec__artifact=DELETE), ["spec.artifact", "Required value"]),
    "mv-zero-version": (edited(MV, spec__version=0), ["spec.version"]),
    "mv-model-name-not-dns-label": (edited(MV, spec__modelName="My_Model"), ["spec.modelName"]),
    "mv-alias-not-dns-label": (edited(MV, spec__aliases=["Production"]), ["spec.aliases[0]"]),
    "mv-duplicate-alias": (edited(MV, spec__aliases=["prod", "prod"]), ["spec.aliases[1]", "Duplicate value"]),
    "mv-unknown-format": (edited(MV, spec__artifact__format="pickle"), ["spec.artifact.format"]),
    "mv-bad-threshold-op": (
        edited(MV, spec__validation={"thresholds": [{"metric": "acc", "op": "=", "value": 1}]}),
        ["spec.validation.thresholds[0].op"],
    ),
    "mv-negative-min-improvement": (
        edited(MV, spec__validation={"champion": {"alias": "prod", "metric": "acc", "minImprovement": -1}}),
        ["spec.validation.champion.minImprovement"],
    ),
    "mv-unknown-dtype": (
        edited(MV, spec__signature={"inputs": [{"name": "x", "dtype": "FLOAT", "shape": [-1]}], "outputs": []}),
        ["spec.signature.inputs[0].dtype"],
    ),
    "mv-unknown-deletion-policy": (edited(MV, spec__deletionPolicy="Keep"), ["spec.deletionPolicy"]),
    # InferenceService
    "isvc-version-and-alias": (edited(ISVC, spec__model__version=3), ["spec.model", "exactly one of version or alias"]),
    "isvc-neither-version-nor-alias": (
        edited(ISVC, spec__model={"name": "m"}),
        ["spec.model", "exactly one of version or alias"],
    ),
    "isvc-canary-101-percent": (
        edited(ISVC, spec__canary={"model": {"name": "m", "version": 2}, "trafficPercent": 101}),
        ["spec.canary.trafficPercent"],
    ),
    "isvc-canary-negative-percent": (
        edited(ISVC, spec__canary={"model": {"name": "m", "version": 2}, "trafficPercent": -1}),
        ["spec.canary.trafficPercent"],
    ),
    "isvc-min-above-max-replicas": (
        edited(ISVC, spec__autoscaling={"minReplicas": 5, "maxReplicas": 2, "target": 10}),
        ["spec.autoscaling", "minReplicas must not exceed maxReplicas"],
    ),
    "isvc-zero-autoscaling-target": (
        edited(ISVC, spec__autoscaling={"maxReplicas": 2, "target": 0}),
        ["spec.autoscaling.target"],
    ),
    "isvc-negative-replicas": (edited(ISVC, spec__replicas=-1), ["spec.replicas"]),
    "isvc-cron-words": (
        edited(ISVC, spec__monitoring__drift__schedule="every hour"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-cron-four-fields": (
        edited(ISVC, spec__monitoring__drift__schedule="0 * * *"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-cron-minute-60": (
        edited(ISVC, spec__monitoring__drift__schedule="60 * * * *"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-drift-reference-gcs": (
        edited(ISVC, spec__monitoring__drift__reference="gs://ref/x.csv"),
        ["spec.monitoring.drift.reference"],
    ),
    "isvc-drift-threshold-with-auto": (
        edited(ISVC, spec__monitoring__drift__threshold=0.2),
        ["spec.monitoring.drift.threshold", "threshold needs an explicit method"],
    ),
    "isvc-drift-ks-threshold-not-a-p-value": (
        edited(ISVC, spec__monitoring__drift__method="ks", spec__monitoring__drift__threshold=2),
        ["spec.monitoring.drift.threshold", "threshold is a p-value"],
    ),
    "isvc-drift-unknown-method": (
        edited(ISVC, spec__monitoring__drift__method="kl"),
        ["spec.monitoring.drift.method"],
    ),
    "isvc-drift-share-above-one": (
        edited(ISVC, spec__monitoring__drift__driftShare=1.5),
        ["spec.monitoring.drift.driftShare"],
    ),
    "isvc-drift-without-logging": (edited(ISVC, spec__logging=DELETE), ["spec.monitoring.drift needs spec.logging"]),
    "isvc-sample-rate-above-one": (edited(ISVC, spec__logging__sampleRate=1.5), ["spec.logging.sampleRate"]),
    "isvc-log-destination-not-s3": (edited(ISVC, spec__logging__destination="/tmp/logs"), ["spec.logging.destination"]),
    "isvc-dynamic-batching-without-batch-size": (
        edited(ISVC, spec__runtime={"dynamicBatching": {}}),
        ["runtime.dynamicBatching needs maxBatchSize"],
    ),
    "isvc-retrain-auto-without-drift": (
        edited(
            ISVC,
            spec__monitoring=DELETE,
            spec__retrain={"policy": "Auto", "template": TJ["spec"]},
        ),
        ["spec.retrain.policy Auto needs spec.monitoring.drift"],
    ),
    "isvc-retrain-bad-cooldown": (
        edited(ISVC, spec__retrain={"template": TJ["spec"], "cooldown": "1 day"}),
        ["spec.retrain.cooldown"],
    ),
    "isvc-rollout-weights-not-increasing": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 50}, {"weight": 10}]}),
        ["rollout.steps weights must increase"],
    ),
    "isvc-rollout-weights-repeated": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 10}, {"weight": 10}, {"weight": 20}]}),
        ["rollout.steps weights must increase"],
    ),
    "isvc-rollout-weight-zero": (edited(ISVC, spec__rollout={"steps": [{"weight": 0}]}), ["weight"]),
    "isvc-rollout-weight-above-100": (edited(ISVC, spec__rollout={"steps": [{"weight": 101}]}), ["weight"]),
    "isvc-rollout-no-steps": (edited(ISVC, spec__rollout={"steps": []}), ["spec.rollout.steps"]),
    "isvc-rollout-bad-pause": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 10, "pause": "5 minutes"}]}), ["pause"],
    ),
    "isvc-rollout-success-rate-above-one": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 10}], "analysis": {"successRateMin": 99}}),
        ["spec.rollout.analysis.successRateMin"],
    ),
    "isvc-rollout-failure-limit-zero": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 10}], "analysis": {"failureLimit": 0}}),
        ["spec.rollout.analysis.failureLimit"],
    ),
    "isvc-rollout-with-canary": (
        edited(ISVC, spec__rollout={"steps": [{"weight": 10}]},
               spec__canary={"model": {"name": "m", "version": 2}, "trafficPercent": 10}),
        ["spec.canary and spec.rollout exclude each other"],
    ),
    "isvc-retrain-template-zero-workers": (
        edited(ISVC, spec__retrain={"template": {**TJ["spec"], "workers": 0}}),
        ["spec.retrain.template.workers"],
    ),
    # What a child object, the scheduler or Triton would refuse later (issue 13, item 6).
    "tj-node-selector-bad-key": (edited(TJ, spec__nodeSelector={"bad key!": "x"}), ["spec.nodeSelector",
                                                                                 "must be a label key"]),
    "tj-toleration-bad-key": (
        edited(TJ, spec__tolerations=[{"key": "bad key", "operator": "Exists"}]),
        ["spec.tolerations[0].key"],
    ),
    "tj-env-unsupported-field-path": (
        edited(TJ, spec__env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]),
        ["spec.env[0].valueFrom.fieldRef.fieldPath"],
    ),
    "tj-empty-image": (edited(TJ, spec__image=""), ["spec.image"]),
    "isvc-empty-runtime-image": (edited(ISVC, spec__runtime={"image": ""}), ["spec.runtime.image"]),
    "isvc-max-replicas-above-1024": (
        edited(ISVC, spec__autoscaling={"maxReplicas": 5000, "target": 10}),
        ["spec.autoscaling.maxReplicas"],
    ),
    "tj-negative-cpu": (edited(TJ, spec__resources__cpu="-1"), ["spec.resources.cpu"]),
    "tj-toleration-exists-with-value": (
        edited(TJ, spec__tolerations=[{"key": "a", "operator": "Exists", "value": "x"}]),
        ["spec.tolerations[0].value", "operator Exists has no value"],
    ),
    "tj-toleration-equal-without-key": (
        edited(TJ, spec__tolerations=[{"value": "x"}]),
        ["spec.tolerations[0].key", "needs operator Exists"],
    ),
    "tj-toleration-seconds-without-no-execute": (
        edited(TJ, spec__tolerations=[{"key": "a", "operator": "Exists", "tolerationSeconds": 5}]),
        ["spec.tolerations[0].tolerationSeconds", "needs effect NoExecute"],
    ),
    "mv-duplicate-input-name": (
        edited(MV, spec__signature={"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1]}] * 2,
                                    "outputs": [{"name": "y", "dtype": "FP32", "shape": [-1]}]}),
        ["spec.signature.inputs[1]", "Duplicate value"],
    ),
    "isvc-cron-day-of-week-7": (
        edited(ISVC, spec__monitoring__drift__schedule="0 0 * * 7"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-cron-step-zero": (
        edited(ISVC, spec__monitoring__drift__schedule="*/0 * * * *"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-cron-time-zone-prefix": (
        edited(ISVC, spec__monitoring__drift__schedule="TZ=UTC 0 * * * *"),
        ["spec.monitoring.drift.schedule"],
    ),
    "isvc-preferred-batch-above-max": (
        edited(ISVC, spec__runtime={"maxBatchSize": 8, "dynamicBatching": {"preferredBatchSizes": [4, 16]}}),
        ["spec.runtime.dynamicBatching.preferredBatchSizes", "must not exceed maxBatchSize"],
    ),
    "isvc-preferred-batch-zero": (
        edited(ISVC, spec__runtime={"maxBatchSize": 8, "dynamicBatching": {"preferredBatchSizes": [0]}}),
        ["spec.runtime.dynamicBatching.preferredBatchSizes[0]"],
    ),
    "isvc-gpu-instances-without-gpus": (
        edited(ISVC, spec__runtime={"instanceGroup": {"kind": "GPU"}}),
        ["spec.runtime.instanceGroup.kind", "needs spec.resources.gpus > 0"],
    ),
    "isvc-gpu-metric-without-gpus": (
        edited(ISVC, spec__autoscaling={"maxReplicas": 2, "target": 80, "metric": "gpu-utilization"}),
        ["spec.autoscaling.metric", "needs spec.resources.gpus > 0"],
    ),
    "isvc-duplicate-drift-feature": (
        edited(ISVC, spec__monitoring__drift__features=["a", "a"]),
        ["spec.monitoring.drift.features[1]", "Duplicate value"],
    ),
    "isvc-performance-accuracy-above-one": (
        edited(ISVC, spec__monitoring__performance={"labels": "s3://l/", "metric": "accuracy", "threshold": 80}),
        ["spec.monitoring.performance.threshold", "threshold is a fraction in [0, 1]"],
    ),
    "isvc-performance-classes-for-regression": (
        edited(ISVC, spec__monitoring__performance={"labels": "s3://l/", "metric": "rmse", "threshold": 2,
                                                    "classes": ["a", "b"]}),
        ["spec.monitoring.performance.classes", "classes are for the classification metrics"],
    ),
    "isvc-performance-unknown-metric": (
        edited(ISVC, spec__monitoring__performance={"labels": "s3://l/", "metric": "auc", "threshold": 0.9}),
        ["spec.monitoring.performance.metric"],
    ),
    "isvc-performance-labels-not-s3": (
        edited(ISVC, spec__monitoring__performance={"labels": "/labels", "metric": "mae", "threshold": 1}),
        ["spec.monitoring.performance.labels"],
    ),
    "isvc-performance-without-drift": (
        edited(ISVC, spec__monitoring={"performance": {"labels": "s3://l/", "metric": "mae", "threshold": 1}}),
        ["spec.monitoring.performance needs spec.monitoring.drift"],
    ),
    "isvc-name-with-dot": (edited(ISVC, metadata__name="churn.v2"), ["metadata.name must be an RFC 1035 label"]),
    "isvc-name-starting-with-digit": (
        edited(ISVC, metadata__name="2026-churn"),
        ["metadata.name must be an RFC 1035 label"],
    ),
    "isvc-name-64": (edited(ISVC, metadata__name="a" * 64), ["metadata.name must be an RFC 1035 label"]),
    "isvc-name-253": (edited(ISVC, metadata__name="a" * 253), ["metadata.name must be an RFC 1035 label"]),
    "mv-slice-with-values-and-bins": (
        edited(MODEL_VERSION, spec__validation={"slices": [{"feature": "age", "values": ["1"], "bins": [30]}]}),
        ["spec.validation.slices[0]", "a slice has values or bins, not both"],
    ),
    "mv-unknown-fairness-gap": (
        edited(MODEL_VERSION, spec__validation={"fairness": [{"feature": "sex", "metric": "parity", "max": 0.1}]}),
        ["spec.validation.fairness[0].metric", "demographic_parity_difference"],
    ),
    "tj-negative-fairness-gap": (
        edited(TRAINING_JOB, spec__registerModel={"name": "m", "validation": {"fairness": [
            {"feature": "sex", "metric": "accuracy_difference", "max": -0.1}]}}),
        ["spec.registerModel.validation.fairness[0].max"],
    ),
}


@pytest.mark.parametrize("name", INVALID)
def test_invalid_manifest_is_refused(kubectl, ns, name):
    doc, expected = INVALID[name]
    result = apply(kubectl, ns, doc)
    assert result.returncode != 0, f"{name} was accepted"
    for text in expected:
        assert text in result.stderr


@pytest.mark.parametrize("schedule", ["0 0 * * MON", "30 2 * jan,Jul mon-fri", "@every 1h30m", "5/15 * ? * *"])
def test_cron_schedules_the_cronjob_controller_accepts_are_admitted(kubectl, ns, schedule):
    doc = edited(ISVC, metadata__name="cron-ok", spec__monitoring__drift__schedule=schedule)
    result = apply(kubectl, ns, doc)
    assert result.returncode == 0, result.stderr
    delete(kubectl, ns, doc)


@pytest.mark.parametrize("schedule", ["0 0 * * MON", "@every 1h30m", "5/15 * ? * *", "0 0 * * 7", "*/0 * * * *",
                                      "TZ=UTC 0 * * * *", "60 * * * *", "0 0 * * MONDAY", "@midnight", "0 0 1 JAN *"])
def test_drift_schedules_are_admitted_exactly_when_a_cronjob_admits_them(kubectl, ns, schedule):
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron-twin"},
               "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                   "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}}
    isvc = edited(ISVC, metadata__name="cron-twin", spec__monitoring__drift__schedule=schedule)
    verdicts = [apply(kubectl, ns, doc).returncode == 0 for doc in (cronjob, isvc)]
    delete(kubectl, ns, cronjob)
    delete(kubectl, ns, isvc)
    assert verdicts[0] == verdicts[1], f"CronJob admitted: {verdicts[0]}, InferenceService admitted: {verdicts[1]}"


def test_an_inference_service_name_of_63_characters_is_admitted(kubectl, ns):
    doc = edited(ISVC, metadata__name="a" * 63)
    result = apply(kubectl, ns, doc)
    assert result.returncode == 0, result.stderr
    delete(kubectl, ns, doc)


def test_unknown_fields_are_refused_by_kubectls_default_strict_validation_and_pruned_without_it(kubectl, ns):
    # kubectl (>= 1.27) sends fieldValidation=Strict by default, so a typo fails loudly. A client that
    # does not (--validate=false, or most API libraries) gets the field silently pruned: the schema is
    # structural, so the apiserver never stores what it does not know.
    doc = edited(TRAINING_JOB, metadata__name="tj-unknown", spec__epochs=5)
    refused = apply(kubectl, ns, doc)
    assert refused.returncode != 0 and 'unknown field "spec.epochs"' in refused.stderr
    assert apply(kubectl, ns, doc, "--validate=false").returncode == 0
    stored = get(kubectl, ns, doc)
    delete(kubectl, ns, doc)
    assert "epochs" not in stored["spec"]


IMMUTABLE = [
    (TRAINING_JOB, {"image": "example.com/other:1"}, "spec.image is immutable"),
    (TRAINING_JOB, {"workers": 4}, "spec.workers is immutable"),
    (TRAINING_JOB, {"trainer": {"task": "regression", "labelColumn": "y"}}, "spec.trainer is immutable"),
    (TRAINING_JOB, {"command": ["python", "train.py"]}, "spec.command is immutable"),
    (TRAINING_JOB, {"dataset": {"uri": "s3://data/other.csv"}}, "spec.dataset is immutable"),
    (TRAINING_JOB, {"resources": {"gpus": 2}}, "spec.resources is immutable"),
    (MODEL_VERSION, {"modelName": "other"}, "spec.modelName is immutable"),
    (MODEL_VERSION, {"version": 2}, "spec.version is immutable"),
    (MODEL_VERSION, {"artifact": {"uri": "s3://models/m/2/model.pt"}}, "spec.artifact is immutable"),
]


@pytest.mark.parametrize(
    ("base", "patch", "message"), IMMUTABLE, ids=[message.split()[0] for _, _, message in IMMUTABLE]
)
def test_changing_an_immutable_field_is_refused(kubectl, ns, base, patch, message):
    doc = edited(base, metadata__name=f"immutable-{uuid.uuid4().hex[:6]}")
    assert apply(kubectl, ns, doc).returncode == 0
    kind, name = doc["kind"].lower(), doc["metadata"]["name"]
    result = kubectl("patch", "-n", ns, kind, name, "--type=merge", "-p", json.dumps({"spec": patch}), check=False)
    delete(kubectl, ns, doc)
    assert result.returncode != 0 and message in result.stderr


def test_suspend_and_run_policy_stay_mutable(kubectl, ns):
    doc = edited(TRAINING_JOB, metadata__name="tj-suspend")
    assert apply(kubectl, ns, doc).returncode == 0
    patch = {"spec": {"runPolicy": {"suspend": True, "activeDeadlineSeconds": 600}}}
    kubectl("patch", "-n", ns, "trainingjob", "tj-suspend", "--type=merge", "-p", json.dumps(patch))
    assert get(kubectl, ns, doc)["spec"]["runPolicy"]["suspend"] is True
    delete(kubectl, ns, doc)


def test_status_subresource_validates_status(kubectl, ns):
    # Server-side dry runs: the status subresource's validation answers, and no controller's own status write
    # can race the test's.
    doc = edited(INFERENCE_SERVICE, metadata__name="isvc-status")
    assert apply(kubectl, ns, doc).returncode == 0
    condition = {"type": "Ready", "status": "True", "reason": "Loaded", "lastTransitionTime": "2026-11-26T12:00:00Z"}
    status = {"status": {"phase": "Ready", "conditions": [condition], "readyReplicas": 1}}
    args = ("patch", "-n", ns, "inferenceservice", "isvc-status", "--subresource=status", "--type=merge",
            "--dry-run=server", "-o", "json", "-p")
    assert json.loads(kubectl(*args, json.dumps(status)).stdout)["status"]["phase"] == "Ready"
    bad = kubectl(*args, json.dumps({"status": {"phase": "Done"}}), check=False)
    delete(kubectl, ns, doc)
    assert bad.returncode != 0 and "status.phase" in bad.stderr


def test_scale_subresource_drives_spec_replicas(kubectl, ns):
    doc = edited(INFERENCE_SERVICE, metadata__name="isvc-scale")
    assert apply(kubectl, ns, doc).returncode == 0
    kubectl("scale", "-n", ns, "inferenceservice", "isvc-scale", "--replicas=3")
    assert get(kubectl, ns, doc)["spec"]["replicas"] == 3
    delete(kubectl, ns, doc)


def test_kubectl_explain_shows_the_descriptions(kubectl):
    def explained() -> bool:
        result = kubectl("explain", "trainingjob.spec.dataset", check=False)
        return result.returncode == 0 and "S3 URI of a file or a prefix" in result.stdout

    assert eventually(explained)
    out = kubectl("explain", "trainingjob.spec.dataset").stdout
    assert "Training data in S3" in out and "digest" in out and "sha256" in out


def test_kubectl_explain_describes_performance_monitoring(kubectl):
    out = kubectl("explain", "inferenceservice.spec.monitoring.performance").stdout
    assert "delayed labels" in out and "request id the serving agent logs" in out
    assert "minLabelledRows" in out and "InsufficientData" in out
    status = kubectl("explain", "inferenceservice.status.performance").stdout
    assert "coverage" in status and "PerformanceDegraded" in status


def test_get_mlcycle_lists_all_three_kinds_with_printer_columns(kubectl, ns):
    for path in EXAMPLES:
        kubectl("apply", "-n", ns, "-f", str(path))

    def listed() -> bool:
        result = kubectl("get", "mlcycle", "-n", ns, check=False)
        return result.returncode == 0 and all(
            f"{kind}.mlcycle.io/" in result.stdout for kind in ("trainingjob", "modelversion", "inferenceservice")
        )

    assert eventually(listed)
    out = kubectl("get", "mlcycle", "-n", ns).stdout
    for column in ("PHASE", "WORKERS", "MODEL", "VERSION", "SERVING", "CANARY", "AGE"):
        assert column in out
    assert "churn-v3" in out and "churn-train" in out
    for path in EXAMPLES:
        kubectl("delete", "-n", ns, "-f", str(path), "--wait=false")


def test_short_names(kubectl, ns):
    for short in ("tj", "mv", "isvc"):
        assert kubectl("get", short, "-n", ns, check=False).returncode == 0
