"""GPU check of the built-in trainer: CUDA on 1 GPU, then NCCL DDP with 2 processes (when 2 GPUs exist).

Runs `mlcycle train` exactly as a training pod does (same command and env contract), against the local
MinIO (`mlcycle stack up minio` builds and starts it). Prints what it ran and the trainer's result.

    .venv/bin/python -m mlcycle.bench.gpu_check
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mlcycle.localdev import minio
from mlcycle.localdev.net import free_port
from mlcycle.localdev.sample import iris_like_csv


def run_trainer(server, name: str, nproc: int) -> dict:
    log = Path(tempfile.mkdtemp()) / "termination-log"
    env = {
        **os.environ,
        "MLCYCLE_TRAINER": json.dumps({"task": "classification", "labelColumn": "species",
                                       "hyperparameters": {"epochs": 20, "batchSize": 64, "seed": 1}}),
        "MLCYCLE_DATASET_URI": "s3://datasets/iris/iris.csv", "MLCYCLE_DATASET_FORMAT": "csv",
        "MLCYCLE_OUTPUT_URI": f"s3://models/gpu-check/{name}", "MLCYCLE_TERMINATION_LOG": str(log),
        "MLCYCLE_S3_ENDPOINT": server.endpoint, "MLCYCLE_S3_SECURE": "false",
        "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "MLCYCLE_DEVICE": "cuda",
        "PET_NNODES": "1", "PET_NPROC_PER_NODE": str(nproc), "PET_NODE_RANK": "0",
        "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(free_port()),
    }
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mlcycle.cli", "train"], env=env, text=True,
                          capture_output=True)
    elapsed = time.monotonic() - started
    print(proc.stdout[-2000:], proc.stderr[-2000:] if proc.returncode else "", sep="\n")
    result = json.loads(log.read_text()) if log.exists() and log.read_text() else {}
    print(f"[gpu-check] {name}: exit {proc.returncode} in {elapsed:.1f}s; result {json.dumps(result)[:600]}")
    return {"exit": proc.returncode, "result": result}


def main(argv: list[str] | None = None) -> int:
    if not torch.cuda.is_available():
        print("[gpu-check] no CUDA device visible to torch; nothing to check", file=sys.stderr)
        return 2
    gpus = torch.cuda.device_count()
    print(f"[gpu-check] torch {torch.__version__}, CUDA {torch.version.cuda}, NCCL "
          f"{'.'.join(map(str, torch.cuda.nccl.version()))}, {gpus} GPU(s): "
          f"{', '.join(torch.cuda.get_device_name(i) for i in range(gpus))}")
    server = minio.up()
    for bucket in ("datasets", "models"):
        server.make_bucket(bucket)
    data = iris_like_csv()
    server.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    runs = [run_trainer(server, "cuda-1gpu", 1)]
    if gpus >= 2:
        runs.append(run_trainer(server, "nccl-2proc", 2))
    else:
        print("[gpu-check] 1 GPU only: skipping the 2-process NCCL run")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
