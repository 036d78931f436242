import pytest

from mlcycle import training
from mlcycle.training import TrainingFailed
from mlcycle.workloads.trainer import TrainerConfig

pytestmark = pytest.mark.unit


def test_missing_and_null_keys_take_the_defaults():
    config = TrainerConfig.from_spec({"task": "regression", "labelColumn": "y", "features": None, "model": None})
    assert config == TrainerConfig(
        task="regression",
        label_column="y",
        features=None,
        hidden_layers=(64, 64),
        dropout=0.0,
        epochs=10,
        batch_size=64,
        learning_rate=0.001,
        seed=42,
        validation_split=0.2,
    )


def test_every_key_is_read():
    config = TrainerConfig.from_spec(
        {
            "task": "classification",
            "labelColumn": "label",
            "features": ["a", "b"],
            "model": {"hiddenLayers": [8], "dropout": 0.1},
            "hyperparameters": {
                "epochs": 3,
                "batchSize": 16,
                "learningRate": 1,
                "seed": 7,
                "validationSplit": 0.5,
            },
        }
    )
    assert config.features == ("a", "b") and config.hidden_layers == (8,) and config.dropout == 0.1
    assert (config.epochs, config.batch_size, config.learning_rate, config.seed) == (3, 16, 1.0, 7)
    assert config.validation_split == 0.5


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ([], "spec.trainer must be an object"),
        ({"task": "clustering", "labelColumn": "y"}, "task must be one of"),
        ({"task": "regression"}, "labelColumn must be a non-empty string"),
        ({"task": "regression", "labelColumn": "y", "features": ["y"]}, "must not include the label"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epochs": 0}}, "at least 1"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epochs": 2.5}}, "must be an integer"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"learningRate": "x"}}, "must be a number"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"validationSplit": 1}}, "in \\(0, 1\\)"),
        ({"task": "regression", "labelColumn": "y", "model": {"hiddenLayers": [0]}}, "positive integers"),
        ({"task": "regression", "labelColumn": "y", "model": {"dropout": 1}}, "dropout must be in"),
        ({"task": "regression", "labelColumn": "y", "hyperparameters": {"epoch": 3}}, "unknown keys \\['epoch'\\]"),
    ],
)
def test_invalid_specs_are_rejected_with_the_cause(spec, names):
    with pytest.raises(TrainingFailed, match=names) as caught:
        TrainerConfig.from_spec(spec)
    assert caught.value.reason == training.INVALID_CONFIG
