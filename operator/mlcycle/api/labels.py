"""Label, annotation and finalizer keys of the mlcycle API, each defined once.

Label values are written through `mlcycle.names.label_value` (an object name may be longer than a label
value may be); where the operator must find the object again from a child, the full name also goes in an
annotation.
"""

from __future__ import annotations

from .base import GROUP

FINALIZER = f"{GROUP}/finalizer"
MODEL = f"{GROUP}/model"
TRAININGJOB = f"{GROUP}/trainingjob"
TRAININGJOB_UID = f"{GROUP}/trainingjob-uid"
MODELVERSION = f"{GROUP}/modelversion"
MODELVERSION_UID = f"{GROUP}/modelversion-uid"  # on verification Jobs and their pods
# The spec fingerprint a verification Job checks (modelversion.verification.fingerprint).
FINGERPRINT_ANNOTATION = f"{GROUP}/modelversion-fingerprint"
# The operator's verification bookkeeping on a ModelVersion (see modelversion.verification).
VERIFICATION_ANNOTATION = f"{GROUP}/verification"
# On a storage Secret: "true" lets deletionPolicy: Delete remove any artifact these credentials reach.
ALLOW_ARTIFACT_DELETION_ANNOTATION = f"{GROUP}/allow-artifact-deletion"
# The full name of the owning object on a child whose label value may have been cut.
OWNER_NAME_ANNOTATION = f"{GROUP}/owner-name"
# On every child the operator applies: a digest of the whole manifest it applied (mlcycle.applied).
APPLIED_DIGEST_ANNOTATION = f"{GROUP}/applied-digest"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mlcycle"}
# Serving: which InferenceService a pod (or a retrain's TrainingJob) belongs to, and which ModelVersion a
# serving pod serves. The Service and status.selector select on both.
INFERENCESERVICE = f"{GROUP}/inferenceservice"
MODEL_VERSION = f"{GROUP}/model-version"
# `kubectl annotate isvc/x mlcycle.io/rollout-action=promote` (or abort): a one-shot manual decision on the
# rollout in progress, in the manner of an Argo CD resource action; the operator removes it once acted on.
ROLLOUT_ACTION_ANNOTATION = f"{GROUP}/rollout-action"
# A new value of this annotation asks for one retrain (any policy), e.g. the current time.
RETRAIN_REQUESTED_ANNOTATION = f"{GROUP}/retrain-requested"
# A retrain's TrainingJob: the drift report that caused it (its id as a label, its URI as an annotation).
DRIFT_REPORT = f"{GROUP}/drift-report"
DRIFT_REPORT_ANNOTATION = f"{GROUP}/drift-report-uri"
