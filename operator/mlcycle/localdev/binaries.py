"""Find or build the local stack's binaries.

Lookup order for a component: the directory in $MLCYCLE_BIN_DIR, then the cache
(~/.cache/mlcycle/bin/<component>-<version>/), else build it with the machine's `go` from the pinned
Go modules. Builds take minutes the first time; progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mlcycle.localdev import versions

CACHE = Path(os.environ.get("MLCYCLE_CACHE", Path.home() / ".cache" / "mlcycle"))
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")

# component -> (version, binaries it provides)
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kubernetes": (versions.KUBERNETES, KUBE_BINARIES),
    "etcd": (versions.ETCD, ("etcd",)),
    "kwok": (versions.KWOK, ("kwok", "kwokctl")),
    "minio": (versions.MINIO, ("minio",)),
    "helm": (versions.HELM, ("helm",)),
}
# component -> the package pattern `go install` builds each binary from
GO_INSTALL = {"kwok": "sigs.k8s.io/kwok/cmd/{}", "minio": "github.com/minio/{}", "helm": "helm.sh/helm/v3/cmd/{}"}

ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def log(msg: str) -> None:
    print(f"[mlcycle tools] {msg}", file=sys.stderr, flush=True)


def component_dir(component: str) -> Path:
    version, _ = COMPONENTS[component]
    return CACHE / "bin" / f"{component}-{version}"


def binary(name: str) -> Path:
    """Path of one binary, building its component if it is neither in $MLCYCLE_BIN_DIR nor cached."""
    override = os.environ.get("MLCYCLE_BIN_DIR")
    if override and (Path(override) / name).is_file():
        return Path(override) / name
    component = next(c for c, (_, names) in COMPONENTS.items() if name in names)
    path = component_dir(component) / name
    if not path.is_file():
        build(component)
    return path


def ensure_all() -> dict[str, Path]:
    return {name: binary(name) for _, names in COMPONENTS.values() for name in names}


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    log(f"go {' '.join(args)}  (in {cwd})")
    subprocess.run(["go", *args], cwd=cwd, check=True, env={**os.environ, "CGO_ENABLED": "0", **(env or {})})


def _staging_replaces(kubernetes_version: str, workdir: Path) -> list[str]:
    """k8s.io/kubernetes points its staging modules at ./staging; point them at the published v0.x.y."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{kubernetes_version}"],
        cwd=workdir, check=True, capture_output=True, text=True,
    ).stdout
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    mods = [line.split("=>")[0].strip() for line in gomod.splitlines() if "=> ./staging/" in line]
    return [f"{m}={m}@{versions.STAGING}" for m in mods]


def _helm_stamp(version: str, workdir: Path) -> str:
    """What helm's release build stamps: its version, and the Kubernetes version of its client-go as the default
    of `.Capabilities.KubeVersion` for `helm template`/`lint` (unstamped it is 1.20, too old for most charts)."""
    out = subprocess.run(["go", "mod", "download", "-json", f"helm.sh/helm/v3@{version}"], cwd=workdir, check=True,
                         capture_output=True, text=True).stdout
    minor = re.search(r"k8s\.io/client-go v0\.(\d+)\.", Path(json.loads(out)["GoMod"]).read_text()).group(1)
    flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " " + " ".join(flags)


def _version_ldflags() -> str:
    v = versions.KUBERNETES
    major, minor = v.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={v}", f"-X {pkg}.gitMajor={major}", f"-X {pkg}.gitMinor={minor}",
                  f"-X {pkg}.gitTreeState=clean", f"-X {pkg}.buildDate=1970-01-01T00:00:00Z"]
    return "-s -w " + " ".join(flags)


def build(component: str) -> None:
    if shutil.which("go") is None:
        raise RuntimeError(f"{component} is not cached in {CACHE / 'bin'} and `go` is not on PATH to build it")
    version, names = COMPONENTS[component]
    dest = component_dir(component)
    work = CACHE / "build" / f"{component}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log(f"building {component} {version} into {dest} (first time only; takes minutes)")
    if component in ("kubernetes", "etcd"):
        _build_in_module(component, version, names, work, staging)
    else:
        stamp = _helm_stamp(version, work) if component == "helm" else ""
        for name in names:
            _go(["install", "-trimpath", f"-ldflags=-s -w{stamp}", f"{GO_INSTALL[component].format(name)}@{version}"],
                work, env={"GOBIN": str(staging)})
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    log(f"built {component}: {', '.join(names)}")


def _build_in_module(component: str, version: str, names: tuple[str, ...], work: Path, out: Path) -> None:
    """Build from a scratch module that requires k8s.io/kubernetes (or etcd's server) with replaces."""
    if not (work / "go.mod").exists():
        _go(["mod", "init", f"mlcycle.local/build/{component}"], work)
    if component == "kubernetes":
        for rep in _staging_replaces(version, work):
            _go(["mod", "edit", f"-replace={rep}"], work)
        pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in names]
        _go(["get", *(f"{pkg}@{version}" for pkg in pkgs)], work)
        for name, pkg in zip(names, pkgs, strict=True):
            _go(["build", "-trimpath", f"-ldflags={_version_ldflags()}", "-o", str(out / name), pkg], work)
    else:
        (work / "main.go").write_text(ETCD_MAIN)
        _go(["get", f"go.etcd.io/etcd/server/v3@{version}"], work)
        _go(["mod", "tidy"], work)
        _go(["build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), "."], work)


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(COMPONENTS)
    for c in wanted:
        if not component_dir(c).is_dir():
            build(c)
    print("\n".join(str(component_dir(c)) for c in wanted))
