"""What the idle operator costs the apiserver: requests per minute with running and finished TrainingJobs and
verified ModelVersions, nothing changing (running: unfinished, their pods Running on kwok nodes added for the
benchmark), counted by the apiserver itself (apiserver_request_total: it has no
user-agent label, so the same window is measured again with the operator stopped, and the difference is the
operator's). Measured at two numbers of finished TrainingJobs: the figure must not grow with them.

    .venv/bin/python -m mlcycle.bench.idle [--running 1000 --finished 1000 --modelversions 1000 --window 60]
        [--operator-source OTHER_CHECKOUT/operator]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mlcycle.bench.fleet import PODS_PER_NODE, Fleet, Operator, load


def window(fleet: Fleet, seconds: float) -> dict[tuple[str, str], float]:
    """Requests the apiserver served in `seconds`, by (verb, resource)."""
    before = fleet.apiserver_requests()
    time.sleep(seconds)
    after = fleet.apiserver_requests()
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def finished(fleet: Fleet, namespace: str, count: int, prefix: str) -> None:
    """`count` TrainingJobs run to the end (kwok's nodes run 110 pods each: they finish in turns)."""
    fleet.trainingjobs(namespace, count, prefix)
    fleet.wait_phases(namespace, count, {"Succeeded"}, poke=lambda: fleet.finish_pods(namespace))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--running", type=int, default=1000)
    parser.add_argument("--finished", type=int, default=1000, help="measured with this many, then twice as many")
    parser.add_argument("--modelversions", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of each measurement")
    parser.add_argument("--operator-source", type=Path, help="run this operator/ directory's code (a baseline)")
    args = parser.parse_args(argv)
    fleet = Fleet()
    # Room for every running job's pod and a finished batch's pods besides (they finish in turns).
    nodes = fleet.nodes(args.running + 2 * PODS_PER_NODE)
    namespaces = [fleet.namespace(p) for p in ("idle-done", "idle-run", "idle-done2")]
    done, running, done2 = namespaces
    # The versions first, as an earlier operator left them: this one finds them at its start.
    versions = fleet.model_versions("idle-mv", args.modelversions)
    namespaces += versions
    operator = Operator(fleet, args.operator_source)
    fleet.wait_all_phases(versions, args.modelversions, "modelversions")
    finished(fleet, done, args.finished, "done")
    fleet.trainingjobs(running, args.running, "run")
    fleet.wait_phases(running, args.running, {"Pending", "Running"})
    fleet.wait_pods(running, args.running)  # the Job controller creates pods for a while: not idle until then
    operator.settle()
    results = [(args.finished, window(fleet, args.window))]
    finished(fleet, done2, args.finished, "done2")
    operator.settle()
    results.append((2 * args.finished, window(fleet, args.window)))
    _, peak = operator.rss_mib()
    operator.stop()
    background = window(fleet, args.window)
    for namespace in namespaces:
        fleet.delete_namespace(namespace)
    fleet.delete_nodes(nodes)

    per_minute = 60.0 / args.window
    quiet = sum(background.values()) * per_minute
    print(f"Idle operator: {args.running} running TrainingJobs, {args.modelversions} verified ModelVersions, "
          f"finished TrainingJobs as below; apiserver requests per minute ({args.window:.0f} s windows)"
          + (f" [operator code: {args.operator_source}]" if args.operator_source else ""))
    print(f"  without the operator (kwok, controllers):  {quiet:.0f}/min")
    for count, counts in results:
        total = sum(counts.values()) * per_minute
        top = sorted(((v * per_minute, verb, res) for (verb, res), v in counts.items()), reverse=True)[:6]
        print(f"  {count} finished: {total:.0f}/min in all, the operator's {total - quiet:.0f}/min; most: "
              + ", ".join(f"{verb} {res} {v:.0f}" for v, verb, res in top))
    print(f"  operator peak RSS: {peak:.0f} MiB; machine: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
