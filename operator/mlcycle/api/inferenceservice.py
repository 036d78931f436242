"""InferenceService: serves a ModelVersion on Triton, with canary, request logging, drift checks and
automatic retraining."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field

from .base import (
    API_VERSION,
    CRON_PATTERN,
    DURATION_PATTERN,
    S3_URI_PATTERN,
    ApiModel,
    Conditions,
    DnsLabel,
    DriftMethod,
    LabelValue,
    LocalRef,
    NodeSelector,
    Resources,
    S3Uri,
    ShortString,
    Storage,
    Tolerations,
    list_type,
    rule,
    validations,
)
from .labels import ROLLOUT_ACTION_ANNOTATION
from .trainingjob import TrainingJobSpec

KIND = "InferenceService"
PLURAL = "inferenceservices"
SHORT_NAMES = ["isvc"]
PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Serving", "type": "string", "jsonPath": ".status.servedModelVersion"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryModelVersion"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
# `kubectl scale` and HorizontalPodAutoscalers work on the InferenceService itself.
SCALE = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}

MAX_SERVICE_NAME = 63
DNS1035_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_RUNTIME_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"
# Triton's ports in every serving pod, as the Triton image uses them.
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002


class ModelRef(ApiModel):
    """Which ModelVersion to serve: a model name plus either a version number or an alias."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("has(self.version) != has(self.alias)", "set exactly one of version or alias")
        )
    )

    name: DnsLabel = Field(description="Registered model name (ModelVersion spec.modelName).")
    version: int | None = Field(None, ge=1, description="A fixed version number.")
    alias: DnsLabel | None = Field(
        None, description="An alias, e.g. production; the service follows the alias when it moves."
    )


class DynamicBatching(ApiModel):
    """Triton's dynamic batcher: combine requests into server-side batches."""

    preferred_batch_sizes: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, max_length=8, description="Batch sizes the batcher aims for, each at most maxBatchSize."
    )
    max_queue_delay_microseconds: int = Field(
        0, ge=0, description="How long a request may wait for others to join its batch."
    )


class InstanceGroup(ApiModel):
    """How many model instances Triton runs per replica, and where."""

    count: int = Field(1, ge=1, le=64, description="Model instances per replica (per GPU for kind GPU).")
    kind: Literal["GPU", "CPU"] | None = Field(
        None, description="Where instances run; GPU when resources.gpus > 0, else CPU, when omitted."
    )


class Runtime(ApiModel):
    """The Triton server that serves the model."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.dynamicBatching) || self.maxBatchSize > 0",
                "runtime.dynamicBatching needs maxBatchSize > 0",
            ),
            # Triton refuses to load a model whose preferred batch size exceeds max_batch_size.
            rule(
                "!has(self.dynamicBatching) || !has(self.dynamicBatching.preferredBatchSizes) || "
                "self.dynamicBatching.preferredBatchSizes.all(s, s <= self.maxBatchSize)",
                "runtime.dynamicBatching.preferredBatchSizes must not exceed maxBatchSize",
                ".dynamicBatching.preferredBatchSizes",
            ),
        )
    )

    image: str = Field(DEFAULT_RUNTIME_IMAGE, min_length=1, max_length=512, description="Triton server image.")
    backend: Literal["pytorch", "onnxruntime", "tensorrt", "tensorflow", "python"] | None = Field(
        None, description="Triton backend; derived from the artifact format when omitted."
    )
    max_batch_size: int = Field(
        0,
        ge=0,
        description="Triton max_batch_size; 0 means the model takes whole tensors without a batch dimension.",
    )
    dynamic_batching: DynamicBatching | None = Field(None, description="Enable Triton's dynamic batcher.")
    instance_group: InstanceGroup = Field(default_factory=InstanceGroup, description="Model instances.")


class Autoscaling(ApiModel):
    """Scale replicas with load. While set, spec.replicas is owned by the autoscaler."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed maxReplicas",
                ".minReplicas",
            )
        )
    )

    min_replicas: int = Field(1, ge=1, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=1024, description="Most replicas (at most 1024, like spec.replicas).")
    metric: Literal["gpu-utilization", "inference-queue", "requests-per-second", "cpu-utilization"] = Field(
        "inference-queue", description="Load signal to scale on."
    )
    target: float = Field(
        gt=0, description="Target per replica: percent for *-utilization, queued requests, or requests/s."
    )


