"""The sample pipeline `mlcycle dev` applies: a small tabular dataset and the manifests that use it."""

from __future__ import annotations

import io

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
# Per-class feature means and spreads, shaped like the classic iris measurements.
MEANS = np.array([[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
SPREADS = np.array([[0.35, 0.38, 0.17, 0.1], [0.5, 0.3, 0.47, 0.2], [0.63, 0.32, 0.55, 0.27]])


def iris_like_csv(rows_per_class: int = 200, seed: int = 7) -> bytes:
    """A deterministic iris-like CSV (header, 4 float features, a `species` label)."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    out.write(",".join([*FEATURES, "species"]) + "\n")
    rows = [(rng.normal(MEANS[c], SPREADS[c]), CLASSES[c]) for c in range(3) for _ in range(rows_per_class)]
    for i in rng.permutation(len(rows)):
        x, label = rows[i]
        out.write(",".join(f"{v:.2f}" for v in x) + f",{label}\n")
    return out.getvalue().encode()


def storage_secret(name: str, namespace: str, endpoint: str, access_key: str, secret_key: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": {"endpoint": endpoint, "accessKey": access_key, "secretKey": secret_key,
                           "secure": "false"}}


def training_job(name: str, namespace: str, secret: str, *, workers: int = 1, epochs: int = 30,
                 node_selector: dict | None = None, model: str = "iris") -> dict:
    spec = {
        "trainer": {"task": "classification", "labelColumn": "species",
                    "model": {"hiddenLayers": [32, 32]},
                    "hyperparameters": {"epochs": epochs, "batchSize": 32, "learningRate": 0.01, "seed": 1}},
        "dataset": {"uri": "s3://datasets/iris/iris.csv", "format": "csv"},
        "output": {"uri": f"s3://models/{model}/{name}"},
        "resources": {"cpu": "1", "memory": "1Gi"},
        "workers": workers,
        "storage": {"secretRef": {"name": secret}},
        "registerModel": {"name": model, "validation": {"thresholds": [
            {"metric": "val_accuracy", "op": ">=", "value": 0.8}]}},
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def inference_service(name: str, namespace: str, secret: str, *, model: str = "iris", alias: str = "production",
                      node_selector: dict | None = None, tolerations: list | None = None,
                      retrain_dataset: str | None = None) -> dict:
    """Serves whichever version of `model` holds `alias`, on Triton's python backend (the backend the local
    stack's tritonserver has). With `retrain_dataset`, the whole loop: requests logged to s3://logs, a drift
    check (run by hand: the schedule is yearly), Auto retraining on that dataset, and a progressive rollout of
    the retrained version."""
    spec = {"model": {"name": model, "alias": alias}, "runtime": {"backend": "python"},
            "resources": {"cpu": "500m", "memory": "2Gi"}, "storage": {"secretRef": {"name": secret}}}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if retrain_dataset:
        template = training_job(f"{name}-retrain", namespace, secret, node_selector=node_selector, model=model)
        template["spec"]["dataset"]["uri"] = retrain_dataset
        template["spec"]["registerModel"]["aliases"] = [alias]
        if tolerations:
            template["spec"]["tolerations"] = tolerations
        spec |= {"logging": {"destination": "s3://logs/serving", "sampleRate": 1},
                 "monitoring": {"drift": {"schedule": "0 0 1 1 *", "method": "psi", "threshold": 0.25,
                                          "windowSize": 200}},
                 "retrain": {"policy": "Auto", "cooldown": "10m", "template": template["spec"]},
                 "rollout": {"steps": [{"weight": 50, "pause": "5s"}],
                             "analysis": {"interval": "5s", "successRateMin": 0.95, "minRequests": 5}}}
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# What the world does to two of the four features after the sample model is trained: petals grow.
SHIFT = {"petal_length": 2.5, "petal_width": 1.2}


def shifted_csv(data: bytes) -> bytes:
    """The same rows with SHIFT added: the data after the shift (the retrain's dataset, the drifted traffic)."""
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    out = [lines[0]]
    for line in lines[1:]:
        values = line.split(",")
        for feature, delta in SHIFT.items():
            i = header.index(feature)
            values[i] = f"{float(values[i]) + delta:.2f}"
        out.append(",".join(values))
    return ("\n".join(out) + "\n").encode()


def feature_rows(csv: bytes) -> list[list[float]]:
    """Every feature row of a CSV made by iris_like_csv."""
    return [[float(v) for v in line.split(",")[:len(FEATURES)]] for line in csv.decode().splitlines()[1:]]
