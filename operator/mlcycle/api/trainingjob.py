"""TrainingJob: a (possibly distributed, GPU) training run that can register its result as a ModelVersion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import (
    API_VERSION,
    MAX_ITEMS,
    Aliases,
    ApiModel,
    Conditions,
    DnsLabel,
    DnsSubdomain,
    DriftMethod,
    EnvList,
    LabelValue,
    LocalRef,
    Metrics,
    NodeSelector,
    Resources,
    S3Uri,
    Sha256Digest,
    ShortString,
    Storage,
    Tolerations,
    immutable,
    list_type,
    rule,
    validations,
)
from .modelversion import ArtifactFormat, Evaluation, Validation

KIND = "TrainingJob"
PLURAL = "trainingjobs"
SHORT_NAMES = ["tj"]
PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Workers", "type": "integer", "jsonPath": ".spec.workers"},
    {"name": "Active", "type": "integer", "jsonPath": ".status.workers.active"},
    {"name": "Model", "type": "string", "jsonPath": ".spec.registerModel.name"},
    {"name": "Metric", "type": "string", "jsonPath": ".status.keyMetric"},
    {"name": "Version", "type": "string", "jsonPath": ".status.modelVersionRef.name", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

Args = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=MAX_ITEMS)]


class TrainerModel(ApiModel):
    """The network the built-in trainer fits: a multi-layer perceptron."""

    hidden_layers: list[Annotated[int, Field(ge=1)]] = Field(
        [64, 64], max_length=16, description="Width of each hidden layer; [] trains a linear model."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability after each hidden layer.")


class Hyperparameters(ApiModel):
    """Optimisation settings of the built-in trainer."""

    epochs: int = Field(10, ge=1, description="Passes over the training data.")
    batch_size: int = Field(64, ge=1, description="Samples per step and per process.")
    learning_rate: float = Field(0.001, gt=0, description="Adam learning rate.")
    seed: int = Field(42, description="Random seed for the split, initialisation and shuffling.")
    validation_split: float = Field(
        0.2, gt=0, lt=1, description="Fraction of the rows held out for validation metrics (at least one row)."
    )


# What the built-in trainer can export; each is a format ModelVersion verification checks.
ExportFormat = Literal["torchscript", "onnx"]
DEFAULT_EXPORT_FORMATS: list[ExportFormat] = ["torchscript"]


class Trainer(ApiModel):
    """Configuration of the built-in trainer, used when `command` is not set."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.features) || !(self.labelColumn in self.features)",
                "spec.trainer.features must not include the label column",
                ".features",
            )
        )
    )

    task: Literal["classification", "regression"] = Field(description="What the model predicts.")
    label_column: ShortString = Field(min_length=1, description="Column that holds the target.")
    features: list[ShortString] | None = Field(
        None, max_length=4096, description="Feature columns in order; all other columns when omitted."
    )
    model: TrainerModel = Field(default_factory=TrainerModel, description="The network.")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, description="Optimisation.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description=(
            "Arithmetic of the forward pass: bf16 trains under bfloat16 autocast (on GPUs that support it; "
            "others fall back to fp32). The exported model is float32 either way."
        ),
    )
    export_formats: list[ExportFormat] = Field(
        DEFAULT_EXPORT_FORMATS,  # pydantic copies a mutable default for each instance
        min_length=1,
        max_length=2,
        json_schema_extra=list_type("set"),
        description=(
            "Artifact formats to write next to each other (model.pt, model.onnx), with the same signature; "
            "the first is the artifact the job reports and registers."
        ),
    )

    @field_validator("export_formats")
    @classmethod
    def _unique_formats(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise ValueError(f"exportFormats lists a format twice: {formats}")
        return formats

    @model_validator(mode="after")
    def _label_is_not_a_feature(self) -> Trainer:
        if self.features and self.label_column in self.features:
            raise ValueError(f"features must not include the label column {self.label_column!r}")
        return self


# The file names a prefix's objects of each format have (and what tells a lineage URI's format).
DATASET_EXTENSIONS = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "jsonl": (".jsonl", ".ndjson", ".json")}


class Dataset(ApiModel):
    """The training data."""

    uri: S3Uri = Field(description="S3 URI of a file or a prefix, e.g. s3://data/iris.csv.")
    format: Literal["csv", "parquet", "jsonl"] = Field("csv", description="File format.")
    digest: Sha256Digest | None = Field(
        None, description="Expected sha256:<hex> of the file; the job fails when the data differs."
    )