class Canary(ApiModel):
    """Send part of the traffic to a second version."""

    model: ModelRef = Field(description="The candidate version.")
    traffic_percent: int = Field(ge=0, le=100, description="Percent of requests sent to the candidate.")


# The serving agent's ports in every serving pod (mlcycle agent): the public HTTP port, which the Service's
# http port targets, and the admin port (/metrics, /traffic, /healthz) that the operator talks to.
AGENT_PORT, AGENT_ADMIN_PORT = 8080, 9091

ROLLOUT_ACTIONS = ("promote", "abort")
# Condition: True while the last rollout was aborted (the metric and its value, or who aborted it, in the
# message) and the spec still asks for the aborted version; False otherwise.
ROLLOUT_ABORTED = "RolloutAborted"


class RolloutStep(ApiModel):
    """One step of a progressive rollout: the candidate's share of the requests, held for `pause`."""

    weight: int = Field(ge=1, le=100, description="Percent of requests the candidate receives in this step.")
    pause: str | None = Field(
        None,
        pattern=DURATION_PATTERN,
        max_length=32,
        description=(
            "How long the step lasts, e.g. 5m; it ends once this has passed and the latest analysis passed. "
            f"Omitted: the rollout waits at this step for `{ROLLOUT_ACTION_ANNOTATION}: promote`."
        ),
    )


class RolloutAnalysis(ApiModel):
    """The check of the candidate's requests, each interval, from the serving agents' metrics."""

    interval: str = Field("1m", pattern=DURATION_PATTERN, max_length=32, description="Time between two analyses.")
    success_rate_min: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Least fraction of the candidate's requests that succeed (no HTTP 5xx, and answered at all).",
    )
    latency_p99_max_ms: float | None = Field(
        None, gt=0, le=600_000, description="Most p99 latency of the candidate's requests, in milliseconds."
    )
    failure_limit: int = Field(2, ge=1, le=100, description="Failed analyses that abort the rollout.")
    min_requests: int = Field(
        1,
        ge=1,
        le=1_000_000,
        description="Fewer requests to the candidate in an interval leave the analysis inconclusive.",
    )


class Rollout(ApiModel):
    """Progressive delivery of a new version: when spec.model resolves to another version, its traffic
    share walks up the steps while the analysis passes, then it is promoted; failing analyses abort and
    roll back. Nothing is switched at once."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "self.steps.map(s, s.weight).isSorted() && "
                "self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))",
                "rollout.steps weights must increase from step to step",
                ".steps",
            )
        )
    )

    steps: list[RolloutStep] = Field(min_length=1, max_length=20, description="Traffic steps, weights increasing.")
    analysis: RolloutAnalysis = Field(default_factory=RolloutAnalysis, description="The check of each interval.")
    progress_deadline: str = Field(
        "10m",
        pattern=DURATION_PATTERN,
        max_length=32,
        description="How long the candidate's pods may take to become ready before the rollout aborts.",
    )


class Logging(ApiModel):
    """Record requests and responses to object storage, the input of drift checks."""

    sample_rate: float = Field(1.0, ge=0, le=1, description="Fraction of requests logged.")
    destination: S3Uri = Field(description="S3 URI prefix the request logs are written under.")


DRIFT_METHODS: tuple[str, ...] = get_args(DriftMethod)
# The outcome of one drift check (status.drift.result and the check's termination message).
DriftResult = Literal["NoDrift", "DriftDetected", "InsufficientData", "ReferenceMissing", "Failed"]
DRIFT_RESULTS: tuple[str, ...] = get_args(DriftResult)
DRIFT_DETECTED = "DriftDetected"  # also the condition type
RETRAIN_TRIGGERED = "RetrainTriggered"  # condition type


class Drift(ApiModel):
    """A scheduled check of the logged inputs of the served version against reference data, run as the
    CronJob `<name>-drift` (`mlcycle drift`)."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.threshold) || self.method != 'auto'",
                "threshold needs an explicit method: with method auto each column uses its method's default "
                "(p < 0.05 for ks/chi2/z, distance >= 0.1 for wasserstein/jensenshannon)",
                ".threshold",
            ),
            rule(
                "!has(self.threshold) || !(self.method in ['ks', 'chi2']) || self.threshold < 1.0",
                "for ks and chi2, threshold is a p-value: a feature drifts when p falls below it (e.g. 0.05)",
                ".threshold",
            ),
        )
    )

    schedule: str = Field(
        pattern=CRON_PATTERN, max_length=128, description="Cron schedule (5 fields, UTC) or @hourly, @daily etc."
    )
    method: DriftMethod = Field(
        "auto",
        description=(
            "Statistic per feature. auto: per column as Evidently's DataDriftPreset does by default (reference "
            "of at most 1,000 rows: Kolmogorov-Smirnov, or chi-squared / Z-test for categorical columns and "
            "columns with at most 5 values, drift at p < 0.05; larger references: Wasserstein distance "
            "normalised by the reference's standard deviation, or Jensen-Shannon distance for those columns, "
            "drift at >= 0.1). psi: population stability index on the reference's 10 quantile bins; ks: "
            "Kolmogorov-Smirnov test; chi2: chi-squared test (for categorical columns); wasserstein: normalised "
            "Wasserstein distance; jensenshannon: Jensen-Shannon distance."
        ),
    )
    threshold: float | None = Field(
        None,
        gt=0,
        description=(
            "Per-feature drift threshold for an explicit method: a p-value for ks and chi2 (drift when p is "
            "below it; default 0.05), a distance for psi (default 0.2), wasserstein and jensenshannon "
            "(drift when the distance reaches it; default 0.1). Not allowed with method auto."
        ),
    )
    drift_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The service has drifted when at least this share of the checked features drifted.",
    )
    reference: str = Field(
        "training",
        max_length=2048,
        pattern=f"^training$|{S3_URI_PATTERN}",
        description=(
            "Reference data: 'training' (the reference_profile.json the trainer wrote next to the served "
            "version's artifact) or an S3 URI of a CSV or Parquet file, or of a prefix holding such files."
        ),
    )
    window_size: int = Field(
        1000,
        ge=1,
        description="The most recent logged rows of the served version compared with the reference; fewer "
        "logged rows give the result InsufficientData.",
    )
    features: list[ShortString] | None = Field(
        None,
        max_length=4096,
        description="Features to check (unique); all signature features when omitted.",
        json_schema_extra=list_type("set"),
    )


