"""`mlcycle train`: the built-in PyTorch trainer that runs inside a TrainingJob's pods.

It reads its job from the environment (MLCYCLE_TRAINER, MLCYCLE_DATASET_*, MLCYCLE_OUTPUT_URI, the S3
settings), trains an MLP on a CSV, Parquet or JSONL dataset, and writes the model (model.pt, TorchScript,
and/or model.onnx, as spec.trainer.exportFormats asks), signature.json, reference_profile.json and
metrics.jsonl under the output URI. The pod's termination message tells the operator the outcome (see
mlcycle.training).

Distributed training uses torchrun's own environment (PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK,
PET_MASTER_ADDR, PET_MASTER_PORT): with more than one process in total, `mlcycle train` starts torch's
launcher, whose workers run this module again with RANK/LOCAL_RANK/WORLD_SIZE set; they train with DDP
(gloo on CPU, NCCL on GPU), each on its shard of the data, and only global rank 0 writes outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from pydantic import ValidationError
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mlcycle import evaluation, training
from mlcycle.api.modelversion import Validation
from mlcycle.api.trainingjob import Trainer
from mlcycle.clients import s3
from mlcycle.training import TrainingFailed
from mlcycle.workloads import profile
from mlcycle.workloads.dataset import Examples, load_examples
from mlcycle.workloads.model import (
    INPUT_NAME,
    OUTPUT_NAME,
    FeatureEncoder,
    ServingModel,
    build_mlp,
    onnx_bytes,
    torchscript_bytes,
)

_EVAL_BATCH = 4096
_STATS_CHUNK = 1 << 16
# The share of free GPU memory the data set may take and still be moved there whole; the rest is for the
# model, its activations and the optimizer.
_RESIDENT_FRACTION = 0.5
_DIST_TIMEOUT = timedelta(minutes=30)


# --- configuration -------------------------------------------------------------------------------


def trainer_config(spec: Any) -> Trainer:
    """spec.trainer, validated by the API's own model: the rules and defaults the apiserver applies."""
    try:
        return Trainer.model_validate(spec)
    except ValidationError as e:
        problems = [f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors()]
        _invalid(f"spec.trainer is invalid: {'; '.join(problems)}")


def _invalid(message: str) -> NoReturn:
    raise TrainingFailed(training.INVALID_CONFIG, message)


def load(source: str, config: Trainer, **kwargs: Any) -> Examples:
    """The examples `config` trains on, from the dataset at `source` (see dataset.load_examples)."""
    return load_examples(source, label=config.label_column, features=config.features,
                         label_as_text=config.task == "classification", **kwargs)


