"""`mlcycle dev`: the whole loop on this machine. Brings up the local cluster, MinIO, the local pod runtime
and the operator, installs the CRDs, uploads a sample dataset and applies a sample TrainingJob, then
shows it train for real, end in a registered ModelVersion that takes the alias production, and be served by
an InferenceService on the real tritonserver, with one prediction made through tritonclient."""

from __future__ import annotations

import argparse
import io
import json
import time

import yaml

from mlcycle.api.inferenceservice import AGENT_PORT
from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev import loop, runtime, sample, traffic
from mlcycle.localdev import minio as minio_mod
from mlcycle.localdev.paths import LOCAL, REPO_ROOT
from mlcycle.localdev.processes import start_operator

NAMESPACE = loop.NAMESPACE
SHIFTED_DATASET = "s3://datasets/iris/iris-shifted.csv"
RUNTIME_NODE = "mlcycle-local"
# The runtime's node is tainted so that only pods meant to really run land there.
RUNTIME_LABEL = {runtime.NODE_LABEL: "true"}
RUNTIME_TOLERATION = runtime.TOLERATION


def install_crds(cluster: cluster_mod.Cluster) -> None:
    crds = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    cluster.kubectl_run("apply", "--server-side", "--force-conflicts", *[f"-f={p}" for p in crds])
    cluster.kubectl_run("wait", "--for=condition=Established", "--timeout=60s",
                        *[f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in crds])


def upload_sample(server: minio_mod.MinioServer) -> None:
    """The sample dataset, and the same after the world shifts (what retraining learns from)."""
    data = sample.iris_like_csv()
    shifted = sample.shifted_csv(sample.iris_like_csv(seed=11))
    client = server.client()
    for bucket in ("datasets", "models", "logs"):
        server.make_bucket(bucket)
    client.put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data), content_type="text/csv")
    client.put_object("datasets", "iris/iris-shifted.csv", io.BytesIO(shifted), len(shifted), content_type="text/csv")


def _get(cluster, *args) -> dict:
    return json.loads(cluster.kubectl_run("get", *args, "-o", "json").stdout)


def follow(cluster: cluster_mod.Cluster, name: str, timeout: float) -> dict:
    """Print the TrainingJob's phase changes and the trainer's progress lines until it finishes."""
    seen_phase, printed = None, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tj = _get(cluster, "trainingjob", name, "-n", NAMESPACE)
        status = tj.get("status") or {}
        if status.get("phase") != seen_phase:
            seen_phase = status.get("phase")
            print(f"[dev] TrainingJob {name}: {seen_phase} — {status.get('message', '')}", flush=True)
        logs = sorted((LOCAL / "runtime").glob(f"pods/{NAMESPACE}_{name}-*/trainer.log"))
        if logs:
            lines = logs[-1].read_text(errors="replace").splitlines()
            for line in lines[printed:]:
                print(f"[trainer] {line}", flush=True)
            printed = len(lines)
        if seen_phase in ("Succeeded", "Failed") and (seen_phase == "Failed" or status.get("modelVersionRef")):
            return tj
        time.sleep(1)
    raise TimeoutError(f"TrainingJob {name} did not finish in {timeout:.0f}s")


def wait_model_version(cluster, name: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        mv = _get(cluster, "modelversion", name, "-n", NAMESPACE)
        phase = (mv.get("status") or {}).get("phase")
        if phase in ("Ready", "Rejected", "Failed") or time.monotonic() > deadline:
            return mv
        time.sleep(1)


def serve(cluster: cluster_mod.Cluster, timeout: float) -> dict:
    """Serve the model's production version; print the InferenceService's phase changes until it is Ready."""
    isvc = sample.inference_service("iris", NAMESPACE, "sample-s3", node_selector=RUNTIME_LABEL,
                                    tolerations=[RUNTIME_TOLERATION], retrain_dataset=SHIFTED_DATASET)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(isvc))
    # Requests meanwhile: a newer version rolls out progressively, and its analysis needs traffic.
    client = traffic.Client(cluster, "iris", NAMESPACE, sample.feature_rows(sample.iris_like_csv()))
    seen, deadline = None, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            status = _get(cluster, "inferenceservice", "iris", "-n", NAMESPACE).get("status") or {}
            rollout = (status.get("rollout") or {}).get("phase")
            shown = (status.get("phase"), status.get("servedModelVersion"), status.get("message"))
            if shown != seen:
                seen = shown
                print(f"[dev] InferenceService iris: {shown[0]} serving={shown[1]} — {shown[2]}", flush=True)
            if status.get("phase") == "Ready" and rollout not in ("Progressing", "Paused") or \
                    status.get("phase") == "Failed":
                return status
            time.sleep(1)
    finally:
        client.close()
    raise TimeoutError(f"InferenceService iris was not Ready in {timeout:.0f}s")


