"""200 ModelVersions of one model, an alias moving among them: how many API requests does the operator make per
move, and how long until the statuses say where the alias is?

The versions are created already verified (the verification record and an ArtifactVerified status, as the
operator leaves them), so no verification Job runs and no storage is needed; the periodic artifact re-check
is set far out of the run. A move is two spec patches by this script: the alias leaves the version that holds
it, then goes to a random other one (in that order, so no version ever contests it). Settled: the new holder's
status lists the alias, no other version's does, and both patched versions report their new generation.

API requests are counted by the apiserver (`apiserver_request_total`, by verb, resource and subresource, from
its /metrics before and after each move) on the resources the operator touches for ModelVersions; the local
cluster is this checkout's own, so nobody else asks for them. The two patches of this script are subtracted;
the watch it settles on is one long request made before the first move. The count of a move ends once no
ModelVersion has changed for QUIET_SECONDS after it settled, so writes that come late are counted too. kopf's
own requests (it patches annotations) are in the count, as they are in the apiserver's load.

The least a move needs: two status writes (the old holder loses the alias, the new one gains it) and two
Events (AliasRemoved, AliasAssigned); no read, since the watch already delivered everything.

    .venv/bin/python -m mlcycle.bench.modelversions [--versions 200] [--moves 20] [--compare-with REF]

`--compare-with REF` runs the same moves against the operator as it is at git REF (e.g. `main`), extracted to a
temporary directory, one operator after the other on the same cluster.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from kubernetes import client, config, watch

from mlcycle.api.labels import VERIFICATION_ANNOTATION
from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev.dev import install_crds
from mlcycle.localdev.paths import LOCAL
from mlcycle.localdev.processes import start_operator
from mlcycle.localdev.sample import storage_secret
from mlcycle.modelversion.verification import fingerprint

GROUP, VERSION, PLURAL = "mlcycle.io", "v1alpha1", "modelversions"
ALIAS = "production"
MODEL = "bench"
QUIET_SECONDS = 2.0
# The resources the operator reads or writes for ModelVersions.
RESOURCES = {"modelversions", "inferenceservices", "events", "jobs", "pods", "secrets", "networkpolicies"}
MINIMUM = {"status writes": 2, "Events": 2, "reads": 0}
_SAMPLE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def requests_by_kind(api_client: client.ApiClient) -> Counter:
    """apiserver_request_total summed by (verb, resource/subresource), for RESOURCES."""
    method, url, headers, body, _ = api_client.param_serialize("GET", "/metrics", auth_settings=["BearerToken"],
                                                               header_params={"Accept": "text/plain"})
    text = api_client.call_api(method, url, header_params=headers, body=body).read().decode()
    counts: Counter = Counter()
    for line in text.splitlines():
        if not (m := _SAMPLE.match(line)):
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        if labels.get("resource") in RESOURCES:
            what = labels["resource"] + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            counts[(labels["verb"], what)] += int(float(m["value"]))
    return counts


def version_body(namespace: str, i: int) -> dict:
    artifact = {"uri": f"s3://models/{MODEL}/{i}/model.pt", "format": "onnx"}
    record = {"for": fingerprint(artifact, None), "etag": "0123"}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelVersion",
            "metadata": {"name": f"{MODEL}-v{i}", "namespace": namespace,
                         "annotations": {VERIFICATION_ANNOTATION: json.dumps(record)}},
            "spec": {"modelName": MODEL, "version": i, "artifact": artifact,
                     "storage": {"secretRef": {"name": "bench-s3"}}, "aliases": [ALIAS] if i == 1 else []}}


def verified_status(generation: int) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"verifiedDigest": "sha256:" + "0" * 64, "size": 1, "conditions": [
        {"type": "ArtifactVerified", "status": "True", "reason": "Verified", "message": "bench",
         "observedGeneration": generation, "lastTransitionTime": now}]}}


class Versions:
    """Every ModelVersion of the namespace as a watch delivers it, and when the last change came."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str):
        self.objects: dict[str, dict] = {}
        self.last_change = time.monotonic()
        self.changed = threading.Condition()
        self._args = (custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
        self._stopped = False
        self._watch = watch.Watch()
        self._rv = self._list()
        threading.Thread(target=self._run, daemon=True).start()

    def _list(self) -> str:
        listed = self._args[0](*self._args[1:])
        with self.changed:
            self.objects = {o["metadata"]["name"]: o for o in listed["items"]}
            self.changed.notify_all()
        return listed["metadata"]["resourceVersion"]

    def _run(self) -> None:
        while not self._stopped:
            try:
                if self._rv is None:
                    self._rv = self._list()
                # A client-side read timeout too: on a busy machine a dropped connection can hang a read.
                for event in self._watch.stream(*self._args, resource_version=self._rv, timeout_seconds=50,
                                                _request_timeout=60):
                    with self.changed:
                        name = event["object"]["metadata"]["name"]
                        if event["type"] == "DELETED":
                            self.objects.pop(name, None)
                        else:
                            self.objects[name] = event["object"]
                        self._rv = event["object"]["metadata"]["resourceVersion"]
                        self.last_change = time.monotonic()
                        self.changed.notify_all()
            except Exception as e:  # a dropped watch: list again, watch from there
                print(f"watch restarted: {e!r}", file=sys.stderr)
                self._rv = None

    def wait(self, predicate, timeout: float = 120) -> float:
        """Seconds until predicate(objects) holds."""
        start = time.monotonic()
        with self.changed:
            while not predicate(self.objects):
                if time.monotonic() - start > timeout:
                    raise TimeoutError("the ModelVersions did not settle")
                self.changed.wait(1)
        return time.monotonic() - start

    def quiet(self, seconds: float) -> None:
        with self.changed:
            while time.monotonic() - self.last_change < seconds:
                self.changed.wait(seconds)

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


def _holders(objects: dict[str, dict]) -> set[str]:
    return {n for n, o in objects.items() if ALIAS in ((o.get("status") or {}).get("aliases") or [])}


def _current(o: dict) -> bool:
    return (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]


def _patch_aliases(custom, namespace: str, name: str, aliases: list[str]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": {"aliases": aliases}})


def _moves(api_client, custom, namespace: str, tracked: Versions, versions: int, moves: int, seed: int,
           started: float) -> tuple[float, list[float], list[Counter]]:
    first = f"{MODEL}-v1"
    tracked.wait(lambda objs: len(objs) == versions and _holders(objs) == {first} and all(
        (o.get("status") or {}).get("phase") == "Ready" for o in objs.values()), timeout=600)
    ready_s = time.monotonic() - started
    tracked.quiet(QUIET_SECONDS)

    rng, holder = random.Random(seed), first
    settle, per_move = [], []
    for _ in range(moves):
        target = f"{MODEL}-v{rng.choice([i for i in range(1, versions + 1) if f'{MODEL}-v{i}' != holder])}"
        before = requests_by_kind(api_client)
        start = time.monotonic()
        _patch_aliases(custom, namespace, holder, [])
        _patch_aliases(custom, namespace, target, [ALIAS])
        tracked.wait(lambda objs, old=holder, new=target: _holders(objs) == {new} and _current(objs[old]) and
                     _current(objs[new]))
        settle.append(time.monotonic() - start)
        tracked.quiet(QUIET_SECONDS)
        delta = requests_by_kind(api_client) - before
        delta[("PATCH", "modelversions")] -= 2  # this script's own
        per_move.append(+delta)
        holder = target
    return ready_s, settle, per_move


def run_case(api_client, cluster, versions: int, moves: int, seed: int, source: Path | None) -> dict:
    namespace = f"bench-mv-{uuid.uuid4().hex[:6]}"
    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_secret(namespace, storage_secret("bench-s3", namespace, "127.0.0.1:1", "k", "s"))
    for i in range(1, versions + 1):
        created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, version_body(namespace, i))
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, created["metadata"]["name"],
                                                     verified_status(created["metadata"]["generation"]))
    env = {"MLCYCLE_ARTIFACT_RECHECK_SECONDS": "86400"}
    if source is not None:
        env["PYTHONPATH"] = str(source / "operator")
    started = time.monotonic()
    operator = start_operator(cluster.kubeconfig, LOCAL / "bench-mv-operator.log", env=env)
    tracked = Versions(custom, namespace)
    try:
        ready_s, settle, per_move = _moves(api_client, custom, namespace, tracked, versions, moves, seed, started)
    finally:
        tracked.stop()
        try:  # while the operator runs: it removes the versions' finalizer
            custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            gone = Versions(custom, namespace)
            gone.wait(lambda objs: not objs, timeout=600)
            gone.stop()
        finally:
            operator.stop()
            core.delete_namespace(namespace)
    total: Counter = sum(per_move, Counter())
    return {"ready_s": ready_s, "settle": settle, "per_move": {k: v / moves for k, v in total.items()},
            "requests_per_move": sum(total.values()) / moves}


