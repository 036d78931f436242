"""ModelVersion: one immutable, versioned model artifact in the registry, with aliases and validation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from .base import (
    API_VERSION,
    MAX_ITEMS,
    MAX_NAME,
    Aliases,
    ApiModel,
    Conditions,
    DnsLabel,
    FreeForm,
    Metrics,
    S3Uri,
    Sha256Digest,
    ShortString,
    Storage,
    immutable,
    list_type,
    rule,
    validations,
)

KIND = "ModelVersion"
PLURAL = "modelversions"
SHORT_NAMES = ["mv"]
PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.modelName"},
    {"name": "Version", "type": "integer", "jsonPath": ".spec.version"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Aliases", "type": "string", "jsonPath": ".status.aliases"},
    {"name": "Metric", "type": "string", "jsonPath": ".status.keyMetric"},
    {"name": "Format", "type": "string", "jsonPath": ".spec.artifact.format", "priority": 1},
    # -o wide: why a version was Rejected (the failing gates, with the slice and the bound) or what it is.
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

ArtifactFormat = Literal["torchscript", "onnx", "tensorrt", "savedmodel", "python"]
# Triton's data types without the TYPE_ prefix.
TensorDtype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "STRING",
]  # fmt: skip


class Artifact(ApiModel):
    """The stored model file."""

    uri: S3Uri = Field(description="S3 URI of the model file, e.g. s3://models/iris/1/model.pt.")
    format: ArtifactFormat = Field(
        description="File format; picks the Triton backend (torchscript: pytorch, onnx: onnxruntime)."
    )
    digest: Sha256Digest | None = Field(
        None, description="Expected sha256:<hex> of the file; verified before the version becomes Ready."
    )


class TensorSpec(ApiModel):
    """One named input or output tensor."""

    name: ShortString = Field(description="Tensor name as the model (and Triton) knows it.")
    dtype: TensorDtype = Field(description="Element type, in Triton's names without the TYPE_ prefix.")
    shape: list[Annotated[int, Field(ge=-1)]] = Field(
        max_length=8, description="Dimensions; -1 marks a variable dimension such as the batch."
    )


class Signature(ApiModel):
    """The model's inputs and outputs, used to write the serving configuration."""

    # Triton's model configuration names each tensor once.
    inputs: list[TensorSpec] = Field(min_length=1, max_length=MAX_ITEMS, description="Input tensors, unique by name.",
                                     json_schema_extra=list_type("map", "name"))
    outputs: list[TensorSpec] = Field(min_length=1, max_length=MAX_ITEMS,
                                      description="Output tensors, unique by name.",
                                      json_schema_extra=list_type("map", "name"))
    feature_names: list[ShortString] | None = Field(
        None,
        max_length=4096,
        description="Names of the input features in column order, for logging and drift.",
    )


class DatasetRef(ApiModel):
    """The data a model was trained on."""

    uri: S3Uri = Field(description="S3 URI of the training data.")
    digest: Sha256Digest | None = Field(None, description="sha256:<hex> of the training data.")


class Source(ApiModel):
    """Lineage: how this version was made."""

    training_job: ShortString | None = Field(None, description="Name of the TrainingJob that produced it.")
    dataset: DatasetRef | None = Field(None, description="The training data.")
    params: FreeForm | None = Field(None, description="Training parameters as recorded by the trainer (free-form).")


class Threshold(ApiModel):
    """An absolute gate on one metric: `metrics[metric] <op> value` must hold."""

    metric: ShortString = Field(description="Metric name, e.g. accuracy or val_loss.")
    op: Literal[">=", ">", "<=", "<"] = Field(description="Comparison between the metric and value.")
    value: float = Field(description="The bound.")


class Champion(ApiModel):
    """A relative gate: beat the version that currently holds an alias."""

    alias: DnsLabel = Field(description="Alias whose holder is the champion, e.g. production.")
    metric: ShortString = Field(description="Metric to compare.")
    min_improvement: float = Field(0.0, ge=0, description="How much better than the champion it must be.")
    higher_is_better: bool = Field(True, description="Whether a higher metric value is better.")


MAX_SLICES = 32  # slices of one feature: a slice is a group a person reads about, not an identifier
# Fairlearn's group-fairness gaps (max - min over the groups of a sensitive feature), and the per-slice
# metric(s) each one compares.
FAIRNESS_GAPS = {
    "demographic_parity_difference": ("selection_rate",),
    "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
    "equal_opportunity_difference": ("true_positive_rate",),
    "accuracy_difference": ("accuracy",),
}
FairnessGap = Literal[
    "demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference",
    "accuracy_difference",
]


