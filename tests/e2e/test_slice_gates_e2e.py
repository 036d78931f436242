"""Per-slice and fairness gates end to end: the built-in trainer trains for real on data built so that the
answer is known, reports each slice's metrics and the fairness gaps, the TrainingJob's status carries them
into the ModelVersion it registers, and the ModelVersion's gates reject or accept it."""

from __future__ import annotations

import io
import json

import numpy as np
import yaml

from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import storage_secret, training_job
from waiting import wait_for

ROWS = 1000
VALIDATION_ROWS = 200  # the trainer's default validationSplit of 0.2


def csv_bytes(rows: list[tuple]) -> bytes:
    return ("x,noise,region,label\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


def one_slice_unlearnable(seed: int = 0) -> bytes:
    """label = x > 0, except on the island (every tenth row), where it is a coin flip no model can learn:
    accurate overall (about 0.95), about 0.5 on region=island."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(ROWS):
        x, noise = round(float(rng.uniform(-1, 1)), 3), round(float(rng.uniform(-1, 1)), 3)
        region = "island" if i % 10 == 0 else ("north" if i % 2 else "south")
        label = int(rng.integers(0, 2)) if region == "island" else int(x > 0)
        rows.append((x, noise, region, label))
    return csv_bytes(rows)


def groups_dataset(biased: bool, seed: int = 1) -> bytes:
    """Two equal groups a and b with the same x; label = x > 0, but when `biased` group b is never labelled
    positive, so a model that learns it selects about half of group a and none of group b."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(ROWS):
        x, noise = round(float(rng.uniform(-1, 1)), 3), round(float(rng.uniform(-1, 1)), 3)
        group = "a" if i % 2 else "b"
        rows.append((x, noise, group, 0 if biased and group == "b" else int(x > 0)))
    return csv_bytes(rows)


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def sliced_job(name: str, namespace: str, dataset: str, validation: dict) -> dict:
    tj = training_job(name, namespace, "s3", epochs=20, node_selector=RUNTIME_LABEL, model=name)
    tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
    # A linear model: it cannot memorise the island's coin flips, and it learns a group offset.
    tj["spec"]["trainer"] |= {"labelColumn": "label", "model": {"hiddenLayers": []}}
    tj["spec"]["dataset"]["uri"] = dataset
    tj["spec"]["registerModel"]["validation"] = validation
    return tj


def decided_version(cluster, tj_name: str, namespace: str) -> tuple[dict, dict]:
    """The TrainingJob once it registered its version, and the version once its gates decided."""
    def registered():
        tj = get_json(cluster, "trainingjob", tj_name, "-n", namespace) or {}
        status = tj.get("status") or {}
        assert status.get("phase") != "Failed", status.get("message")
        return tj if status.get("modelVersionRef") else None

    tj = wait_for(registered, f"{tj_name} to register its version", timeout=600)
    name = tj["status"]["modelVersionRef"]["name"]
    mv = wait_for(lambda: (m := get_json(cluster, "modelversion", name, "-n", namespace))
                  and (m.get("status") or {}).get("phase") in ("Ready", "Rejected", "Failed") and m,
                  what=f"{name} to be decided", timeout=300)
    return tj, mv


def upload(minio, key: str, data: bytes) -> str:
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", key, io.BytesIO(data), len(data))
    return f"s3://datasets/{key}"


def by_slice(evaluation: dict) -> dict[str, dict]:
    return {f"{s['feature']}={s['value']}": s["metrics"] for s in evaluation["slices"]}


def test_a_model_poor_on_one_slice_is_rejected_by_a_slice_gate_naming_it(cluster, crds, operator, local_runtime,
                                                                        minio, namespace):
    dataset = upload(minio, "slices/regions.csv", one_slice_unlearnable())
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = sliced_job("regions", namespace, dataset, {
        "thresholds": [{"metric": "val_accuracy", "op": ">=", "value": 0.85}],
        "slices": [{"feature": "region"}, {"feature": "x", "bins": [0]}],
        "sliceThresholds": [{"metric": "accuracy", "op": ">=", "value": 0.8, "feature": "region"}],
    })
    tj["spec"]["trainer"]["features"] = ["x", "noise"]  # region is sliced without being a model input
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
    tj, mv = decided_version(cluster, "regions", namespace)

    # The TrainingJob's status has every slice of the validation rows, and the version was registered with them.
    slices = by_slice(tj["status"]["evaluation"])
    assert set(slices) == {"region=island", "region=north", "region=south", "x=[-inf, 0)", "x=[0, inf)"}
    assert sum(slices[f"region={r}"]["count"] for r in ("island", "north", "south")) == VALIDATION_ROWS
    assert sum(slices[f"x={b}"]["count"] for b in ("[-inf, 0)", "[0, inf)")) == VALIDATION_ROWS
    assert 0.2 <= slices["region=island"]["accuracy"] <= 0.75  # coin flips
    assert slices["region=north"]["accuracy"] >= 0.9 and slices["region=south"]["accuracy"] >= 0.9
    assert tj["status"]["metrics"]["val_accuracy"] >= 0.85  # accurate overall
    assert mv["spec"]["evaluation"] == tj["status"]["evaluation"]

    # Rejected by the slice gate alone, which names the slice and its value against the bound.
    assert mv["status"]["phase"] == "Rejected", mv["status"].get("message")
    results = {r["rule"]: r for r in mv["status"]["validation"]}
    assert results["val_accuracy >= 0.85"]["passed"]
    gate = results["accuracy >= 0.8 on every slice of region"]
    assert not gate["passed"] and gate["observed"] == slices["region=island"]["accuracy"]
    island = f"region=island: accuracy {slices['region=island']['accuracy']:g}, bound 0.8"
    assert gate["message"] == island
    validated = next(c for c in mv["status"]["conditions"] if c["type"] == "Validated")
    assert validated["status"] == "False" and island in validated["message"]
    assert "north" not in validated["message"] and "south" not in validated["message"]
    wide = cluster.kubectl_run("get", "modelversion", mv["metadata"]["name"], "-n", namespace, "-o", "wide").stdout
    assert "Rejected" in wide and island in wide  # kubectl get -o wide says why


def test_a_fairness_gap_gate_rejects_a_biased_model_and_accepts_a_fair_one(cluster, crds, operator, local_runtime,
                                                                           minio, namespace):
    validation = {"slices": [{"feature": "region", "values": ["a", "b"]}],
                  "fairness": [{"feature": "region", "metric": "demographic_parity_difference", "max": 0.2}]}
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    jobs = [sliced_job(name, namespace, upload(minio, f"groups/{name}.csv", groups_dataset(biased)), validation)
            for name, biased in (("biased", True), ("fair", False))]
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, *jobs]))

    tj, mv = decided_version(cluster, "biased", namespace)
    slices = by_slice(tj["status"]["evaluation"])
    assert slices["region=b"]["selection_rate"] == 0  # never labelled positive, never predicted positive
    assert slices["region=a"]["selection_rate"] >= 0.35
    gaps = tj["status"]["evaluation"]["fairness"][0]
    # Fairlearn's definition: the largest minus the smallest selection rate of the groups.
    dp = round(slices["region=a"]["selection_rate"] - slices["region=b"]["selection_rate"], 4)
    assert gaps["feature"] == "region" and gaps["gaps"]["demographic_parity_difference"] == dp
    assert mv["status"]["phase"] == "Rejected", mv["status"].get("message")
    validated = next(c for c in mv["status"]["conditions"] if c["type"] == "Validated")
    assert f"demographic_parity_difference {dp:g}, bound 0.2" in validated["message"]
    assert f"selection_rate {slices['region=a']['selection_rate']:g} at region=a, 0 at region=b" in validated["message"]

    tj, mv = decided_version(cluster, "fair", namespace)
    gap = tj["status"]["evaluation"]["fairness"][0]["gaps"]["demographic_parity_difference"]
    assert gap < 0.2
    assert mv["status"]["phase"] == "Ready", mv["status"].get("message")
    result = next(r for r in mv["status"]["validation"] if r["rule"].startswith("demographic_parity_difference"))
    assert result["passed"] and result["observed"] == gap