def split_indices(rows: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of the rows into (train, validation); each gets at least one row."""
    order = np.random.default_rng(seed).permutation(rows)
    n_val = min(max(1, round(rows * validation_split)), rows - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    model: ServingModel
    history: list[dict[str, float]]


def column_stats(x: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (1 where it is 0) of each column over `rows`, in float64 and a chunk of
    rows at a time, so that no copy of the training rows is made."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(rows), _STATS_CHUNK):
        chunk = x[torch.from_numpy(rows[start : start + _STATS_CHUNK])].double()
        total += chunk.sum(dim=0)
        squares += (chunk * chunk).sum(dim=0)
    mean = total / len(rows)
    std = (squares / len(rows) - mean * mean).clamp(min=0).sqrt()
    return mean.float(), torch.where(std > 0, std, torch.ones_like(std)).float()


def _fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether the data set can live on the device for the whole run (always, for the CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= free * _RESIDENT_FRACTION


def _rows(t: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """t[index] on `device`: a gather where the data lives, then (when it lives on the host) a copy from
    pinned memory that overlaps with the device's work."""
    rows = t.index_select(0, index)
    if rows.device == device:
        return rows
    return rows.pin_memory().to(device, non_blocking=True)


def _shard(train_rows: torch.Tensor, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's rows for the epoch, shuffled where they live: a seeded permutation of all training rows,
    padded by wrapping around (like DistributedSampler) so that every rank takes the same number of steps."""
    generator = torch.Generator(device=train_rows.device)
    generator.manual_seed(seed + epoch)
    order = torch.randperm(len(train_rows), generator=generator, device=train_rows.device)
    total = -(-len(order) // world_size) * world_size
    if total > len(order):
        order = torch.cat([order, order[: total - len(order)]])
    return train_rows[order[rank:total:world_size]]


def _sum_across_ranks(sums: torch.Tensor) -> list[float]:
    """The one host read of an epoch: the sums of every rank, added up."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    return sums.tolist()


def _evaluate(network: nn.Module, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, device: torch.device,
              classification: bool, target_std: float) -> torch.Tensor:
    """Sums over `rows`, on the device: [loss, rows, correct] or [loss, rows, squared error, absolute error]
    (in the target's units), so that shards can be added up across ranks."""
    network.eval()
    sums = torch.zeros(3 if classification else 4, dtype=torch.float64, device=device)
    with torch.no_grad():
        for start in range(0, len(rows), _EVAL_BATCH):
            index = rows[start : start + _EVAL_BATCH]
            xb, yb = _rows(x, index, device), _rows(y, index, device)
            out = network(xb).float()
            sums[1] += len(index)
            if classification:
                sums[0] += nn.functional.cross_entropy(out, yb, reduction="sum")
                sums[2] += (out.argmax(dim=1) == yb).sum()
            else:
                sums[0] += nn.functional.mse_loss(out, yb, reduction="sum")
                err = (out - yb) * target_std
                sums[2] += (err**2).sum()
                sums[3] += err.abs().sum()
    return sums


def _bf16(config: Trainer, device: torch.device) -> bool:
    if config.precision != "bf16":
        return False
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        print(f"precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; training in fp32", flush=True)
        return False
    return True


def train(
    config: Trainer,
    examples: Examples,
    *,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Trained:
    """Train on `examples` (every rank passes the same examples and trains on its shard). Same seed and
    data give the same model and metrics. `on_epoch(epoch, metrics)` sees the metrics summed over ranks.

    The data set moves to the device once (when it fits; otherwise batches are gathered on the host and
    copied from pinned memory), is shuffled there by index, and standardised inside the model; the loss is
    summed on the device and read once per epoch."""
    device = device or torch.device("cpu")
    hyper = config.hyperparameters
    classification = config.task == "classification"
    torch.manual_seed(hyper.seed)
    train_idx, val_idx = split_indices(len(examples.features), hyper.validation_split, hyper.seed)

    x = torch.from_numpy(examples.features)
    mean, std = column_stats(x, train_idx)
    if classification:
        y = torch.from_numpy(examples.targets)
        n_outputs, target_mean, target_std = len(examples.classes or ()), 0.0, 1.0
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        raw = torch.from_numpy(examples.targets)
        target_mean = float(raw[train_idx].double().mean())
        target_std = float(raw[train_idx].double().std(unbiased=False)) or 1.0
        y = ((raw - target_mean) / target_std).unsqueeze(1)
        n_outputs = 1
        loss_fn = nn.MSELoss()

    categorical = {examples.feature_names.index(n): len(v) for n, v in examples.categories.items()}
    encoder = FeatureEncoder(mean, std, categorical)
    network = nn.Sequential(encoder, build_mlp(encoder.width, n_outputs, config.model.hidden_layers,
                                               config.model.dropout)).to(device)
    distributed = dist.is_available() and dist.is_initialized()
    model = (
        # The encoder's buffers are the same on every rank (same data, same statistics): nothing to broadcast.
        DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None,
                                broadcast_buffers=False)
        if distributed
        else network
    )
    home = device if _fits_on(device, x.nbytes + y.nbytes) else torch.device("cpu")
    x, y = x.to(home), y.to(home)
    train_rows = torch.from_numpy(train_idx).to(home)
    # Each rank evaluates every world_size-th validation row; the sums are added across ranks.
    val_rows = torch.from_numpy(val_idx[rank::world_size]).to(home)
    # One fused kernel per step on the GPU instead of one per parameter tensor.
    optimizer = torch.optim.Adam(model.parameters(), lr=hyper.learning_rate, fused=device.type == "cuda")
    bf16 = _bf16(config, device)

    history: list[dict[str, float]] = []
    for epoch in range(1, hyper.epochs + 1):
        model.train()
        order = _shard(train_rows, hyper.seed, epoch, rank, world_size)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(order), hyper.batch_size):
            index = order[start : start + hyper.batch_size]
            xb, yb = _rows(x, index, device), _rows(y, index, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(index)
        rows = torch.tensor([float(len(order))], dtype=torch.float64, device=device)
        evaluated = _evaluate(network, x, y, val_rows, device, classification, target_std)
        sums = _sum_across_ranks(torch.cat([loss_sum.reshape(1), rows, evaluated]))
        metrics = {"train_loss": sums[0] / sums[1], "val_loss": sums[2] / sums[3]}
        if classification:
            metrics["val_accuracy"] = sums[4] / sums[3]
        else:
            metrics["val_rmse"] = (sums[4] / sums[3]) ** 0.5
            metrics["val_mae"] = sums[5] / sums[3]
        history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)

    serving = ServingModel(network.cpu(), classification, target_mean, target_std)
    return Trained(serving.eval(), history)


# --- evaluation per slice ------------------------------------------------------------------------


def check_slices(asked: Validation, examples: Examples) -> None:
    """Fail before training when the slices asked for cannot be formed from these examples."""
    for spec in asked.slices or []:
        if spec.feature not in examples.feature_names and spec.feature not in examples.extra:
            _invalid(f"registerModel.validation.slices: {spec.feature!r} is not a column of the dataset "
                     f"(features: {examples.feature_names})")
        extra = examples.extra.get(spec.feature)
        text = spec.feature in examples.categories or (extra is not None and extra.dtype.kind == "U")
        if spec.bins and text:
            _invalid(f"registerModel.validation.slices: {spec.feature!r} holds text; bins need numbers")
    if asked.positive_class is not None and asked.positive_class not in (examples.classes or ()):
        _invalid(f"registerModel.validation.positiveClass {asked.positive_class!r} is not one of the classes "
                 f"{examples.classes}")


def slice_evaluation(model: ServingModel, examples: Examples, config: Trainer, asked: Validation) -> dict:
    """Metrics of each slice of the validation rows (the rows `train` held out) and the fairness gaps
    between slices (see mlcycle.evaluation)."""
    hyper = config.hyperparameters
    _, rows = split_indices(len(examples.features), hyper.validation_split, hyper.seed)
    x = torch.from_numpy(examples.features[rows])
    with torch.no_grad():
        out = torch.cat([model(x[start : start + _EVAL_BATCH]) for start in range(0, len(x), _EVAL_BATCH)])
    columns = {}
    for spec in asked.slices or []:
        if spec.feature in examples.extra:
            columns[spec.feature] = examples.extra[spec.feature][rows]
            continue
        values = examples.features[rows, examples.feature_names.index(spec.feature)]
        categories = examples.categories.get(spec.feature)
        columns[spec.feature] = np.asarray(categories)[values.astype(np.int64)] if categories else values
    if examples.classes:
        classes = np.asarray(examples.classes)
        y_true, y_pred = classes[examples.targets[rows]], classes[out.argmax(dim=1).numpy()]
    else:
        y_true, y_pred = examples.targets[rows], out[:, 0].numpy()
    try:
        return evaluation.evaluate(y_true, y_pred, columns, asked.slices or [], classes=examples.classes,
                                   positive=asked.positive_class)
    except evaluation.SliceError as e:
        _invalid(f"registerModel.validation.slices: {e}")


# --- outputs -------------------------------------------------------------------------------------

# Each export format's file name and writer; every file has the same signature (see model.py).
ARTIFACT_FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}


