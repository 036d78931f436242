"""The agent container of a serving pod: its env is exactly what `mlcycle agent` reads."""

from __future__ import annotations

import pytest

from mlcycle.api.inferenceservice import AGENT_ADMIN_PORT, AGENT_PORT, InferenceServiceSpec
from mlcycle.inferenceservice.agent import TERMINATION_GRACE_SECONDS, agent_container, log_prefix
from mlcycle.workloads.agent import AgentConfig

pytestmark = pytest.mark.unit

SPEC = {"model": {"name": "iris", "alias": "production"}, "storage": {"secretRef": {"name": "s3"}}}


def env_of(container: dict) -> dict[str, str]:
    """The literal env values, with Secret references standing in as `secret:<name>/<key>`."""
    return {e["name"]: e.get("value") or "secret:{name}/{key}".format(**e["valueFrom"]["secretKeyRef"])
            for e in container["env"]}


def test_log_prefix():
    assert log_prefix("s3://logs/iris/", "ns", "iris", "iris-v3") == "s3://logs/iris/ns/iris/iris-v3"


def test_agent_with_logging_reads_back_as_the_agents_config():
    spec = InferenceServiceSpec.model_validate(SPEC | {"logging": {"destination": "s3://logs/", "sampleRate": 0.1}})
    container = agent_container("iris", "ns", spec, "iris-v3", "iris", ["a", "b"], "mlcycle:dev")
    env = env_of(container)
    assert env["AWS_ACCESS_KEY_ID"] == "secret:s3/accessKey"  # by reference, never a value
    config = AgentConfig.from_env({k: v for k, v in env.items() if not v.startswith("secret:")})
    assert (config.port, config.admin_port, config.triton_url) == (AGENT_PORT, AGENT_ADMIN_PORT,
                                                                   "http://127.0.0.1:8000")
    assert (config.model_name, config.model_version, config.feature_names) == ("iris", "iris-v3", ("a", "b"))
    assert config.logging.prefix == "s3://logs/ns/iris/iris-v3" and config.logging.sample_rate == 0.1
    assert config.logging.shutdown_seconds < TERMINATION_GRACE_SECONDS
    assert container["command"] == ["mlcycle", "agent"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": AGENT_ADMIN_PORT}


def test_agent_without_logging_has_no_storage_env():
    spec = InferenceServiceSpec.model_validate(SPEC)
    env = env_of(agent_container("iris", "ns", spec, "iris-v3", "iris", None, "mlcycle:dev"))
    assert not any(k.startswith(("MLCYCLE_LOG", "AWS_", "MLCYCLE_S3")) for k in env)
    assert "MLCYCLE_FEATURE_NAMES" not in env
    assert AgentConfig.from_env(env).logging is None
