import io
import json

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from mlcycle.modelversion import onnx as onnx_reader
from mlcycle.workloads import trainer
from mlcycle.workloads.dataset import Examples
from mlcycle.workloads.model import torchscript_bytes

pytestmark = pytest.mark.unit


def config(task: str, label: str, epochs: int = 8, **top) -> trainer.Trainer:
    hyper = {"epochs": epochs, "batchSize": 32, "learningRate": 0.01, **top.pop("hyper", {})}
    return trainer.trainer_config(
        {"task": task, "labelColumn": label, "model": {"hiddenLayers": [16]}, "hyperparameters": hyper, **top}
    )


def load_script(trained: trainer.Trained) -> torch.jit.ScriptModule:
    return torch.jit.load(io.BytesIO(torchscript_bytes(trained.model)))


def run_onnx(data: bytes, x: torch.Tensor) -> np.ndarray:
    return ReferenceEvaluator(onnx.load_from_string(data)).run(None, {"INPUT__0": x.numpy()})[0]


def test_classifier_export_takes_raw_features_and_returns_probabilities(blobs_path):
    cfg = config("classification", "label")
    examples = trainer.load(str(blobs_path), cfg)
    assert examples.classes == ["cat", "dog"] and examples.feature_names == ["x1", "x2"]
    trained = trainer.train(cfg, examples)
    assert [m["val_accuracy"] for m in trained.history][-1] > 0.9
    model = load_script(trained)
    probabilities = model(torch.tensor([[40.0, -1.0], [60.0, 1.0]]))  # raw, unnormalised features
    assert probabilities.shape == (2, 2)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2))
    assert probabilities.argmax(dim=1).tolist() == [0, 1]  # cat, dog


def test_regressor_export_predicts_in_the_targets_units(line_path):
    cfg = config("regression", "y", epochs=30)
    examples = trainer.load(str(line_path), cfg)
    trained = trainer.train(cfg, examples)
    assert set(trained.history[-1]) == {"train_loss", "val_loss", "val_rmse", "val_mae"}
    assert trained.history[-1]["val_rmse"] < 3.0
    prediction = load_script(trained)(torch.tensor([[0.0, 5.0]]))  # 3*0 - 2*5 + 100 = 90
    assert prediction.shape == (1, 1) and abs(prediction.item() - 90.0) < 5.0