class Slice(ApiModel):
    """A feature whose values, or numeric bins, split the validation rows into slices (groups)."""

    model_config = ConfigDict(json_schema_extra=validations(
        rule("!has(self.values) || !has(self.bins)", "a slice has values or bins, not both")))

    feature: ShortString = Field(
        min_length=1, description="Column, e.g. region or age: a feature, or a column the model does not use."
    )
    values: list[ShortString] | None = Field(
        None, min_length=1, max_length=MAX_SLICES, json_schema_extra=list_type("set"),
        description="One slice per value (a number matches a numeric feature equal to it); every value found "
        "in the validation rows (at most 32) when neither values nor bins is set.",
    )
    bins: list[float] | None = Field(
        None, min_length=1, max_length=MAX_SLICES - 1,
        description="Ascending edges of a numeric feature: [30, 60] makes the slices [-inf, 30), [30, 60) and "
        "[60, inf).",
    )

    @field_validator("bins")
    @classmethod
    def _ascending(cls, bins: list[float] | None) -> list[float] | None:
        if bins and any(a >= b for a, b in zip(bins, bins[1:], strict=False)):
            raise ValueError(f"bins must be strictly ascending: {bins}")
        return bins


class SliceThreshold(Threshold):
    """A gate on every slice: `slice metric <op> value` must hold on each slice (of `feature`, or of all)."""

    feature: ShortString | None = Field(None, description="Only the slices of this feature; all slices when unset.")


class FairnessThreshold(ApiModel):
    """A bound on a group-fairness gap between the slices (groups) of a sensitive feature."""

    feature: ShortString = Field(min_length=1, description="The sensitive feature, e.g. sex; its slices are the "
                                 "groups.")
    metric: FairnessGap = Field(
        description="Fairlearn's definition, max - min over the groups: demographic_parity_difference (selection "
        "rate), equalized_odds_difference (the larger of the true- and false-positive-rate differences), "
        "equal_opportunity_difference (true-positive rate) or accuracy_difference."
    )
    max: float = Field(ge=0, description="The largest gap allowed.")


class Validation(ApiModel):
    """Rules a version must pass before it may take its aliases; it is Rejected otherwise."""

    thresholds: list[Threshold] | None = Field(None, max_length=32, description="Absolute metric thresholds.")
    champion: Champion | None = Field(None, description="Compare against the current holder of an alias.")
    slices: list[Slice] | None = Field(
        None, max_length=8, json_schema_extra=list_type("map", "feature"),
        description="Features to evaluate per slice; the built-in trainer reports each slice's metrics and the "
        "fairness gaps between the slices of each feature (spec.evaluation).",
    )
    positive_class: ShortString | None = Field(
        None, description="The class that counts as the positive (selected) outcome for selection rate and true/"
        "false-positive rates; default: the second of two classes (in their order, e.g. 1 of 0 and 1).",
    )
    slice_thresholds: list[SliceThreshold] | None = Field(
        None, max_length=32, description="Minimum (or maximum) metrics each slice must reach, e.g. accuracy >= 0.8."
    )
    fairness: list[FairnessThreshold] | None = Field(
        None, max_length=32, description="Largest fairness gaps allowed between the groups of sensitive features."
    )


class SliceResult(ApiModel):
    """The validation metrics of one slice."""

    feature: ShortString = Field(description="The feature.")
    value: ShortString = Field(description="The slice: a value of the feature, or a bin such as [30, 60).")
    metrics: Metrics = Field(description="Metric name to number: count (rows), accuracy, selection_rate, "
                             "true_positive_rate, false_positive_rate; rmse and mae for regression.")


class FairnessResult(ApiModel):
    """Group-fairness gaps between the slices of one feature."""

    feature: ShortString = Field(description="The sensitive feature.")
    gaps: Metrics = Field(description="Gap name (e.g. demographic_parity_difference) to number.")


class Evaluation(ApiModel):
    """Validation results per slice and fairness gaps, as the trainer reported them."""

    slices: list[SliceResult] | None = Field(None, max_length=MAX_ITEMS, description="One entry per slice.")
    fairness: list[FairnessResult] | None = Field(None, max_length=8, description="One entry per feature.")
    truncated: bool | None = Field(None, description="Some results did not fit in the trainer's report.")


