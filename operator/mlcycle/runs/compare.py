"""The runs of a model (or of a label selector) side by side: one record per TrainingJob run, joined with the
ModelVersion it registered, and the table that shows them. Pure: objects in, records and text out."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import ValidationError

from mlcycle import clock
from mlcycle.api import labels as keys
from mlcycle.api.trainingjob import TrainingJobSpec
from mlcycle.training import EPOCH
from mlcycle.trainingjob.manifests import output_uri

METRICS_FILE = "metrics.jsonl"  # what mlcycle.training's Reporter writes under the run's output URI
DIGEST_SHOWN = 19  # "sha256:" and 12 hex digits: enough to tell datasets apart in a table


def flatten(params: dict, prefix: str = "") -> dict:
    """Nested parameters as dotted names ({"model": {"dropout": 0.1}} -> {"model.dropout": 0.1}); lists stay."""
    flat: dict = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _metrics_uri(tj: dict | None, mv: dict | None) -> str | None:
    """Where the run's metrics.jsonl is: under the job's own output prefix (trainingjob.manifests.output_uri).
    Once the job is deleted, a version the operator registered (status.registeredBy) still tells: its artifact
    lies under that prefix, which ends with the run's uid."""
    if tj is not None:
        try:
            return f"{output_uri(TrainingJobSpec.model_validate(tj['spec']), tj['metadata']['uid'])}/{METRICS_FILE}"
        except ValidationError:
            return None
    by = ((mv or {}).get("status") or {}).get("registeredBy")
    artifact = (mv or {}).get("spec", {}).get("artifact", {}).get("uri", "")
    run_dir = f"/{by['uid'][:8]}/" if by else None
    if not run_dir or run_dir not in artifact:
        return None
    return artifact[:artifact.index(run_dir) + len(run_dir)] + METRICS_FILE


def gate(mv: dict | None) -> str | None:
    """The validation gate's result: passed, failed: <first failing rule>, pending, or none (no gates)."""
    if mv is None:
        return None
    if not mv["spec"].get("validation"):
        return "none"
    results = (mv.get("status") or {}).get("validation")
    if not results:
        return "pending"
    failed = [r for r in results if not r.get("passed")]
    if not failed:
        return "passed"
    return f"failed: {failed[0]['rule']}" + (f" (+{len(failed) - 1})" if len(failed) > 1 else "")


def _duration(status: dict, now: datetime) -> float | None:
    if not status.get("startTime"):
        return None
    end = clock.parse(status["completionTime"]) if status.get("completionTime") else now
    return (end - clock.parse(status["startTime"])).total_seconds()


def record(tj: dict | None, mv: dict | None, now: datetime) -> dict:
    """One run: the TrainingJob (None once deleted, or for a version registered by hand) and its version."""
    tj_meta, tj_spec, tj_status = ((tj or {}).get(part) or {} for part in ("metadata", "spec", "status"))
    mv_meta, mv_spec, mv_status = ((mv or {}).get(part) or {} for part in ("metadata", "spec", "status"))
    source, by = mv_spec.get("source") or {}, mv_status.get("registeredBy") or {}
    if tj_spec:
        params = tj_spec["trainer"] if tj_spec.get("trainer") else {"image": tj_spec.get("image")}
        digest = tj_spec["dataset"].get("digest") or tj_status.get("datasetDigest")
        read = {"uri": tj_spec["dataset"]["uri"]} | ({"digest": digest} if digest else {})
    else:  # the job is gone: the version's lineage is all there is
        params, read = source.get("params") or {}, None
    return {
        "run": tj_meta.get("name") or source.get("trainingJob") or by.get("name"),
        "uid": tj_meta.get("uid") or (mv_meta.get("labels") or {}).get(keys.TRAININGJOB_UID) or by.get("uid"),
        "exists": tj is not None,
        "phase": tj_status.get("phase"),
        "model": mv_spec.get("modelName") or (tj_spec.get("registerModel") or {}).get("name"),
        "version": mv_spec.get("version"),
        "modelVersion": mv_meta.get("name"),
        "versionPhase": mv_status.get("phase"),
        "gate": gate(mv),
        "gateResults": mv_status.get("validation") or [],
        "params": flatten(params),
        "metrics": tj_status.get("metrics") or mv_spec.get("metrics") or {},
        # What the version's lineage recorded first: it is what the registry shows.
        "dataset": source.get("dataset") or read,
        "startTime": tj_status.get("startTime"),
        "completionTime": tj_status.get("completionTime"),
        "durationSeconds": _duration(tj_status, now),
        "metricsUri": _metrics_uri(tj, mv),
        "storageSecret": ((tj_spec or mv_spec).get("storage") or {}).get("secretRef", {}).get("name"),
        "created": (tj_meta or mv_meta).get("creationTimestamp"),
    }


