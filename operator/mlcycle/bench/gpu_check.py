"""The built-in trainer against a plain PyTorch loop, on the same data in the same run.

Runs `mlcycle train` exactly as a training pod does (same command and env contract), against the local
MinIO (`mlcycle stack up minio` builds and starts it), on a synthetic CSV (rows x features float columns and
an integer class label). The baseline is a plain loop, also a fresh process reading the same object from the
same MinIO: numpy parses the CSV, the data is moved to the device once, the same MLP (64, 64) is trained
with Adam on the same 80 % with the same epochs and batch size, validated each epoch. Both run under the
same environment (threads included: `--threads 1` on a machine shared with other work, where two threads
per process only wait for each other). With `--repeat N` the two alternate N times; the table shows the best
wall time of each and their ratio, and the ratio of the medians, for a machine whose load changes under the
run. Prints wall time, the ratios and each process's peak RSS.

    .venv/bin/python -m mlcycle.bench.gpu_check --device cpu --threads 1 --repeat 3   # the default sizes
    .venv/bin/python -m mlcycle.bench.gpu_check --device cuda --ddp     # + 2 processes with NCCL (2 GPUs)
    .venv/bin/python -m mlcycle.bench.gpu_check --device cpu --rows 200000 --batch-size 256 --epochs 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# rows, features, batch size, epochs: the two sizes of issue 14, and a small one that shows the fixed costs
# (start-up, outputs) and the memory that does not depend on the data.
SIZES = [(20_000, 32, 256, 5), (200_000, 32, 256, 5), (1_000_000, 32, 1024, 3)]
CLASSES = 4
HIDDEN = [64, 64]
LEARNING_RATE = 0.001
VALIDATION_SPLIT = 0.2
SEED = 1


def synthetic_csv(rows: int, features: int, seed: int = 0) -> bytes:
    """Standard-normal features (4 decimals) and a label that is the argmax of a fixed linear map."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(rows, features)).astype(np.float32), 4)
    label = (x @ rng.normal(size=(features, CLASSES)).astype(np.float32)).argmax(axis=1)
    table = pa.table({**{f"f{i}": x[:, i] for i in range(features)}, "label": label})
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out)
    return out.getvalue().to_pybytes()


