import json

import pytest

from mlcycle import training

pytestmark = pytest.mark.unit


def test_success_message_has_final_metrics_artifact_and_uris(tmp_path):
    log = tmp_path / "termination-log"
    reporter = training.Reporter(termination_log=str(log))
    reporter.report_metrics(1, train_loss=0.9, val_accuracy=0.5)
    reporter.report_metrics(2, train_loss=0.4, val_accuracy=0.95)
    reporter.report_artifact(
        "s3://b/run/model.pt", "ab" * 32, 1234, "torchscript", signature_uri="s3://b/run/signature.json"
    )
    reporter.finish()
    assert json.loads(log.read_text()) == {
        "metrics": {"epoch": 2, "train_loss": 0.4, "val_accuracy": 0.95},
        "artifact": {
            "uri": "s3://b/run/model.pt",
            "digest": "sha256:" + "ab" * 32,
            "size": 1234,
            "format": "torchscript",
        },
        "signatureUri": "s3://b/run/signature.json",
    }


def test_report_metrics_prints_one_line_per_epoch_on_the_primary_only(capsys):
    training.Reporter(termination_log="/nonexistent/x").report_metrics(3, train_loss=0.123456789)
    training.Reporter(termination_log="/nonexistent/x", primary=False).report_metrics(3, train_loss=1.0)
    assert capsys.readouterr().out == "epoch=3 train_loss=0.123457\n"


def test_too_many_metrics_are_truncated_to_fit_the_kubernetes_limit():
    metrics = {f"{'long_metric_name_' * 3}{i:04d}": 0.123456789 for i in range(1000)}
    text = training.success_message(metrics, {"uri": "s3://b/m.pt"}, {})
    doc = json.loads(text)
    assert len(text.encode()) <= training.MESSAGE_LIMIT < 4096
    assert doc["metricsTruncated"] is True and doc["artifact"] == {"uri": "s3://b/m.pt"}
    assert 0 < len(doc["metrics"]) <= training.MAX_METRICS


def test_fail_writes_a_bounded_redacted_error_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sup3r-s3cret")
    log = tmp_path / "termination-log"
    with pytest.raises(SystemExit) as exited:
        training.Reporter(termination_log=str(log)).fail("TrainerError", "key sup3r-s3cret " + "x" * 10_000)
    assert exited.value.code == 1
    doc = json.loads(log.read_text())
    assert doc["error"]["reason"] == "TrainerError"
    assert "sup3r-s3cret" not in log.read_text() and doc["error"]["message"].startswith("key *** x")
    assert len(log.read_bytes()) < 4096


def test_only_finite_numbers_are_reported_as_metrics():
    metrics = {"val_loss": float("nan"), "note": "x", "val_accuracy": 0.9, "epoch": 3}
    doc = json.loads(training.success_message(metrics, None, {}))
    assert doc == {"metrics": {"val_accuracy": 0.9, "epoch": 3}, "metricsTruncated": True}


def test_every_exported_format_is_listed_for_a_server_to_pick(tmp_path):
    log = tmp_path / "termination-log"
    reporter = training.Reporter(termination_log=str(log))
    both = [{"uri": "s3://b/run/model.onnx", "digest": "sha256:" + "a" * 64, "size": 1, "format": "onnx"},
            {"uri": "s3://b/run/model.pt", "digest": "sha256:" + "b" * 64, "size": 2, "format": "torchscript"}]
    reporter.report_artifact("s3://b/run/model.onnx", "a" * 64, 1, "onnx", artifacts=both)
    reporter.finish()
    doc = json.loads(log.read_text())
    assert doc["artifact"] == both[0] and doc["artifacts"] == both


EVALUATION = {"slices": [{"feature": "region", "value": f"r{i:02d}", "metrics": {"count": 10, "accuracy": 0.5}}
                         for i in range(60)],
              "fairness": [{"feature": "region", "gaps": {"accuracy_difference": 0.1}}]}


def test_the_evaluation_gives_way_first_when_the_message_would_not_fit():
    text = training.success_message({"val_accuracy": 0.9}, {"uri": "s3://b/m.pt"}, {}, EVALUATION)
    doc = json.loads(text)
    assert len(text.encode()) <= training.MESSAGE_LIMIT
    assert doc["metrics"] == {"val_accuracy": 0.9} and "metricsTruncated" not in doc
    kept = doc["evaluation"]["slices"]
    assert doc["evaluation"]["truncated"] and 0 < len(kept) < 60 and kept == EVALUATION["slices"][: len(kept)]
    assert doc["evaluation"]["fairness"] == EVALUATION["fairness"]


def test_an_evaluation_that_fits_is_reported_whole(tmp_path, capsys):
    log = tmp_path / "termination-log"
    reporter = training.Reporter(termination_log=str(log))
    small = {"slices": EVALUATION["slices"][:2], "fairness": EVALUATION["fairness"]}
    reporter.report_evaluation(small)
    reporter.finish()
    assert json.loads(log.read_text())["evaluation"] == small
    assert "slice region=r00: count=10 accuracy=0.5" in capsys.readouterr().out


def test_a_malformed_evaluation_fails_in_the_training_code():
    with pytest.raises(ValueError, match="metrics"):
        training.Reporter(termination_log="/nonexistent/x").report_evaluation(
            {"slices": [{"feature": "f", "value": "v"}]})


def test_report_slices_computes_with_the_jobs_slices_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCYCLE_EVALUATION", json.dumps({"slices": [{"feature": "sex"}], "positiveClass": "yes"}))
    monkeypatch.setattr(training, "_default", training.Reporter(termination_log=str(tmp_path / "log")))
    result = training.report_slices(["yes", "no", "yes", "no"], ["yes", "yes", "no", "no"],
                                    {"sex": ["f", "f", "m", "m"]})
    assert [(s["value"], s["metrics"]["selection_rate"]) for s in result["slices"]] == [("f", 1.0), ("m", 0.0)]
    assert result["fairness"][0]["gaps"]["demographic_parity_difference"] == 1.0
    training.finish()
    assert json.loads((tmp_path / "log").read_text())["evaluation"] == result


def test_report_slices_takes_slices_given_in_the_call_and_numbers_for_regression(monkeypatch, tmp_path):
    monkeypatch.delenv("MLCYCLE_EVALUATION", raising=False)
    monkeypatch.setattr(training, "_default", training.Reporter(termination_log=str(tmp_path / "log")))
    result = training.report_slices([1.0, 3.0], [2.0, 3.0], {"age": [20, 70]}, task="regression",
                                    slices=[{"feature": "age", "bins": [50]}])
    assert [(s["value"], s["metrics"]["mae"]) for s in result["slices"]] == [("[-inf, 50)", 1.0), ("[50, inf)", 0.0)]
