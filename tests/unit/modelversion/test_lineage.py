from mlcycle.lineage import format_text, lineage


def mv(version, **source):
    return {"metadata": {"name": f"iris-v{version}", "labels": {"mlcycle.io/trainingjob-uid": "u1"}},
            "spec": {"modelName": "iris", "version": version, "source": source, "metrics": {"accuracy": 0.953},
                     "artifact": {"uri": f"s3://models/iris/{version}/model.pt", "format": "torchscript"}},
            "status": {"phase": "Ready", "aliases": ["production"] if version == 2 else [],
                       "verifiedDigest": "sha256:" + "c" * 64, "size": 1234}}


SOURCE = {"trainingJob": "train-1", "dataset": {"uri": "s3://data/iris.csv", "digest": "sha256:" + "d" * 64},
          "params": {"epochs": 3}}


def test_lineage_links_dataset_training_job_version_and_services():
    services = [{"metadata": {"name": "iris-svc"}, "spec": {"model": {"name": "iris", "alias": "production"}}}]
    records = lineage([mv(2, **SOURCE), mv(1)], {"train-1": {"status": {"phase": "Succeeded"}}}, services)
    assert [r["version"] for r in records] == [1, 2]
    v2 = records[1]
    assert v2["dataset"] == SOURCE["dataset"]
    assert v2["trainingJob"] == {"name": "train-1", "exists": True, "phase": "Succeeded", "uid": "u1"}
    assert v2["artifact"]["digest"] == "sha256:" + "c" * 64
    assert v2["inferenceServices"] == [{"name": "iris-svc", "via": ["model alias production"]}]
    assert records[0]["inferenceServices"] == []

    text = format_text(records)
    assert "iris:2  (iris-v2, Ready, aliases: production)" in text
    assert "  → training job    train-1 (Succeeded)" in text
    assert "  → inference svcs  iris-svc (model alias production)" in text
    assert "  → training job    - (registered by hand)" in text
    assert 'params        {"epochs": 3}' in text


def test_a_deleted_training_job_is_shown_as_deleted():
    text = format_text(lineage([mv(1, trainingJob="gone")], {}, []))
    assert "  → training job    gone (deleted)" in text
