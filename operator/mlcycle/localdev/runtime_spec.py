"""What the local pod runtime runs for a container, computed from the Pod alone (pure functions).

The I/O loop (runtime.py) fetches Secrets and ConfigMaps through a `Resolver`; everything here works on
plain Kubernetes JSON (camelCase dicts) so it can be unit-tested without a cluster.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from kubernetes.utils import parse_quantity

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"


class ConfigError(Exception):
    """A container cannot be configured yet (kubelet's CreateContainerConfigError)."""


class StartError(Exception):
    """A container's process cannot be started (the runtime's StartError, exit code 128)."""


class Resolver(Protocol):
    """Reads the API objects a pod refers to. Each returns None when the object does not exist."""

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def token(self, namespace: str, service_account: str, audience: str | None, seconds: int) -> str: ...


# ---------------------------------------------------------------------------------------------- images


def image_kind(image: str) -> str | None:
    """'mlcycle' or 'tritonserver' for the images the local runtime can run, None for any other."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1].split(":", 1)[0]
    if last.endswith("mlcycle"):
        return "mlcycle"
    if "tritonserver" in last:
        return "tritonserver"
    return None


def unsupported_image_message(image: str) -> str:
    return f"image {image} cannot run on the local runtime (it runs the mlcycle and tritonserver images only)"


def container_argv(container: dict, kind: str) -> list[str]:
    """The process argv as the image would run it: command replaces the ENTRYPOINT, args the CMD.

    The mlcycle image's ENTRYPOINT is `mlcycle`; the Triton image's entrypoint execs its arguments
    (default `tritonserver`)."""
    command, args = container.get("command") or [], container.get("args") or []
    if command:
        return [*command, *args]
    if kind == "mlcycle":
        return ["mlcycle", *args]
    return args or ["tritonserver"]


def resolve_executable(argv0: str, kind: str, venv_bin: Path, tritonserver: Path | None) -> str:
    """Host path of a container's executable. Image paths (/usr/bin/python3, /opt/tritonserver/bin/
    tritonserver) are looked up by their basename: tritonserver → the pytriton binary, then this venv's
    bin (python, mlcycle, torchrun…), then the host PATH (sh, cat…)."""
    base = os.path.basename(argv0)
    if kind == "tritonserver" and base == "tritonserver" and tritonserver is not None:
        return str(tritonserver)
    if (venv_bin / base).is_file():
        return str(venv_bin / base)
    found = shutil.which(base, path="/usr/local/bin:/usr/bin:/bin")
    if found:
        return found
    raise StartError(f'exec: "{argv0}": executable file not found in $PATH')


# ------------------------------------------------------------------------------------------------- env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, unknown ones kept, $$ escapes a $."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env.get(name, f"$({name})"))
                    i = end + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(pod: dict, field_path: str, pod_ip: str, host_ip: str) -> str:
    """A downward-API fieldRef value."""
    meta, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if field_path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(field_path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    simple = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if field_path not in simple:
        raise ConfigError(f"unsupported fieldRef fieldPath {field_path!r}")
    return simple[field_path]


def resource_value(pod: dict, ref: dict, default_container: str, allocatable: dict[str, str]) -> str:
    """A resourceFieldRef value; an unset limit reads as the node's allocatable, as kubelet does."""
    name = ref.get("containerName") or default_container
    container = next(c for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
                     if c["name"] == name)
    kind, resource = ref["resource"].split(".", 1)
    quantity = (container.get("resources", {}).get(kind) or {}).get(resource)
    if quantity is None:
        quantity = allocatable.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(Decimal(parse_quantity(quantity)) / divisor))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _key_ref(resolver: Resolver, namespace: str, ref: dict, kind: str) -> str | None:
    data = resolver.secret(namespace, ref["name"]) if kind == "Secret" else resolver.config_map(namespace,
                                                                                              ref["name"])
    if data is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return _decode(data[ref["key"]])


def container_env(pod: dict, container: dict, resolver: Resolver, *, pod_ip: str, host_ip: str,
                  allocatable: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """The container's environment as kubelet builds it: envFrom, then env (with $(VAR) expansion over
    what is defined so far and `base`), then `base` (kubelet's own variables) where not overridden."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("secretRef") or source.get("configMapRef")
        kind = "Secret" if "secretRef" in source else "ConfigMap"
        data = resolver.secret(ns, ref["name"]) if kind == "Secret" else resolver.config_map(ns, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        for key, value in data.items():
            if re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
                env[source.get("prefix", "") + key] = _decode(value)
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = expand(var.get("value", ""), {**base, **env})
        elif "fieldRef" in source:
            env[var["name"]] = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            env[var["name"]] = resource_value(pod, source["resourceFieldRef"], container["name"], allocatable)
        else:
            kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
            value = _key_ref(resolver, ns, source.get("secretKeyRef") or source["configMapKeyRef"], kind)
            if value is not None:
                env[var["name"]] = value
    return {**base, **env}


# ----------------------------------------------------------------------------------------------- paths


def volume_dir(pod_dir: Path, volume: str) -> Path:
    return pod_dir / "volumes" / volume


def container_dir(pod_dir: Path, container: str) -> Path:
    return pod_dir / "containers" / container


def volume_host_path(volume: dict, pod_dir: Path, claims_dir: Path, namespace: str) -> Path:
    """Where a volume lives on the host: hostPath is itself, a PVC is a directory shared by the pods that
    use the claim, anything else is a per-pod directory."""
    if "hostPath" in volume:
        return Path(volume["hostPath"]["path"])
    if "persistentVolumeClaim" in volume:
        return claims_dir / namespace / volume["persistentVolumeClaim"]["claimName"]
    return volume_dir(pod_dir, volume["name"])


def path_mapping(pod: dict, container: dict, pod_dir: Path, claims_dir: Path,
                 env: dict[str, str]) -> dict[str, str]:
    """Container path → host path for each volumeMount and the termination message file."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    ns = pod["metadata"]["namespace"]
    mapping: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        host = volume_host_path(volumes[mount["name"]], pod_dir, claims_dir, ns)
        sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env)
        mapping[mount["mountPath"].rstrip("/") or "/"] = str(host / sub if sub else host)
    message_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    mapping[message_path] = str(termination_message_file(pod_dir, container["name"]))
    return mapping