PerformanceMetric = Literal["accuracy", "f1", "rmse", "mae"]
PERFORMANCE_METRICS: tuple[str, ...] = get_args(PerformanceMetric)
# The metrics where higher is better: the service degrades when they fall below the threshold; the others
# (errors) degrade when they rise above it.
HIGHER_IS_BETTER: tuple[str, ...] = ("accuracy", "f1")
CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "f1")
# The outcome of one performance check (status.performance.result).
PerformanceResult = Literal["WithinThreshold", "PerformanceDegraded", "InsufficientData", "Failed"]
PERFORMANCE_RESULTS: tuple[str, ...] = get_args(PerformanceResult)
PERFORMANCE_DEGRADED = "PerformanceDegraded"  # also the condition type


class Performance(ApiModel):
    """The served version's live quality, from ground truth that arrives later: each drift check also joins
    the predictions logged in the window with the labels that have arrived and computes the metric."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!(self.metric in ['accuracy', 'f1']) || self.threshold <= 1.0",
                "for accuracy and f1, threshold is a fraction in [0, 1]",
                ".threshold",
            ),
            rule(
                "!has(self.classes) || self.metric in ['accuracy', 'f1']",
                "classes are for the classification metrics accuracy and f1",
                ".classes",
            ),
        )
    )

    labels: S3Uri = Field(
        description=(
            "S3 prefix (or one object) of the delayed labels: Parquet (.parquet) or CSV (.csv) files with a "
            "column of the request id the serving agent logs (its x-request-id answer header: the request's v2 "
            "`id`, else its x-request-id header, else one it generated) and a column of the true value. "
            "Every file under the prefix is read; a later file's label for the same request wins."
        )
    )
    id_column: ShortString = Field("request_id", description="Column of the labels that holds the request id.")
    row_column: ShortString | None = Field(
        None,
        description=(
            "Column of the labels that holds the row's index within a batched request (the log's `row`). "
            "Unset: a label is the truth for its request's first row (requests of one row)."
        ),
    )
    label_column: ShortString = Field("label", description="Column of the labels that holds the true value.")
    classes: list[ShortString] | None = Field(
        None,
        max_length=4096,
        description=(
            "Class names in the model's output order, when the labels are names (e.g. the trainer's classes, "
            "sorted); unset: labels are class indices. The prediction is the index of the largest output."
        ),
    )
    output: ShortString | None = Field(
        None,
        description=(
            "The logged output column to score, lower-cased as the agent logs it (e.g. output__0); unset: "
            "the log's only output column."
        ),
    )
    metric: PerformanceMetric = Field(
        description=(
            "accuracy: share of correct classes; f1: macro-averaged F1 over the classes seen (labels or "
            "predictions); rmse: root mean squared error; mae: mean absolute error (regression: the output's "
            "first value)."
        )
    )
    threshold: float = Field(
        ge=0, description="Degraded when accuracy or f1 falls below it, or when rmse or mae rises above it."
    )
    window: str = Field(
        "24h",
        pattern=DURATION_PATTERN,
        max_length=32,
        description="Logged predictions of the served version made within this long before the check, e.g. 24h, 7d.",
    )
    min_labelled_rows: int = Field(
        100,
        ge=1,
        le=100_000_000,
        description="Fewer logged rows with a label than this give InsufficientData, never a verdict.",
    )


class Monitoring(ApiModel):
    """Model monitoring."""

    drift: Drift | None = Field(None, description="Data-drift check; needs spec.logging.")
    performance: Performance | None = Field(
        None,
        description="Live accuracy / error from delayed labels, computed in each drift check; needs drift.",
    )


class Retrain(ApiModel):
    """Start a TrainingJob from a template when drift is detected or performance degrades (Auto), or only by
    hand (Manual)."""

    policy: Literal["Manual", "Auto"] = Field(
        "Manual", description="Auto retrains when drift is detected or performance degrades."
    )
    template: TrainingJobSpec = Field(description="Spec of the TrainingJob to create.")
    cooldown: str = Field(
        "24h",
        pattern=DURATION_PATTERN,
        max_length=32,
        description="Least time between two retrains, e.g. 24h, 90m.",
    )


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.monitoring) || !has(self.monitoring.drift) || has(self.logging)",
                "spec.monitoring.drift needs spec.logging: drift is computed on logged requests",
            ),
            rule(
                "!has(self.monitoring) || !has(self.monitoring.performance) || has(self.monitoring.drift)",
                "spec.monitoring.performance needs spec.monitoring.drift: it is computed in the drift check's Job, "
                "on its schedule",
            ),
            rule(
                "!has(self.canary) || !has(self.rollout)",
                "spec.canary and spec.rollout exclude each other: a rollout sets the candidate's traffic itself",
            ),
            rule(
                "!has(self.retrain) || self.retrain.policy != 'Auto' || "
                "(has(self.monitoring) && has(self.monitoring.drift))",
                "spec.retrain.policy Auto needs spec.monitoring.drift",
            ),
            # Triton fails a GPU instance group on a replica without a GPU; a GPU metric has nothing to measure.
            rule(
                "!has(self.runtime) || !has(self.runtime.instanceGroup) || !has(self.runtime.instanceGroup.kind) "
                "|| self.runtime.instanceGroup.kind != 'GPU' || self.resources.gpus > 0",
                "spec.runtime.instanceGroup.kind GPU needs spec.resources.gpus > 0",
                ".runtime.instanceGroup.kind",
            ),
            rule(
                "!has(self.autoscaling) || self.autoscaling.metric != 'gpu-utilization' || self.resources.gpus > 0",
                "spec.autoscaling.metric gpu-utilization needs spec.resources.gpus > 0",
                ".autoscaling.metric",
            ),
        )
    )

    model: ModelRef = Field(description="The ModelVersion to serve.")
    runtime: Runtime = Field(default_factory=Runtime, description="The Triton server.")
    replicas: int = Field(1, ge=0, le=1024, description="Serving replicas; managed by autoscaling when set.")
    autoscaling: Autoscaling | None = Field(None, description="Scale replicas with load.")
    resources: Resources = Field(default_factory=Resources, description="Resources of each replica.")
    gpu_type: LabelValue | None = Field(
        None,
        description="GPU model to run on; schedules onto nodes labelled nvidia.com/gpu.product=<gpuType>.",
    )
    node_selector: NodeSelector | None = Field(None, description="Extra node labels the replicas must match.")
    tolerations: Tolerations | None = Field(None, description="Taints the replicas tolerate.")
    canary: Canary | None = Field(None, description="Split traffic with a candidate version.")
    rollout: Rollout | None = Field(
        None, description="Roll a new version out step by step with automatic promotion or rollback."
    )
    logging: Logging | None = Field(None, description="Request/response logging.")
    monitoring: Monitoring | None = Field(None, description="Drift and performance monitoring.")
    retrain: Retrain | None = Field(None, description="Retraining on drift or degraded performance.")
    storage: Storage = Field(description="Credentials of the object store with the models and logs.")


class Traffic(ApiModel):
    """The share of requests one version receives."""

    model_version: ShortString = Field(description="Name of the ModelVersion.")
    percent: int = Field(ge=0, le=100, description="Percent of requests.")


class DriftStatus(ApiModel):
    """The outcome of the last drift check."""

    result: DriftResult | None = Field(
        None,
        description=(
            "NoDrift; DriftDetected: the drifted share reached driftShare; InsufficientData: too few logged "
            "rows, no logs yet or a feature missing from the logs (message says which); ReferenceMissing: "
            "no reference profile or data (message says what); Failed: the check itself failed."
        ),
    )
    last_check_time: datetime | None = Field(None, description="When the last check ran.")
    job: ShortString | None = Field(None, description="The Job that ran it.")
    method: DriftMethod | None = Field(None, description="The method asked for (auto picks one per column).")
    score: float | None = Field(
        None, description="Largest per-feature drift score: the distance, or 1 - p-value for a test."
    )
    share: float | None = Field(None, ge=0, le=1, description="Share of the checked features that drifted.")
    drifted_features: list[ShortString] | None = Field(
        None, max_length=4096, description="Features whose statistic crossed their threshold."
    )
    window_rows: int | None = Field(None, ge=0, description="Logged rows the check compared.")
    report_uri: S3Uri | None = Field(None, description="S3 URI of the HTML report (report.json beside it).")
    message: str | None = Field(None, max_length=4096, description="What the check found, in words.")


class PerformanceStatus(ApiModel):
    """The outcome of the last performance check (spec.monitoring.performance)."""

    result: PerformanceResult | None = Field(
        None,
        description=(
            "WithinThreshold; PerformanceDegraded: the metric crossed the threshold; InsufficientData: fewer "
            "labelled rows than minLabelledRows (no verdict); Failed: the labels or logs could not be read."
        ),
    )
    last_check_time: datetime | None = Field(None, description="When the last check ran.")
    job: ShortString | None = Field(None, description="The Job that ran it.")
    metric: PerformanceMetric | None = Field(None, description="The metric computed.")
    value: float | None = Field(None, description="Its value over the labelled rows of the window.")
    threshold: float | None = Field(None, description="The threshold it was compared with.")
    coverage: float | None = Field(
        None, ge=0, le=1, description="Share of the window's logged predictions that have a label."
    )
    labelled_rows: int | None = Field(None, ge=0, description="Logged predictions with a label (the metric's rows).")
    window_rows: int | None = Field(None, ge=0, description="Logged predictions in the window.")
    report_uri: S3Uri | None = Field(None, description="S3 URI of performance.json, next to the drift report.")
    message: str | None = Field(None, max_length=4096, description="What the check found, in words.")


class RetrainStatus(ApiModel):
    """The last retraining this service started."""

    last_triggered: datetime | None = Field(None, description="When a retrain was last started.")
    training_job_ref: LocalRef | None = Field(None, description="The TrainingJob it created.")
    reason: Literal["DriftDetected", "PerformanceDegraded", "Requested"] | None = Field(
        None,
        description="DriftDetected or PerformanceDegraded (policy Auto), or Requested (the retrain-requested "
        "annotation).",
    )
    cause: ShortString | None = Field(
        None, description="What started it: the check's report id (its UTC time) or the request's value."
    )
    last_request: ShortString | None = Field(
        None, description="The value of the mlcycle.io/retrain-requested annotation last acted on."
    )


class RolloutAnalysisResult(ApiModel):
    """The outcome of one analysis of the candidate's requests."""

    time: datetime = Field(description="When it was taken.")
    phase: Literal["Successful", "Failed", "Inconclusive"] = Field(description="Its verdict.")
    requests: int = Field(ge=0, description="Requests to the candidate in the interval.")
    success_rate: float | None = Field(None, ge=0, le=1, description="Fraction of them that succeeded.")
    latency_p99_ms: float | None = Field(None, ge=0, description="Their p99 latency in milliseconds.")
    message: str = Field("", max_length=1024, description="The failing metric and its value, or why inconclusive.")


