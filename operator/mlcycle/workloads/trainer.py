"""`mlcycle train`: the built-in PyTorch trainer that runs inside a TrainingJob's pods.

It reads its job from the environment (MLCYCLE_TRAINER, MLCYCLE_DATASET_*, MLCYCLE_OUTPUT_URI, the S3
settings), trains an MLP on a CSV dataset, and writes model.pt (TorchScript), signature.json,
reference_profile.json and metrics.jsonl under the output URI. The pod's termination message tells the
operator the outcome (see mlcycle.training).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from mlcycle import training
from mlcycle.clients import s3
from mlcycle.training import TrainingFailed
from mlcycle.workloads import profile
from mlcycle.workloads.dataset import Table, load_table
from mlcycle.workloads.model import ServingModel, build_mlp, torchscript_bytes

TASKS = ("classification", "regression")
_EVAL_BATCH = 4096
_DIST_TIMEOUT = timedelta(minutes=30)


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainerConfig:
    """spec.trainer of a TrainingJob; missing (or null) keys take these defaults."""

    task: str
    label_column: str
    features: tuple[str, ...] | None = None
    hidden_layers: tuple[int, ...] = (64, 64)
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.001
    seed: int = 42
    validation_split: float = 0.2

    @classmethod
    def from_spec(cls, spec: Any) -> TrainerConfig:
        """Validated config from the spec's JSON form; every problem raises InvalidConfig."""
        top = _section(spec, "spec.trainer", {"task", "labelColumn", "features", "model", "hyperparameters"})
        model = _section(top.get("model") or {}, "model", {"hiddenLayers", "dropout"})
        hyper = _section(
            top.get("hyperparameters") or {},
            "hyperparameters",
            {"epochs", "batchSize", "learningRate", "seed", "validationSplit"},
        )
        task = top.get("task")
        if task not in TASKS:
            _invalid(f"task must be one of {', '.join(TASKS)}, not {task!r}")
        label = top.get("labelColumn")
        if not isinstance(label, str) or not label:
            _invalid("labelColumn must be a non-empty string")
        features = top.get("features")
        if features is not None:
            if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
                _invalid("features must be a non-empty list of column names")
            if label in features:
                _invalid(f"features must not include the label column {label!r}")
            features = tuple(features)
        defaults = cls(task, label)
        hidden = model.get("hiddenLayers", defaults.hidden_layers)
        hidden = defaults.hidden_layers if hidden is None else hidden
        if not isinstance(hidden, list | tuple) or not all(_is_int(h) and h > 0 for h in hidden):
            _invalid(f"model.hiddenLayers must be a list of positive integers, not {hidden!r}")
        config = cls(
            task=task,
            label_column=label,
            features=features,
            hidden_layers=tuple(hidden),
            dropout=_number(model, "dropout", defaults.dropout, "model"),
            epochs=_number(hyper, "epochs", defaults.epochs, "hyperparameters", integer=True),
            batch_size=_number(hyper, "batchSize", defaults.batch_size, "hyperparameters", integer=True),
            learning_rate=_number(hyper, "learningRate", defaults.learning_rate, "hyperparameters"),
            seed=_number(hyper, "seed", defaults.seed, "hyperparameters", integer=True),
            validation_split=_number(hyper, "validationSplit", defaults.validation_split, "hyperparameters"),
        )
        if not 0 <= config.dropout < 1:
            _invalid(f"model.dropout must be in [0, 1), not {config.dropout}")
        if config.epochs < 1 or config.batch_size < 1:
            _invalid("hyperparameters.epochs and hyperparameters.batchSize must be at least 1")
        if config.learning_rate <= 0:
            _invalid(f"hyperparameters.learningRate must be positive, not {config.learning_rate}")
        if not 0 < config.validation_split < 1:
            _invalid(f"hyperparameters.validationSplit must be in (0, 1), not {config.validation_split}")
        return config


