"""Two operators with Lease-based leader election against the real control plane: only the Lease holder
reconciles; SIGKILL the leader mid-run of 50 TrainingJobs and the standby takes over within the lease duration,
every job completes and no Job is created twice."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import yaml

from fleet import JobCreations, all_succeeded, trainingjob
from mlcycle.localdev.processes import start_operator
from waiting import wait_for

JOBS = 50
LEASE = {"duration": 6, "renew": 4, "retry": 1}


def metric(op, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def lease_holder(cluster, namespace) -> str | None:
    r = cluster.kubectl_run("get", "lease", "mlcycle", "-n", namespace, "-o", "json", check=False)
    return json.loads(r.stdout)["spec"].get("holderIdentity") if r.returncode == 0 else None


def test_the_standby_takes_over_when_the_leader_is_killed_and_no_job_is_created_twice(
        cluster, crds, kube_api, namespace, session_operator_stopped, tmp_path):
    created = JobCreations(kube_api, namespace)
    args = ("--leader-election", "--lease-name=mlcycle", f"--lease-namespace={namespace}",
            f"--lease-duration={LEASE['duration']}", f"--renew-deadline={LEASE['renew']}",
            f"--retry-period={LEASE['retry']}")
    ops = {name: start_operator(cluster.kubeconfig, tmp_path / f"{name}.log", env={"POD_NAME": name}, args=args)
           for name in ("op-a", "op-b")}
    try:
        holder = wait_for(lambda: lease_holder(cluster, namespace), what="a lease holder")
        leader = ops[holder.split("_")[0]]
        standby = next(op for op in ops.values() if op is not leader)
        wait_for(lambda: metric(leader, "mlcycle_leader") == 1, what="the leader's mlcycle_leader gauge")

        cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(
            [trainingjob(f"tj-{i:02d}", namespace) for i in range(JOBS)]))
        wait_for(lambda: len(created.uids) >= 10, what="the leader creating Jobs")
        # The standby has reconciled nothing: only the Lease holder runs handlers.
        assert metric(standby, "mlcycle_reconcile_total") == 0 and metric(standby, "mlcycle_leader") == 0
        assert standby.healthy()  # a standby is alive (its probe answers) while it waits

        leader.stop(signal.SIGKILL)
        killed = time.monotonic()
        new_holder = wait_for(lambda: (h := lease_holder(cluster, namespace)) != holder and h,
                              what="the standby taking the lease", timeout=LEASE["duration"] * 4, interval=0.2)
        took_over = time.monotonic() - killed
        assert new_holder.startswith(next(n for n, op in ops.items() if op is standby))
        print(f"standby took over {took_over:.1f}s after SIGKILL (lease duration {LEASE['duration']}s)")

        wait_for(lambda: all_succeeded(cluster, namespace, JOBS), what=f"all {JOBS} TrainingJobs Succeeded",
                 timeout=600, interval=2)
        assert metric(standby, "mlcycle_reconcile_total") > 0
        jobs = json.loads(cluster.kubectl_run("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"]
        assert len(jobs) == JOBS
        assert len(created.uids) == JOBS and all(len(uids) == 1 for uids in created.uids.values()), created.uids
    finally:
        created.stop()
        for op in ops.values():
            op.stop()
