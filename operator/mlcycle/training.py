"""Reporting from training code, for the built-in trainer and for user images alike.

The operator learns how a training pod went from two places: the pod's termination message (a compact
JSON document Kubernetes reads from MLCYCLE_TERMINATION_LOG, at most 4096 bytes) and, while it runs,
`<MLCYCLE_OUTPUT_URI>/metrics.jsonl`. In a user image:

    from mlcycle import training

    for epoch in range(1, epochs + 1):
        ...
        training.report_metrics(epoch, train_loss=loss, val_accuracy=acc)
    training.report_artifact("s3://bucket/run/model.pt", "sha256:…", size, "torchscript")
    # labels and predictions on the validation rows, and the sliced features' values on those rows
    training.report_slices(y_val, predicted, {"region": region_val, "age": age_val})
    training.finish()                       # or: training.fail("DatasetUnreadable", "why")

`report_slices` computes the metrics of each slice of spec.registerModel.validation.slices (the pod gets
them in MLCYCLE_EVALUATION) and the fairness gaps between them, exactly as the built-in trainer does (see
mlcycle.evaluation); `report_evaluation` reports results computed some other way, in the same shape.

Success: {"metrics": {last epoch's metrics}, "artifact": {uri, digest, size, format},
"signatureUri": …, "profileUri": …, "artifacts": [every format written, when more than one],
"evaluation": {"slices": [{feature, value, metrics}], "fairness": [{feature, gaps}]}}; slices that do not
fit are left out, and the evaluation says `truncated`.
Failure: {"error": {"reason": R, "message": …}} and exit code 1.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from mlcycle import redaction

# The reasons the built-in trainer fails with; user images may use their own.
DATASET_NOT_FOUND = "DatasetNotFound"
DATASET_UNREADABLE = "DatasetUnreadable"
STORAGE_AUTH_FAILED = "StorageAuthFailed"
LABEL_COLUMN_MISSING = "LabelColumnMissing"
INVALID_CONFIG = "InvalidConfig"
DIGEST_MISMATCH = "DigestMismatch"
TRAINER_ERROR = "TrainerError"

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a termination message; stay clear of it.
MESSAGE_LIMIT = 3072
MAX_METRICS = 64  # what TrainingJob status.metrics holds
# Each line of metrics.jsonl (and the final metrics) carries the epoch it is from under this name.
EPOCH = "epoch"
_ERROR_MESSAGE_LIMIT = 2048
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN")


class TrainingFailed(Exception):
    """A failure with a known reason; training code raises it, the entry point reports it."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def redact(text: str, env: Mapping[str, str] = os.environ) -> str:
    """`text` with any credential from the environment (and anything that looks like one) replaced by ***."""
    return redaction.redact(text, [env.get(name, "") for name in _SECRET_ENV], limit=None)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def success_message(metrics: Mapping[str, Any], artifact: Mapping[str, Any] | None, uris: Mapping[str, Any],
                    evaluation: Mapping[str, Any] | None = None) -> str:
    """The success termination message. status.metrics maps names to numbers, so only finite numbers are
    kept, at most MAX_METRICS, and fewer if the document would not fit in MESSAGE_LIMIT bytes;
    `metricsTruncated` says that some were left out. The evaluation gives way first: its last slices (then
    fairness entries) are left out, and it says `truncated`."""
    numbers = [(k, v) for k, v in metrics.items() if is_finite_number(v)]
    kept = dict(numbers[:MAX_METRICS])
    while True:
        doc: dict[str, Any] = {"metrics": kept}
        if len(kept) < len(metrics):
            doc["metricsTruncated"] = True
        if artifact is not None:
            doc["artifact"] = dict(artifact)
        doc.update(uris)
        if evaluation:
            doc["evaluation"] = evaluation
        text = json.dumps(doc, separators=(",", ":"))
        if len(text.encode()) <= MESSAGE_LIMIT or not (kept or evaluation):
            return text
        if evaluation:
            evaluation = _smaller(evaluation)
        else:
            kept = dict(list(kept.items())[:-1])