def extract(ref: str) -> Path:
    """The operator's source at git `ref`, in a temporary directory."""
    folder = Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    archive = subprocess.run(["git", "archive", ref, "operator"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def report(name: str, result: dict) -> None:
    settle = result["settle"]
    print(f"{name}:")
    print(f"  all versions Ready after the operator started: {result['ready_s']:.1f} s")
    print(f"  settle per move, median / max:                {statistics.median(settle) * 1000:.0f} ms / "
          f"{max(settle) * 1000:.0f} ms")
    print(f"  API requests per move:                        {result['requests_per_move']:.1f}")
    for (verb, what), n in sorted(result["per_move"].items(), key=lambda kv: -kv[1]):
        print(f"    {verb:6} {what:28} {n:7.1f}")


def other_operators(kubeconfig: Path) -> list[int]:
    """Operators already running against this cluster: their requests would be counted as this run's."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mlcycle.cli" in cmdline and b"run" in cmdline and f"KUBECONFIG={kubeconfig}".encode() in environ:
            found.append(int(proc.name))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare-with", metavar="REF", help="also run the operator as it is at this git ref")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    cluster = cluster_mod.up()
    install_crds(cluster)
    if running := other_operators(cluster.kubeconfig):
        print(f"operators already running against this cluster (pids {running}): stop them first", file=sys.stderr)
        return 1
    # SIGTERM ends the run through its clean-up (stop the operator it started, remove its versions).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    results = {"this checkout": run_case(api_client, cluster, args.versions, args.moves, args.seed, None)}
    if args.compare_with:
        source = extract(args.compare_with)
        try:
            results[args.compare_with] = run_case(api_client, cluster, args.versions, args.moves, args.seed, source)
        finally:
            shutil.rmtree(source)
    print(f"{args.versions} ModelVersions of one model, alias {ALIAS} moved {args.moves} times "
          f"(load average at the start: {load:.1f})")
    print(f"  least a move needs: {MINIMUM['status writes']} status writes + {MINIMUM['Events']} Events, no reads")
    for name, result in results.items():
        report(name, result)
    if len(results) == 2:
        ours, theirs = results.values()
        print(f"Requests per move, {args.compare_with} / this checkout: "
              f"{theirs['requests_per_move'] / max(ours['requests_per_move'], 1e-9):.1f}x; settle median: "
              f"{statistics.median(theirs['settle']) / statistics.median(ours['settle']):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