class Output(ApiModel):
    """Where the trained artifact goes."""

    uri: S3Uri = Field(
        description=(
            "S3 URI prefix for the artifact and metrics, e.g. s3://models/iris/. Each run writes under "
            "<uri>/<run>/, <run> being the first 8 characters of the TrainingJob's uid, so a re-created job "
            "never overwrites an artifact a ModelVersion points to."
        )
    )


class RunPolicy(ApiModel):
    """Retries, deadlines, clean-up and suspension."""

    backoff_limit: int = Field(3, ge=0, description="Retries of a failed attempt before the job fails.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail the job when it has run longer than this."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete this TrainingJob itself this long after it succeeded or failed."
    )
    suspend: bool = Field(False, description="Stop the workers (and hold new ones) while true; can be toggled.")


class RegisterModel(ApiModel):
    """Register the trained artifact as a ModelVersion when the job succeeds."""

    name: DnsLabel = Field(description="Registered model name (a DNS label); the version number is assigned.")
    aliases: Aliases | None = Field(None, description="Aliases to request for the new version, e.g. [staging].")
    validation: Validation | None = Field(None, description="Gates the new version must pass to get its aliases.")
    format: ArtifactFormat = Field(
        "torchscript",
        description=(
            "Format of the artifact a user image writes; with the built-in trainer the first of "
            "spec.trainer.exportFormats is registered instead."
        ),
    )


# Data validation (spec.dataValidation): the init container that checks the dataset, the condition it sets
# and the reason a job fails with when the data does not meet its expectations.
VALIDATE_DATA_CONTAINER = "validate-data"
DATA_VALIDATED = "DataValidated"  # condition type
DATA_VALIDATION_FAILED = "DataValidationFailed"  # status.dataValidation.result, the Failed reason
DATA_VALIDATION_PASSED = "Passed"
# validate-data's exit status when the data fails an expectation: the Job's pod failure policy fails the job on
# it at once (the same data fails again); any other failure is retried like a training failure.
VALIDATION_FAILED_EXIT_CODE = 3
ColumnType = Literal["number", "integer", "string", "boolean"]
MAX_ALLOWED_VALUES = 1024


class ColumnExpectation(ApiModel):
    """What one column of the dataset must hold."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max", ".min")
        )
    )

    name: ShortString = Field(min_length=1, description="Column name, as in the CSV header or the file's schema.")
    type: ColumnType | None = Field(
        None,
        description=(
            "Type every value must have: number (integers included), integer (whole numbers), string (text: a "
            "categorical column, not all numbers) or boolean (true/false). Missing values are not typed."
        ),
    )
    required: bool = Field(True, description="Whether the column must exist; false checks it only where present.")
    max_missing: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "Largest share of rows whose value is missing (empty, null, NA, NaN), e.g. 0.01; 0 allows none. "
            "Unset: any."
        ),
    )
    min: float | None = Field(None, description="Smallest allowed value (inclusive); text values are outside.")
    max: float | None = Field(None, description="Largest allowed value (inclusive); text values are outside.")
    allowed_values: list[ShortString] | None = Field(
        None,
        min_length=1,
        max_length=MAX_ALLOWED_VALUES,
        description="The values the column may take, e.g. [setosa, versicolor]; numbers compare as numbers (1 = 1.0).",
    )
    max_invalid: float = Field(
        0.0,
        ge=0,
        le=1,
        description=(
            "Largest share of the column's values (missing ones left out) that may lie outside min/max or "
            "allowedValues, e.g. 0.001; default 0: none."
        ),
    )


class DataDrift(ApiModel):
    """Drift of the dataset against the data that trained the version holding an alias (its lineage,
    spec.source.dataset), with the statistics of serving's drift checks."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("!has(self.threshold) || self.method != 'auto'",
                 "threshold needs an explicit method: with method auto each column uses its method's default",
                 ".threshold"),
        )
    )

    against_alias: DnsLabel = Field(
        description=(
            "Alias whose holder's training data is the reference, e.g. champion. While no version holds it (or "
            "its lineage names no dataset) the comparison is skipped, and the report says so."
        )
    )
    model: DnsLabel | None = Field(None, description="Registered model of the alias; default spec.registerModel.name.")
    columns: list[ShortString] | None = Field(
        None, min_length=1, max_length=4096,
        description="Columns to compare; default every column that holds numbers in both datasets.",
    )
    method: DriftMethod = Field(
        "auto",
        description=(
            "Statistic per column, as in InferenceService spec.monitoring.drift.method: auto (as Evidently's "
            "DataDriftPreset), psi, ks, chi2, wasserstein or jensenshannon."
        ),
    )
    threshold: float | None = Field(
        None, gt=0,
        description="Per-column threshold for an explicit method (a p-value for ks and chi2, else a distance).",
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="The expectation fails when at least this share of the compared columns drifted."
    )