def export(model: ServingModel, fmt: str, n_features: int) -> bytes:
    return torchscript_bytes(model) if fmt == "torchscript" else onnx_bytes(model, n_features)


def signature(examples: Examples, task: str) -> dict[str, Any]:
    """Inputs and outputs, and how to form the input row: categorical features carry the index of their
    value in `categories[name]`, which the model one-hot encodes."""
    n_outputs = len(examples.classes) if examples.classes else 1
    doc: dict[str, Any] = {
        "inputs": [{"name": INPUT_NAME, "dtype": "FP32", "shape": [-1, len(examples.feature_names)]}],
        "outputs": [{"name": OUTPUT_NAME, "dtype": "FP32", "shape": [-1, n_outputs]}],
        "featureNames": list(examples.feature_names),
        "task": task,
    }
    if examples.classes:
        doc["classes"] = list(examples.classes)
    if examples.categories:
        doc["categories"] = {name: list(values) for name, values in examples.categories.items()}
        doc["categoryEncoding"] = "one-hot"
    return doc


def examples_profile(examples: Examples, seed: int) -> dict[str, Any]:
    return profile.reference_profile(
        examples.features, examples.feature_names, labels=examples.targets, classes=examples.classes, seed=seed
    )


def write_outputs(storage, output_uri: str, trained: Trained, examples: Examples, config: Trainer) -> list[dict]:
    """Upload signature.json, reference_profile.json and the model in each export format; the artifact
    fields for the message, one per format in the order of config.export_formats."""
    bucket, prefix = s3.parse_s3_uri(output_uri)

    def put(name: str, data: bytes, content_type: str) -> tuple[str, str, int]:
        key = s3.join_key(prefix, name)
        digest, size = s3.upload_bytes(storage, bucket, key, data, content_type)
        return s3.s3_uri(bucket, key), digest, size

    signature_uri, _, _ = put("signature.json", _json_bytes(signature(examples, config.task)), "application/json")
    profile_uri, _, _ = put(
        "reference_profile.json",
        _json_bytes(examples_profile(examples, config.hyperparameters.seed)),
        "application/json",
    )
    artifacts = []
    for fmt in config.export_formats:
        data = export(trained.model, fmt, len(examples.feature_names))
        uri, digest, size = put(ARTIFACT_FILES[fmt], data, "application/octet-stream")
        artifacts.append({"uri": uri, "digest": f"sha256:{digest}", "size": size, "format": fmt,
                          "signature_uri": signature_uri, "profile_uri": profile_uri})
    return artifacts


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# --- entry point ---------------------------------------------------------------------------------


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        _invalid(f"{name} is not set")
    return value


