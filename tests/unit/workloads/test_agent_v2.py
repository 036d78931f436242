"""Decoding v2 REST bodies (JSON and Triton's binary extension) and the agent's configuration."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton_http

from mlcycle.workloads import agent_v2
from mlcycle.workloads.agent import AgentConfig, InvalidConfig

pytestmark = pytest.mark.unit


def tritonclient_body(x: np.ndarray, binary: bool, request_id: str = "") -> tuple[bytes, str | None]:
    """The body tritonclient itself sends for `x` as INPUT__0."""
    inp = triton_http.InferInput("INPUT__0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    body, json_size = triton_http.InferenceServerClient.generate_request_body([inp], request_id=request_id)
    return body, (str(json_size) if json_size is not None else None)


@pytest.mark.parametrize("binary", [True, False])
def test_decodes_what_tritonclient_sends(binary):
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    body, length = tritonclient_body(x, binary)
    inputs = agent_v2.decode(body, length, "inputs")
    assert list(inputs) == ["INPUT__0"]
    np.testing.assert_array_equal(inputs["INPUT__0"], x)
    assert inputs["INPUT__0"].dtype == np.float32


def test_decodes_binary_outputs_of_a_response():
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    header = json.dumps({"outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [2, 3],
                                      "parameters": {"binary_data_size": y.nbytes}}]}).encode()
    outputs = agent_v2.decode(header + y.tobytes(), str(len(header)), "outputs")
    np.testing.assert_array_equal(outputs["OUTPUT__0"], y)


def test_decodes_bytes_tensors_in_both_forms():
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"", b"xyz"))
    header = json.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [3],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    assert agent_v2.decode(header + raw, str(len(header)), "inputs")["t"].tolist() == ["ab", "", "xyz"]
    doc = json.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]}).encode()
    assert agent_v2.decode(doc, None, "inputs")["t"].tolist() == ["a", "b"]


def test_request_id_comes_from_the_id_field_only_when_present():
    body, length = tritonclient_body(np.ones((1, 4), np.float32), True, request_id="req-7")
    document, _ = agent_v2.json_part(body, length)
    assert agent_v2.request_id(document) == "req-7"
    assert agent_v2.request_id(b'{"inputs": []}') is None
    assert agent_v2.request_id(b'{"id": 5}') is None


@pytest.mark.parametrize("body, length, message", [
    (b"not json", None, "not JSON"),
    (b'{"inputs": [{"name": "x"}]}', None, "without name/datatype/shape"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}', None, "tensor 'x'"),
    (b"{}", "99", "outside the body"),
])
def test_undecodable_bodies_raise_payload_error(body, length, message):
    with pytest.raises(agent_v2.PayloadError, match=message):
        agent_v2.decode(body, length, "inputs")


def test_rows_puts_tensors_side_by_side():
    a, b = np.ones((2, 2), np.float32), np.zeros((2,), np.float32)
    assert agent_v2.rows([a, b]).tolist() == [[1, 1, 0], [1, 1, 0]]
    with pytest.raises(agent_v2.PayloadError, match="rows"):
        agent_v2.rows([a, np.zeros((3,))])


def test_infer_path():
    assert agent_v2.INFER_PATH.match("/v2/models/iris/infer")
    assert agent_v2.INFER_PATH.match("/v2/models/iris/versions/1/infer")
    assert not agent_v2.INFER_PATH.match("/v2/models/iris/ready")


def test_config_from_env_defaults_and_logging():
    config = AgentConfig.from_env({"MLCYCLE_MODEL_VERSION": "iris-v3", "MLCYCLE_FEATURE_NAMES": '["a", "b"]',
                                   "MLCYCLE_LOG_PREFIX": "s3://logs/ns/isvc/iris-v3",
                                   "MLCYCLE_LOG_SAMPLE_RATE": "0.1"})
    assert (config.port, config.admin_port, config.triton_url) == (8080, 9091, "http://127.0.0.1:8000")
    assert config.feature_names == ("a", "b")
    assert config.logging and config.logging.sample_rate == 0.1 and config.logging.buffer_records == 100_000
    assert AgentConfig.from_env({}).logging is None


@pytest.mark.parametrize("env, message", [
    ({"MLCYCLE_FEATURE_NAMES": "[1]"}, "list of strings"),
    ({"MLCYCLE_LOG_PREFIX": "logs/x"}, "MLCYCLE_LOG_PREFIX"),
    ({"MLCYCLE_LOG_PREFIX": "s3://logs/x", "MLCYCLE_LOG_SAMPLE_RATE": "2"}, "MLCYCLE_LOG_SAMPLE_RATE"),
    ({"MLCYCLE_LOG_PREFIX": "s3://logs/x", "MLCYCLE_LOG_SAMPLE_RATE": "nan"}, "MLCYCLE_LOG_SAMPLE_RATE"),
    ({"MLCYCLE_LOG_PREFIX": "s3://logs/x", "MLCYCLE_LOG_BUFFER_RECORDS": "0"}, "MLCYCLE_LOG_BUFFER_RECORDS"),
    ({"MLCYCLE_CANARY_PERCENT": "20"}, "canaryUrl"),
    ({"MLCYCLE_AGENT_PORT": "http"}, "MLCYCLE_AGENT_PORT"),
])
def test_bad_config_is_refused(env, message):
    with pytest.raises(InvalidConfig, match=message):
        AgentConfig.from_env(env)
