from datetime import UTC, datetime

from mlcycle.runs.compare import flatten, runs, table, varying_params

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def tj(name, uid, lr=0.01, model="iris", phase="Succeeded", metrics=None, created="2026-01-01T00:00:00Z"):
    return {"metadata": {"name": name, "uid": uid, "creationTimestamp": created},
            "spec": {"trainer": {"task": "classification", "labelColumn": "species",
                                 "hyperparameters": {"epochs": 3, "learningRate": lr}, "model": {"hiddenLayers": [8]}},
                     "dataset": {"uri": "s3://datasets/iris.csv", "format": "csv"},
                     "output": {"uri": "s3://models/iris/"}, "storage": {"secretRef": {"name": "s3"}},
                     "registerModel": {"name": model}},
            "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:01:05Z",
                       "metrics": metrics or {}, "datasetDigest": DIGEST}}


def mv(model, version, uid, results=None, gated=True, run="a", artifact=None, registered_by=None):
    return {"metadata": {"name": f"{model}-v{version}", "creationTimestamp": "2026-01-01T00:02:00Z",
                         "labels": {"mlcycle.io/trainingjob-uid": uid} if uid else {}},
            "spec": {"modelName": model, "version": version,
                     "artifact": {"uri": artifact or f"s3://models/iris/{uid[:8]}/model.pt", "format": "torchscript"},
                     "source": {"trainingJob": run, "dataset": {"uri": "s3://datasets/iris.csv", "digest": DIGEST},
                                "params": {"hyperparameters": {"epochs": 3, "learningRate": 0.5}}},
                     "metrics": {"val_accuracy": 0.5}, "storage": {"secretRef": {"name": "s3"}}}
            | ({"validation": {"thresholds": [{"metric": "val_accuracy", "op": ">=", "value": 0.8}]}} if gated else {}),
            "status": {"phase": "Ready", "validation": results or []}
            | ({"registeredBy": registered_by} if registered_by else {})}


PASSED = [{"rule": "val_accuracy >= 0.8", "passed": True}]
FAILED = [{"rule": "val_accuracy >= 0.8", "passed": False}]


def test_a_model_s_runs_join_each_job_to_the_version_it_registered_by_uid():
    jobs = [tj("a", "uid-aaaa1", metrics={"val_accuracy": 0.93, "train_loss": 0.2}),
            tj("b", "uid-bbbb2", lr=0.1, metrics={"val_accuracy": 0.7}, created="2026-01-01T00:00:01Z"),
            tj("c", "uid-cccc3", phase="Failed", created="2026-01-01T00:00:02Z"),
            tj("other", "uid-dddd4", model="wine")]
    versions = [mv("iris", 2, "uid-bbbb2", FAILED, run="b"), mv("iris", 1, "uid-aaaa1", PASSED),
                mv("wine", 1, "uid-dddd4", run="other")]
    records = runs(jobs, versions, NOW, model="iris")
    assert [(r["run"], r["modelVersion"], r["gate"]) for r in records] == [
        ("a", "iris-v1", "passed"), ("b", "iris-v2", "failed: val_accuracy >= 0.8"), ("c", None, None)]
    a = records[0]
    assert a["params"]["hyperparameters.learningRate"] == 0.01  # the job's own spec, not the version's copy
    assert a["metrics"] == {"val_accuracy": 0.93, "train_loss": 0.2}
    assert a["dataset"] == {"uri": "s3://datasets/iris.csv", "digest": DIGEST}
    assert a["durationSeconds"] == 65 and a["metricsUri"] == "s3://models/iris/uid-aaaa/metrics.jsonl"
    assert a["storageSecret"] == "s3"


def test_a_re_created_job_of_the_same_name_is_another_run():
    records = runs([tj("a", "uid-new00")], [mv("iris", 1, "uid-old00", PASSED)], NOW, model="iris")
    assert sorted((r["uid"], r["exists"], r["modelVersion"]) for r in records) == [
        ("uid-new00", True, None), ("uid-old00", False, "iris-v1")]


