"""Benchmark: verify a large artifact the way the operator does, and report peak memory and throughput.

    .venv/bin/python -m mlcycle.bench.artifact_verify [--size-mb 2048] [--format torchscript|raw]

It uploads a generated artifact to the local MinIO (started if needed), then runs verification in a fresh
child process shaped like the operator (mlcycle.modelversion.verification, no torch): download while
hashing to a temporary file, digest check, format check (TorchScript: zip directory, then the probe child
loads it). It prints one JSON line: the child's RSS before verifying and at its peak (getrusage), the probe's
peak, elapsed seconds and MB/s. Memory that stays flat is a peak close to the baseline, whatever the size.
Needs about three times the artifact size of free disk (local file, MinIO copy, download).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGNATURE = {"inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 4]}],
             "outputs": [{"name": "y", "dtype": "FP32", "shape": [-1, 4]}]}
BUCKET = "mlcycle-bench"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def make_torchscript(path: Path, size_mb: int) -> None:
    """A TorchScript file of about `size_mb`: a module with one large weight (run in its own process)."""
    import torch

    class Big(torch.nn.Module):
        def __init__(self, n: int):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.rand(n), requires_grad=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.weight[:4]

    torch.jit.save(torch.jit.script(Big(size_mb * 1024 * 1024 // 4)), str(path))


def make_raw(path: Path, size_mb: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1024 * 1024))


def verify_child(uri: str, fmt: str, cfg_json: str) -> dict:
    """Runs in the child: the operator's verification steps, measured. The S3 settings come on stdin."""
    from mlcycle.clients import s3
    from mlcycle.modelversion import verification

    cfg = s3.S3Config.create(**json.loads(cfg_json))
    client = s3.client(cfg)
    baseline = _rss_mb()
    # The steps of verification.verify(), timed apart: the download-and-hash, then the format check.
    started = time.monotonic()
    path, digest, size, _ = verification.download(client, uri)
    downloaded = time.monotonic() - started
    try:
        detail = verification.check_format(path, fmt, SIGNATURE)
    finally:
        path.unlink()
    elapsed = time.monotonic() - started
    return {"format": fmt, "sizeBytes": size, "digest": digest, "detail": detail,
            "downloadSeconds": round(downloaded, 1), "downloadMBps": round(size / 1e6 / downloaded, 1),
            "totalSeconds": round(elapsed, 1), "rssBaselineMB": round(baseline, 1),
            "rssPeakMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "probePeakMB": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "torchImportedByVerifier": "torch" in sys.modules}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle.bench.artifact_verify", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--format", choices=("torchscript", "raw"), default="torchscript")
    parser.add_argument("--child", nargs=2, metavar=("URI", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=2, metavar=("PATH", "SIZE_MB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(verify_child(*args.child, sys.stdin.read())))
        return 0
    if args.make:
        make_torchscript(Path(args.make[0]), int(args.make[1]))
        return 0

    from mlcycle.clients import s3
    from mlcycle.localdev import minio as minio_mod

    server = minio_mod.up()
    client = server.client()
    server.make_bucket(BUCKET)
    key = f"artifact-{args.size_mb}mb.{'pt' if args.format == 'torchscript' else 'bin'}"
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-") as tmp:
        path = Path(tmp) / key
        started = time.monotonic()
        if args.format == "torchscript":
            subprocess.run([sys.executable, "-m", "mlcycle.bench.artifact_verify", "--make", str(path),
                            str(args.size_mb)], check=True)
        else:
            make_raw(path, args.size_mb)
        print(f"generated {path.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.0f}s", file=sys.stderr)
        started = time.monotonic()
        s3.upload_file(client, BUCKET, key, path)
        print(f"uploaded in {time.monotonic() - started:.0f}s", file=sys.stderr)
    try:
        cfg = json.dumps({"endpoint": server.endpoint, "access_key": server.access_key,
                          "secret_key": server.secret_key, "secure": False})
        done = subprocess.run([sys.executable, "-m", "mlcycle.bench.artifact_verify", "--child",
                               f"s3://{BUCKET}/{key}", args.format], input=cfg, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        print(done.stdout.strip())
    finally:
        client.remove_object(BUCKET, key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
