from pathlib import Path

import pytest

from mlcycle.localdev.runtime_spec import (
    ConfigError,
    StartError,
    container_argv,
    container_env,
    expand,
    file_mounts,
    image_kind,
    map_paths,
    path_mapping,
    probe_port,
    resolve_executable,
    volume_files,
)


class Objects:
    """A Resolver over in-memory Secrets and ConfigMaps."""

    def __init__(self, secrets=None, config_maps=None):
        self.secrets, self.config_maps = secrets or {}, config_maps or {}

    def secret(self, namespace, name):
        return self.secrets.get((namespace, name))

    def config_map(self, namespace, name):
        return self.config_maps.get((namespace, name))

    def token(self, namespace, service_account, audience, seconds):
        return f"token-for-{namespace}/{service_account}"


def pod(containers, **spec):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"},
                         "annotations": {"batch.kubernetes.io/job-completion-index": "2"}},
            "spec": {"nodeName": "local", "containers": containers, **spec}}


def env_of(container, objects=None, **kw):
    return container_env(pod([container]), container, objects or Objects(), pod_ip="127.0.0.7",
                         host_ip="127.0.0.1", allocatable={"cpu": "2", "memory": "8Gi"}, base=kw.get("base", {}))


@pytest.mark.parametrize("image,kind", [
    ("ghcr.io/mlcycle/mlcycle:0.1.0", "mlcycle"),
    ("mlcycle", "mlcycle"),
    ("localhost:5000/team/mlcycle@sha256:abc", "mlcycle"),
    ("nvcr.io/nvidia/tritonserver:24.08-py3", "tritonserver"),
    ("busybox:1.36", None),
    ("ghcr.io/mlcycle/mlcycle-extra:1", None),
])
def test_image_kind(image, kind):
    assert image_kind(image) == kind


def test_argv_follows_entrypoint_rules():
    assert container_argv({"args": ["train", "--x"]}, "mlcycle") == ["mlcycle", "train", "--x"]
    assert container_argv({"command": ["python", "-c"], "args": ["print(1)"]}, "mlcycle") == ["python", "-c",
                                                                                              "print(1)"]
    assert container_argv({}, "tritonserver") == ["tritonserver"]
    assert container_argv({"args": ["tritonserver", "--model-repository=/m"]}, "tritonserver")[0] == "tritonserver"


def test_executable_lookup(tmp_path):
    (tmp_path / "python").write_text("")
    assert resolve_executable("/usr/local/bin/python", "mlcycle", tmp_path, None) == str(tmp_path / "python")
    assert resolve_executable("tritonserver", "tritonserver", tmp_path, Path("/x/ts")) == "/x/ts"
    assert resolve_executable("sh", "mlcycle", tmp_path, None).endswith("/sh")
    with pytest.raises(StartError, match='exec: "nope-xyz": executable file not found'):
        resolve_executable("nope-xyz", "mlcycle", tmp_path, None)


@pytest.mark.parametrize("text,out", [
    ("$(A)-$(B)", "1-$(B)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("a$", "a$"),
    ("$(A", "$(A"),
    ("$x", "$x"),
])
def test_expand_like_kubernetes(text, out):
    assert expand(text, {"A": "1"}) == out


def test_env_sources_and_order():
    objects = Objects(secrets={("ns", "s"): {"password": b"hunter2", "bad key": b"x"}},
                      config_maps={("ns", "c"): {"MODE": b"fast"}})
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "c"}}, {"secretRef": {"name": "s"}, "prefix": "S_"}],
        "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "IDX", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "ADDR", "value": "http://$(IP):$(PORT)/$(MODE)"},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "nope", "optional": True}}},
        ],
    }
    env = env_of(container, objects, base={"PORT": "80", "MODE": "base"})
    assert env["PW"] == "hunter2" and env["S_password"] == "hunter2" and "S_bad key" not in env
    assert env["IP"] == "127.0.0.7" and env["IDX"] == "2" and env["APP"] == "x"
    assert env["ADDR"] == "http://127.0.0.7:80/fast"  # envFrom wins over the base, env sees both
    assert env["MEM"] == "8192"  # no limit: the node's allocatable
    assert "GONE" not in env


def test_missing_secret_or_key_is_a_config_error():
    with pytest.raises(ConfigError, match='secret "s" not found'):
        env_of({"name": "m", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
    objects = Objects(secrets={("ns", "s"): {}})
    with pytest.raises(ConfigError, match="couldn't find key k in Secret ns/s"):
        env_of({"name": "m", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
               objects)


def test_mount_paths_map_to_pod_directories(tmp_path):
    container = {"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                                  {"name": "data", "mountPath": "/data/cache", "subPath": "c"},
                                                  {"name": "claim", "mountPath": "/models/"}]}
    p = pod([container], volumes=[{"name": "data", "emptyDir": {}},
                                  {"name": "claim", "persistentVolumeClaim": {"claimName": "store"}}])
    mapping = path_mapping(p, container, tmp_path / "pod", tmp_path / "claims", {})
    vol = tmp_path / "pod" / "volumes" / "data"
    assert map_paths("--out=/data/x", mapping) == f"--out={vol}/x"
    assert map_paths("/data/cache/y", mapping) == f"{vol}/c/y"
    assert map_paths("/models", mapping) == str(tmp_path / "claims" / "ns" / "store")
    assert map_paths("/mydata /data2 /database", mapping) == "/mydata /data2 /database"
    assert map_paths("/dev/termination-log", mapping) == str(
        tmp_path / "pod" / "containers" / "main" / "termination-log")


def test_volume_files():
    objects = Objects(secrets={("ns", "s"): {"a": b"1", "b": b"2"}}, config_maps={("ns", "c"): {"k": b"v"}})
    p = pod([{"name": "main"}])
    kw = {"pod_ip": "127.0.0.7", "host_ip": "127.0.0.1", "allocatable": {}}
    assert volume_files({"name": "v", "secret": {"secretName": "s", "items": [{"key": "b", "path": "x/b"}]}},
                        p, objects, **kw) == {"x/b": b"2"}
    projected = {"name": "api", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "c"}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    assert volume_files(projected, p, objects, **kw) == {"token": b"token-for-ns/default", "k": b"v",
                                                         "namespace": b"ns"}
    assert volume_files({"name": "e", "emptyDir": {}}, p, objects, **kw) is None
    with pytest.raises(ConfigError):
        volume_files({"name": "v", "configMap": {"name": "missing"}}, p, objects, **kw)


def test_named_probe_port():
    assert probe_port("http", {"name": "m", "ports": [{"name": "http", "containerPort": 8000}]}) == 8000
    assert probe_port(9000, {"name": "m"}) == 9000


def test_file_mounts_list_file_volumes_and_the_termination_message_longest_first():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": [
        {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]}}
    container = {"name": "c", "volumeMounts": [
        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "tmp", "mountPath": "/tmp"}, {"name": "cfg", "mountPath": "/etc/cfg/"}]}
    mapping = path_mapping(pod, container, Path("/pods/p"), Path("/claims"), {})
    lines = file_mounts(pod, container, mapping).split("\n")
    assert lines == ["/var/run/secrets/kubernetes.io/serviceaccount\t/pods/p/volumes/kube-api-access",
                     "/dev/termination-log\t/pods/p/containers/c/termination-log",
                     "/etc/cfg\t/pods/p/volumes/cfg"]  # not /tmp: an emptyDir's paths are rewritten in argv and env