class ModelVersionSpec(ApiModel):
    """Desired state of a ModelVersion. modelName, version and artifact are immutable."""

    model_name: DnsLabel = Field(description="Registered model this is a version of (a DNS label).")
    version: int = Field(ge=1, description="Version number, unique per modelName.")
    artifact: Artifact = Field(description="The model file.")
    signature: Signature | None = Field(None, description="Input and output tensors.")
    source: Source | None = Field(None, description="Lineage: training job, data and parameters.")
    metrics: Metrics | None = Field(None, description="Evaluation metrics, name to number.")
    aliases: Aliases | None = Field(
        None,
        description=(
            "Aliases this version should hold, e.g. production or champion (DNS labels, unique). An alias "
            "moves to the newest Ready version that asks for it; status.aliases shows what it holds."
        ),
    )
    validation: Validation | None = Field(None, description="Gates that must pass before aliases are granted.")
    evaluation: Evaluation | None = Field(
        None, description="Validation metrics per slice and fairness gaps (what slice and fairness gates read)."
    )
    storage: Storage = Field(description="Credentials of the object store that holds the artifact.")
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain",
        description=(
            "Retain keeps the artifact when the ModelVersion is deleted; Delete removes it, but only an artifact "
            "the operator's own TrainingJob wrote (status.registeredBy), or any artifact when the storage Secret "
            "carries the annotation mlcycle.io/allow-artifact-deletion: \"true\"."
        ),
    )
    description: str | None = Field(None, max_length=4096, description="Free text about this version.")
    tags: dict[str, Annotated[str, Field(max_length=MAX_NAME)]] | None = Field(
        None, max_length=MAX_ITEMS, description="Free key/value labels."
    )


class ValidationResult(ApiModel):
    """The outcome of one validation rule."""

    rule: ShortString = Field(description="The rule, e.g. 'accuracy >= 0.9' or 'champion production'.")
    passed: bool = Field(description="Whether the rule held.")
    observed: float | None = Field(None, description="The metric value that was compared.")
    message: str | None = Field(None, max_length=1024, description="Details.")


class RegisteredBy(ApiModel):
    """The TrainingJob run that wrote the artifact, under its own output prefix, and registered this version."""

    name: ShortString = Field(description="Name of the TrainingJob.")
    uid: ShortString = Field(description="Its uid (a re-created job of the same name is another run).")


class ModelVersionStatus(ApiModel):
    """Observed state of a ModelVersion."""

    phase: Literal["Pending", "Verifying", "Ready", "Rejected", "Failed"] | None = Field(
        None,
        description=(
            "Pending: not looked at yet; Verifying: checking the artifact and validation; Ready: servable; "
            "Rejected: validation failed; Failed: the artifact is missing or its digest differs."
        ),
    )
    conditions: Conditions | None = Field(
        None, description="Ready, Reconciling, Stalled, ArtifactVerified, Validated, AliasConflict."
    )
    observed_generation: int | None = Field(None, description="The generation this status describes.")
    verified_digest: Sha256Digest | None = Field(None, description="sha256 of the artifact as read from storage.")
    size: int | None = Field(None, ge=0, description="Artifact size in bytes.")
    validation: list[ValidationResult] | None = Field(None, description="Result of each validation rule.")
    served_by: list[ShortString] | None = Field(None, description="InferenceServices serving this version.")
    aliases: list[DnsLabel] | None = Field(None, description="Aliases this version holds now.")
    registered_by: RegisteredBy | None = Field(
        None, description="The TrainingJob that wrote the artifact and registered this version (set by the operator)."
    )
    key_metric: ShortString | None = Field(
        None, description="The metric validation compares first, as name=value (shown by kubectl get)."
    )
    message: str | None = Field(None, description="Human-readable summary of the state.")


class ModelVersion(ApiModel):
    """A version of a registered model: an artifact in object storage, its signature, lineage, metrics and
    aliases. The registry is the set of ModelVersions; an alias (e.g. production) names one of them."""

    api_version: str = Field(API_VERSION, description="mlcycle.io/v1alpha1")
    kind: str = Field(KIND, description="ModelVersion")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelVersionSpec = Field(
        description="Desired state.", json_schema_extra=immutable("modelName", "version", "artifact")
    )
    status: ModelVersionStatus | None = Field(None, description="Observed state, written by the operator.")
