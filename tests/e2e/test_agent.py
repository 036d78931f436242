"""`mlcycle agent` as a serving pod runs it: a real process in front of the real tritonserver, logging to a
real MinIO. Rows read back from MinIO are compared with what the client sent; the outage test stops a
MinIO of its own."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families

from mlcycle.api.inferenceservice import AGENT_PORT, DEFAULT_RUNTIME_IMAGE, InferenceServiceSpec
from mlcycle.clients import s3
from mlcycle.images import mlcycle_image
from mlcycle.inferenceservice.agent import agent_container
from mlcycle.localdev import minio as minio_mod
from mlcycle.localdev.net import free_port, http_ok
from mlcycle.localdev.processes import AgentProcess, start_agent
from mlcycle.localdev.runtime import TOLERATION
from mlcycle.localdev.sample import storage_secret
from waiting import wait_for

pytestmark = pytest.mark.e2e

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
WIDE = 256  # features of the "wide" model: big rows make unbounded memory growth visible

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 64
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {width} ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {width} ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

# x * FACTOR; a negative input is an error (Triton answers 500), like a model that fails on some inputs.
MODEL = textwrap.dedent("""
    import triton_python_backend_utils as pb_utils

    FACTOR = {factor}


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT__0").as_numpy()
                if (x < 0).any():
                    error = pb_utils.TritonError("negative input")
                    responses.append(pb_utils.InferenceResponse([], error=error))
                else:
                    responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT__0", x * FACTOR)]))
            return responses
