"""`mlcycle run`: the operator process. Configures kopf, then runs every handler in mlcycle.handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading

import kopf

from mlcycle import informer, leader, memory, metrics
from mlcycle.api.base import GROUP
from mlcycle.api.labels import FINALIZER, INFERENCESERVICE, MODELVERSION_UID

EXIT_GRACE_SECONDS = 1.0


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
    # kopf's child watches are each for one kind's children (TrainingJobs' own go through mlcycle.informer):
    # the apiserver filters them, so the cluster's other Jobs and pods never reach the operator.
    settings.watching.label_selectors["batch", "v1", "jobs"] = MODELVERSION_UID
    settings.watching.label_selectors["", "v1", "pods"] = INFERENCESERVICE
    settings.watching.label_selectors["apps", "v1", "deployments"] = INFERENCESERVICE
    # Handlers only hand work to the kinds' pools (mlcycle.coalesce), so a stopping watcher's queue drains at
    # once; kopf's default 2 s wait for it counts against the pod's grace period on SIGTERM.
    settings.batching.exit_timeout = 0.5


@kopf.on.cleanup()
def exit_soon(**_) -> None:
    """SIGTERM: exit after a short grace. kopf itself waits up to 5 s (fixed) for its leftover tasks, and the
    interpreter then joins the kinds' pools, whose reconciles may sit in a network call for minutes: together
    longer than a pod's grace period. Every reconcile is level-based, so one cut off loses nothing: the next
    operator redoes it."""
    timer = threading.Timer(EXIT_GRACE_SECONDS, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle run", description="Run the mlcycle operator.")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="watch only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--health-port", type=int, default=8080, help="liveness endpoint /healthz")
    parser.add_argument("--metrics-port", type=int, default=8081, help="Prometheus metrics (/metrics)")
    parser.add_argument("--standalone", action="store_true", help="skip kopf peering (one replica)")
    election = parser.add_argument_group("leader election (several replicas: only the Lease holder reconciles)")
    election.add_argument("--leader-election", action="store_true", help="reconcile only while holding the Lease")
    election.add_argument("--lease-name", default="mlcycle")
    election.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    election.add_argument("--lease-duration", type=int, default=15, help="seconds before a standby takes over")
    election.add_argument("--renew-deadline", type=int, default=10, help="seconds a leader may fail to renew")
    election.add_argument("--retry-period", type=int, default=2, help="seconds between renewals")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    memory.limit_arenas()  # before any thread starts
    import mlcycle.handlers  # noqa: F401  (registers the handlers with kopf)

    metrics.serve(args.metrics_port)
    asyncio.run(_run(args))
    return 0


async def _run(args: argparse.Namespace) -> None:
    if args.leader_election:
        leading = leader.campaign(args.lease_name, args.lease_namespace, leader.default_identity(),
                                  args.lease_duration, args.renew_deadline, args.retry_period)
        await _standby(args.health_port, leading)
    informer.start_all(args.namespace)
    memory.release_periodically()
    await kopf.operator(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        # The Lease decides who runs; kopf's own peering would only pause a second operator, later.
        standalone=True if args.standalone or args.leader_election else None,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )


async def _standby(port: int, leading: threading.Event) -> None:
    """Answer /healthz while waiting for the Lease (a standby is alive), then free the port for kopf's probe."""
    from aiohttp import web

    async def healthz(_request):
        return web.Response(text="standby\n")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        await asyncio.to_thread(leading.wait)
    finally:
        await runner.cleanup()