# Volumes whose files the runtime writes: programs read them at fixed container paths (in-cluster config reads
# /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}).
FILE_VOLUMES = ("secret", "configMap", "downwardAPI", "projected")


def file_mounts(pod: dict, container: dict, mapping: dict[str, str]) -> str:
    """$MLCYCLE_FILE_MOUNTS for the shim: `<container path>\t<host path>` lines, longest first, for the mounts of
    file volumes and the termination message, whose opens and stats the shim sends to the host path."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    paths = {m["mountPath"].rstrip("/") or "/" for m in container.get("volumeMounts") or []
             if any(kind in volumes[m["name"]] for kind in FILE_VOLUMES)}
    paths.add(container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH)
    return "\n".join(f"{path}\t{mapping[path]}" for path in sorted(paths, key=lambda p: (-len(p), p)))


def termination_message_file(pod_dir: Path, container: str) -> Path:
    return container_dir(pod_dir, container) / "termination-log"


def map_paths(text: str, mapping: dict[str, str]) -> str:
    """Rewrite each container path in `text` (a whole path or a path prefix, e.g. `--out=/data/x`) to its
    host path. The longest container path wins, so nested mounts map to their own directory."""
    if not mapping:
        return text
    paths = sorted(mapping, key=len, reverse=True)
    pattern = r"(?<![\w.\-/])(" + "|".join(re.escape(p) for p in paths) + r")(?=/|$|[^\w.\-])"
    return re.sub(pattern, lambda m: mapping[m.group(1)], text)


def volume_files(volume: dict, pod: dict, resolver: Resolver, *, pod_ip: str, host_ip: str,
                 allocatable: dict[str, str]) -> dict[str, bytes] | None:
    """Files to write into a secret, configMap, downwardAPI or projected volume (relative path → content);
    None for volumes that are plain directories (emptyDir, hostPath, PVC, anything else)."""
    ns = pod["metadata"]["namespace"]

    def from_object(kind: str, ref: dict, name_key: str) -> dict[str, bytes]:
        name = ref[name_key]
        data = resolver.secret(ns, name) if kind == "Secret" else resolver.config_map(ns, name)
        if data is None:
            if ref.get("optional"):
                return {}
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        items = ref.get("items")
        if not items:
            return dict(data)
        files = {}
        for item in items:
            if item["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"couldn't find key {item['key']} in {kind} {ns}/{name}")
            files[item["path"]] = data[item["key"]]
        return files

    def downward(items: list[dict]) -> dict[str, bytes]:
        files = {}
        for item in items:
            if "fieldRef" in item:
                value = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
            else:
                ref = item["resourceFieldRef"]
                value = resource_value(pod, ref, ref.get("containerName", ""), allocatable)
            files[item["path"]] = value.encode()
        return files

    if "secret" in volume:
        return from_object("Secret", volume["secret"], "secretName")
    if "configMap" in volume:
        return from_object("ConfigMap", volume["configMap"], "name")
    if "downwardAPI" in volume:
        return downward(volume["downwardAPI"].get("items") or [])
    if "projected" not in volume:
        return None
    files: dict[str, bytes] = {}
    for source in volume["projected"].get("sources") or []:
        if "secret" in source:
            files |= from_object("Secret", source["secret"], "name")
        elif "configMap" in source:
            files |= from_object("ConfigMap", source["configMap"], "name")
        elif "downwardAPI" in source:
            files |= downward(source["downwardAPI"].get("items") or [])
        elif "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            token = resolver.token(ns, pod["spec"].get("serviceAccountName", "default"), sat.get("audience"),
                                   sat.get("expirationSeconds", 3607))
            files[sat["path"]] = token.encode()
    return files


def decode_secret(data: dict[str, str] | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}


def decode_config_map(config_map: dict) -> dict[str, bytes]:
    return {**{k: v.encode() for k, v in (config_map.get("data") or {}).items()},
            **decode_secret(config_map.get("binaryData"))}


# ---------------------------------------------------------------------------------------------- probes


def probe_port(port: int | str, container: dict) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"container {container['name']} has no port named {port!r}")


def probe_settings(probe: dict) -> dict[str, int]:
    """A probe's timing with Kubernetes' defaults."""
    defaults = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                "failureThreshold": 3}
    return {key: probe.get(key, default) for key, default in defaults.items()}

