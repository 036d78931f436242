"""The `<isvc>-drift` CronJob an InferenceService with spec.monitoring.drift wants: it runs `mlcycle drift`
(the mlcycle image) on the served version's request logs against its reference, on the spec's schedule, and
with spec.monitoring.performance also scores the logged predictions against the delayed labels.

A manual run: `kubectl create job --from=cronjob/<isvc>-drift <name>`.
"""

from __future__ import annotations

import json

from mlcycle import names, podenv
from mlcycle.api.base import owner_reference
from mlcycle.api.inferenceservice import KIND, InferenceServiceSpec
from mlcycle.api.labels import INFERENCESERVICE, OWNER_NAME_ANNOTATION
from mlcycle.images import mlcycle_image
from mlcycle.inferenceservice.agent import log_prefix
from mlcycle.trainingjob.registration import profile_uri

TERMINATION_LOG = "/dev/termination-log"
COMPONENT = "drift-check"
HISTORY_LIMIT = 3  # finished Jobs kept (each), so the last result can be read and a failure looked at
STARTING_DEADLINE_SECONDS = 600  # a check missed by more than this (operator or cluster down) is skipped
# The CronJob controller appends an 11-character suffix to Job names, which must stay <= 63 characters.
_MAX_NAME = 52


def cronjob_name(isvc: str) -> str:
    """`<isvc>-drift`, short enough for the Jobs the CronJob controller names after it (see names.child_name)."""
    return names.child_name(isvc, "drift", limit=_MAX_NAME)


def logs_prefix(destination: str, namespace: str, isvc: str, model_version: str) -> str:
    """Where the serving agent logs a version's requests:
    <destination>/<namespace>/<isvc>/<modelversion>/<YYYY-MM-DD>/<HH>/<batch-id>.parquet."""
    return log_prefix(destination, namespace, isvc, model_version) + "/"


def reports_prefix(destination: str, namespace: str, isvc: str) -> str:
    """Drift reports go next to the logs: <destination>/<namespace>/<isvc>/drift/<UTC time>/report.{json,html}."""
    return f"{destination.rstrip('/')}/{namespace}/{isvc}/drift/"


def reference_uri(reference: str, artifact_uri: str) -> str:
    """`training`: the reference_profile.json next to the served version's artifact; else the URI given."""
    return profile_uri(artifact_uri) if reference == "training" else reference


def job_selector(isvc: str) -> str:
    """Label selector of the drift Jobs (and their pods) of an InferenceService."""
    return f"{INFERENCESERVICE}={isvc},app.kubernetes.io/component={COMPONENT}"


def labels(isvc: str) -> dict:
    return {INFERENCESERVICE: names.label_value(isvc), "app.kubernetes.io/managed-by": "mlcycle",
            "app.kubernetes.io/component": COMPONENT}


def drift_env(name: str, namespace: str, spec: InferenceServiceSpec, served_version: str, artifact_uri: str,
              ) -> list[dict]:
    drift = spec.monitoring.drift
    destination = spec.logging.destination
    env = [
        {"name": "MLCYCLE_DRIFT_LOGS", "value": logs_prefix(destination, namespace, name, served_version)},
        {"name": "MLCYCLE_DRIFT_REFERENCE", "value": reference_uri(drift.reference, artifact_uri)},
        {"name": "MLCYCLE_DRIFT_REPORTS", "value": reports_prefix(destination, namespace, name)},
        {"name": "MLCYCLE_DRIFT_WINDOW", "value": str(drift.window_size)},
        {"name": "MLCYCLE_DRIFT_METHOD", "value": drift.method},
        {"name": "MLCYCLE_DRIFT_SHARE", "value": str(drift.drift_share)},
        {"name": "MLCYCLE_DRIFT_TITLE", "value": f"{namespace}/{name}"},
        {"name": "MLCYCLE_DRIFT_MODEL_VERSION", "value": served_version},
        {"name": "MLCYCLE_TERMINATION_LOG", "value": TERMINATION_LOG},
    ]
    if drift.threshold is not None:
        env.append({"name": "MLCYCLE_DRIFT_THRESHOLD", "value": str(drift.threshold)})
    if drift.features:
        env.append({"name": "MLCYCLE_DRIFT_FEATURES", "value": json.dumps(list(drift.features))})
    return env + performance_env(spec) + podenv.storage_env(spec.storage.secret_ref.name)


def performance_env(spec: InferenceServiceSpec) -> list[dict]:
    """The MLCYCLE_PERF_* inputs of spec.monitoring.performance (none without it): the same Job also scores
    the window's logged predictions against the delayed labels (mlcycle.workloads.performance)."""
    perf = spec.monitoring.performance if spec.monitoring else None
    if perf is None:
        return []
    values = {
        "LABELS": perf.labels,
        "METRIC": perf.metric,
        "THRESHOLD": str(perf.threshold),
        "WINDOW": perf.window,
        "MIN_LABELLED_ROWS": str(perf.min_labelled_rows),
        "ID_COLUMN": perf.id_column,
        "ROW_COLUMN": perf.row_column,
        "LABEL_COLUMN": perf.label_column,
        "CLASSES": json.dumps(list(perf.classes)) if perf.classes else None,
        "OUTPUT": perf.output,
    }
    return [{"name": f"MLCYCLE_PERF_{key}", "value": value} for key, value in values.items() if value is not None]


def desired_cronjob(
    name: str,
    namespace: str,
    uid: str,
    spec: InferenceServiceSpec,
    *,
    served_version: str,
    artifact_uri: str,
    node_selector: dict | None = None,
    tolerations: list[dict] | None = None,
) -> dict | None:
    """The drift-check CronJob, or None without spec.monitoring.drift (the caller then deletes it).
    `served_version` is the ModelVersion receiving traffic and `artifact_uri` its artifact; the pods go
    where `node_selector`/`tolerations` say (e.g. the local runtime), else anywhere."""
    if spec.monitoring is None or spec.monitoring.drift is None or spec.logging is None:
        return None
    container = {
        "name": "drift",
        "image": mlcycle_image(),
        "command": ["mlcycle", "drift"],
        "env": drift_env(name, namespace, spec, served_version, artifact_uri),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = list(tolerations)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": cronjob_name(name), "namespace": namespace, "labels": labels(name),
                     "ownerReferences": [owner_reference(KIND, name, uid)]},
        "spec": {
            "schedule": spec.monitoring.drift.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "jobTemplate": {
                "metadata": {"labels": labels(name)},
                "spec": {
                    "backoffLimit": 0,  # a failed check is retried by the next schedule, not at once
                    # The annotation names the InferenceService in full, so its pods' events reach its reconcile.
                    "template": {"metadata": {"labels": labels(name), "annotations": {OWNER_NAME_ANNOTATION: name}},
                                 "spec": pod},
                },
            },
        },
    }
