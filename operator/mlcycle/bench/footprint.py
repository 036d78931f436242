"""The operator's memory with 5,000 resources across the three kinds: TrainingJobs on kwok nodes (each with its
Job and pod, running or unschedulable), ModelVersions already verified (50 to a namespace: a ModelVersion
reconcile still lists its whole namespace), a few InferenceServices. Prints the operator's RSS empty, peak and
settled; with --tracemalloc, where its Python memory is by source file.

    .venv/bin/python -m mlcycle.bench.footprint [--trainingjobs 1200 --modelversions 1390 --inferenceservices 10]
        [--operator-source OTHER_CHECKOUT/operator] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from mlcycle.bench.fleet import Fleet, Operator, load
from mlcycle.localdev.paths import LOCAL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainingjobs", type=int, default=1200)
    parser.add_argument("--modelversions", type=int, default=1390)
    parser.add_argument("--inferenceservices", type=int, default=10)
    parser.add_argument("--operator-source", type=Path, help="run this operator/ directory's code (a baseline)")
    parser.add_argument("--tracemalloc", action="store_true", help="where the operator's Python memory is")
    args = parser.parse_args(argv)
    fleet = Fleet()
    namespace = fleet.namespace("footprint")
    traced = LOCAL / "bench-tracemalloc.txt" if args.tracemalloc else None
    if traced and traced.exists():
        traced.unlink()
    # The operator's own footprint first, with nothing of ours in the cluster.
    operator = Operator(fleet, args.operator_source)
    time.sleep(5)
    empty, _ = operator.rss_mib()
    operator.stop()
    # The versions as an earlier operator left them (verified), found by this one at its start.
    versions = fleet.model_versions("footprint-mv", args.modelversions)
    fleet.inference_services(namespace, args.inferenceservices)
    operator = Operator(fleet, args.operator_source, traced)
    started = time.monotonic()
    fleet.trainingjobs(namespace, args.trainingjobs)
    # kwok's nodes run 110 pods each: the other workers stay Pending (unschedulable), but exist all the same.
    fleet.wait_phases(namespace, args.trainingjobs, {"Pending", "Running"})
    fleet.wait_pods(namespace, args.trainingjobs)
    fleet.wait_all_phases(versions, args.modelversions, "modelversions")
    converged = time.monotonic() - started
    operator.settle()
    current, peak = operator.rss_mib()
    cpu = operator.cpu_seconds()
    if traced:
        operator.signal(signal.SIGUSR1)
        while not traced.exists():
            time.sleep(0.5)
        time.sleep(1)
    operator.stop()
    for ns in [namespace, *versions]:
        fleet.delete_namespace(ns)
    total = 3 * args.trainingjobs + args.modelversions + args.inferenceservices
    print(f"Operator memory with {total} resources: {args.trainingjobs} TrainingJobs (+ as many Jobs and pods), "
          f"{args.modelversions} ModelVersions, {args.inferenceservices} InferenceServices"
          + (f" [operator code: {args.operator_source}]" if args.operator_source else ""))
    print(f"  RSS empty:                 {empty:.0f} MiB")
    print(f"  RSS peak (VmHWM):          {peak:.0f} MiB")
    print(f"  RSS settled:               {current:.0f} MiB")
    print(f"  per TrainingJob (peak - empty, all of it charged to them): "
          f"{(peak - empty) / max(args.trainingjobs, 1) * 1024:.0f} KiB")
    print(f"  all converged after {converged:.0f} s; operator CPU {cpu:.0f} s")
    print(f"  machine: {load()}")
    if traced:
        print("  where the Python memory is (tracemalloc, by file):")
        print("    " + traced.read_text().replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
