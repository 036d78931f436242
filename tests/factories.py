"""Small builders of API objects for tests."""

from mlcycle.api.inferenceservice import InferenceServiceSpec
from mlcycle.api.trainingjob import TrainingJobSpec


def trainingjob_spec(**overrides) -> TrainingJobSpec:
    base = {
        "trainer": {"task": "classification", "labelColumn": "label"},
        "dataset": {"uri": "s3://data/iris.csv"},
        "output": {"uri": "s3://models/iris"},
        "storage": {"secretRef": {"name": "s3-creds"}},
    }
    return TrainingJobSpec.model_validate(base | overrides)


def inferenceservice_spec(**overrides) -> InferenceServiceSpec:
    """A served alias with request logging, an hourly drift check and an automatic retrain."""
    base = {
        "model": {"name": "iris", "alias": "production"},
        "logging": {"destination": "s3://logs/requests"},
        "monitoring": {"drift": {"schedule": "@hourly", "windowSize": 500}},
        "retrain": {"policy": "Auto", "cooldown": "24h", "template": trainingjob_spec().to_api()},
        "storage": {"secretRef": {"name": "s3-creds"}},
    }
    return InferenceServiceSpec.model_validate(base | overrides)
