"""Session fixtures for the real servers: the local Kubernetes control plane, MinIO and Triton.

Each server is started once per session (or reused when `make cluster-up`/`make minio-up` already runs
it) and stopped at the end only if this session started it. A server that cannot start fails the tests
that need it; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid

import pytest

from mlcycle.localdev import cluster as cluster_mod
from mlcycle.localdev import minio as minio_mod
from waiting import wait_for


@pytest.fixture(scope="session")
def cluster():
    was_running = cluster_mod.current().kubeconfig.exists() and cluster_mod.current().is_ready()
    c = cluster_mod.up()
    yield c
    if not was_running and not os.environ.get("MLCYCLE_KEEP_STACK"):
        cluster_mod.down()


@pytest.fixture(scope="session")
def kube_api(cluster):
    """A kubernetes.client.ApiClient for the local cluster."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture
def namespace(cluster):
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl_run("create", "namespace", name)
    # A pod is refused until the namespace's `default` ServiceAccount exists, which the controller-manager
    # creates a moment later (on a fresh cluster, long enough for a test's first pod to lose the race).
    wait_for(lambda: cluster.kubectl_run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             f"the default ServiceAccount of {name}")
    yield name
    cluster.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(cluster):
    """The mlcycle CRDs, installed from crds/*.yaml and Established."""
    from mlcycle.localdev.dev import install_crds

    install_crds(cluster)
    return cluster


@pytest.fixture(scope="session")
def operator(crds, tmp_path_factory):
    """The operator (`mlcycle run`) as a process against the local cluster; `.stop()` / restart via
    `operator_factory` when a test needs to kill it."""
    from mlcycle.localdev.processes import start_operator

    # Re-check verified artifacts every 5 s instead of every minute, so the test of an overwritten artifact
    # does not wait a minute twice. Downloads go to a folder of its own, which a test makes unwritable.
    folder = tmp_path_factory.mktemp("operator")
    downloads = folder / "artifacts"
    downloads.mkdir()
    op = start_operator(crds.kubeconfig, folder / "operator.log",
                        env={"MLCYCLE_ARTIFACT_RECHECK_SECONDS": "5", "MLCYCLE_ARTIFACT_DIR": str(downloads)})
    yield op
    op.stop()


@pytest.fixture
def session_operator_stopped(operator):
    """For tests that run operators of their own: the session's operator (when other tests started it) would
    reconcile their resources too. Started again afterwards."""
    operator.stop()
    yield
    operator.restart()


@pytest.fixture(scope="session")
def local_runtime(cluster, tmp_path_factory):
    """The local pod runtime (stands in for kubelet + containers) on node `mlcycle-local`."""
    from mlcycle.localdev.runtime import start_runtime

    handle = start_runtime(cluster.kubeconfig, "mlcycle-local", tmp_path_factory.mktemp("runtime"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def minio():
    was_running = minio_mod.current() is not None
    server = minio_mod.up()
    yield server
    if not was_running and not os.environ.get("MLCYCLE_KEEP_STACK"):
        minio_mod.down()


@pytest.fixture
def bucket(minio):
    return minio.make_bucket(f"t-{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    """Start the real tritonserver (pytriton wheel) on free loopback ports: `triton(model_repo)`."""
    from mlcycle.localdev import triton as triton_mod

    servers = []

    def start(model_repository):
        server = triton_mod.start(model_repository, tmp_path_factory.mktemp("triton") / "tritonserver.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def pytest_collection_modifyitems(items):
    # Tests are marked by directory so nothing slips through unmarked.
    for item in items:
        for kind in ("unit", "integration", "e2e"):
            if f"/tests/{kind}/" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, kind))


def pytest_sessionfinish(session, exitstatus):
    # In CI a skipped test is a failure: a server that did not start must not pass as "skipped".
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure", red=True)
        session.exitstatus = 1