def predict(cluster: cluster_mod.Cluster, rows: list[list[float]]) -> None:
    """One request through tritonclient to the pod the Service resolves to."""
    import numpy as np
    import tritonclient.http as httpclient

    address = cluster_mod.service_backend(cluster, "iris", NAMESPACE)
    client = httpclient.InferenceServerClient(f"{address}:{AGENT_PORT}")  # the Service's http port: the agent
    batch = np.array(rows, dtype=np.float32)
    request = httpclient.InferInput("INPUT__0", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    probabilities = client.infer("iris", [request]).as_numpy("OUTPUT__0")
    for row, p in zip(rows, probabilities, strict=True):
        label = sample.CLASSES[int(p.argmax())]
        print(f"[dev] predict {row} -> {label} ({', '.join(f'{v:.3f}' for v in p)})", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle dev", description=__doc__)
    parser.add_argument("--once", action="store_true", help="exit when the sample pipeline has finished")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    started = time.monotonic()
    cluster = cluster_mod.up()
    server = minio_mod.up()
    install_crds(cluster)
    pod_runtime = runtime.start_runtime(cluster.kubeconfig, RUNTIME_NODE, LOCAL / "runtime")
    operator = start_operator(cluster.kubeconfig, LOCAL / "operator.log")
    print(f"[dev] stack up in {time.monotonic() - started:.0f}s: cluster ({cluster.kubeconfig}), MinIO "
          f"({server.endpoint}), local runtime (node {RUNTIME_NODE}), operator (log {LOCAL / 'operator.log'})")
    try:
        upload_sample(server)
        secret = sample.storage_secret("sample-s3", NAMESPACE, server.endpoint, server.access_key,
                                       server.secret_key)
        tj = sample.training_job("iris", NAMESPACE, "sample-s3", node_selector=RUNTIME_LABEL)
        tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
        tj["spec"]["registerModel"]["aliases"] = ["production"]  # the InferenceService follows this alias
        cluster.kubectl_run("create", "namespace", NAMESPACE, check=False)
        # A fresh run each time: the new job trains again and registers the next version of the model.
        cluster.kubectl_run("delete", "trainingjob", "iris", "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
        cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all([secret, tj]))
        print(f"[dev] applied TrainingJob {NAMESPACE}/iris (dataset s3://datasets/iris/iris.csv)", flush=True)
        done = follow(cluster, "iris", args.timeout)
        ref = (done.get("status") or {}).get("modelVersionRef")
        if ref:
            mv = wait_model_version(cluster, ref["name"], 120)
            st = mv.get("status") or {}
            print(f"[dev] ModelVersion {ref['name']}: {st.get('phase')} digest={st.get('verifiedDigest')} "
                  f"metrics={mv['spec'].get('metrics')}", flush=True)
            if st.get("phase") == "Ready":
                served = serve(cluster, 300)
                print(f"[dev] serving {served.get('servedModelVersion')} at {served.get('url')} "
                      f"(gRPC {served.get('grpcUrl')})", flush=True)
                if served.get("phase") == "Ready":
                    predict(cluster, sample.feature_rows(sample.iris_like_csv())[:3])
                    loop.close_the_loop(cluster, server.client(), lambda job: follow(cluster, job, args.timeout))
                    predict(cluster, sample.feature_rows(sample.shifted_csv(sample.iris_like_csv()))[:3])
        print(cluster.kubectl_run("get", "mlcycle", "-A").stdout, flush=True)
        kubectl = f"{cluster.kubectl} --kubeconfig {cluster.kubeconfig}"
        print(f"[dev] try: {kubectl} get mlcycle -A", flush=True)
        print(f"[dev] compare this model's runs: mlcycle runs iris -n {NAMESPACE} --plot curves.png", flush=True)
        if not args.once:
            print("[dev] the stack keeps running; Ctrl-C stops the operator and the runtime", flush=True)
            while True:
                time.sleep(3600)
        return 0 if (done.get("status") or {}).get("phase") == "Succeeded" else 1
    except KeyboardInterrupt:
        return 0
    finally:
        operator.stop()
        pod_runtime.stop()


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