def xor_examples(rows: int = 1200, seed: int = 0) -> Examples:
    """The class is "yes" when x > 0 differs from color == red: learnable only through the categorical column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows).astype(np.float32)
    categories = ["blue", "green", "red"]
    codes = rng.integers(0, 3, size=rows)
    targets = ((x > 0) != (codes == 2)).astype(np.int64)
    features = np.stack([x, codes.astype(np.float32)], axis=1)
    return Examples(features, ["x", "color"], {"color": categories}, targets, ["no", "yes"])


def test_categorical_features_are_one_hot_encoded_inside_every_export():
    cfg = config("classification", "y", epochs=15, exportFormats=["torchscript", "onnx"])
    examples = xor_examples()
    trained = trainer.train(cfg, examples)
    assert trained.history[-1]["val_accuracy"] > 0.95
    red, blue, unknown = 2.0, 0.0, 7.0
    raw = torch.tensor([[1.0, red], [1.0, blue], [-1.0, red], [-1.0, blue], [1.0, unknown]])
    expected = trained.model(raw).detach()
    assert expected[:4].argmax(dim=1).tolist() == [0, 1, 1, 0]  # no, yes, yes, no
    assert torch.allclose(load_script(trained)(raw), expected, atol=1e-6)
    data = trainer.export(trained.model, "onnx", 2)
    assert np.allclose(run_onnx(data, raw), expected.numpy(), atol=1e-5)
    graph = onnx_reader.read_graph(io.BytesIO(data), len(data))
    assert graph["inputs"] == [{"name": "INPUT__0", "dtype": "FP32", "shape": [None, 2]}]
    assert graph["outputs"] == [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [None, 2]}]
    signature = trainer.signature(examples, cfg.task)
    assert signature["categories"] == {"color": ["blue", "green", "red"]}
    assert signature["categoryEncoding"] == "one-hot"


def test_onnx_export_of_a_regressor_matches_torchscript(line_path):
    cfg = config("regression", "y", epochs=2)
    trained = trainer.train(cfg, trainer.load(str(line_path), cfg))
    raw = torch.tensor([[0.0, 5.0], [1.0, 2.0], [-4.0, 9.0]])
    data = trainer.export(trained.model, "onnx", 2)
    assert np.allclose(run_onnx(data, raw), load_script(trained)(raw).detach().numpy(), atol=1e-4)


def test_bf16_trains_under_autocast_and_exports_float32(blobs_path):
    cfg = config("classification", "label", epochs=3, precision="bf16")
    trained = trainer.train(cfg, trainer.load(str(blobs_path), cfg))
    assert trained.history[-1]["val_accuracy"] > 0.9
    assert load_script(trained)(torch.zeros(1, 2)).dtype == torch.float32


def test_same_seed_and_data_give_the_same_metrics(blobs_path):
    cfg = config("classification", "label", epochs=2, hyper={"seed": 3})
    examples = trainer.load(str(blobs_path), cfg)
    first, second = trainer.train(cfg, examples), trainer.train(cfg, examples)
    assert first.history == second.history
    other = trainer.train(config("classification", "label", epochs=2, hyper={"seed": 4}), examples)
    assert other.history != first.history


def test_validation_split_is_seeded_and_disjoint():
    train_idx, val_idx = trainer.split_indices(10, 0.2, seed=1)
    assert len(val_idx) == 2 and sorted([*train_idx, *val_idx]) == list(range(10))
    assert np.array_equal(trainer.split_indices(10, 0.2, seed=1)[1], val_idx)
    assert len(trainer.split_indices(2, 0.01, seed=1)[1]) == 1


def test_ranks_get_disjoint_equal_shards_covering_every_row():
    rows = torch.arange(100, 111)  # 11 rows over 3 ranks: 12 slots, one row twice
    shards = [trainer._shard(rows, seed=1, epoch=2, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(torch.cat(shards).tolist()) == set(rows.tolist())
    assert torch.equal(shards[0], trainer._shard(rows, seed=1, epoch=2, rank=0, world_size=3))
    assert not torch.equal(shards[0], trainer._shard(rows, seed=1, epoch=3, rank=0, world_size=3))


def test_column_stats_are_over_the_training_rows():
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0], [100.0, 7.0]])
    mean, std = trainer.column_stats(x, np.array([0, 1]))
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]  # a constant column gets std 1


def test_signature_and_profile_describe_the_model_inputs(blobs_path):
    cfg = config("classification", "label")
    examples = trainer.load(str(blobs_path), cfg)
    assert trainer.signature(examples, cfg.task) == {
        "inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 2]}],
        "featureNames": ["x1", "x2"],
        "task": "classification",
        "classes": ["cat", "dog"],
    }
    doc = trainer.examples_profile(examples, cfg.hyperparameters.seed)
    assert set(doc["features"]) == {"x1", "x2"} and doc["label"]["counts"] == [200, 200]
    assert len(doc["sample"]["rows"]) == 400


def test_launcher_command_passes_the_torchrun_environment():
    env = {
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "4",
        "PET_NODE_RANK": "1",
        "PET_MASTER_ADDR": "job-0.job",
        "PET_MASTER_PORT": "23456",
    }
    command = trainer.launcher_command(env)
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--nproc-per-node=4", "--node-rank=1", "--master-addr=job-0.job"} <= set(command)
    assert command[-2:] == ["--module", "mlcycle.workloads.trainer"]


def test_main_reports_a_failure_in_the_termination_message(tmp_path, monkeypatch, blobs_path):
    # No S3 call happens before the label column is checked, so no server is needed here.
    log = tmp_path / "termination-log"
    for name, value in {
        "MLCYCLE_TRAINER": json.dumps({"task": "classification", "labelColumn": "species"}),
        "MLCYCLE_DATASET_URI": str(blobs_path),
        "MLCYCLE_OUTPUT_URI": "s3://out/run",
        "MLCYCLE_S3_ENDPOINT": "127.0.0.1:1",
        "MLCYCLE_TERMINATION_LOG": str(log),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        trainer.main([])
    assert exited.value.code == 1
    error = json.loads(log.read_text())["error"]
    assert error["reason"] == "LabelColumnMissing" and "'species'" in error["message"]


def test_slice_evaluation_covers_the_validation_rows_by_category_value_and_bin():
    from mlcycle.api.modelversion import Validation

    cfg = config("classification", "y", epochs=15)
    examples = xor_examples()
    trained = trainer.train(cfg, examples)
    asked = Validation.model_validate({"slices": [{"feature": "color"}, {"feature": "x", "bins": [0]}]})
    result = trainer.slice_evaluation(trained.model, examples, cfg, asked)
    slices = {f"{s['feature']}={s['value']}": s["metrics"] for s in result["slices"]}
    assert list(slices) == ["color=blue", "color=green", "color=red", "x=[-inf, 0)", "x=[0, inf)"]
    validation_rows = round(len(examples.features) * cfg.hyperparameters.validation_split)
    assert sum(slices[f"color={c}"]["count"] for c in ("blue", "green", "red")) == validation_rows
    assert all(m["accuracy"] > 0.9 for m in slices.values())
    assert {f["feature"] for f in result["fairness"]} == {"color", "x"}


@pytest.mark.parametrize(("validation", "says"), [
    ({"slices": [{"feature": "size"}]}, "'size' is not a column of the dataset"),
    ({"slices": [{"feature": "color", "bins": [1]}]}, "'color' holds text"),
    ({"slices": [{"feature": "x"}], "positiveClass": "maybe"}, "'maybe' is not one of the classes"),
])
def test_slices_that_cannot_be_formed_fail_before_training(validation, says):
    from mlcycle.api.modelversion import Validation

    with pytest.raises(trainer.TrainingFailed, match=says) as failed:
        trainer.check_slices(Validation.model_validate(validation), xor_examples(rows=20))
    assert failed.value.reason == "InvalidConfig"


def test_a_column_the_model_does_not_use_can_be_sliced(tmp_path):
    from mlcycle.api.modelversion import Validation

    rng = np.random.default_rng(0)
    lines = ["x,group,label"] + [f"{v:.3f},{'ab'[i % 2]},{'yes' if v > 0 else 'no'}"
                                 for i, v in enumerate(rng.uniform(-1, 1, 200))]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    cfg = config("classification", "label", epochs=10, features=["x"])
    asked = Validation.model_validate({"slices": [{"feature": "group"}]})
    examples = trainer.load(str(tmp_path / "d.csv"), cfg, extra=["group"])
    trainer.check_slices(asked, examples)
    assert examples.feature_names == ["x"]
    result = trainer.slice_evaluation(trainer.train(cfg, examples).model, examples, cfg, asked)
    assert [s["value"] for s in result["slices"]] == ["a", "b"]
    assert sum(s["metrics"]["count"] for s in result["slices"]) == 40
    with pytest.raises(trainer.TrainingFailed, match="holds text"):
        trainer.check_slices(Validation.model_validate({"slices": [{"feature": "group", "bins": [0]}]}), examples)