def _smaller(evaluation: Mapping[str, Any]) -> dict[str, Any] | None:
    """The evaluation without its last slice (or, with no slices left, its last fairness entry)."""
    for key in ("slices", "fairness"):
        if evaluation.get(key):
            return dict(evaluation) | {key: evaluation[key][:-1], "truncated": True}
    return None


def failure_message(reason: str, message: str) -> str:
    message = redact(message)
    if len(message) > _ERROR_MESSAGE_LIMIT:
        message = message[: _ERROR_MESSAGE_LIMIT - 1] + "…"
    return json.dumps({"error": {"reason": reason, "message": message}}, separators=(",", ":"))


def format_metrics_only(metrics: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def format_metrics(epoch: int, metrics: Mapping[str, Any]) -> str:
    return f"epoch={epoch} {format_metrics_only(metrics)}".rstrip()


class Reporter:
    """Collects metrics and the artifact of one training process and reports them.

    Only the primary process (global rank 0) prints progress and uploads metrics.jsonl; every process
    that owns a pod's termination log (local rank 0, or any process on failure) writes the message.
    """

    def __init__(
        self,
        output_uri: str | None = None,
        termination_log: str = DEFAULT_TERMINATION_LOG,
        storage: Any = None,
        primary: bool = True,
        writes_termination_log: bool = True,
    ):
        self.output_uri = output_uri
        self.termination_log = termination_log
        self.storage = storage  # a minio.Minio for output_uri; made from the environment when None
        self.primary = primary
        self.writes_termination_log = writes_termination_log
        self.metrics: list[dict[str, Any]] = []
        self.artifact: dict[str, Any] | None = None
        self.uris: dict[str, Any] = {}
        self.evaluation: dict[str, Any] | None = None
        self._env: Mapping[str, str] = os.environ

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Reporter:
        """Output and termination log from MLCYCLE_* and the rank from torchrun's RANK/LOCAL_RANK; the
        S3 client (MLCYCLE_S3_*, AWS_*) is made on the first upload, so this never fails."""
        reporter = cls(
            output_uri=env.get("MLCYCLE_OUTPUT_URI") or None,
            termination_log=env.get("MLCYCLE_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG,
            primary=env.get("RANK", "0") == "0",
            writes_termination_log=env.get("LOCAL_RANK", "0") == "0",
        )
        reporter._env = env
        return reporter

    def report_metrics(self, epoch: int, **metrics: Any) -> None:
        self.metrics.append({EPOCH: epoch, **metrics})
        if not self.primary:
            return
        print(format_metrics(epoch, metrics), flush=True)
        if self.output_uri:
            from mlcycle.clients import s3

            if self.storage is None:
                self.storage = s3.client(s3.S3Config.from_env(self._env))
            bucket, prefix = s3.parse_s3_uri(self.output_uri)
            lines = "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in self.metrics)
            s3.upload_bytes(
                self.storage,
                bucket,
                s3.join_key(prefix, "metrics.jsonl"),
                lines.encode(),
                "application/jsonl",
            )

    def report_artifact(
        self,
        uri: str,
        digest: str,
        size: int,
        format: str,
        *,
        signature_uri: str | None = None,
        profile_uri: str | None = None,
        dataset_digest: str | None = None,
        artifacts: list[Mapping[str, Any]] | None = None,
    ) -> None:
        """The trained model; `digest` is "sha256:<hex>" (a bare hex digest gets the prefix).
        `dataset_digest` is the sha256 of the data it was trained on, for the registry's lineage.
        `artifacts` lists every format written ({uri, digest, size, format}, this one first), so that a
        server can pick the one its backend loads."""
        if not digest.startswith("sha256:"):
            digest = f"sha256:{digest}"
        self.artifact = {"uri": uri, "digest": digest, "size": int(size), "format": format}
        if signature_uri:
            self.uris["signatureUri"] = signature_uri
        if profile_uri:
            self.uris["profileUri"] = profile_uri
        if dataset_digest:
            self.uris["datasetDigest"] = dataset_digest
        if artifacts:
            self.uris["artifacts"] = [dict(a) for a in artifacts]

    def report_evaluation(self, evaluation: Mapping[str, Any]) -> None:
        """Validation results per slice and fairness gaps, in the shape of api.modelversion.Evaluation
        ({"slices": [{feature, value, metrics}], "fairness": [{feature, gaps}]}); checked against it here,
        so that a mistake fails the training code rather than vanishing from the operator's status."""
        from mlcycle.api.modelversion import Evaluation

        self.evaluation = Evaluation.model_validate(evaluation).to_api()
        if self.primary:
            for s in self.evaluation.get("slices") or []:
                print(f"slice {s['feature']}={s['value']}: {format_metrics_only(s['metrics'])}", flush=True)
            for f in self.evaluation.get("fairness") or []:
                print(f"fairness across {f['feature']}: {format_metrics_only(f['gaps'])}", flush=True)

    def finish(self) -> None:
        """Write the success termination message (the last epoch's metrics, the artifact, the evaluation)."""
        if self.writes_termination_log:
            final = self.metrics[-1] if self.metrics else {}
            self.write_termination_message(success_message(final, self.artifact, self.uris, self.evaluation))

    def fail(self, reason: str, message: str) -> NoReturn:
        """Write the failure termination message, print it to stderr, and exit with status 1."""
        text = failure_message(reason, message)
        print(f"training failed: {text}", file=sys.stderr, flush=True)
        self.write_termination_message(text)
        raise SystemExit(1)

    def write_termination_message(self, text: str) -> None:
        try:
            with open(self.termination_log, "w") as f:
                f.write(text)
        except OSError as e:  # e.g. running outside a pod: the message is still on stdout/stderr
            print(f"could not write termination message to {self.termination_log}: {e}", file=sys.stderr)


_default: Reporter | None = None


def reporter() -> Reporter:
    """The process-wide Reporter, configured from the environment on first use."""
    global _default
    if _default is None:
        _default = Reporter.from_env()
    return _default


def report_metrics(epoch: int, **metrics: Any) -> None:
    reporter().report_metrics(epoch, **metrics)


def report_artifact(
    uri: str,
    digest: str,
    size: int,
    format: str,
    *,
    signature_uri: str | None = None,
    profile_uri: str | None = None,
    dataset_digest: str | None = None,
    artifacts: list[Mapping[str, Any]] | None = None,
) -> None:
    reporter().report_artifact(uri, digest, size, format, signature_uri=signature_uri, profile_uri=profile_uri,
                               dataset_digest=dataset_digest, artifacts=artifacts)


def fail(reason: str, message: str) -> NoReturn:
    reporter().fail(reason, message)


def finish() -> None:
    reporter().finish()


def evaluation_config(env: Mapping[str, str] = os.environ) -> Any:
    """spec.registerModel.validation's slices and positive class, as the operator passes them in
    MLCYCLE_EVALUATION (an api.modelversion.Validation); an empty one when the job asks for no slices."""
    from mlcycle.api.modelversion import Validation

    return Validation.model_validate_json(env.get("MLCYCLE_EVALUATION") or "{}")


def report_slices(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    columns: Mapping[str, Sequence[Any]],
    *,
    task: str = "classification",
    slices: Sequence[Any] | None = None,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Compute and report the validation metrics of each slice and the fairness gaps between slices, as
    the built-in trainer does. `y_true`/`y_pred`: labels and predictions on the validation rows (class
    labels, or numbers for task="regression"); `columns`: each sliced feature's value on those rows.
    `slices` (api.modelversion.Slice or its wire form) and `positive_class` default to the job's
    spec.registerModel.validation. Returns the evaluation reported."""
    import numpy as np

    from mlcycle import evaluation
    from mlcycle.api.modelversion import Slice
    from mlcycle.workloads.dataset import value_order

    config = evaluation_config()
    specs = [s if isinstance(s, Slice) else Slice.model_validate(s) for s in slices] if slices is not None \
        else config.slices or []
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = None
    if task == "classification":
        classes = value_order(np.concatenate([y_true.astype(str), y_pred.astype(str)]).tolist())
    result = evaluation.evaluate(y_true, y_pred, {k: np.asarray(v) for k, v in columns.items()}, specs,
                                 classes=classes, positive=positive_class or config.positive_class)
    reporter().report_evaluation(result)
    return result


def report_evaluation(evaluation: Mapping[str, Any]) -> None:
    reporter().report_evaluation(evaluation)
