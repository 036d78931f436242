"""`mlcycle lineage <model>[:<version>]`: the chain dataset → training job → model version → inference
services of a model's versions, read from the cluster (the current kubeconfig)."""

from __future__ import annotations

import argparse
import json
import sys

from mlcycle.api import labels as keys
from mlcycle.api.base import API_VERSION
from mlcycle.modelversion.status import how_served


def lineage(versions: list[dict], training_jobs: dict[str, dict], isvcs: list[dict]) -> list[dict]:
    """One record per version, lowest version first. `training_jobs` maps name -> TrainingJob that still exists."""
    records = []
    for mv in sorted(versions, key=lambda mv: (mv["spec"]["version"], mv["metadata"]["name"])):
        spec, status, labels = mv["spec"], mv.get("status") or {}, mv["metadata"].get("labels") or {}
        source = spec.get("source") or {}
        tj_name = source.get("trainingJob") or labels.get(keys.TRAININGJOB)
        tj = training_jobs.get(tj_name) if tj_name else None
        held = status.get("aliases") or []
        records.append({
            "model": spec["modelName"], "version": spec["version"], "name": mv["metadata"]["name"],
            "phase": status.get("phase"), "aliases": held,
            "dataset": source.get("dataset"),
            "trainingJob": None if not tj_name else {
                "name": tj_name, "exists": tj is not None,
                "phase": ((tj or {}).get("status") or {}).get("phase"),
                "uid": labels.get(keys.TRAININGJOB_UID)},
            "params": source.get("params"),
            "artifact": {"uri": spec["artifact"]["uri"], "format": spec["artifact"]["format"],
                         "digest": status.get("verifiedDigest") or spec["artifact"].get("digest"),
                         "size": status.get("size")},
            "metrics": spec.get("metrics") or {},
            "inferenceServices": [{"name": isvc["metadata"]["name"], "via": ways}
                                  for isvc in isvcs if (ways := how_served(mv, held, isvc))],
        })
    return records


def format_text(records: list[dict]) -> str:
    lines = []
    for r in records:
        head = f"{r['model']}:{r['version']}  ({r['name']}, {r['phase'] or 'no status'}"
        lines.append(head + (f", aliases: {', '.join(r['aliases'])})" if r["aliases"] else ")"))
        dataset = r["dataset"] or {}
        lines.append(f"  dataset           {dataset.get('uri', '-')}  {dataset.get('digest') or ''}".rstrip())
        tj = r["trainingJob"]
        if tj:
            state = (tj["phase"] or "no status") if tj["exists"] else "deleted"
            lines.append(f"  → training job    {tj['name']} ({state})")
        else:
            lines.append("  → training job    - (registered by hand)")
        if r["params"]:
            lines.append(f"      params        {json.dumps(r['params'], sort_keys=True)}")
        art = r["artifact"]
        size = f"  {art['size']} bytes" if art["size"] is not None else ""
        lines.append(f"  → model version   {r['name']}  {art['uri']} ({art['format']})  {art['digest'] or ''}{size}"
                     .rstrip())
        if r["metrics"]:
            lines.append(f"      metrics       {', '.join(f'{k}={v:.4g}' for k, v in sorted(r['metrics'].items()))}")
        served = "; ".join(f"{s['name']} ({', '.join(s['via'])})" for s in r["inferenceServices"]) or "-"
        lines.append(f"  → inference svcs  {served}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle lineage", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="MODEL or MODEL:VERSION")
    parser.add_argument("--namespace", "-n", default=None,
                        help="namespace (default: the kubeconfig context's, like kubectl)")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    model, _, version = args.model.partition(":")
    if version and not version.isdigit():
        parser.error(f"version must be a number: {args.model!r}")

    from mlcycle import kube  # the kubernetes client only when the command runs

    args.namespace = args.namespace or kube.context_namespace()
    versions = [mv for mv in kube.list_(API_VERSION, "ModelVersion", args.namespace)
                if mv["spec"].get("modelName") == model and (not version or mv["spec"]["version"] == int(version))]
    if not versions:
        print(f"mlcycle lineage: no ModelVersion of {args.model} in namespace {args.namespace}", file=sys.stderr)
        return 1
    training_jobs = {tj["metadata"]["name"]: tj for tj in kube.list_(API_VERSION, "TrainingJob", args.namespace)}
    records = lineage(versions, training_jobs, kube.list_(API_VERSION, "InferenceService", args.namespace))
    print(json.dumps(records, indent=2) if args.output == "json" else format_text(records))
    return 0
