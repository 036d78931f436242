"""`mlcycle run`: the operator process. Configures kopf, then runs every handler in mlcycle.handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from mlcycle import metrics
from mlcycle.api.base import GROUP
from mlcycle.api.labels import FINALIZER


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # Handler progress and diff-base go to annotations with our own prefix: kopf's default (status.kopf)
    # would be pruned by the structural CRD schemas, and it keeps `status` ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = FINALIZER
    # Idle watches have been seen to stop receiving events silently: make the server end them, and the
    # client give up on a stuck one, so kopf re-establishes them regularly.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.posting.level = logging.WARNING  # our own transitions are posted explicitly
    settings.execution.max_workers = 16


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle run", description="Run the mlcycle operator.")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="watch only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--health-port", type=int, default=8080, help="liveness endpoint /healthz")
    parser.add_argument("--metrics-port", type=int, default=8081, help="Prometheus metrics (/metrics)")
    parser.add_argument("--standalone", action="store_true", help="skip kopf peering (one replica)")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import mlcycle.handlers  # noqa: F401  (registers the handlers with kopf)

    metrics.serve(args.metrics_port)
    asyncio.run(kopf.operator(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=True if args.standalone else None,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    ))
    return 0
