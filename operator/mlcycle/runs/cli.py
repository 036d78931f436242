"""`mlcycle runs MODEL` / `mlcycle runs --selector key=value`: training runs side by side (hyperparameters,
final metrics, dataset, duration, version, gate), read from the cluster with the current kubeconfig;
`--plot out.png` draws their learning curves from each run's metrics.jsonl in S3."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from mlcycle.api.base import API_VERSION
from mlcycle.runs import compare


def _histories(records: list[dict], namespace: str, endpoint: str | None) -> list[tuple[str, list[dict]]]:
    """(label, epochs) of each run whose metrics.jsonl can be read, through the storage Secret the run names;
    a run without one is named on stderr and left out."""
    from mlcycle import storage
    from mlcycle.clients import s3
    from mlcycle.runs.curves import parse_history

    clients: dict[str, object] = {}
    curves = []
    for r in records:
        where = f"{compare.label(r)}: "
        if not r["metricsUri"] or not r["storageSecret"]:
            print(f"mlcycle runs: {where}no metrics.jsonl known (its TrainingJob is gone)", file=sys.stderr)
            continue
        try:
            if r["storageSecret"] not in clients:
                cfg = storage.s3_config(namespace, r["storageSecret"])
                if endpoint:  # the Secret's credentials, another way to the same store
                    cfg = s3.S3Config.create(endpoint, cfg.access_key, cfg.secret_key,
                                             None if "://" in endpoint else cfg.secure, cfg.region)
                clients[r["storageSecret"]] = s3.client(cfg)
            bucket, key = s3.parse_s3_uri(r["metricsUri"])
            epochs = parse_history(s3.read_bytes(clients[r["storageSecret"]], bucket, key))
        except (storage.SecretProblem, s3.StorageError, ValueError) as e:
            print(f"mlcycle runs: {where}{e}", file=sys.stderr)
            continue
        curves.append((compare.label(r), epochs))
    return curves


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="registered model name: the runs that produced its versions "
                        "(and the runs registering it that produced none)")
    parser.add_argument("--selector", "-l", help="label selector (key=value,...): every TrainingJob it matches")
    parser.add_argument("--namespace", "-n", default=None,
                        help="namespace (default: the kubeconfig context's, like kubectl)")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")
    parser.add_argument("--metric", "-m", action="append", dest="metrics", metavar="NAME",
                        help="show (and plot) only this metric; repeatable")
    parser.add_argument("--plot", metavar="FILE", help="draw the learning curves to FILE (.png, .svg, .pdf)")
    parser.add_argument("--s3-endpoint", metavar="HOST:PORT",
                        help="reach S3 here instead of the storage Secret's endpoint (e.g. a port-forward)")
    args = parser.parse_args(argv)
    if (args.model is None) == (args.selector is None):
        parser.error("give a MODEL or --selector, not both")

    from mlcycle import kube  # the kubernetes client only when the command runs

    namespace = args.namespace or kube.context_namespace()
    training_jobs = kube.list_(API_VERSION, "TrainingJob", namespace, args.selector)
    records = compare.runs(training_jobs, kube.list_(API_VERSION, "ModelVersion", namespace), datetime.now(UTC),
                           model=args.model)
    if not records:
        what = f"model {args.model}" if args.model else f"selector {args.selector}"
        print(f"mlcycle runs: no runs of {what} in namespace {namespace}", file=sys.stderr)
        return 1
    print(json.dumps(records, indent=2) if args.output == "json" else compare.table(records, args.metrics))
    if args.plot:
        from mlcycle.runs.curves import plot

        curves = [c for c in _histories(records, namespace, args.s3_endpoint) if c[1]]
        if not curves:
            print("mlcycle runs: no learning curve could be read; nothing plotted", file=sys.stderr)
            return 1
        drawn = plot(curves, args.plot, args.metrics)
        print(f"plotted {', '.join(drawn)} of {len(curves)} run(s) to {args.plot}", file=sys.stderr)
    return 0
