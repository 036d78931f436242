"""The `mlcycle` command. Each subcommand lives in its own module and is imported only when used,
so a training pod never imports the operator and the operator never imports torch."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv: list[str]) -> int | None`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("mlcycle.operator_main", "run the operator against the current kubeconfig"),
    "train": ("mlcycle.workloads.trainer", "the built-in PyTorch trainer (runs inside training pods)"),
    "validate-data": ("mlcycle.workloads.validate_data", "check a dataset against spec.dataValidation (training init)"),
    "fetch-model": ("mlcycle.workloads.fetch_model", "lay out a Triton model repository (serving pods' init)"),
    "drift": ("mlcycle.workloads.drift", "one drift check of a served model (runs in the <isvc>-drift CronJob)"),
    "verify": ("mlcycle.workloads.verify", "verify one ModelVersion's artifact (runs inside its verification pod)"),
    "crds": ("mlcycle.api.crdgen", "write crds/*.yaml from the pydantic API models"),
    "chart-schema": ("mlcycle.chartvalues", "write charts/mlcycle/values.schema.json from the chart's values model"),
    "runtime": ("mlcycle.localdev.runtime", "local pod runtime: runs pods bound to its node as processes"),
    "stack": ("mlcycle.localdev.stack", "start/stop the local stack (cluster, MinIO)"),
    "dev": ("mlcycle.localdev.dev", "bring up the local stack, the operator and the sample pipeline"),
    "lineage": ("mlcycle.lineage", "print dataset → training job → model version → inference services"),
    "runs": ("mlcycle.runs.cli", "compare training runs of a model or label; --plot draws their learning curves"),
    "agent": ("mlcycle.workloads.agent", "the serving sidecar: v2 REST proxy to Triton, payload log, canary split"),
}


def usage() -> str:
    lines = ["usage: mlcycle <command> [args]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"mlcycle: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