class DataValidation(ApiModel):
    """Expectations on the dataset, checked before any training: `mlcycle validate-data` runs as an init container
    of every worker (built-in trainer and user images alike), so no training container starts on data that fails
    them. It writes report.json and report.html under <output>/<run>/data-validation/; a failure ends the job
    Failed with reason DataValidationFailed and the failing expectations in status.dataValidation."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("!has(self.minRows) || !has(self.maxRows) || self.minRows <= self.maxRows",
                 "minRows must not exceed maxRows", ".minRows")
        )
    )

    columns: list[ColumnExpectation] | None = Field(
        None, max_length=256, json_schema_extra=list_type("map", "name"),
        description="Per-column expectations: presence, type, missing values, range, allowed values.",
    )
    allow_extra_columns: bool = Field(
        True, description="Whether the dataset may have columns that columns does not list."
    )
    min_rows: int | None = Field(None, ge=0, description="Fewest data rows the dataset must have.")
    max_rows: int | None = Field(None, ge=0, description="Most data rows the dataset may have.")
    drift: DataDrift | None = Field(None, description="Compare with the data that trained the current champion.")


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob. Everything that defines the run is immutable; runPolicy is not."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("has(self.command) || has(self.trainer)", "spec.command or spec.trainer must be set"),
            rule(
                "self.resources.gpus == 0 || self.procsPerWorker <= self.resources.gpus",
                "spec.procsPerWorker must not exceed spec.resources.gpus",
                ".procsPerWorker",
            ),
            rule(
                "!has(self.dataValidation) || !has(self.dataValidation.drift) || "
                "has(self.dataValidation.drift.model) || has(self.registerModel)",
                "spec.dataValidation.drift needs a model: set drift.model or spec.registerModel",
                ".dataValidation",
            ),
        )
    )

    image: str | None = Field(
        None, min_length=1, max_length=512, description="Container image; unset: the operator's mlcycle image (the "
        "Helm chart's image value), which has the built-in trainer."
    )
    command: Args | None = Field(None, description="Entrypoint for a user image; replaces the built-in trainer.")
    args: Args | None = Field(None, description="Arguments to command (or to the image's entrypoint).")
    trainer: Trainer | None = Field(None, description="The built-in trainer's configuration.")
    dataset: Dataset = Field(description="Training data in S3: a file or a prefix, its format and digest.")
    output: Output = Field(description="Where in S3 the trained artifact and its metrics are written.")
    resources: Resources = Field(default_factory=Resources, description="Resources of each worker.")
    workers: int = Field(1, ge=1, le=1024, description="Number of worker pods (nodes) for distributed training.")
    procs_per_worker: int = Field(1, ge=1, le=64, description="Training processes per worker, usually one per GPU.")
    gpu_type: LabelValue | None = Field(
        None,
        description=(
            "GPU model to run on, e.g. NVIDIA-H100-80GB-HBM3; schedules onto nodes labelled "
            "nvidia.com/gpu.product=<gpuType>."
        ),
    )
    node_selector: NodeSelector | None = Field(None, description="Extra node labels the workers must match.")
    tolerations: Tolerations | None = Field(None, description="Taints the workers tolerate.")
    env: EnvList | None = Field(None, description="Extra environment variables of the workers.")
    storage: Storage = Field(description="Credentials of the object store holding dataset and output.")
    service_account_name: DnsSubdomain | None = Field(None, description="ServiceAccount of the worker pods.")
    priority_class_name: DnsSubdomain | None = Field(None, description="PriorityClass of the worker pods.")
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Retries, deadlines, suspension.")
    register_model: RegisterModel | None = Field(
        None, description="Register the result as a ModelVersion when the job succeeds."
    )
    data_validation: DataValidation | None = Field(
        None,
        description=(
            "Expectations the dataset must meet before any training: every worker first runs `mlcycle "
            "validate-data` as its init container (built-in trainer and user images alike). Data that fails ends "
            "the job Failed with reason DataValidationFailed and the failing expectations in status.dataValidation; "
            "report.json and report.html go to <output>/<run>/data-validation/."
        ),
    )

    @model_validator(mode="after")
    def _drift_has_a_model(self) -> TrainingJobSpec:
        dv = self.data_validation
        if dv and dv.drift and not dv.drift.model and not self.register_model:
            raise ValueError("dataValidation.drift needs a model: set drift.model or spec.registerModel")
        return self


class WorkerCounts(ApiModel):
    """Worker pods by state."""

    active: int = Field(0, ge=0, description="Pods running or pending.")
    ready: int = Field(0, ge=0, description="Pods running and ready.")
    succeeded: int = Field(0, ge=0, description="Pods that exited successfully.")
    failed: int = Field(0, ge=0, description="Pods that failed.")


class ArtifactStatus(ApiModel):
    """The artifact the job wrote."""

    uri: S3Uri = Field(description="S3 URI of the model file.")
    digest: Sha256Digest | None = Field(None, description="sha256:<hex> of the file.")
    size: int | None = Field(None, ge=0, description="Size in bytes.")


class ExpectationFailure(ApiModel):
    """One expectation the dataset did not meet."""

    expectation: ShortString = Field(description="Which, e.g. range(sepal_length), type(age), rows or drift.")
    column: ShortString | None = Field(None, description="The column, for a column expectation.")
    message: str = Field(max_length=1024, description="What was expected and what was observed.")


class DataValidationStatus(ApiModel):
    """The outcome of the dataset's validation (spec.dataValidation)."""

    result: Literal["Passed", "DataValidationFailed"] = Field(description="Passed, or DataValidationFailed.")
    message: str | None = Field(None, max_length=4096, description="Summary in words.")
    rows: int | None = Field(None, ge=0, description="Data rows read.")
    expectations: int | None = Field(None, ge=0, description="Expectations checked.")
    failures: list[ExpectationFailure] | None = Field(
        None, max_length=MAX_ITEMS, description="The expectations that failed (the first 64)."
    )
    report_uri: S3Uri | None = Field(None, description="S3 URI of the HTML report (report.json beside it).")


