"""mlcycle: a Kubernetes operator for the ML lifecycle (TrainingJob, ModelVersion, InferenceService)."""

__version__ = "0.1.0"
