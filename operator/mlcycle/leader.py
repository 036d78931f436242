"""Lease-based leader election (coordination.k8s.io/v1) with the kubernetes client's `leaderelection` package,
which follows client-go's protocol (as controller-runtime uses it): the holder renews the Lease every retry
period; a standby takes it once it has seen no renewal for the lease duration on its own clock; a leader that
could not renew for the renew deadline stops.

kopf's own peering is not Lease-based and lets two operators run at once for a while; this replaces it. Like
controller-runtime, a process that loses the Lease exits at once (its Deployment restarts it as a standby), so
two leaders never reconcile together.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from mlcycle import kube, metrics

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name (unique among replicas) or the host's, with a random suffix as client-go does."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _lost() -> None:
    log.error("leader election: lost the lease (or the election failed); exiting so that only the leader "
              "reconciles")
    logging.shutdown()
    os._exit(1)


def campaign(name: str, namespace: str, identity: str, lease_duration: int, renew_deadline: int,
             retry_period: int) -> threading.Event:
    """Start campaigning for Lease `namespace/name` in a background thread; the returned event is set once this
    process leads. The process exits when it stops leading, or when the campaign itself fails."""
    kube.api_client()  # loads the in-cluster or kubeconfig credentials the Lease client uses
    leading = threading.Event()

    def started() -> None:
        log.info("leader election: %s leads (lease %s/%s)", identity, namespace, name)
        metrics.LEADER.set(1)
        leading.set()

    config = electionconfig.Config(LeaseLock(name, namespace, identity), lease_duration, renew_deadline,
                                   retry_period, started, _lost)

    def run() -> None:
        try:
            leaderelection.LeaderElection(config).run()  # returns (after _lost) only when leadership is lost
        finally:
            _lost()  # an exception in the election loop: nobody renews the Lease any more

    log.info("leader election: %s campaigning for lease %s/%s", identity, namespace, name)
    metrics.LEADER.set(0)
    threading.Thread(target=run, name="leader-election", daemon=True).start()
    return leading
