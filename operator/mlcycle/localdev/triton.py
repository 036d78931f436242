"""The real `tritonserver` shipped in the nvidia-pytriton wheel, laid out like the Triton image.

The wheel carries the binary, the python backend and one backend stub per Python version; like pytriton
itself, we copy the tree once (to the cache) with the stub for the running Python next to the backend.
A wrapper script then plays the image's `tritonserver`: it sets the library path and the backend
directory, so a pod's own command and args run unchanged.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from mlcycle.localdev import background, versions
from mlcycle.localdev.binaries import CACHE, log
from mlcycle.localdev.net import free_port, http_ok

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _wheel_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed: `pip install -e '.[local]'` (make install)")
    return Path(next(iter(spec.submodule_search_locations)))


def install_dir() -> Path:
    """The prepared Triton tree (bin/, backends/python with the stub for this Python), made once."""
    dest = CACHE / "triton" / f"pytriton-{versions.PYTRITON}-py{PY}"
    if (dest / "bin" / "tritonserver").exists():
        return dest
    src = _wheel_dir() / "tritonserver"
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("python_backend_stubs"))
    shutil.copy2(src / "python_backend_stubs" / PY / "triton_python_backend_stub",
                 tmp / "backends" / "python" / "triton_python_backend_stub")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def server_env() -> dict[str, str]:
    """Environment the server and its python-backend stubs need: the wheel's bundled libraries, this
    Python's libpython, and this environment's packages (numpy, torch) for the models."""
    libs = [str(_wheel_dir().parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    # Every site-packages directory on sys.path, also one a .pth file added (a venv layered on another).
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]] + \
        [p for p in sys.path if p.endswith("site-packages")]
    return {
        "LD_LIBRARY_PATH": ":".join(libs + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]),
        "PYTHONHOME": sys.base_prefix,
        "PYTHONPATH": ":".join(dict.fromkeys(site)),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


def tritonserver_command_env() -> tuple[Path, dict[str, str]]:
    """(executable, env additions) standing in for the Triton image's `tritonserver`."""
    root = install_dir()
    wrapper = root / "tritonserver-wrapper"
    if not wrapper.exists():
        wrapper.write_text(
            "#!/bin/sh\n# The Triton image's tritonserver: defaults first, so the pod's own args win.\n"
            f'exec "{root}/bin/tritonserver" --backend-directory="{root}/backends" '
            f'--cache-directory="{root}/caches" "$@"\n')
        wrapper.chmod(0o755)
    return wrapper, server_env()


@dataclass
class TritonServer:
    http_url: str  # host:port
    grpc_url: str
    metrics_url: str
    process: subprocess.Popen
    log_path: Path

    def ready(self) -> bool:
        return http_ok(f"http://{self.http_url}/v2/health/ready")

    def stop(self) -> None:
        background.stop(self.process)


def start(model_repository: Path, log_path: Path, host: str = "127.0.0.1", timeout: float = 120,
          extra_args: tuple[str, ...] = ()) -> TritonServer:
    """Start tritonserver on free loopback ports against `model_repository`; wait until ready."""
    exe, env = tritonserver_command_env()
    http, grpc, metrics = free_port(), free_port(), free_port()
    args = [str(exe), f"--model-repository={model_repository}", f"--http-address={host}",
            f"--http-port={http}", f"--grpc-address={host}", f"--grpc-port={grpc}",
            f"--metrics-address={host}", f"--metrics-port={metrics}", "--allow-metrics=true", *extra_args]
    proc = background.spawn(args, {**os.environ, **env}, log_path)
    server = TritonServer(f"{host}:{http}", f"{host}:{grpc}", f"{host}:{metrics}", proc, log_path)
    background.wait_ready(proc, server.ready, timeout, "tritonserver", log_path)
    log(f"tritonserver ready: http {server.http_url}, grpc {server.grpc_url}")
    return server