class RolloutStatus(ApiModel):
    """Where the rollout of a new version stands."""

    phase: Literal["Progressing", "Paused", "Promoted", "Aborted"] = Field(
        description=(
            "Progressing: walking the steps; Paused: waiting for a manual promote; Promoted: the candidate "
            "takes all traffic; Aborted: traffic is back on the previous version."
        )
    )
    candidate: ShortString = Field(description="The ModelVersion being rolled out.")
    step: int = Field(0, ge=0, description="Index of the current step in spec.rollout.steps.")
    weight: int = Field(0, ge=0, le=100, description="Percent of requests the candidate receives now.")
    start_time: datetime = Field(description="When this rollout started.")
    step_start_time: datetime | None = Field(
        None, description="When the current step started; unset while the candidate's pods start."
    )
    failures: int = Field(0, ge=0, description="Failed analyses so far.")
    last_analysis: RolloutAnalysisResult | None = Field(None, description="The latest analysis.")
    failed_version: ShortString | None = Field(
        None, description="A version that was aborted; not rolled out again until the spec or the alias changes."
    )
    failed_generation: int | None = Field(None, description="The spec generation it was aborted under.")
    message: str | None = Field(None, max_length=1024, description="What the rollout is doing or why it stopped.")


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService."""

    phase: Literal["Pending", "Loading", "Ready", "Failed"] | None = Field(
        None,
        description=(
            "Pending: waiting for a Ready ModelVersion; Loading: the first version is starting; Ready: serving "
            "(a newer version may be rolling out next to it); Failed: nothing can serve (see message)."
        ),
    )
    conditions: Conditions | None = Field(
        None,
        description="Ready, ModelLoaded, CanaryReady, RolloutAborted, DriftDetected, PerformanceDegraded, "
        "RetrainTriggered.",
    )
    observed_generation: int | None = Field(None, description="The generation this status describes.")
    url: str | None = Field(None, description="HTTP (KServe v2 protocol) endpoint inside the cluster.")
    grpc_url: str | None = Field(None, description="gRPC endpoint inside the cluster.")
    replicas: int | None = Field(None, ge=0, description="Replicas that exist (for the scale subresource).")
    ready_replicas: int | None = Field(None, ge=0, description="Replicas ready to serve.")
    selector: str | None = Field(None, description="Label selector of the replicas' pods (for autoscalers).")
    served_model_version: ShortString | None = Field(None, description="ModelVersion receiving main traffic.")
    previous_model_version: ShortString | None = Field(
        None, description="The version served before the last switch; its pods drain, then go."
    )
    last_switch_time: datetime | None = Field(None, description="When traffic last moved to another version.")
    canary_model_version: ShortString | None = Field(None, description="ModelVersion receiving canary traffic.")
    traffic: list[Traffic] | None = Field(None, description="Actual traffic split.")
    drift: DriftStatus | None = Field(None, description="Last drift check.")
    performance: PerformanceStatus | None = Field(None, description="Last performance check.")
    retrain: RetrainStatus | None = Field(None, description="Last retrain.")
    rollout: RolloutStatus | None = Field(None, description="The rollout of a new version, if any.")
    message: str | None = Field(None, description="Human-readable summary of the state.")


class InferenceService(ApiModel):
    """Serves a registered model version on Triton behind a Service, optionally with a canary, request
    logging, scheduled drift checks and automatic retraining."""

    # The name is the Service's (the stable in-cluster URL), and a Service name is an RFC 1035 label.
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                f"self.metadata.name.size() <= {MAX_SERVICE_NAME} && self.metadata.name.matches('{DNS1035_PATTERN}')",
                f"metadata.name must be an RFC 1035 label of at most {MAX_SERVICE_NAME} characters (lower-case "
                "letters, digits and '-', starting with a letter): it names the Service that serves it",
            )
        )
    )

    api_version: str = Field(API_VERSION, description="mlcycle.io/v1alpha1")
    kind: str = Field(KIND, description="InferenceService")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: InferenceServiceSpec = Field(description="Desired state.")
    status: InferenceServiceStatus | None = Field(None, description="Observed state, written by the operator.")
