"""`mlcycle train` as a training pod runs it: a subprocess configured by env, against a real MinIO."""

import hashlib
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dataset_formats import as_format
from mlcycle.clients import s3
from mlcycle.localdev.net import free_port
from mlcycle.modelversion import onnx

pytestmark = pytest.mark.e2e

EPOCHS = 3
TRAINER = {
    "task": "classification",
    "labelColumn": "label",
    "model": {"hiddenLayers": [16]},
    "hyperparameters": {"epochs": EPOCHS, "batchSize": 32, "learningRate": 0.01},
}


def blobs_csv(rows: int = 400, seed: int = 0) -> bytes:
    """Two Gaussian blobs ("cat" around (40, -1), "dog" around (60, 1)) with features on different scales."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,label"]
    for i in range(rows):
        label, sign = ("cat", -1) if i % 2 == 0 else ("dog", 1)
        lines.append(f"{rng.normal(50 + 10 * sign, 6):.4f},{rng.normal(sign, 0.6):.4f},{label}")
    return ("\n".join(lines) + "\n").encode()


def train_env(minio, log_path, dataset_uri: str, output_uri: str, trainer=None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MLCYCLE_TRAINER": json.dumps(trainer or TRAINER),
        "MLCYCLE_DATASET_URI": dataset_uri,
        "MLCYCLE_DATASET_FORMAT": "csv",
        "MLCYCLE_OUTPUT_URI": output_uri,
        "MLCYCLE_S3_ENDPOINT": minio.endpoint,
        "AWS_ACCESS_KEY_ID": minio.access_key,
        "AWS_SECRET_ACCESS_KEY": minio.secret_key,
        "MLCYCLE_TERMINATION_LOG": str(log_path),
        "MLCYCLE_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",  # the machine is shared; torch would take every core
    }
    env.pop("LOCAL_RANK", None)
    return {**env, **extra}


TRAIN_COMMAND = [sys.executable, "-m", "mlcycle.cli", "train"]


def run_train(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(TRAIN_COMMAND, env=env, capture_output=True, text=True, timeout=300)


def put(minio, bucket: str, key: str, data: bytes) -> str:
    s3.upload_bytes(minio.client(), bucket, key, data)
    return f"s3://{bucket}/{key}"


def read(minio, uri: str) -> bytes:
    return s3.read_bytes(minio.client(), *s3.parse_s3_uri(uri))


def assert_trained(minio, message: dict, output_uri: str) -> None:
    """The termination message names a TorchScript artifact in MinIO that matches it and is accurate."""
    artifact = message["artifact"]
    assert artifact["uri"] == f"{output_uri}/model.pt" and artifact["format"] == "torchscript"
    digest, size = s3.object_digest(minio.client(), *s3.parse_s3_uri(artifact["uri"]))
    assert artifact["digest"] == f"sha256:{digest}" and artifact["size"] == size
    assert message["metrics"]["epoch"] == EPOCHS and message["metrics"]["val_accuracy"] > 0.9

    signature = json.loads(read(minio, message["signatureUri"]))
    assert signature["featureNames"] == ["x1", "x2"] and signature["classes"] == ["cat", "dog"]
    profile = json.loads(read(minio, message["profileUri"]))
    assert set(profile["features"]) == {"x1", "x2"} and profile["label"]["counts"] == [200, 200]
    epochs = [json.loads(line) for line in read(minio, f"{output_uri}/metrics.jsonl").decode().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))

    model = torch.jit.load(io.BytesIO(read(minio, artifact["uri"])))
    data = np.loadtxt(io.BytesIO(blobs_csv()), delimiter=",", skiprows=1, usecols=(0, 1), dtype=np.float32)
    predicted = model(torch.from_numpy(data)).argmax(dim=1).numpy()
    expected = np.arange(len(data)) % 2  # rows alternate cat (0), dog (1)
    assert (predicted == expected).mean() > 0.9


def test_train_writes_an_artifact_whose_digest_matches_the_termination_message(minio, bucket, tmp_path):
    data = blobs_csv()
    dataset = put(minio, bucket, "data/blobs.csv", data)
    output = f"s3://{bucket}/runs/single"
    log = tmp_path / "termination-log"
    env = train_env(minio, log, dataset, output, MLCYCLE_DATASET_DIGEST=f"sha256:{hashlib.sha256(data).hexdigest()}")

    started = time.monotonic()
    result = run_train(env)
    print(f"400-row training, {EPOCHS} epochs, one process: {time.monotonic() - started:.1f}s")

    assert result.returncode == 0, result.stderr
    assert "epoch=1 " in result.stdout and f"epoch={EPOCHS} " in result.stdout
    assert len(log.read_bytes()) < 4096
    assert_trained(minio, json.loads(log.read_text()), output)


def test_two_processes_on_one_node_train_with_ddp_from_a_prefix(minio, bucket, tmp_path):
    lines = blobs_csv().decode().splitlines(keepends=True)
    put(minio, bucket, "parts/a.csv", "".join(lines[:201]).encode())
    put(minio, bucket, "parts/b.csv", "".join(lines[:1] + lines[201:]).encode())
    output = f"s3://{bucket}/runs/ddp"
    log = tmp_path / "termination-log"
    env = train_env(
        minio,
        log,
        f"s3://{bucket}/parts/",
        output,
        PET_NNODES="1",
        PET_NPROC_PER_NODE="2",
        PET_NODE_RANK="0",
        PET_MASTER_ADDR="127.0.0.1",
        PET_MASTER_PORT=str(free_port()),
    )
    result = run_train(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_trained(minio, json.loads(log.read_text()), output)


def test_two_nodes_of_one_process_train_together(minio, bucket, tmp_path):
    dataset = put(minio, bucket, "data/blobs.csv", blobs_csv())
    output = f"s3://{bucket}/runs/nodes"
    port = str(free_port())
    logs = [tmp_path / f"termination-log-{rank}" for rank in (0, 1)]
    nodes = [
        subprocess.Popen(
            TRAIN_COMMAND,
            env=train_env(
                minio,
                logs[rank],
                dataset,
                output,
                PET_NNODES="2",
                PET_NPROC_PER_NODE="1",
                PET_NODE_RANK=str(rank),
                PET_MASTER_ADDR="127.0.0.1",
                PET_MASTER_PORT=port,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    messages = [json.loads(log.read_text()) for log in logs]
    assert messages[0] == messages[1]  # every pod reports the artifact
    assert_trained(minio, messages[0], output)


@pytest.mark.parametrize("case", ["DatasetNotFound", "StorageAuthFailed", "LabelColumnMissing", "DigestMismatch"])
def test_failures_exit_non_zero_with_the_reason(minio, bucket, tmp_path, case):
    dataset = put(minio, bucket, "data/blobs.csv", blobs_csv())
    log = tmp_path / "termination-log"
    env = train_env(minio, log, dataset, f"s3://{bucket}/runs/{case}")
    if case == "DatasetNotFound":
        env["MLCYCLE_DATASET_URI"] = f"s3://{bucket}/data/missing.csv"
    elif case == "StorageAuthFailed":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-key"
    elif case == "LabelColumnMissing":
        env["MLCYCLE_TRAINER"] = json.dumps({**TRAINER, "labelColumn": "species"})
    else:
        env["MLCYCLE_DATASET_DIGEST"] = "sha256:" + "0" * 64

    result = run_train(env)

    assert result.returncode != 0
    error = json.loads(log.read_text())["error"]
    assert error["reason"] == case, error
    assert {
        "DatasetNotFound": "missing.csv",
        "StorageAuthFailed": "SignatureDoesNotMatch",
        "LabelColumnMissing": "'species'",
        "DigestMismatch": "expected sha256:000",
    }[case] in error["message"]
    for secret in (minio.secret_key, env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in result.stdout + result.stderr + log.read_text()


def test_s3_helpers_stream_and_classify_errors_against_minio(minio, bucket, tmp_path):
    client = minio.client()
    path = tmp_path / "artifact.bin"
    path.write_bytes(np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17))
    uploaded = s3.upload_file(client, bucket, "big/artifact.bin", path)
    assert uploaded == (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    assert s3.object_digest(client, bucket, "big/artifact.bin", chunk=1024 * 1024) == uploaded
    assert s3.upload_bytes(client, bucket, "big/b.txt", b"hello") == (hashlib.sha256(b"hello").hexdigest(), 5)
    assert s3.list_keys(client, bucket, "big/") == ["big/artifact.bin", "big/b.txt"]

    with pytest.raises(s3.ObjectNotFound, match="NoSuchKey"):
        s3.object_digest(client, bucket, "big/missing.bin")
    with pytest.raises(s3.ObjectNotFound, match="NoSuchBucket"):
        s3.read_bytes(client, "no-such-bucket-here", "x")
    wrong = s3.client(s3.S3Config.create(minio.endpoint, minio.access_key, "wrong-secret-key"))
    with pytest.raises(s3.StorageAuthFailed, match="SignatureDoesNotMatch"):
        s3.object_digest(wrong, bucket, "big/artifact.bin")



@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_columnar_datasets_train_from_a_prefix_and_export_every_format(minio, bucket, tmp_path, fmt):
    lines = blobs_csv().decode().splitlines(keepends=True)
    put(minio, bucket, f"{fmt}/a.{fmt}", as_format("".join(lines[:201]).encode(), fmt))
    put(minio, bucket, f"{fmt}/b.{fmt}", as_format("".join(lines[:1] + lines[201:]).encode(), fmt))
    output = f"s3://{bucket}/runs/{fmt}"
    log = tmp_path / "termination-log"
    trainer = {**TRAINER, "exportFormats": ["torchscript", "onnx"]}
    result = run_train(train_env(minio, log, f"s3://{bucket}/{fmt}/", output, trainer, MLCYCLE_DATASET_FORMAT=fmt))
    assert result.returncode == 0, result.stdout + result.stderr
    message = json.loads(log.read_text())
    assert_trained(minio, message, output)
    assert [a["format"] for a in message["artifacts"]] == ["torchscript", "onnx"]
    assert message["artifacts"][0] == message["artifact"]
    onnx_artifact = message["artifacts"][1]
    assert onnx_artifact["uri"] == f"{output}/model.onnx"
    blob = read(minio, onnx_artifact["uri"])
    assert onnx_artifact["digest"] == f"sha256:{hashlib.sha256(blob).hexdigest()}"
    graph = onnx.read_graph(io.BytesIO(blob), len(blob))
    assert [i["name"] for i in graph["inputs"]] == ["INPUT__0"] and graph["inputs"][0]["shape"] == [None, 2]