def _invalid(message: str):
    raise TrainingFailed(training.INVALID_CONFIG, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _section(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _invalid(f"{where} must be an object, not {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        _invalid(f"{where} has unknown keys {unknown} (known: {sorted(allowed)})")
    return value


def _number(section: dict[str, Any], key: str, default: Any, where: str, integer: bool = False) -> Any:
    value = section.get(key)
    if value is None:
        return default
    if integer and not _is_int(value):
        _invalid(f"{where}.{key} must be an integer, not {value!r}")
    if not integer and (isinstance(value, bool) or not isinstance(value, int | float)):
        _invalid(f"{where}.{key} must be a number, not {value!r}")
    return value if integer else float(value)


# --- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Examples:
    """The dataset as model inputs: raw features [rows, n] and targets (class index or value)."""

    features: np.ndarray  # float32
    targets: np.ndarray  # int64 class indices (classification) or float32 values (regression)
    feature_names: list[str]
    classes: list[str] | None  # class labels in output order (classification)


def _class_order(labels: set[str]) -> list[str]:
    """Numeric labels sort as numbers ("2" before "10"), others as text."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _column_values(table: Table, column: str, index: int) -> np.ndarray:
    try:
        return np.array([row[index] for row in table.rows], dtype=np.float32)
    except ValueError:
        for line, row in enumerate(table.rows, start=2):
            try:
                float(row[index])
            except ValueError:
                raise TrainingFailed(
                    training.DATASET_UNREADABLE,
                    f"column {column!r}, data row {line - 1}: {row[index]!r} is not a number",
                ) from None
        raise


def examples_from_table(table: Table, config: TrainerConfig) -> Examples:
    columns = table.columns
    if config.label_column not in columns:
        raise TrainingFailed(
            training.LABEL_COLUMN_MISSING,
            f"label column {config.label_column!r} is not in the dataset (columns: {columns})",
        )
    names = list(config.features) if config.features else [c for c in columns if c != config.label_column]
    missing = [n for n in names if n not in columns]
    if missing:
        _invalid(f"feature columns {missing} are not in the dataset (columns: {columns})")
    if not names:
        raise TrainingFailed(training.DATASET_UNREADABLE, "the dataset has no feature columns besides the label")
    if len(table.rows) < 2:
        raise TrainingFailed(training.DATASET_UNREADABLE, f"the dataset has {len(table.rows)} rows; need at least 2")
    features = np.stack([_column_values(table, n, columns.index(n)) for n in names], axis=1)
    if not np.isfinite(features).all():
        raise TrainingFailed(training.DATASET_UNREADABLE, "the feature columns contain NaN or infinite values")
    label_index = columns.index(config.label_column)
    if config.task == "regression":
        return Examples(features, _column_values(table, config.label_column, label_index), names, None)
    labels = [row[label_index].strip() for row in table.rows]
    if "" in labels:
        line = labels.index("") + 1
        raise TrainingFailed(
            training.DATASET_UNREADABLE, f"label column {config.label_column!r}, data row {line}: empty label"
        )
    classes = _class_order(set(labels))
    if len(classes) < 2:
        raise TrainingFailed(
            training.DATASET_UNREADABLE,
            f"label column {config.label_column!r} has only the class(es) {classes}; classification needs 2+",
        )
    index = {c: i for i, c in enumerate(classes)}
    return Examples(features, np.array([index[label] for label in labels], dtype=np.int64), names, classes)


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


def _sum_across_ranks(values: list[float], device: torch.device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, classification: bool, target_std: float) -> list[float]:
    """Sums over (x, y): [loss, rows, correct] or [loss, rows, squared error, absolute error] (in the
    target's units), so that shards can be added up across ranks."""
    net.eval()
    sums = [0.0, 0.0, 0.0] if classification else [0.0, 0.0, 0.0, 0.0]
    with torch.no_grad():
        for start in range(0, len(x), _EVAL_BATCH):
            xb, yb = x[start : start + _EVAL_BATCH], y[start : start + _EVAL_BATCH]
            out = net(xb)
            sums[1] += len(xb)
            if classification:
                sums[0] += nn.functional.cross_entropy(out, yb, reduction="sum").item()
                sums[2] += (out.argmax(dim=1) == yb).sum().item()
            else:
                sums[0] += nn.functional.mse_loss(out, yb, reduction="sum").item()
                err = (out - yb) * target_std
                sums[2] += (err**2).sum().item()
                sums[3] += err.abs().sum().item()
    return sums


def train(
    config: TrainerConfig,
    examples: Examples,
    *,
    device: torch.device | None = None,
    rank: int = 0,
    world_size: int = 1,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Trained:
    """Train on `examples` (every rank passes the same examples and trains on its shard). Same seed and
    data give the same model and metrics. `on_epoch(epoch, metrics)` sees the metrics summed over ranks."""
    device = device or torch.device("cpu")
    classification = config.task == "classification"
    torch.manual_seed(config.seed)
    train_idx, val_idx = split_indices(len(examples.features), config.validation_split, config.seed)

    x = torch.from_numpy(examples.features)
    mean = x[train_idx].mean(dim=0)
    std = x[train_idx].std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    x = (x - mean) / std
    if classification:
        y = torch.from_numpy(examples.targets)
        n_outputs, target_mean, target_std = len(examples.classes or ()), 0.0, 1.0
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        raw = torch.from_numpy(examples.targets).float().unsqueeze(1)
        target_mean = float(raw[train_idx].mean())
        target_std = float(raw[train_idx].std(unbiased=False)) or 1.0
        y = (raw - target_mean) / target_std
        n_outputs = 1
        loss_fn = nn.MSELoss()

    net = build_mlp(x.shape[1], n_outputs, config.hidden_layers, config.dropout).to(device)
    distributed = dist.is_available() and dist.is_initialized()
    model = (
        DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if distributed
        else net
    )
    train_set = TensorDataset(x[train_idx], y[train_idx])
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler)
    # Each rank evaluates every world_size-th validation row; the sums are added across ranks.
    x_val, y_val = x[val_idx][rank::world_size].to(device), y[val_idx][rank::world_size].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        sampler.set_epoch(epoch)
        model.train()
        loss_sum, rows = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(xb)
            rows += len(xb)
        sums = _sum_across_ranks([loss_sum, rows, *_evaluate(net, x_val, y_val, classification, target_std)], device)
        metrics = {"train_loss": sums[0] / sums[1], "val_loss": sums[2] / sums[3]}
        if classification:
            metrics["val_accuracy"] = sums[4] / sums[3]
        else:
            metrics["val_rmse"] = (sums[4] / sums[3]) ** 0.5
            metrics["val_mae"] = sums[5] / sums[3]
        history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)

    serving = ServingModel(net.cpu(), mean, std, classification, target_mean, target_std)
    return Trained(serving.eval(), history)


# --- outputs -------------------------------------------------------------------------------------


def signature(examples: Examples, task: str) -> dict[str, Any]:
    n_outputs = len(examples.classes) if examples.classes else 1
    doc: dict[str, Any] = {
        "inputs": [{"name": "INPUT__0", "dtype": "FP32", "shape": [-1, len(examples.feature_names)]}],
        "outputs": [{"name": "OUTPUT__0", "dtype": "FP32", "shape": [-1, n_outputs]}],
        "featureNames": list(examples.feature_names),
        "task": task,
    }
    if examples.classes:
        doc["classes"] = list(examples.classes)
    return doc


def examples_profile(examples: Examples, seed: int) -> dict[str, Any]:
    labels = np.asarray(examples.classes)[examples.targets] if examples.classes else examples.targets
    return profile.reference_profile(
        examples.features, examples.feature_names, labels=labels, classes=examples.classes, seed=seed
    )


def write_outputs(storage, output_uri: str, trained: Trained, examples: Examples, config: TrainerConfig) -> dict:
    """Upload model.pt, signature.json and reference_profile.json; the artifact fields for the message."""
    bucket, prefix = s3.parse_s3_uri(output_uri)

    def put(name: str, data: bytes, content_type: str) -> tuple[str, str, int]:
        key = s3.join_key(prefix, name)
        digest, size = s3.upload_bytes(storage, bucket, key, data, content_type)
        return s3.s3_uri(bucket, key), digest, size

    signature_uri, _, _ = put("signature.json", _json_bytes(signature(examples, config.task)), "application/json")
    profile_uri, _, _ = put(
        "reference_profile.json", _json_bytes(examples_profile(examples, config.seed)), "application/json"
    )
    model_uri, digest, size = put("model.pt", torchscript_bytes(trained.model), "application/octet-stream")
    return {
        "uri": model_uri,
        "digest": f"sha256:{digest}",
        "size": size,
        "format": "torchscript",
        "signature_uri": signature_uri,
        "profile_uri": profile_uri,
    }


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
    config = TrainerConfig.from_spec(spec)
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
    try:
        table = load_table(
            dataset_uri,
            storage=storage,
            format=env.get("MLCYCLE_DATASET_FORMAT") or "csv",
            digest=env.get("MLCYCLE_DATASET_DIGEST") or None,
        )
        examples = examples_from_table(table, config)
        if rank == 0:
            with s3.storage_errors(output_uri):
                if not storage.bucket_exists(output_bucket):
                    _invalid(f"MLCYCLE_OUTPUT_URI {output_uri}: bucket {output_bucket!r} does not exist")
            classes = f", classes {examples.classes}" if examples.classes else ""
            print(
                f"training {config.task} on {len(table.rows)} rows from {dataset_uri}: "
                f"features {examples.feature_names}{classes}; device {device}, {world_size} process(es)",
                flush=True,
            )
        trained = train(
            config,
            examples,
            device=device,
            rank=rank,
            world_size=world_size,
            on_epoch=lambda epoch, metrics: reporter.report_metrics(epoch, **metrics),
        )
        artifact = [write_outputs(storage, output_uri, trained, examples, config) if rank == 0 else None]
        if world_size > 1:  # every pod's termination message names the artifact
            dist.broadcast_object_list(artifact, src=0)
        fields = artifact[0]
        reporter.report_artifact(
            fields["uri"],
            fields["digest"],
            fields["size"],
            fields["format"],
            signature_uri=fields["signature_uri"],
            profile_uri=fields["profile_uri"],
            dataset_digest=table.digest,
        )
        if rank == 0:
            print(f"wrote {fields['uri']} ({fields['size']} bytes, {fields['digest']})", flush=True)
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