class TrainingJobStatus(ApiModel):
    """Observed state of a TrainingJob."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        None, description="Where the job is in its life."
    )
    conditions: Conditions | None = Field(None, description="Running, Succeeded, Failed, Suspended, ModelRegistered.")
    observed_generation: int | None = Field(None, description="The generation this status describes.")
    start_time: datetime | None = Field(None, description="When the first attempt started.")
    completion_time: datetime | None = Field(None, description="When the job succeeded or failed.")
    attempts: int | None = Field(None, ge=0, description="Attempts started so far (1 + retries).")
    workers: WorkerCounts | None = Field(None, description="Worker pods by state.")
    metrics: Metrics | None = Field(None, description="Final metrics reported by the trainer, name to number.")
    artifact: ArtifactStatus | None = Field(None, description="The trained artifact.")
    dataset_digest: Sha256Digest | None = Field(
        None, description="sha256:<hex> of the data the trainer read (recorded in the ModelVersion's lineage)."
    )
    key_metric: ShortString | None = Field(
        None,
        description=(
            "The final metric the registration gate compares (else the first validation metric), as name=value "
            "(shown by kubectl get)."
        ),
    )
    evaluation: Evaluation | None = Field(
        None, description="Validation metrics per slice and fairness gaps (registerModel.validation.slices)."
    )
    model_version_ref: LocalRef | None = Field(None, description="The ModelVersion registered from it.")
    message: str | None = Field(None, description="Human-readable summary of the state.")
    data_validation: DataValidationStatus | None = Field(
        None, description="How the dataset met spec.dataValidation (set once validation ran)."
    )


class TrainingJob(ApiModel):
    """A training run: the built-in trainer (or your own command) on one or more GPU workers, reading a
    dataset from S3 and writing the model there; optionally registered as a ModelVersion."""

    api_version: str = Field(API_VERSION, description="mlcycle.io/v1alpha1")
    kind: str = Field(KIND, description="TrainingJob")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: TrainingJobSpec = Field(
        description="Desired state.",
        json_schema_extra=immutable(
            "image",
            "command",
            "args",
            "trainer",
            "dataset",
            "output",
            "resources",
            "workers",
            "procsPerWorker",
            "gpuType",
            "registerModel",
            "dataValidation",
        ),  # fmt: skip
    )
    status: TrainingJobStatus | None = Field(None, description="Observed state, written by the operator.")
