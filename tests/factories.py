"""Small builders of API objects for tests."""

from mlcycle.api.trainingjob import TrainingJobSpec


def trainingjob_spec(**overrides) -> TrainingJobSpec:
    base = {
        "trainer": {"task": "classification", "labelColumn": "label"},
        "dataset": {"uri": "s3://data/iris.csv"},
        "output": {"uri": "s3://models/iris"},
        "storage": {"secretRef": {"name": "s3-creds"}},
    }
    return TrainingJobSpec.model_validate(base | overrides)
