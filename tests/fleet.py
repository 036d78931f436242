"""Many TrainingJobs on kwok nodes, for the leader-election tests: create them, finish their pods, and count
every Job ever created (a watch), so a Job created twice shows as two uids under one name."""

from __future__ import annotations

import json
import threading

from kubernetes import client, watch


def trainingjob(name: str, namespace: str) -> dict:
    return {"apiVersion": "mlcycle.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"trainer": {"task": "classification", "labelColumn": "label"},
                     "dataset": {"uri": "s3://data/train.csv"}, "output": {"uri": f"s3://models/{name}"},
                     "storage": {"secretRef": {"name": "s3"}}}}


def phases(cluster, namespace: str) -> dict[str, str | None]:
    out = json.loads(cluster.kubectl_run("get", "trainingjobs.mlcycle.io", "-n", namespace, "-o", "json").stdout)
    return {tj["metadata"]["name"]: (tj.get("status") or {}).get("phase") for tj in out["items"]}


def finish_running_pods(cluster, namespace: str) -> None:
    """kwok's pod-complete stage finishes pods with this label (localdev/kwok-config.yaml)."""
    cluster.kubectl_run("label", "pods", "--all", "-n", namespace, "mlcycle.io/kwok-complete=true", "--overwrite",
                        check=False)


def all_succeeded(cluster, namespace: str, count: int):
    finish_running_pods(cluster, namespace)
    current = phases(cluster, namespace)
    return len(current) == count and set(current.values()) == {"Succeeded"} and current


class JobCreations:
    """Job name -> the uids it has had, from a watch started before the first Job."""

    def __init__(self, kube_api, namespace: str):
        self.uids: dict[str, set[str]] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._watch, args=(kube_api, namespace), daemon=True).start()

    def _watch(self, kube_api, namespace: str) -> None:
        w = watch.Watch()
        for event in w.stream(client.BatchV1Api(kube_api).list_namespaced_job, namespace, timeout_seconds=900):
            self.uids.setdefault(event["object"].metadata.name, set()).add(event["object"].metadata.uid)
            if self._stop.is_set():
                w.stop()

    def stop(self) -> None:
        self._stop.set()