""")


def model_repository(root: Path, factor: float) -> Path:
    """Models `scale` (4 features) and `wide` (256), both x * factor."""
    for name, width in (("scale", len(FEATURES)), ("wide", WIDE)):
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CONFIG.format(name=name, width=width))
        (root / name / "1" / "model.py").write_text(MODEL.format(factor=factor))
    return root


@pytest.fixture(scope="module")
def stable_triton(triton, tmp_path_factory):
    return triton(model_repository(tmp_path_factory.mktemp("stable-models"), 2.0))


def s3_env(server) -> dict[str, str]:
    return {"MLCYCLE_S3_ENDPOINT": server.endpoint, "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key}


def agent_env(triton_server, version: str, model: str = "scale", **extra: str) -> dict[str, str]:
    return {"MLCYCLE_TRITON_URL": f"http://{triton_server.http_url}", "MLCYCLE_MODEL_NAME": model,
            "MLCYCLE_MODEL_VERSION": version,
            "MLCYCLE_FEATURE_NAMES": '["' + '", "'.join(FEATURES) + '"]' if model == "scale" else "", **extra}


@pytest.fixture
def agents(tmp_path):
    """Start agents with `agents(env)`; all are stopped at the end."""
    started: list[AgentProcess] = []

    def start(env: dict[str, str]) -> AgentProcess:
        started.append(start_agent(env, tmp_path / f"agent-{len(started)}.log"))
        return started[-1]

    yield start
    for agent in started:
        agent.stop()


def metric(agent: AgentProcess, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(s.value for family in text_string_to_metric_families(agent.metrics_text()) for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def infer_json(session: requests.Session, agent: AgentProcess, x: np.ndarray, model: str = "scale",
               headers: dict[str, str] | None = None) -> requests.Response:
    body = {"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    return session.post(f"{agent.url}/v2/models/{model}/infer", json=body, headers=headers or {}, timeout=60)


def infer_binary(session: requests.Session, agent: AgentProcess, x: np.ndarray, request_id: str,
                 model: str = "scale") -> requests.Response:
    """The body tritonclient sends (binary tensors), posted as it would."""
    inp = triton_http.InferInput("INPUT__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    body, json_size = triton_http.InferenceServerClient.generate_request_body([inp], request_id=request_id)
    return session.post(f"{agent.url}/v2/models/{model}/infer", data=body, timeout=60,
                        headers={"Inference-Header-Content-Length": str(json_size)})


def logged_rows(client, bucket: str, prefix: str) -> pa.Table:
    tables = [pq.read_table(io.BytesIO(s3.read_bytes(client, bucket, key)))
              for key in s3.list_keys(client, bucket, prefix)]
    return pa.concat_tables(tables) if tables else pa.table({})


def rows_by_request(table: pa.Table, feature_names: list[str]) -> dict[str, np.ndarray]:
    """request_id -> its logged input rows, in row order."""
    frame = table.select(["request_id", "row", *feature_names]).to_pydict()
    out: dict[str, list] = {}
    for i, rid in enumerate(frame["request_id"]):
        out.setdefault(rid, []).append((frame["row"][i], [frame[f][i] for f in feature_names]))
    return {rid: np.array([values for _, values in sorted(rows)], np.float32) for rid, rows in out.items()}


def test_every_request_is_logged_at_sample_rate_one(stable_triton, agents, minio, bucket):
    prefix = "logs/ns/iris/iris-v1"
    agent = agents(agent_env(stable_triton, "iris-v1", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/{prefix}",
                             MLCYCLE_LOG_FLUSH_SECONDS="0.2", **s3_env(minio)))
    rng = np.random.default_rng(1)
    session, sent, statuses = requests.Session(), {}, {}
    started = time.time()
    for i in range(60):
        x = rng.uniform(0, 10, (int(rng.integers(1, 6)), len(FEATURES))).astype(np.float32)
        if i % 10 == 9:
            x[0, 0] = -1.0  # the model fails on it
        if i % 2:
            response = infer_binary(session, agent, x, request_id=f"client-{i}")
        else:
            response = infer_json(session, agent, x, headers={"x-request-id": f"hdr-{i}"} if i % 4 else None)
        rid = response.headers["x-request-id"]
        assert rid == (f"client-{i}" if i % 2 else f"hdr-{i}" if i % 4 else rid)
        assert response.headers["x-mlcycle-model-version"] == "iris-v1"
        sent[rid], statuses[rid] = x, response.status_code
    assert sorted(set(statuses.values())) == [200, 500]
    total = sum(len(x) for x in sent.values())

    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == total, "every row written", 60)
    table = logged_rows(minio.client(), bucket, prefix)
    assert table.num_rows == total
    assert table.column_names == [*FEATURES, "request_id", "row", "timestamp", "model_version", "latency_ms",
                                  "status", "output__0"]
    logged = rows_by_request(table, FEATURES)
    assert logged.keys() == sent.keys()
    for rid, x in sent.items():
        np.testing.assert_array_equal(logged[rid], x)
    by_request = table.to_pydict()
    for i, rid in enumerate(by_request["request_id"]):
        assert by_request["status"][i] == statuses[rid]
        x_row = sent[rid][by_request["row"][i]]
        expected = (x_row * 2).tolist() if statuses[rid] == 200 else None
        assert by_request["output__0"][i] == expected
    assert set(by_request["model_version"]) == {"iris-v1"}
    assert all(lat > 0 for lat in by_request["latency_ms"])
    assert all(started - 1 <= ts.timestamp() <= time.time() for ts in by_request["timestamp"])
    assert metric(agent, "mlcycle_agent_requests_total", model_version="iris-v1", code="200") == 54
    assert metric(agent, "mlcycle_agent_requests_total", model_version="iris-v1", code="500") == 6
    assert metric(agent, "mlcycle_agent_log_dropped_total") == 0


def test_about_a_tenth_is_logged_at_sample_rate_one_tenth(stable_triton, agents, minio, bucket):
    prefix = "logs/ns/iris/iris-v1"
    agent = agents(agent_env(stable_triton, "iris-v1", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/{prefix}",
                             MLCYCLE_LOG_SAMPLE_RATE="0.1", MLCYCLE_LOG_FLUSH_SECONDS="0.2", **s3_env(minio)))
    rng = np.random.default_rng(2)
    session, sent = requests.Session(), {}
    for _ in range(1000):
        x = rng.uniform(0, 10, (1, len(FEATURES))).astype(np.float32)
        response = infer_json(session, agent, x)
        assert response.status_code == 200
        sent[response.headers["x-request-id"]] = x
    # A sampled request is buffered before it is answered: an empty queue means all of them are written.
    wait_for(lambda: metric(agent, "mlcycle_agent_log_queue_depth") == 0, "the log queue to drain", 60)
    written = metric(agent, "mlcycle_agent_log_records_total")
    logged = rows_by_request(logged_rows(minio.client(), bucket, prefix), FEATURES)
    assert len(logged) == written
    assert 60 <= written <= 140  # 100 expected; 4 standard deviations either side
    for rid, x in logged.items():
        np.testing.assert_array_equal(x, sent[rid])


def test_sigterm_writes_the_buffer_before_exit(stable_triton, agents, minio, bucket):
    prefix = "logs/ns/iris/iris-v1"
    agent = agents(agent_env(stable_triton, "iris-v1", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/{prefix}",
                             MLCYCLE_LOG_FLUSH_SECONDS="3600", **s3_env(minio)))
    session = requests.Session()
    for _ in range(30):
        assert infer_json(session, agent, np.ones((2, len(FEATURES)), np.float32)).status_code == 200
    assert metric(agent, "mlcycle_agent_log_queue_depth") == 60
    assert logged_rows(minio.client(), bucket, prefix).num_rows == 0  # nothing flushed yet
    agent.process.send_signal(signal.SIGTERM)
    assert agent.process.wait(60) == 0
    assert logged_rows(minio.client(), bucket, prefix).num_rows == 60


def test_without_triton_the_agent_answers_502_and_logs_it(agents, minio, bucket):
    prefix = "logs/ns/iris/iris-v1"
    agent = agents({"MLCYCLE_TRITON_URL": f"http://127.0.0.1:{free_port()}", "MLCYCLE_MODEL_NAME": "scale",
                    "MLCYCLE_MODEL_VERSION": "iris-v1", "MLCYCLE_LOG_PREFIX": f"s3://{bucket}/{prefix}",
                    "MLCYCLE_LOG_FLUSH_SECONDS": "0.2", **s3_env(minio)})
    response = infer_json(requests.Session(), agent, np.ones((3, len(FEATURES)), np.float32))
    assert response.status_code == 502 and "did not answer" in response.json()["error"]
    assert response.headers["x-mlcycle-model-version"] == "iris-v1"
    assert metric(agent, "mlcycle_agent_requests_total", model_version="iris-v1", code="502") == 1
    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == 3, "the rows written", 60)
    table = logged_rows(minio.client(), bucket, prefix)
    assert table["status"].to_pylist() == [502] * 3 and table["f0"].to_pylist() == [1.0] * 3


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def own_minio(tmp_path):
    """A MinIO this test may stop and start again (same port, credentials and data)."""
    args = (tmp_path / "minio", free_port(), "outage-" + uuid.uuid4().hex[:6], uuid.uuid4().hex)
    servers = [minio_mod.start(*args)]

    def stop():
        os.killpg(servers[-1].pid, signal.SIGTERM)
        wait_for(lambda: _port_closed(args[1]), "MinIO to stop", 30)

    def restart():
        servers.append(minio_mod.start(*args))

    yield servers[0], stop, restart
    if not _port_closed(args[1]):
        stop()


def test_minio_outage_loses_nothing_within_the_bound_and_counts_every_drop(stable_triton, agents, own_minio):
    """MinIO goes away while the client keeps sending 16-row requests of 256 features (16 KiB each): every
    request is served, the agent's memory stays flat while the buffer sheds the oldest rows, and when MinIO
    is back every buffered row arrives; drops are exactly the rows beyond the bound.

    The outage lasts until the writer has failed and backed off several times and the client has sent far
    more than the buffer holds (about 10-20 s here): what the test needs is the retry path and the overflow,
    not a particular number of seconds."""
    server, stop_minio, restart_minio = own_minio
    bucket, prefix, bound, rows_per_request = server.make_bucket("logs"), "ns/wide/wide-v1", 1000, 16
    agent = agents(agent_env(stable_triton, "wide-v1", "wide", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/{prefix}",
                             MLCYCLE_LOG_FLUSH_SECONDS="0.2", MLCYCLE_LOG_BATCH_RECORDS="200",
                             MLCYCLE_LOG_BUFFER_RECORDS=str(bound), **s3_env(server)))
    session, order = requests.Session(), []

    def send(n: int) -> None:
        for _ in range(n):
            x = np.random.default_rng(len(order)).uniform(0, 1, (rows_per_request, WIDE)).astype(np.float32)
            response = infer_json(session, agent, x, model="wide")
            assert response.status_code == 200, response.text  # serving never waits on the log
            order.append(response.headers["x-request-id"])

    send(10)
    before = 10 * rows_per_request
    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == before, "the first rows written", 60)

    stop_minio()
    send(100)  # 1600 rows: the buffer is full and shedding
    wait_for(lambda: metric(agent, "mlcycle_agent_log_write_failures_total") >= 2, "failed writes", 60)
    rss_full = agent.rss_bytes()
    send(600)  # 9600 more rows, ~19 MiB of inputs and outputs were they all kept
    wait_for(lambda: metric(agent, "mlcycle_agent_log_write_failures_total") >= 4, "retries with backoff", 60)
    rss_after = agent.rss_bytes()
    during = 700 * rows_per_request
    assert metric(agent, "mlcycle_agent_log_queue_depth") == bound
    assert metric(agent, "mlcycle_agent_log_dropped_total") == during - bound
    assert metric(agent, "mlcycle_agent_log_records_total") == before
    assert rss_after - rss_full < 8 * 2**20, f"RSS grew {(rss_after - rss_full) / 2**20:.1f} MiB while shedding"

    restart_minio()
    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == before + bound,
             "the buffered rows written after MinIO came back", 120)
    send(10)
    after = 10 * rows_per_request
    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == before + bound + after,
             "the rows sent after the outage written", 60)
    assert metric(agent, "mlcycle_agent_log_dropped_total") == during - bound
    table = logged_rows(server.client(), bucket, prefix)
    assert table.num_rows == before + bound + after
    logged = set(zip(table["request_id"].to_pylist(), table["row"].to_pylist(), strict=True))
    assert len(logged) == table.num_rows  # no row twice
    outage_requests = order[10:710]
    # The oldest rows went (but for the batch in flight when MinIO stopped), the newest stayed.
    assert all((rid, r) in logged for rid in outage_requests[-50:] for r in range(rows_per_request))
    assert not all((rid, r) in logged for rid in outage_requests[:100] for r in range(rows_per_request))
    assert all((rid, r) in logged for rid in order[:10] + order[710:] for r in range(rows_per_request))


def test_a_hung_minio_does_not_hold_up_serving_and_its_rows_arrive_once(stable_triton, agents, own_minio):
    """MinIO stopped with SIGSTOP: connections are accepted but never answered (a slow S3, the worse case
    for a client). The client keeps sending until the writer's first attempt has timed out; every request
    is served meanwhile. After SIGCONT every row arrives, none twice, although the hung write may land too."""
    server, _, _ = own_minio
    bucket, prefix = server.make_bucket("logs"), "ns/iris/iris-v1"
    agent = agents(agent_env(stable_triton, "iris-v1", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/{prefix}",
                             MLCYCLE_LOG_FLUSH_SECONDS="0.2", **s3_env(server)))
    session, sent = requests.Session(), 0
    os.kill(server.pid, signal.SIGSTOP)
    try:
        while metric(agent, "mlcycle_agent_log_write_failures_total") < 1:
            response = infer_json(session, agent, np.full((1, len(FEATURES)), sent, np.float32))
            assert response.status_code == 200
            sent += 1
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert metric(agent, "mlcycle_agent_log_records_total") == 0
    wait_for(lambda: metric(agent, "mlcycle_agent_log_records_total") == sent, "every row written", 120)
    table = logged_rows(server.client(), bucket, prefix)
    assert table.num_rows == sent
    assert sorted(table["sepal_length"].to_pylist()) == list(range(sent))


def test_canary_gets_its_percent_by_the_response_header(triton, stable_triton, agents, tmp_path, minio, bucket):
    canary_triton = triton(model_repository(tmp_path / "canary-models", 3.0))
    logging_env = {"MLCYCLE_LOG_FLUSH_SECONDS": "0.2", **s3_env(minio)}
    canary = agents(agent_env(canary_triton, "iris-v2", MLCYCLE_LOG_PREFIX=f"s3://{bucket}/iris-v2", **logging_env))
    stable = agents(agent_env(stable_triton, "iris-v1", MLCYCLE_CANARY_URL=canary.url,
                              MLCYCLE_CANARY_PERCENT="20", MLCYCLE_CANARY_MODEL_VERSION="iris-v2",
                              MLCYCLE_LOG_PREFIX=f"s3://{bucket}/iris-v1", **logging_env))
    session, answered = requests.Session(), {"iris-v1": set(), "iris-v2": set()}
    x = np.ones((1, len(FEATURES)), np.float32)
    for _ in range(1000):
        response = infer_json(session, stable, x)
        assert response.status_code == 200
        version = response.headers["x-mlcycle-model-version"]
        factor = {"iris-v1": 2.0, "iris-v2": 3.0}[version]
        assert response.json()["outputs"][0]["data"] == (x * factor).ravel().tolist()
        answered[version].add(response.headers["x-request-id"])
    assert 150 <= len(answered["iris-v2"]) <= 250
    # Each request is counted and logged once, by the agent of the version that answered it.
    assert metric(stable, "mlcycle_agent_requests_total", model_version="iris-v1") == len(answered["iris-v1"])
    assert metric(stable, "mlcycle_agent_requests_total", model_version="iris-v2") == 0
    assert metric(canary, "mlcycle_agent_requests_total", model_version="iris-v2") == len(answered["iris-v2"])
    for version, agent in (("iris-v1", stable), ("iris-v2", canary)):
        wait_for(lambda agent=agent: metric(agent, "mlcycle_agent_log_queue_depth") == 0, "the logs written", 60)
        rows = logged_rows(minio.client(), bucket, version)
        assert set(rows["request_id"].to_pylist()) == answered[version] and rows.num_rows == len(answered[version])
        assert set(rows["model_version"].to_pylist()) == {version}

    # The operator moves the split without a restart.
    put = session.put(f"http://127.0.0.1:{stable.admin_port}/traffic", timeout=10,
                      json={"canaryUrl": canary.url, "canaryPercent": 50, "canaryModelVersion": "iris-v2"})
    assert put.status_code == 200
    assert session.get(f"http://127.0.0.1:{stable.admin_port}/traffic", timeout=10).json()["canaryPercent"] == 50
    versions = [infer_json(session, stable, x).headers["x-mlcycle-model-version"] for _ in range(100)]
    assert versions.count("iris-v2") == 50

    # A canary that does not answer: the request is served by the stable version and counted as a failure.
    canary.stop()
    versions = [infer_json(session, stable, x) for _ in range(10)]
    assert [(r.status_code, r.headers["x-mlcycle-model-version"]) for r in versions] == [(200, "iris-v1")] * 10
    assert metric(stable, "mlcycle_agent_canary_forward_failures_total", model_version="iris-v2") == 5
    bad = session.put(f"http://127.0.0.1:{stable.admin_port}/traffic", json={"canaryPercent": 5}, timeout=10)
    assert bad.status_code == 400 and "canaryUrl" in bad.json()["error"]


def test_agent_as_the_sidecar_of_a_serving_pod_on_the_local_runtime(cluster, local_runtime, namespace, minio, bucket,
                                                                    tmp_path):
    """The pod the operator writes, less the init container: Triton on a model repository, and the agent
    container exactly as `agent_container` builds it (storage from the Secret). Requests to the pod's address
    on the agent port reach Triton through the pod's localhost, and every one is logged to MinIO."""
    spec = InferenceServiceSpec.model_validate({
        "model": {"name": "iris", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}},
        "logging": {"destination": f"s3://{bucket}/logs"}})
    repository = model_repository(tmp_path / "models", 2.0)
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "iris-iris-v3", "namespace": namespace},
        "spec": {
            "nodeName": local_runtime.node, "tolerations": [TOLERATION], "terminationGracePeriodSeconds": 30,
            "volumes": [{"name": "models", "hostPath": {"path": str(repository)}}],
            "containers": [
                {"name": "triton", "image": DEFAULT_RUNTIME_IMAGE, "command": ["tritonserver"],
                 "args": ["--model-repository=/models", "--http-port=8000", "--grpc-port=8001",
                          "--metrics-port=8002"],
                 "volumeMounts": [{"name": "models", "mountPath": "/models"}]},
                agent_container("iris", namespace, spec, "iris-v3", "scale", FEATURES, mlcycle_image()),
            ],
        },
    }
    secret = storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)
    cluster.kubectl_run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                               "items": [secret, pod]}))

    def pod_ip() -> str | None:
        out = cluster.kubectl_run("get", "-n", namespace, "pod", "iris-iris-v3", "-o", "json").stdout
        return json.loads(out)["status"].get("podIP")

    url = f"http://{wait_for(pod_ip, 'the pod address', 120)}:{AGENT_PORT}"
    wait_for(lambda: http_ok(f"{url}/v2/models/scale/ready"), "the model, through the agent", 180)
    session, sent = requests.Session(), {}
    for i in range(20):
        x = np.full((2, len(FEATURES)), i, np.float32)
        response = session.post(f"{url}/v2/models/scale/infer", timeout=60, json={"inputs": [
            {"name": "INPUT__0", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]})
        assert response.status_code == 200
        assert response.headers["x-mlcycle-model-version"] == "iris-v3"
        assert response.json()["outputs"][0]["data"] == (x * 2).ravel().tolist()
        sent[response.headers["x-request-id"]] = x

    prefix = f"logs/{namespace}/iris/iris-v3"
    wait_for(lambda: logged_rows(minio.client(), bucket, prefix).num_rows == 40, "the rows in MinIO", 60)
    logged = rows_by_request(logged_rows(minio.client(), bucket, prefix), FEATURES)
    assert logged.keys() == sent.keys()
    for rid, x in sent.items():
        np.testing.assert_array_equal(logged[rid], x)