def test_a_version_whose_job_is_gone_keeps_its_lineage_and_finds_its_metrics_by_the_run_s_prefix():
    gone = mv("iris", 1, "uid-gone1", PASSED, artifact="s3://models/iris/x/uid-gone/model.pt",
              registered_by={"name": "a", "uid": "uid-gone1"})
    [r] = runs([], [gone], NOW, model="iris")
    assert r["run"] == "a" and not r["exists"] and r["phase"] is None
    assert r["params"] == {"hyperparameters.epochs": 3, "hyperparameters.learningRate": 0.5}
    assert r["metrics"] == {"val_accuracy": 0.5} and r["metricsUri"] == "s3://models/iris/x/uid-gone/metrics.jsonl"
    # Without registeredBy the operator never checked that the artifact lies in the run's prefix: no guess.
    [r] = runs([], [mv("iris", 1, "uid-gone1", PASSED)], NOW, model="iris")
    assert r["metricsUri"] is None


def test_a_selector_lists_its_jobs_with_or_without_a_version_and_a_running_job_s_time_so_far():
    running = tj("b", "uid-bbbb2", phase="Running")
    del running["status"]["completionTime"]
    records = runs([tj("a", "uid-aaaa1"), running], [mv("iris", 1, "uid-aaaa1", PASSED), mv("iris", 2, "uid-zzzz9")],
                   NOW, model=None)
    assert [(r["run"], r["modelVersion"]) for r in records] == [("a", "iris-v1"), ("b", None)]
    assert records[1]["durationSeconds"] == 3600


def test_gate_is_none_without_gates_and_pending_before_the_verdict():
    records = runs([tj("a", "uid-aaaa1"), tj("b", "uid-bbbb2")],
                   [mv("iris", 1, "uid-aaaa1", gated=False), mv("iris", 2, "uid-bbbb2", run="b")], NOW, model="iris")
    assert [r["gate"] for r in records] == ["none", "pending"]
    two_failed = runs([tj("a", "uid-aaaa1")], [mv("iris", 1, "uid-aaaa1", FAILED + [
        {"rule": "beat production on val_accuracy", "passed": False}])], NOW, model="iris")
    assert two_failed[0]["gate"] == "failed: val_accuracy >= 0.8 (+1)"


def test_flatten_names_nested_parameters_with_dots_and_keeps_lists():
    assert flatten({"model": {"hiddenLayers": [8, 8], "dropout": 0.1}, "task": "x"}) == {
        "model.hiddenLayers": [8, 8], "model.dropout": 0.1, "task": "x"}


def test_only_the_parameters_that_differ_get_columns():
    records = runs([tj("a", "uid-aaaa1"), tj("b", "uid-bbbb2", lr=0.1)], [], NOW, model="iris")
    varying, common = varying_params(records)
    assert varying == ["hyperparameters.learningRate"]
    assert common["hyperparameters.epochs"] == 3 and common["model.hiddenLayers"] == [8]


def test_the_table_shows_runs_side_by_side():
    jobs = [tj("a", "uid-aaaa1", metrics={"epoch": 3, "val_accuracy": 0.93456, "train_loss": 0.2}),
            tj("b", "uid-bbbb2", lr=0.1, metrics={"val_accuracy": 0.7}, created="2026-01-01T00:00:01Z")]
    text = table(runs(jobs, [mv("iris", 1, "uid-aaaa1", PASSED)], NOW, model="iris"))
    lines = text.splitlines()
    assert lines[0].split() == ["RUN", "PHASE", "VERSION", "GATE", "DURATION", "learningRate", "val_accuracy",
                                "train_loss", "DATASET"]
    assert lines[1].split() == ["a", "Succeeded", "iris:1", "passed", "1m05s", "0.01", "0.9346", "0.2",
                                f"s3://datasets/iris.csv@{DIGEST[:19]}"]
    assert lines[2].split()[:8] == ["b", "Succeeded", "-", "-", "1m05s", "0.1", "0.7", "-"]
    # Columns line up: every value starts where its header does.
    assert lines[1].index("0.9346") == lines[0].index("val_accuracy") == lines[2].index("0.7")
    assert lines[-1].startswith("same in every run: hyperparameters.epochs=3, labelColumn=species")
    assert 'model.hiddenLayers=[8]' in lines[-1]


def test_the_table_can_show_chosen_metrics_only():
    text = table(runs([tj("a", "uid-aaaa1", metrics={"val_accuracy": 0.9, "train_loss": 0.2})], [], NOW, "iris"),
                 metrics=["train_loss"])
    assert text.splitlines()[0].split()[5:] == ["train_loss", "DATASET"]
    assert "parameters: " in text
