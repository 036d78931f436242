"""`make chart-check`: `helm lint --strict` and `helm template` of charts/mlcycle with its default values and with
every documented toggle (the pinned helm, built like the other tools)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from mlcycle.chartvalues import CHART
from mlcycle.localdev import binaries

# name -> values that switch one documented feature (each rendered on top of values.yaml)
TOGGLES: dict[str, dict] = {
    "default": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "high-availability": {"replicas": 2, "leaderElection": {"leaseDurationSeconds": 20}},
    "standalone": {"leaderElection": {"enabled": False}},
    "no-crds": {"crds": {"enabled": False}},
    "crds-not-kept": {"crds": {"keep": False}},
    "existing-service-account": {"serviceAccount": {"create": False, "name": "platform-ops"},
                                 "rbac": {"create": False}},
    "service-account-annotations": {"serviceAccount": {"name": "mlcycle-operator",
                                                       "annotations": {"eks.amazonaws.com/role-arn": "arn:x"}}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"},
                                                       "interval": "15s"}}},
    "pod-monitor": {"metrics": {"podMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "grafana-dashboard": {"grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"}}},
    "no-pdb": {"podDisruptionBudget": {"enabled": False}},
    "temp-dir-size": {"tempDir": {"sizeLimit": "20Gi"},
                      "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "16Gi"}}},
    "scheduling": {"priorityClassName": "system-cluster-critical", "nodeSelector": {"pool": "system"},
                   "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system",
                                    "effect": "NoSchedule"}],
                   "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                       {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
                           "matchLabels": {"app.kubernetes.io/name": "mlcycle"}}}}]}}},
    "pod-metadata-and-env": {"podAnnotations": {"a": "b"}, "podLabels": {"team": "ml"},
                             "imagePullSecrets": [{"name": "regcred"}],
                             "extraEnv": [{"name": "MLCYCLE_ARTIFACT_RECHECK_SECONDS", "value": "120"}],
                             "image": {"repository": "registry.example/mlcycle", "tag": "0.1.0-cuda"}},
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(binaries.binary("helm")), *args], capture_output=True, text=True, check=check)


def _values_file(values: dict, folder: Path) -> Path:
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def lint(values: dict) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        return helm("lint", "--strict", str(CHART), "-f", str(_values_file(values, Path(tmp))), check=False)


def render(values: dict, release: str = "mlcycle", namespace: str = "mlcycle-system") -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        return helm("template", release, str(CHART), "--namespace", namespace,
                    "-f", str(_values_file(values, Path(tmp))), check=False)


def manifests(values: dict, **kwargs) -> list[dict]:
    """The rendered objects; raises with helm's message when rendering fails."""
    result = render(values, **kwargs)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def install(kubeconfig: Path, release: str, namespace: str, values: dict, timeout: str = "5m",
            upgrade: bool = False) -> None:
    """`helm install --wait` (or `helm upgrade`) into the cluster of `kubeconfig` (the namespace is created)."""
    verb = ["upgrade"] if upgrade else ["install", "--create-namespace"]
    with tempfile.TemporaryDirectory() as tmp:
        result = helm(*verb, release, str(CHART), "--kubeconfig", str(kubeconfig), "--namespace", namespace,
                      "--wait", "--timeout", timeout, "-f", str(_values_file(values, Path(tmp))), check=False)
    if result.returncode:
        raise RuntimeError(f"helm {verb[0]} failed:\n{result.stdout}{result.stderr}")


def uninstall(kubeconfig: Path, release: str, namespace: str) -> subprocess.CompletedProcess:
    return helm("uninstall", release, "--kubeconfig", str(kubeconfig), "--namespace", namespace, "--wait",
                check=False)


def main(argv: list[str]) -> int:
    failed = []
    for name, values in TOGGLES.items():
        for step, result in (("lint", lint(values)), ("template", render(values))):
            ok = result.returncode == 0
            print(f"{'ok  ' if ok else 'FAIL'} {step:<8} {name}")
            if not ok:
                failed.append(name)
                print(result.stdout + result.stderr, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
