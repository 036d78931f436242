import io
import json

import numpy as np
import pytest
import torch

from mlcycle import training
from mlcycle.training import TrainingFailed
from mlcycle.workloads import trainer
from mlcycle.workloads.dataset import Table, load_table
from mlcycle.workloads.model import torchscript_bytes

pytestmark = pytest.mark.unit


def config(task: str, label: str, epochs: int = 8, **hyper) -> trainer.TrainerConfig:
    return trainer.TrainerConfig.from_spec(
        {
            "task": task,
            "labelColumn": label,
            "model": {"hiddenLayers": [16]},
            "hyperparameters": {"epochs": epochs, "batchSize": 32, "learningRate": 0.01, **hyper},
        }
    )


def load_script(trained: trainer.Trained) -> torch.jit.ScriptModule:
    return torch.jit.load(io.BytesIO(torchscript_bytes(trained.model)))


def test_classifier_export_takes_raw_features_and_returns_probabilities(blobs_path):
    cfg = config("classification", "label")
    examples = trainer.examples_from_table(load_table(str(blobs_path)), cfg)
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
    examples = trainer.examples_from_table(load_table(str(line_path)), cfg)
    trained = trainer.train(cfg, examples)
    assert set(trained.history[-1]) == {"train_loss", "val_loss", "val_rmse", "val_mae"}
    assert trained.history[-1]["val_rmse"] < 3.0
    prediction = load_script(trained)(torch.tensor([[0.0, 5.0]]))  # 3*0 - 2*5 + 100 = 90
    assert prediction.shape == (1, 1) and abs(prediction.item() - 90.0) < 5.0


def test_same_seed_and_data_give_the_same_metrics(blobs_path):
    cfg = config("classification", "label", epochs=2, seed=3)
    examples = trainer.examples_from_table(load_table(str(blobs_path)), cfg)
    first, second = trainer.train(cfg, examples), trainer.train(cfg, examples)
    assert first.history == second.history
    other = trainer.train(config("classification", "label", epochs=2, seed=4), examples)
    assert other.history != first.history


def test_validation_split_is_seeded_and_disjoint():
    train_idx, val_idx = trainer.split_indices(10, 0.2, seed=1)
    assert len(val_idx) == 2 and sorted([*train_idx, *val_idx]) == list(range(10))
    assert np.array_equal(trainer.split_indices(10, 0.2, seed=1)[1], val_idx)
    assert len(trainer.split_indices(2, 0.01, seed=1)[1]) == 1


def test_missing_label_column_names_the_columns():
    table = Table(["a", "b"], [["1", "2"], ["3", "4"]])
    with pytest.raises(TrainingFailed, match="label column 'y' is not in the dataset") as caught:
        trainer.examples_from_table(table, config("regression", "y"))
    assert caught.value.reason == training.LABEL_COLUMN_MISSING


def test_non_numeric_feature_is_unreadable_and_names_the_cell():
    table = Table(["a", "y"], [["1", "2"], ["oops", "4"]])
    with pytest.raises(TrainingFailed, match="column 'a', data row 2: 'oops' is not a number") as caught:
        trainer.examples_from_table(table, config("regression", "y"))
    assert caught.value.reason == training.DATASET_UNREADABLE


def test_numeric_class_labels_sort_as_numbers():
    table = Table(["a", "y"], [["1", "10"], ["2", "2"], ["3", "1"]])
    assert trainer.examples_from_table(table, config("classification", "y")).classes == ["1", "2", "10"]


def test_signature_and_profile_describe_the_model_inputs(blobs_path):
    cfg = config("classification", "label")
    examples = trainer.examples_from_table(load_table(str(blobs_path)), cfg)
    assert trainer.signature(examples, cfg.task) == {
        "inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, 2]}],
        "featureNames": ["x1", "x2"],
        "task": "classification",
        "classes": ["cat", "dog"],
    }
    doc = trainer.examples_profile(examples, cfg.seed)
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