def select_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            _invalid("MLCYCLE_DEVICE=cuda but no CUDA device is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    _invalid(f"MLCYCLE_DEVICE must be auto, cpu or cuda, not {requested!r}")


def run(env: Mapping[str, str], reporter: training.Reporter) -> None:
    """One training process: rank 0 of 1, or a torchrun worker (RANK, LOCAL_RANK, WORLD_SIZE set)."""
    try:
        spec = json.loads(_required(env, "MLCYCLE_TRAINER"))
    except json.JSONDecodeError as e:
        _invalid(f"MLCYCLE_TRAINER is not valid JSON: {e}")
    config = trainer_config(spec)
    dataset_uri = _required(env, "MLCYCLE_DATASET_URI")
    output_uri = _required(env, "MLCYCLE_OUTPUT_URI")
    try:
        output_bucket, _ = s3.parse_s3_uri(output_uri)
        storage = s3.client(s3.S3Config.from_env(env))
    except ValueError as e:
        _invalid(str(e))
    reporter.storage = storage
    rank, world_size = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    device = select_device(env.get("MLCYCLE_DEVICE") or "auto", int(env.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL starts, so each rank talks from its own GPU
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=_DIST_TIMEOUT)
    started = time.monotonic()
    try:
        asked = training.evaluation_config(env)
        examples = load(
            dataset_uri,
            config,
            storage=storage,
            format=env.get("MLCYCLE_DATASET_FORMAT") or "csv",
            digest=env.get("MLCYCLE_DATASET_DIGEST") or None,
            extra=[s.feature for s in asked.slices or []],  # sliced columns the model need not use
        )
        check_slices(asked, examples)
        if rank == 0:
            with s3.storage_errors(output_uri):
                if not storage.bucket_exists(output_bucket):
                    _invalid(f"MLCYCLE_OUTPUT_URI {output_uri}: bucket {output_bucket!r} does not exist")
            classes = f", classes {examples.classes}" if examples.classes else ""
            categorical = f", categorical {sorted(examples.categories)}" if examples.categories else ""
            print(
                f"training {config.task} on {len(examples.features)} rows from {dataset_uri} (read in "
                f"{time.monotonic() - started:.1f} s): features {examples.feature_names}{categorical}{classes}; "
                f"device {device}, {world_size} process(es)",
                flush=True,
            )
        started = time.monotonic()
        trained = train(
            config,
            examples,
            device=device,
            rank=rank,
            world_size=world_size,
            on_epoch=lambda epoch, metrics: reporter.report_metrics(epoch, **metrics),
        )
        if rank == 0:
            print(f"trained in {time.monotonic() - started:.1f} s", flush=True)
            if asked.slices:
                reporter.report_evaluation(slice_evaluation(trained.model, examples, config, asked))
        started = time.monotonic()
        artifacts = [write_outputs(storage, output_uri, trained, examples, config) if rank == 0 else None]
        if world_size > 1:  # every pod's termination message names the artifacts
            dist.broadcast_object_list(artifacts, src=0)
        first = artifacts[0][0]
        reporter.report_artifact(
            first["uri"],
            first["digest"],
            first["size"],
            first["format"],
            signature_uri=first["signature_uri"],
            profile_uri=first["profile_uri"],
            dataset_digest=examples.digest,
            artifacts=[{k: a[k] for k in ("uri", "digest", "size", "format")} for a in artifacts[0]]
            if len(artifacts[0]) > 1
            else None,
        )
        if rank == 0:
            for a in artifacts[0]:
                print(f"wrote {a['uri']} ({a['size']} bytes, {a['digest']})", flush=True)
            print(f"profiled, exported and uploaded in {time.monotonic() - started:.1f} s", flush=True)
        if world_size > 1:
            # Every rank is done talking before any tears its process group down: a rank that exits first can
            # otherwise abort another's gloo thread mid-teardown (SIGABRT after the artifact was written).
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _world(env: Mapping[str, str]) -> tuple[int, int]:
    try:
        return int(env.get("PET_NNODES") or 1), int(env.get("PET_NPROC_PER_NODE") or 1)
    except ValueError:
        _invalid(
            f"PET_NNODES={env.get('PET_NNODES')!r} and PET_NPROC_PER_NODE={env.get('PET_NPROC_PER_NODE')!r} "
            "must be integers"
        )


def launcher_command(env: Mapping[str, str]) -> list[str]:
    """torchrun over this module, with a static rendezvous at PET_MASTER_ADDR:PET_MASTER_PORT."""
    nnodes, nproc = _world(env)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nnodes}",
        f"--nproc-per-node={nproc}",
        f"--node-rank={env.get('PET_NODE_RANK') or 0}",
        f"--master-addr={env.get('PET_MASTER_ADDR') or '127.0.0.1'}",
        f"--master-port={env.get('PET_MASTER_PORT') or 29500}",
        "--max-restarts=0",
        "--module",
        "mlcycle.workloads.trainer",
    ]


