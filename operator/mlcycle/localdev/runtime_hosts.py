"""The hosts files that stand in for cluster DNS on the local runtime (pure).

Each namespace with a pod on the runtime gets one file, read by its pods' processes through nss_wrapper
(NSS_WRAPPER_HOSTS): every pod's `<hostname>.<subdomain>` names and every selector Service's names map to
pod addresses, fully qualified for all namespaces and also short for the file's own namespace (what the
pod's DNS search path would complete). A Service name maps to its first ready backing pod by name; where
a Service port differs from its targetPort, `service_ports` lists the translation that the runtime's
connect() shim applies at that pod's address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class PodAddress:
    namespace: str
    name: str
    ip: str
    hostname: str
    subdomain: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    ports: dict[str, int] = field(default_factory=dict)  # container port name → number


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _qualified(name: str, namespace: str) -> list[str]:
    return [f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}", f"{name}.{namespace}.svc", f"{name}.{namespace}"]


def backend(service: dict, pods: list[PodAddress]) -> PodAddress | None:
    """The pod a Service's name resolves to: the first ready one it selects, by name."""
    meta, spec = service["metadata"], service.get("spec") or {}
    backends = sorted((p for p in pods if p.namespace == meta["namespace"]
                       and selects(spec.get("selector") or {}, p.labels)
                       and (p.ready or spec.get("publishNotReadyAddresses"))), key=lambda p: p.name)
    return backends[0] if backends else None


def hosts_files(pods: list[PodAddress], services: list[dict]) -> dict[str, str]:
    """namespace → hosts file content."""
    entries: list[tuple[str, str, list[str], list[str]]] = []  # (namespace, ip, qualified, short)
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        if pod.subdomain:
            host = f"{pod.hostname}.{pod.subdomain}"
            entries.append((pod.namespace, pod.ip, _qualified(host, pod.namespace), [host, pod.hostname]))
        else:
            entries.append((pod.namespace, pod.ip, [], [pod.hostname]))
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        meta, pod = svc["metadata"], backend(svc, pods)
        if pod is not None:
            entries.append((meta["namespace"], pod.ip, _qualified(meta["name"], meta["namespace"]), [meta["name"]]))
    files = {}
    for namespace in sorted({p.namespace for p in pods}):
        lines = [" ".join([ip, *qualified, *(short if ns == namespace else [])])
                 for ns, ip, qualified, short in entries if qualified or ns == namespace]
        files[namespace] = "".join(line + "\n" for line in lines)
    return files


def service_ports(pods: list[PodAddress], services: list[dict]) -> str:
    """Lines `<pod ip> <service port> <target port>` for each TCP Service port whose targetPort (a number
    or a container port name) differs, at the pod its name resolves to."""
    lines = set()
    for svc in services:
        pod = backend(svc, pods)
        if pod is None:
            continue
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port["port"])
            number = int(target) if str(target).isdigit() else pod.ports.get(target)
            if number and number != port["port"] and port.get("protocol", "TCP") == "TCP":
                lines.add(f"{pod.ip} {port['port']} {number}\n")
    return "".join(sorted(lines))
