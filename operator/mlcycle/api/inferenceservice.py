"""InferenceService: serves a ModelVersion on Triton, with canary, request logging, drift checks and
automatic retraining."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import (
    API_VERSION,
    CRON_PATTERN,
    DURATION_PATTERN,
    S3_URI_PATTERN,
    ApiModel,
    Conditions,
    DnsLabel,
    LabelValue,
    LocalRef,
    NodeSelector,
    Resources,
    S3Uri,
    ShortString,
    Storage,
    Tolerations,
    rule,
    validations,
)
from .trainingjob import TrainingJobSpec

KIND = "InferenceService"
PLURAL = "inferenceservices"
# Requests on an InferenceService, by annotation (the operator never writes spec; Argo CD's actions set these):
# a new value of the first starts spec.retrain's template now; the second, `promote` or `abort`, ends a canary.
RETRAIN_REQUESTED_ANNOTATION = "mlcycle.io/retrain-requested"
ROLLOUT_ACTION_ANNOTATION = "mlcycle.io/rollout-action"
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

DEFAULT_RUNTIME_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"


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

    preferred_batch_sizes: list[int] | None = Field(
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
            )
        )
    )

    image: str = Field(DEFAULT_RUNTIME_IMAGE, max_length=512, description="Triton server image.")
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
    max_replicas: int = Field(ge=1, description="Most replicas.")
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


class Logging(ApiModel):
    """Record requests and responses to object storage, the input of drift checks."""

    sample_rate: float = Field(1.0, ge=0, le=1, description="Fraction of requests logged.")
    destination: S3Uri = Field(description="S3 URI prefix the request logs are written under.")


class Drift(ApiModel):
    """A scheduled check of the logged inputs against reference data."""

    schedule: str = Field(
        pattern=CRON_PATTERN, max_length=128, description="Cron schedule (5 fields, UTC) or @hourly, @daily etc."
    )
    method: Literal["psi", "ks", "chi2"] = Field(
        "psi",
        description="Statistic per feature: population stability index, Kolmogorov-Smirnov, chi-squared.",
    )
    threshold: float = Field(0.2, gt=0, description="A feature drifts when its statistic exceeds this.")
    reference: str = Field(
        "training",
        max_length=2048,
        pattern=f"^training$|{S3_URI_PATTERN}",
        description="Reference data: 'training' (the served version's training dataset) or an S3 URI.",
    )
    window_size: int = Field(1000, ge=1, description="Most recent logged requests compared to the reference.")
    features: list[ShortString] | None = Field(
        None, max_length=4096, description="Features to check; all signature features when omitted."
    )


class Monitoring(ApiModel):
    """Model monitoring."""

    drift: Drift | None = Field(None, description="Data-drift check; needs spec.logging.")


class Retrain(ApiModel):
    """Start a TrainingJob from a template when drift is detected (Auto) or only by hand (Manual)."""

    policy: Literal["Manual", "Auto"] = Field("Manual", description="Auto retrains when drift is detected.")
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
                "!has(self.retrain) || self.retrain.policy != 'Auto' || "
                "(has(self.monitoring) && has(self.monitoring.drift))",
                "spec.retrain.policy Auto needs spec.monitoring.drift",
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
    logging: Logging | None = Field(None, description="Request/response logging.")
    monitoring: Monitoring | None = Field(None, description="Drift monitoring.")
    retrain: Retrain | None = Field(None, description="Retraining on drift.")
    storage: Storage = Field(description="Credentials of the object store with the models and logs.")


class Traffic(ApiModel):
    """The share of requests one version receives."""

    model_version: ShortString = Field(description="Name of the ModelVersion.")
    percent: int = Field(ge=0, le=100, description="Percent of requests.")


class DriftStatus(ApiModel):
    """The outcome of the last drift check."""

    last_check_time: datetime | None = Field(None, description="When the last check ran.")
    score: float | None = Field(None, description="Largest per-feature statistic.")
    drifted_features: list[ShortString] | None = Field(None, description="Features above the threshold.")
    report_uri: S3Uri | None = Field(None, description="S3 URI of the full report.")


class RetrainStatus(ApiModel):
    """The last retraining this service started."""

    last_triggered: datetime | None = Field(None, description="When a retrain was last started.")
    training_job_ref: LocalRef | None = Field(None, description="The TrainingJob it created.")


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService."""

    phase: Literal["Pending", "Loading", "Ready", "Failed"] | None = Field(
        None,
        description="Pending: waiting for a Ready ModelVersion; Loading: starting; Ready: serving; Failed.",
    )
    conditions: Conditions | None = Field(
        None, description="Ready, ModelLoaded, CanaryReady, DriftDetected, RetrainTriggered."
    )
    observed_generation: int | None = Field(None, description="The generation this status describes.")
    url: str | None = Field(None, description="HTTP (KServe v2 protocol) endpoint inside the cluster.")
    grpc_url: str | None = Field(None, description="gRPC endpoint inside the cluster.")
    replicas: int | None = Field(None, ge=0, description="Replicas that exist (for the scale subresource).")
    ready_replicas: int | None = Field(None, ge=0, description="Replicas ready to serve.")
    selector: str | None = Field(None, description="Label selector of the replicas' pods (for autoscalers).")
    served_model_version: ShortString | None = Field(None, description="ModelVersion receiving main traffic.")
    canary_model_version: ShortString | None = Field(None, description="ModelVersion receiving canary traffic.")
    traffic: list[Traffic] | None = Field(None, description="Actual traffic split.")
    drift: DriftStatus | None = Field(None, description="Last drift check.")
    retrain: RetrainStatus | None = Field(None, description="Last retrain.")
    message: str | None = Field(None, description="Human-readable summary of the state.")


class InferenceService(ApiModel):
    """Serves a registered model version on Triton behind a Service, optionally with a canary, request
    logging, scheduled drift checks and automatic retraining."""

    api_version: str = Field(API_VERSION, description="mlcycle.io/v1alpha1")
    kind: str = Field(KIND, description="InferenceService")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: InferenceServiceSpec = Field(description="Desired state.")
    status: InferenceServiceStatus | None = Field(None, description="Observed state, written by the operator.")