def launch(env: Mapping[str, str], reporter: training.Reporter) -> int:
    """Run torchrun and return its exit status. Workers write the termination message themselves; if they
    died without one (killed, crashed), say so here."""
    proc = subprocess.Popen(launcher_command(env))
    signal.signal(signal.SIGTERM, lambda signum, _: proc.send_signal(signum))
    code = proc.wait()
    if code != 0 and not _has_content(reporter.termination_log):
        reporter.write_termination_message(
            training.failure_message(
                training.TRAINER_ERROR, f"training workers exited with status {code}; see the pod log"
            )
        )
    return code


def _has_content(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    if argv:
        print("usage: mlcycle train  (configured by environment variables; see mlcycle.workloads.trainer)")
        return 0 if argv[0] in ("-h", "--help") else 2
    env = os.environ
    reporter = training.Reporter.from_env(env)
    try:
        nnodes, nproc = _world(env)
        if nnodes * nproc > 1 and "LOCAL_RANK" not in env:
            return launch(env, reporter)
        run(env, reporter)
    except TrainingFailed as e:
        reporter.fail(e.reason, e.message)
    except s3.StorageAuthFailed as e:
        reporter.fail(training.STORAGE_AUTH_FAILED, str(e))
    except Exception as e:
        where = ""
        if int(env.get("WORLD_SIZE") or 1) > 1:  # a peer's failure surfaces here as a collective error
            where = f"rank {env.get('RANK')} of {env.get('WORLD_SIZE')} (if another rank failed first, see its log): "
        reporter.fail(training.TRAINER_ERROR, f"{where}{type(e).__name__}: {e}")
    reporter.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
