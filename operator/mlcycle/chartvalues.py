"""The Helm chart's values as a pydantic model: `mlcycle chart-schema` writes charts/mlcycle/values.schema.json
from it, so `helm install/upgrade/lint` refuse a misspelled or mistyped value and name the key.

Every object forbids unknown keys (`additionalProperties: false`) except the Kubernetes types passed through
as they are (resources, affinity, securityContext, env, ...), which the apiserver validates.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mlcycle.api.base import DNS_LABEL_PATTERN, Quantity

CHART = Path(__file__).resolve().parents[2] / "charts" / "mlcycle"
SCHEMA_PATH = CHART / "values.schema.json"

KubeObject = dict[str, Any]  # a Kubernetes type passed through to the manifest as it is
Labels = dict[str, str]
Port = Annotated[int, Field(ge=1, le=65535)]
# The image's non-root user (Dockerfile `USER`); the chart runs the pod as it.
IMAGE_UID = 65532
# Pod Security "restricted": non-root, RuntimeDefault seccomp, no privilege escalation, no capabilities,
# read-only root (temp files go to the tempDir emptyDir).
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID, "fsGroup": IMAGE_UID,
                  "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
# The operator stays under ~200 MiB, but verifying a TorchScript ModelVersion loads it once in a child process
# (about the model's size + 600 MiB), which counts against the limit: size it for the largest model.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "4Gi"}}
Duration = Annotated[str, Field(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")]  # Prometheus duration


class Values(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Image(Values):
    repository: str = Field(min_length=1)
    tag: str = Field("", description="defaults to the chart's appVersion")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class Crds(Values):
    enabled: bool = Field(True, description="install and upgrade the CRDs with the release")
    keep: bool = Field(True, description="helm.sh/resource-policy: keep, so uninstall never deletes users' objects")


class ServiceAccount(Values):
    create: bool = True
    name: str = Field("", description="defaults to the release's full name")
    annotations: Labels = {}


class Rbac(Values):
    create: bool = True


class LeaderElection(Values):
    enabled: bool = Field(True, description="only the holder of the Lease reconciles (needed for replicas > 1)")
    lease_duration_seconds: int = Field(15, ge=2, description="a standby takes over this long after the leader "
                                                               "stopped renewing")
    renew_deadline_seconds: int = Field(10, ge=1, description="the leader exits when it could not renew this long")
    retry_period_seconds: int = Field(2, ge=1)


class TempDir(Values):
    size_limit: Quantity = Field("2Gi", description="emptyDir for temp files and artifact downloads; also the "
                                                     "pod's ephemeral-storage request and limit")


class Health(Values):
    port: Port = 8080


class ServiceMonitor(Values):
    enabled: bool = False
    labels: Labels = Field({}, description="e.g. the release label your Prometheus selects")
    interval: Duration = "30s"
    scrape_timeout: Duration = "10s"


class Metrics(Values):
    port: Port = 8081
    service_monitor: ServiceMonitor = ServiceMonitor()
    pod_monitor: ServiceMonitor = Field(ServiceMonitor(), description="alternative to serviceMonitor (one only)")


class GrafanaDashboard(Values):
    enabled: bool = False
    labels: Labels = Field({"grafana_dashboard": "1"}, description="the label Grafana's dashboard sidecar selects")
    annotations: Labels = {}


class PodDisruptionBudget(Values):
    enabled: bool = True
    max_unavailable: int = Field(1, ge=0, description="1 never blocks a drain of a single replica")


class Workloads(Values):
    """Where the operator's own workload pods run (ModelVersion verification), which no spec field places."""

    node_selector: Labels = {}
    tolerations: list[KubeObject] = []
    verify_limits: KubeObject = Field({}, description="limits of each verification pod; empty: the operator's own")


class ChartValues(Values):
    """Values of charts/mlcycle."""

    image: Image = Image(repository="ghcr.io/mlcycle/mlcycle")
    image_pull_secrets: list[KubeObject] = []
    replicas: int = Field(1, ge=1, description="more than one needs leaderElection.enabled")
    leader_election: LeaderElection = LeaderElection()
    watch_namespaces: list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN)]] = Field(
        [], description="empty: all namespaces (ClusterRole); else a Role per namespace")
    crds: Crds = Crds()
    service_account: ServiceAccount = ServiceAccount()
    rbac: Rbac = Rbac()
    pod_annotations: Labels = {}
    pod_labels: Labels = {}
    priority_class_name: str = ""
    pod_security_context: KubeObject = RESTRICTED_POD
    security_context: KubeObject = RESTRICTED_CONTAINER
    resources: KubeObject = Field(RESOURCES, description="ephemeral-storage comes from tempDir.sizeLimit")
    temp_dir: TempDir = TempDir()
    extra_env: list[KubeObject] = []
    health: Health = Health()
    metrics: Metrics = Metrics()
    grafana_dashboard: GrafanaDashboard = GrafanaDashboard()
    pod_disruption_budget: PodDisruptionBudget = PodDisruptionBudget()
    node_selector: Labels = {}
    tolerations: list[KubeObject] = []
    affinity: KubeObject = {}
    workloads: Workloads = Workloads()


def schema() -> dict:
    out = ChartValues.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **out}


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle chart-schema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {SCHEMA_PATH.name} is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(SCHEMA_PATH), "generated"))
            print("\nrun `mlcycle chart-schema`", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0
