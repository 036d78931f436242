import pytest

from mlcycle import training
from mlcycle.api.trainingjob import Trainer
from mlcycle.training import TrainingFailed
from mlcycle.workloads.trainer import trainer_config

pytestmark = pytest.mark.unit


def test_missing_and_null_keys_take_the_api_defaults():
    config = trainer_config({"task": "regression", "labelColumn": "y", "features": None})
    assert config == Trainer(task="regression", label_column="y")
    assert config.model.hidden_layers == [64, 64] and config.hyperparameters.validation_split == 0.2
    assert config.export_formats == ["torchscript"] and config.precision == "fp32"


def test_every_key_is_read():
    config = trainer_config(
        {
            "task": "classification",
            "labelColumn": "label",
            "features": ["a", "b"],
            "model": {"hiddenLayers": [8], "dropout": 0.1},
            "hyperparameters": {"epochs": 3, "batchSize": 16, "learningRate": 1, "seed": 7, "validationSplit": 0.5},
            "precision": "bf16",
            "exportFormats": ["onnx", "torchscript"],
        }
    )
    assert config.features == ["a", "b"] and config.model.hidden_layers == [8] and config.model.dropout == 0.1
    hyper = config.hyperparameters
    assert (hyper.epochs, hyper.batch_size, hyper.learning_rate, hyper.seed) == (3, 16, 1.0, 7)
    assert hyper.validation_split == 0.5
    assert config.precision == "bf16" and config.export_formats == ["onnx", "torchscript"]


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ([], "Input should be a valid dictionary"),
        ({"task": "clustering", "labelColumn": "y"}, "task: Input should be 'classification' or 'regression'"),
        ({"task": "regression"}, "labelColumn: Field required"),
        ({"task": "regression", "labelColumn": "y", "features": ["y"]}, "must not include the label"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epochs": 0}}, "epochs: .*greater than"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epochs": 2.5}}, "epochs: .*integer"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"learningRate": "x"}}, "learningRate"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"validationSplit": 1}}, "validationSplit"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"validationSplit": 0}}, "validationSplit"),
        ({"task": "regression", "labelColumn": "y", "model": {"hiddenLayers": [0]}}, "hiddenLayers.0"),
        ({"task": "regression", "labelColumn": "y", "model": {"dropout": 1}}, "dropout"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epoch": 3}}, "epoch: Extra inputs"),
        ({"task": "regression", "labelColumn": "y", "exportFormats": ["onnx", "onnx"]}, "lists a format twice"),
        ({"task": "regression", "labelColumn": "y", "exportFormats": ["savedmodel"]}, "exportFormats.0"),
        ({"task": "regression", "labelColumn": "y", "exportFormats": []}, "exportFormats"),
    ],
)
def test_invalid_specs_are_rejected_with_the_cause(spec, names):
    with pytest.raises(TrainingFailed, match=names) as caught:
        trainer_config(spec)
    assert caught.value.reason == training.INVALID_CONFIG