def _producer(mv: dict, by_uid: dict[str, dict], by_name: dict[str, dict]) -> dict | None:
    """The TrainingJob that registered `mv`, matched by uid (a re-created job of the same name is another run)."""
    labels = mv["metadata"].get("labels") or {}
    uid = labels.get(keys.TRAININGJOB_UID) or ((mv.get("status") or {}).get("registeredBy") or {}).get("uid")
    if uid:
        return by_uid.get(uid)
    name = (mv["spec"].get("source") or {}).get("trainingJob")
    return by_name.get(name) if name else None


def runs(training_jobs: list[dict], versions: list[dict], now: datetime, model: str | None = None) -> list[dict]:
    """Records, oldest first. With `model`: every version of it, with the run that produced it, and the runs
    that register it but produced no version (yet). Without: every TrainingJob given, with its version if any."""
    by_uid = {tj["metadata"]["uid"]: tj for tj in training_jobs}
    by_name = {tj["metadata"]["name"]: tj for tj in training_jobs}
    if model is not None:
        versions = [mv for mv in versions if mv["spec"].get("modelName") == model]
    pairs, produced = [], set()
    for mv in versions:
        tj = _producer(mv, by_uid, by_name)
        if tj is not None:
            produced.add(tj["metadata"]["uid"])
        elif model is None:
            continue  # selector mode lists TrainingJobs: a version of another run is not one of them
        pairs.append((tj, mv))
    for tj in training_jobs:
        registers = ((tj.get("spec") or {}).get("registerModel") or {}).get("name")
        if tj["metadata"]["uid"] not in produced and (model is None or registers == model):
            pairs.append((tj, None))
    records = [record(tj, mv, now) for tj, mv in pairs]
    return sorted(records, key=lambda r: (r["created"] or "", r["run"] or "", r["version"] or 0))


def validation_first(names: set[str]) -> list[str]:
    """Metric names in the order they are shown: validation metrics (val_*) first, each group by name."""
    return sorted(names, key=lambda n: (not n.startswith("val_"), n))


def metric_names(records: list[dict]) -> list[str]:
    """Every final metric any run reports (not the epoch it is from)."""
    return validation_first({name for r in records for name in r["metrics"]} - {EPOCH})


def varying_params(records: list[dict]) -> tuple[list[str], dict]:
    """(the parameters that differ between runs, {name: value} of those every run shares): the table shows
    the first as columns and the second once, below it."""
    names = sorted({name for r in records for name in r["params"]})
    varying, common = [], {}
    for name in names:
        if all(name in r["params"] for r in records) and len(
                {json.dumps(r["params"][name], sort_keys=True) for r in records}) == 1:
            common[name] = records[0]["params"][name]
        else:
            varying.append(name)
    return varying, common


def _header(name: str, names: list[str]) -> str:
    """A parameter's last part (learningRate) when no other shown parameter ends the same, else the whole."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf if sum(n.rsplit(".", 1)[-1] == leaf for n in names) == 1 else name


def text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def dataset_text(dataset: dict | None) -> str:
    if not dataset:
        return "-"
    digest = dataset.get("digest")
    return dataset["uri"] + (f"@{digest[:DIGEST_SHOWN]}" if digest else "")


def run_text(r: dict) -> str:
    if not r["run"]:
        return "- (registered by hand)"
    return r["run"] if r["exists"] else f"{r['run']} (deleted)"


def version_text(r: dict) -> str:
    return f"{r['model']}:{r['version']}" if r["version"] is not None else "-"


def label(r: dict) -> str:
    """How a run is named in a legend: its version and run, or whichever it has."""
    if r["version"] is None:
        return r["run"] or "-"
    return f"{version_text(r)} ({r['run']})" if r["run"] else version_text(r)


def table(records: list[dict], metrics: list[str] | None = None) -> str:
    """The runs as a table, one row each: run, phase, version, gate, duration, the parameters that differ,
    the final metrics (`metrics`, default all) and the dataset; then the parameters every run shares."""
    params, common = varying_params(records)
    metrics = metric_names(records) if metrics is None else metrics
    header = ["RUN", "PHASE", "VERSION", "GATE", "DURATION", *(_header(p, params) for p in params), *metrics,
              "DATASET"]
    rows = [[run_text(r), text(r["phase"]), version_text(r), text(r["gate"]), duration_text(r["durationSeconds"]),
             *(text(r["params"].get(p)) for p in params), *(text(r["metrics"].get(m)) for m in metrics),
             dataset_text(r["dataset"])] for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    if common:
        shared = ", ".join(f"{name}={text(v)}" for name, v in common.items())
        lines += ["", ("same in every run: " if len(records) > 1 else "parameters: ") + shared]
    return "\n".join(lines)
