"""The chart (`make chart-check`): `helm lint --strict` and `helm template` pass for the default values and every
documented toggle, each toggle renders what it promises, a misspelled value fails with the key named, and the
operator pod passes the Pod Security "restricted" profile of the real apiserver."""

from __future__ import annotations

import json

import pytest
import yaml

from mlcycle.localdev import chart


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def deployment(objects: list[dict]) -> dict:
    (dep,) = by_kind(objects, "Deployment")
    return dep


@pytest.mark.parametrize("toggle", list(chart.TOGGLES))
def test_lint_strict_and_template_pass(toggle):
    lint = chart.lint(chart.TOGGLES[toggle])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert chart.manifests(chart.TOGGLES[toggle])


def test_default_values_render_a_restricted_operator_with_a_sized_temp_dir_and_leader_election():
    objects = chart.manifests({})
    pod = deployment(objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] and pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]["ephemeral-storage"] == "2Gi"
    assert container["resources"]["limits"] == {"memory": "4Gi", "ephemeral-storage": "2Gi"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLCYCLE_IMAGE"] == container["image"] == "ghcr.io/mlcycle/mlcycle:0.1.0"
    assert env["TMPDIR"] == env["MLCYCLE_ARTIFACT_DIR"] == "/tmp"
    assert "--leader-election" in container["args"] and "--lease-namespace=mlcycle-system" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    crds = by_kind(objects, "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "inferenceservices.mlcycle.io", "modelversions.mlcycle.io", "trainingjobs.mlcycle.io"]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    assert by_kind(objects, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    assert {o["metadata"]["name"] for o in by_kind(objects, "ClusterRole")} == {"mlcycle", "mlcycle-cluster"}
    assert not by_kind(objects, "ServiceMonitor") + by_kind(objects, "PodMonitor") + by_kind(objects, "ConfigMap")


def test_watch_namespaces_get_a_role_each_and_no_cluster_wide_namespaced_rights():
    objects = chart.manifests(chart.TOGGLES["watch-namespaces"])
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(objects, "Role")}
    assert roles == {("team-a", "mlcycle"), ("team-b", "mlcycle"), ("mlcycle-system", "mlcycle-leader-election")}
    (cluster_role,) = by_kind(objects, "ClusterRole")
    assert {r["resources"][0] for r in cluster_role["rules"]} == {"customresourcedefinitions", "namespaces",
                                                                   "priorityclasses"}
    namespaces = next(r for r in cluster_role["rules"] if r["resources"] == ["namespaces"])
    assert namespaces["resourceNames"] == ["team-a", "team-b"] and namespaces["verbs"] == ["get"]
    args = deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_secrets_are_only_read_by_name_never_listed_or_written():
    for objects in (chart.manifests({}), chart.manifests(chart.TOGGLES["watch-namespaces"])):
        rules = [r for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role") for r in role["rules"]]
        assert [r["verbs"] for r in rules if "secrets" in r["resources"]] in ([["get"]], [["get"], ["get"]])
        assert not [r for r in rules if "*" in r["verbs"] or "*" in r["resources"]]


def test_toggles_render_what_they_promise():
    assert not by_kind(chart.manifests(chart.TOGGLES["no-crds"]), "CustomResourceDefinition")
    unkept = by_kind(chart.manifests(chart.TOGGLES["crds-not-kept"]), "CustomResourceDefinition")
    assert unkept and not any("helm.sh/resource-policy" in (c["metadata"].get("annotations") or {}) for c in unkept)

    existing = chart.manifests(chart.TOGGLES["existing-service-account"])
    assert not by_kind(existing, "ServiceAccount") and not by_kind(existing, "ClusterRole")
    assert deployment(existing)["spec"]["template"]["spec"]["serviceAccountName"] == "platform-ops"

    sa = chart.manifests(chart.TOGGLES["service-account-annotations"])
    assert by_kind(sa, "ServiceAccount")[0]["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    assert by_kind(sa, "ClusterRoleBinding")[0]["subjects"][0]["name"] == "mlcycle-operator"

    (monitor,) = by_kind(chart.manifests(chart.TOGGLES["service-monitor"]), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom" and monitor["spec"]["endpoints"][0]["interval"] == "15s"
    (pod_monitor,) = by_kind(chart.manifests(chart.TOGGLES["pod-monitor"]), "PodMonitor")
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"

    (dashboard,) = by_kind(chart.manifests(chart.TOGGLES["grafana-dashboard"]), "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["mlcycle-operator.json"])["panels"]
    assert any("mlcycle_reconcile_total" in p["targets"][0]["expr"] for p in panels)

    assert not by_kind(chart.manifests(chart.TOGGLES["no-pdb"]), "PodDisruptionBudget")

    sized = deployment(chart.manifests(chart.TOGGLES["temp-dir-size"]))["spec"]["template"]["spec"]
    assert sized["volumes"][0]["emptyDir"]["sizeLimit"] == "20Gi"
    # helm merges the values into the defaults: the default memory request stays.
    assert sized["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "20Gi"},
        "limits": {"memory": "16Gi", "ephemeral-storage": "20Gi"}}

    scheduled = deployment(chart.manifests(chart.TOGGLES["scheduling"]))["spec"]["template"]["spec"]
    assert scheduled["priorityClassName"] == "system-cluster-critical"
    assert scheduled["nodeSelector"] == {"pool": "system"} and scheduled["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in scheduled["affinity"]

    meta = deployment(chart.manifests(chart.TOGGLES["pod-metadata-and-env"]))["spec"]["template"]
    assert meta["metadata"]["annotations"] == {"a": "b"} and meta["metadata"]["labels"]["team"] == "ml"
    assert meta["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    (container,) = meta["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLCYCLE_ARTIFACT_RECHECK_SECONDS"] == "120"
    assert container["image"] == env["MLCYCLE_IMAGE"] == "registry.example/mlcycle:0.1.0-cuda"

    standalone = deployment(chart.manifests(chart.TOGGLES["standalone"]))
    assert standalone["spec"]["strategy"]["type"] == "Recreate"
    assert "--standalone" in standalone["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("values, message", [
    ({"replica": 2}, "additional properties 'replica' not allowed"),
    ({"metrics": {"serviceMonitor": {"enable": True}}}, "additional properties 'enable' not allowed"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"tempDir": {"sizeLimit": "lots"}}, "/tempDir/sizeLimit"),
    ({"replicas": 2, "leaderElection": {"enabled": False}}, "replicas > 1 needs leaderElection.enabled=true"),
    ({"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}}, "not both"),
    ({"leaderElection": {"renewDeadlineSeconds": 20}}, "renewDeadlineSeconds must be less than"),
    ({"leaderElection": {"retryPeriodSeconds": 9}}, "must exceed 1.2 × leaderElection.retryPeriodSeconds"),
], ids=["typo", "nested-typo", "enum", "quantity", "replicas-without-election", "both-monitors", "renew-deadline",
        "retry-period"])
def test_wrong_values_fail_with_the_key_named(values, message):
    result = chart.render(values)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_operator_pod_passes_pod_security_restricted(cluster, namespace):
    cluster.kubectl_run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    template = deployment(chart.manifests({}))["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator", "namespace": namespace,
                                                          "labels": template["metadata"]["labels"]},
           "spec": template["spec"] | {"serviceAccountName": "default"}}
    result = cluster.kubectl_run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert result.returncode == 0, result.stderr
    # ... and the same check refuses a pod that is not restricted, so it is not vacuous.
    pod["spec"]["containers"][0]["securityContext"] = {}
    refused = cluster.kubectl_run("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
