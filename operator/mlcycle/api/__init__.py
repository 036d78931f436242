"""The mlcycle.io/v1alpha1 API: pydantic models for the three kinds, from which `crdgen` writes the CRDs.

kopf keeps its own bookkeeping (progress, last-handled state) in `mlcycle.io/`-prefixed annotations and
uses the finalizer `mlcycle.io/finalizer`, so the status schemas carry nothing for it.
"""

from . import inferenceservice, modelversion, trainingjob
from .base import API_VERSION, GROUP, VERSION, ApiModel, Condition, EnvVar, Resources, SecretRef, Storage
from .inferenceservice import InferenceService, InferenceServiceSpec, InferenceServiceStatus
from .modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus
from .trainingjob import TrainingJob, TrainingJobSpec, TrainingJobStatus

TRAININGJOB_KIND, TRAININGJOB_PLURAL = trainingjob.KIND, trainingjob.PLURAL
MODELVERSION_KIND, MODELVERSION_PLURAL = modelversion.KIND, modelversion.PLURAL
INFERENCESERVICE_KIND, INFERENCESERVICE_PLURAL = inferenceservice.KIND, inferenceservice.PLURAL

__all__ = [
    "API_VERSION",
    "GROUP",
    "INFERENCESERVICE_KIND",
    "INFERENCESERVICE_PLURAL",
    "MODELVERSION_KIND",
    "MODELVERSION_PLURAL",
    "TRAININGJOB_KIND",
    "TRAININGJOB_PLURAL",
    "VERSION",
    "ApiModel",
    "Condition",
    "EnvVar",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "Resources",
    "SecretRef",
    "Storage",
    "TrainingJob",
    "TrainingJobSpec",
    "TrainingJobStatus",
]
