"""`mlcycle runs` compares real training runs: three runs of the sample model with different learning rates
train for real (local runtime, MinIO), register three versions, and the command shows them side by side, from
the cluster and from each run's metrics.jsonl in MinIO; `kubectl get trainingjobs` shows each one's key
metric."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import matplotlib.image
import yaml

from mlcycle.localdev.dev import RUNTIME_LABEL, RUNTIME_TOLERATION
from mlcycle.localdev.sample import iris_like_csv, storage_secret, training_job
from waiting import wait_for

RATES = (0.0001, 0.01, 0.05)  # the first barely moves in 4 epochs: its version fails the gate
EPOCHS = 4
SWEEP = {"experiment": "lr-sweep"}


def get_json(cluster, *args):
    r = cluster.kubectl_run("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def mlcycle(cluster, *args):
    return subprocess.run([sys.executable, "-m", "mlcycle.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}, timeout=120)


def columns(header: str, line: str) -> dict[str, str]:
    """A table row by its header's column positions (a cell may hold spaces: "failed: val_accuracy >= 0.8")."""
    names = header.split()
    starts = [header.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names[:-1])] + [header.rindex(names[-1])]
    return {n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}


def finished_version(cluster, name, namespace):
    """The ModelVersion a job registered, once its gate has a verdict; the job's status if it failed."""
    tj = get_json(cluster, "trainingjob", name, "-n", namespace) or {}
    status = tj.get("status") or {}
    if status.get("phase") == "Failed":
        raise AssertionError(f"{name} failed: {status.get('message')}")
    ref = status.get("modelVersionRef")
    mv = ref and get_json(cluster, "modelversion", ref["name"], "-n", namespace)
    return mv if mv and (mv.get("status") or {}).get("phase") in ("Ready", "Rejected", "Failed") else None


def test_runs_compares_three_runs_of_the_sample_model_and_plots_their_curves(
        cluster, crds, operator, local_runtime, minio, namespace, tmp_path):
    data = iris_like_csv(rows_per_class=40)
    for bucket in ("datasets", "models"):
        minio.make_bucket(bucket)
    minio.client().put_object("datasets", "iris/iris.csv", io.BytesIO(data), len(data))
    docs = [storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key)]
    for i, rate in enumerate(RATES):
        tj = training_job(f"iris-lr{i}", namespace, "s3", epochs=EPOCHS, node_selector=RUNTIME_LABEL)
        tj["metadata"]["labels"] = SWEEP
        tj["spec"]["tolerations"] = [RUNTIME_TOLERATION]
        tj["spec"]["trainer"]["hyperparameters"]["learningRate"] = rate
        docs.append(tj)
    # A run of the same sweep that never trains (no such dataset): listed by the selector, with no version.
    broken = training_job("iris-nodata", namespace, "s3", epochs=1, node_selector=RUNTIME_LABEL)
    broken["metadata"]["labels"] = SWEEP
    broken["spec"] |= {"tolerations": [RUNTIME_TOLERATION], "runPolicy": {"backoffLimit": 0},
                       "registerModel": {"name": "iris-broken"}}
    broken["spec"]["dataset"]["uri"] = "s3://datasets/missing.csv"
    docs.append(broken)
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    versions = {mv["spec"]["source"]["trainingJob"]: mv for mv in (
        wait_for(lambda n=f"iris-lr{i}": finished_version(cluster, n, namespace), f"iris-lr{i}'s version", 900)
        for i in range(len(RATES)))}
    wait_for(lambda: ((get_json(cluster, "trainingjob", "iris-nodata", "-n", namespace) or {}).get("status") or {})
             .get("phase") == "Failed", "iris-nodata to fail", timeout=300)

    # The table: one row per run, the learning rate (the one parameter that differs) and the final metrics.
    done = mlcycle(cluster, "runs", "iris", "-n", namespace)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines[0].split()
    assert header[:6] == ["RUN", "PHASE", "VERSION", "GATE", "DURATION", "learningRate"], done.stdout
    assert {"val_accuracy", "val_loss", "train_loss", "DATASET"} <= set(header)
    rows = {(row := columns(lines[0], line))["RUN"]: row for line in lines[1:4]}
    assert set(rows) == {f"iris-lr{i}" for i in range(len(RATES))}
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    for i, rate in enumerate(RATES):
        row, mv = rows[f"iris-lr{i}"], versions[f"iris-lr{i}"]
        assert row["PHASE"] == "Succeeded" and float(row["learningRate"]) == rate
        assert row["VERSION"] == f"iris:{mv['spec']['version']}"
        assert row["GATE"] == ("passed" if mv["status"]["phase"] == "Ready" else "failed: val_accuracy >= 0.8")
        assert float(row["val_accuracy"]) == float(f"{mv['spec']['metrics']['val_accuracy']:.4g}")
        assert row["DATASET"] == f"s3://datasets/iris/iris.csv@{digest[:19]}"
    assert rows["iris-lr0"]["GATE"] == "failed: val_accuracy >= 0.8" and rows["iris-lr2"]["GATE"] == "passed"
    assert f"hyperparameters.epochs={EPOCHS}" in lines[-1]  # shared by all, said once

    # JSON: everything, the whole digest and how long each run took.
    done = mlcycle(cluster, "runs", "iris", "-n", namespace, "-o", "json")
    records = json.loads(done.stdout)
    assert len(records) == len(RATES)
    assert all(r["dataset"] == {"uri": "s3://datasets/iris/iris.csv", "digest": digest} for r in records)
    assert all(r["durationSeconds"] > 0 and r["params"]["hyperparameters.epochs"] == EPOCHS for r in records)

    # The learning curves, read from MinIO through the runs' storage Secret, as an image.
    plot = tmp_path / "curves.png"
    done = mlcycle(cluster, "runs", "iris", "-n", namespace, "--plot", str(plot))
    assert done.returncode == 0, done.stderr
    assert "plotted val_accuracy, val_loss, train_loss of 3 run(s)" in done.stderr
    height, width, channels = matplotlib.image.imread(plot).shape
    assert width > 2 * height > 400 and channels in (3, 4)
    # ... drawn from what the trainer wrote per epoch.
    first = records[0]
    bucket, key = first["metricsUri"].removeprefix("s3://").split("/", 1)
    epochs = [json.loads(line) for line in minio.client().get_object(bucket, key).read().splitlines()]
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert epochs[-1]["val_accuracy"] == first["metrics"]["val_accuracy"]

    # A label selector lists the sweep's runs, also the one that registered nothing.
    done = mlcycle(cluster, "runs", "--selector", "experiment=lr-sweep", "-n", namespace, "-o", "json")
    by_run = {r["run"]: r for r in json.loads(done.stdout)}
    assert set(by_run) == {*rows, "iris-nodata"}
    assert by_run["iris-nodata"]["phase"] == "Failed" and by_run["iris-nodata"]["modelVersion"] is None

    # kubectl's TrainingJob columns show the key metric: the registration gate's val_accuracy.
    table = cluster.kubectl_run("get", "trainingjobs", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:6] == ["NAME", "PHASE", "WORKERS", "ACTIVE", "MODEL", "METRIC"], table[0]
    for line in table[1:]:
        name, *_ = line.split()
        if name in rows:
            value = versions[name]["spec"]["metrics"]["val_accuracy"]
            assert f"val_accuracy={value:.4g}" in line.split()