# A user image's training code: it "trains" a fixed linear model, writes it and its signature where the
# operator told it to, and reports its slices through mlcycle.training, with the job's slices from the
# environment. Its predictions are built so the answer is known: group a gets 3 of 4 selected, group b 1 of 4.
USER_TRAINING = """
import io, json, os
import torch
from mlcycle import training
from mlcycle.clients import s3

out = os.environ["MLCYCLE_OUTPUT_URI"]
storage = s3.client(s3.S3Config.from_env())
bucket, prefix = s3.parse_s3_uri(out)
buffer = io.BytesIO()
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buffer)
digest, size = s3.upload_bytes(storage, bucket, s3.join_key(prefix, "model.pt"), buffer.getvalue(), "x")
signature = {"inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 2]}],
             "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 2]}]}
s3.upload_bytes(storage, bucket, s3.join_key(prefix, "signature.json"), json.dumps(signature).encode(), "x")
training.report_metrics(1, val_accuracy=0.75)
training.report_artifact(s3.s3_uri(bucket, s3.join_key(prefix, "model.pt")), digest, size, "torchscript",
                         signature_uri=s3.s3_uri(bucket, s3.join_key(prefix, "signature.json")))
training.report_slices(["1", "1", "0", "0", "1", "0", "0", "0"], ["1", "0", "1", "1", "1", "0", "0", "0"],
                       {"group": ["a", "a", "a", "a", "b", "b", "b", "b"]})
training.finish()
"""


def test_a_user_image_reports_its_slices_through_mlcycle_training(cluster, crds, operator, local_runtime, minio,
                                                                  namespace):
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    tj = sliced_job("user", namespace, "s3://datasets/unused.csv", {
        "slices": [{"feature": "group"}],
        "fairness": [{"feature": "group", "metric": "demographic_parity_difference", "max": 0.25}]})
    del tj["spec"]["trainer"]
    tj["spec"] |= {"command": ["python", "-c", USER_TRAINING]}
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
    tj, mv = decided_version(cluster, "user", namespace)

    # By hand: a selects 3 of 4 (one of its two positives, both negatives: 1 of 4 right), b selects 1 of 4
    # (its one positive: all right).
    assert by_slice(tj["status"]["evaluation"]) == {
        "group=a": {"count": 4, "accuracy": 0.25, "selection_rate": 0.75, "true_positive_rate": 0.5,
                    "false_positive_rate": 1.0},
        "group=b": {"count": 4, "accuracy": 1.0, "selection_rate": 0.25, "true_positive_rate": 1.0,
                    "false_positive_rate": 0.0}}
    assert tj["status"]["evaluation"]["fairness"] == [{"feature": "group", "gaps": {
        "demographic_parity_difference": 0.5, "equalized_odds_difference": 1.0,
        "equal_opportunity_difference": 0.5, "accuracy_difference": 0.75}}]
    assert mv["status"]["phase"] == "Rejected", mv["status"].get("message")
    assert ("demographic_parity_difference 0.5, bound 0.25; selection_rate 0.75 at group=a, 0.25 at group=b"
            in mv["status"]["message"])