# Runs a module as `python -m` would, then prints the process's peak RSS (VmHWM). ru_maxrss of a child would
# not do: Linux carries it across exec, so a child of a large parent starts at the parent's size.
_PEAK_RSS = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('[peak-rss-kb]', next(line.split()[1] for line in open('/proc/self/status')"
    " if line.startswith('VmHWM')), flush=True))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def run_measured(module: str, args: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """`python -m module args`: exit code, wall seconds, peak RSS in MiB and output."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-c", _PEAK_RSS, module, *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
        elapsed = time.monotonic() - started
        out.seek(0)
        text = out.read().decode(errors="replace")
    peak = re.findall(r"\[peak-rss-kb\] (\d+)", text)
    return code, elapsed, int(peak[-1]) / 1024 if peak else float("nan"), text


def trainer_env(server, uri: str, name: str, device: str, batch_size: int, epochs: int, nproc: int) -> dict:
    from mlcycle.localdev.net import free_port

    log = Path(tempfile.mkdtemp()) / "termination-log"
    return {
        **os.environ,
        "MLCYCLE_TRAINER": json.dumps({
            "task": "classification", "labelColumn": "label", "model": {"hiddenLayers": HIDDEN},
            "hyperparameters": {"epochs": epochs, "batchSize": batch_size, "learningRate": LEARNING_RATE,
                                "seed": SEED, "validationSplit": VALIDATION_SPLIT},
        }),
        "MLCYCLE_DATASET_URI": uri, "MLCYCLE_DATASET_FORMAT": "csv",
        "MLCYCLE_OUTPUT_URI": f"s3://models/gpu-check/{name}", "MLCYCLE_TERMINATION_LOG": str(log),
        "MLCYCLE_S3_ENDPOINT": server.endpoint, "MLCYCLE_S3_SECURE": "false",
        "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "MLCYCLE_DEVICE": device,
        "PET_NNODES": "1", "PET_NPROC_PER_NODE": str(nproc), "PET_NODE_RANK": "0",
        "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(free_port()),
    }


def plain_loop(args: argparse.Namespace) -> None:
    """The baseline, in its own process: what someone would write by hand for this data."""
    started = time.monotonic()
    import minio
    import torch
    from torch import nn

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # CUDA start-up, which the trainer pays too
    client = minio.Minio(args.endpoint, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                         secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], secure=False)
    bucket, key = args.uri.removeprefix("s3://").split("/", 1)
    response = client.get_object(bucket, key)
    data = response.read()
    response.close()
    response.release_conn()
    parse_started = time.monotonic()
    table = np.loadtxt(io.BytesIO(data), delimiter=",", skiprows=1, dtype=np.float32)
    del data
    parse = time.monotonic() - parse_started
    x, y = torch.from_numpy(table[:, :-1]), torch.from_numpy(table[:, -1]).long()
    torch.manual_seed(SEED)
    order = torch.randperm(len(x))
    n_val = round(len(x) * VALIDATION_SPLIT)
    val, train = order[:n_val], order[n_val:]
    mean, std = x[train].mean(dim=0), x[train].std(dim=0)
    x = ((x - mean) / std).to(device)
    y = y.to(device)
    train, val = train.to(device), val.to(device)
    layers, width = [], x.shape[1]
    for hidden in HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    model = nn.Sequential(*layers, nn.Linear(width, CLASSES)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    train_started = time.monotonic()
    for epoch in range(1, args.epochs + 1):
        model.train()
        shuffled = train[torch.randperm(len(train), device=device)]
        for start in range(0, len(shuffled), args.batch_size):
            index = shuffled[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(x[val])
            accuracy = (out.argmax(dim=1) == y[val]).float().mean().item()
        print(f"epoch={epoch} loss={loss.item():.4f} val_accuracy={accuracy:.4f}", flush=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(json.dumps({"parse_s": parse, "train_s": time.monotonic() - train_started,
                      "total_s": time.monotonic() - started, "val_accuracy": accuracy}), flush=True)


def compare(server, args: argparse.Namespace, rows: int, features: int, batch_size: int, epochs: int) -> dict:
    name = f"{rows}x{features}"
    data = synthetic_csv(rows, features)
    server.client().put_object("datasets", f"gpu-check/{name}.csv", io.BytesIO(data), len(data))
    uri = f"s3://datasets/gpu-check/{name}.csv"
    csv_mb = len(data) / 2**20
    del data
    env = trainer_env(server, uri, name, args.device, batch_size, epochs, 1)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    plain_args = ["plain", "--device", args.device, "--uri", uri, "--endpoint", server.endpoint,
                  "--batch-size", str(batch_size), "--epochs", str(epochs)]
    trainer_runs, plain_runs = [], []
    for _ in range(args.repeat):
        code, elapsed, rss, out = run_measured("mlcycle.cli", ["train"], env)
        if code != 0:
            print(out[-3000:])
            raise SystemExit(f"[gpu-check] mlcycle train failed for {name}")
        message = json.loads(Path(env["MLCYCLE_TERMINATION_LOG"]).read_text())
        phases = re.findall(r"(?:read|trained|uploaded) in [0-9.]+ s", out)
        print(f"[gpu-check] trainer: {', '.join(phases)}", flush=True)
        trainer_runs.append((elapsed, rss, message["metrics"]["val_accuracy"]))
        code, elapsed, rss, out = run_measured("mlcycle.bench.gpu_check", plain_args, env)
        if code != 0:
            print(out[-3000:])
            raise SystemExit(f"[gpu-check] the plain loop failed for {name}")
        plain_runs.append((elapsed, rss, json.loads(next(line for line in out.splitlines() if line.startswith("{")))))
        print(f"[gpu-check] {name}: trainer {trainer_runs[-1][0]:.1f} s, plain loop {elapsed:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    trainer_s, trainer_rss, trainer_accuracy = min(trainer_runs)
    plain_s, plain_rss, plain = min(plain_runs, key=lambda run: run[0])
    # What the trainer's imports alone take: `mlcycle train --help` imports the trainer and returns.
    _, _, imports_rss, _ = run_measured("mlcycle.cli", ["train", "--help"], env)
    result = {
        "data": f"{rows:,} rows x {features} features, batch {batch_size}, {epochs} epochs ({csv_mb:.0f} MiB CSV)",
        "trainer_s": trainer_s, "plain_s": plain_s, "plain_parse_s": plain["parse_s"],
        "plain_train_s": plain["train_s"], "ratio": trainer_s / plain_s,
        "trainer_rss_mb": trainer_rss, "plain_rss_mb": plain_rss, "imports_rss_mb": imports_rss,
        "matrix_mb": rows * features * 4 / 2**20,
        "trainer_accuracy": trainer_accuracy, "plain_accuracy": plain["val_accuracy"],
        "trainer_runs_s": [round(r[0], 1) for r in trainer_runs], "plain_runs_s": [round(r[0], 1) for r in plain_runs],
        "median_ratio": statistics.median(r[0] for r in trainer_runs) / statistics.median(r[0] for r in plain_runs),
    }
    print(f"[gpu-check] {json.dumps(result)}", flush=True)
    return result


def table(results: list[dict], device: str) -> str:
    lines = [
        f"| data ({device}) | `mlcycle train` wall | plain loop wall (parse, train) | ratio (of medians) "
        "| trainer peak RSS (imports alone; float32 matrix) | plain loop peak RSS | val accuracy (trainer / plain) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['data']} | {r['trainer_s']:.1f} s | {r['plain_s']:.1f} s ({r['plain_parse_s']:.1f} s, "
            f"{r['plain_train_s']:.1f} s) | {r['ratio']:.2f}x ({r['median_ratio']:.2f}x) | "
            f"{r['trainer_rss_mb']:.0f} MiB ({r['imports_rss_mb']:.0f} MiB; {r['matrix_mb']:.0f} MiB) | "
            f"{r['plain_rss_mb']:.0f} MiB | "
            f"{r['trainer_accuracy']:.3f} / {r['plain_accuracy']:.3f} |"
        )
    return "\n".join(lines)


def ddp_check(server) -> bool:
    """2 processes with NCCL on 2 GPUs, through torchrun as a 2-GPU pod runs it."""
    data = synthetic_csv(20_000, 8)
    server.client().put_object("datasets", "gpu-check/ddp.csv", io.BytesIO(data), len(data))
    env = trainer_env(server, "s3://datasets/gpu-check/ddp.csv", "nccl-2proc", "cuda", 256, 2, 2)
    code, elapsed, _, out = run_measured("mlcycle.cli", ["train"], env)
    log = Path(env["MLCYCLE_TERMINATION_LOG"])
    print(out[-2000:] if code else "", f"[gpu-check] nccl-2proc: exit {code} in {elapsed:.1f}s; "
          f"result {log.read_text()[:600] if log.exists() else ''}", sep="\n")
    return code == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle.bench.gpu_check")
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "plain"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--rows", type=int, help="one size instead of the default sizes")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both processes (default: torch's)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two this often; keep each best")
    parser.add_argument("--ddp", action="store_true", help="also train with 2 processes and NCCL (2 GPUs)")
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "plain":
        plain_loop(args)
        return 0

    import torch

    from mlcycle.localdev import minio

    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("[gpu-check] no CUDA device visible to torch; run with --device cpu", file=sys.stderr)
            return 2
        gpus = torch.cuda.device_count()
        print(f"[gpu-check] torch {torch.__version__}, CUDA {torch.version.cuda}, NCCL "
              f"{'.'.join(map(str, torch.cuda.nccl.version()))}, {gpus} GPU(s): "
              f"{', '.join(torch.cuda.get_device_name(i) for i in range(gpus))}")
    else:
        print(f"[gpu-check] torch {torch.__version__} on CPU, {os.cpu_count()} cores, "
              f"{args.threads or torch.get_num_threads()} thread(s) per process, load average "
              f"{os.getloadavg()[0]:.1f}")
    server = minio.up()
    for bucket in ("datasets", "models"):
        server.make_bucket(bucket)
    sizes = [(args.rows, args.features, args.batch_size, args.epochs)] if args.rows else SIZES
    results = [compare(server, args, *size) for size in sizes]
    print(table(results, args.device))
    print(f"[gpu-check] load average after: {os.getloadavg()[0]:.1f}; "
          f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.ddp:
        if args.device != "cuda" or torch.cuda.device_count() < 2:
            print("[gpu-check] --ddp needs 2 GPUs: skipped")
        elif not ddp_check(server):
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
