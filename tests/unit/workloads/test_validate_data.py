import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.api.trainingjob import DataValidation
from mlcycle.training import MESSAGE_LIMIT, TrainingFailed
from mlcycle.workloads import validate_data
from mlcycle.workloads.validate_data import Config, validate

CSV = "x,label\n" + "".join(f"{i / 10},{'a' if i % 2 else 'b'}\n" for i in range(100))


def config(dataset, expectations, fmt="csv", reference=None, reports=None) -> Config:
    return Config(dataset=str(dataset), format=fmt, spec=DataValidation.model_validate(expectations),
                  reports=str(reports) if reports else None, reference=reference)


def quiet(_):
    pass


def test_a_csv_directory_is_validated_across_its_files(tmp_path):
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "b.csv").write_text("x,label\n50,a\n,b\n")
    found = validate(config(tmp_path, {"columns": [{"name": "x", "type": "number", "max": 10, "maxMissing": 0}],
                                       "minRows": 100}), None, quiet)
    assert found.observed.rows == 102 and not found.passed
    failed = {o.expectation: o.message for o in found.outcomes if o.result == "failed"}
    assert failed == {"missing(x)": "x: 0.98% of rows missing (1 of 102), allowed 0%",
                      "range(x)": "x: 0.99% of values outside [-∞, 10] (1 of 101, e.g. '50'), allowed 0%; "
                                  "observed min 0, max 50"}


def test_parquet_keeps_its_types(tmp_path):
    pq.write_table(pa.table({"n": pa.array([1, 2, None], pa.int64()), "s": ["a", "b", "c"]}), tmp_path / "d.parquet")
    found = validate(config(tmp_path / "d.parquet", {"columns": [{"name": "n", "type": "integer"},
                                                                 {"name": "s", "type": "string"}]}, "parquet"),
                     None, quiet)
    assert found.passed and found.observed.summaries["n"].missing == 1


def test_files_with_other_columns_are_unreadable_as_for_the_trainer(tmp_path):
    (tmp_path / "a.csv").write_text(CSV)
    (tmp_path / "b.csv").write_text("y,label\n1,a\n")
    with pytest.raises(TrainingFailed, match="has columns"):
        validate(config(tmp_path, {}), None, quiet)


def test_drift_against_a_reference_dataset(tmp_path):
    (tmp_path / "ref.csv").write_text(CSV)
    (tmp_path / "cur.csv").write_text("x,label\n" + "".join(f"{5 + i / 10},a\n" for i in range(100)))
    reference = {"alias": "champion", "model": "m", "modelVersion": "m-v1", "uri": str(tmp_path / "ref.csv"),
                 "format": "csv"}
    found = validate(config(tmp_path / "cur.csv", {"drift": {"againstAlias": "champion", "model": "m"}},
                            reference=reference), None, quiet)
    (drift,) = found.outcomes
    assert drift.result == "failed" and drift.message == "1 of 1 drifted (100%) against the data of champion: x"
    assert found.context["reference"]["rows"] == 100


def test_reports_and_the_termination_message(tmp_path, monkeypatch):
    (tmp_path / "d.csv").write_text(CSV)
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MLCYCLE_TERMINATION_LOG", str(log))
    expectations = json.dumps({"columns": [{"name": "x", "max": 5}, {"name": "label", "allowedValues": ["a"]}]})
    code = validate_data.main(["--dataset", str(tmp_path / "d.csv"), "--expectations", expectations,
                               "--reports", str(tmp_path / "out")])
    assert code == 3
    doc = json.loads(log.read_text())["dataValidation"]
    assert doc["result"] == "DataValidationFailed" and doc["rows"] == 100 and doc["expectations"] == 4
    assert [f["expectation"] for f in doc["failures"]] == ["range(x)", "values(label)"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["failures"] == ["range(x)", "values(label)"] and report["columns"]["x"]["type"] == "number"
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Data validation failed" in page and "values(label)" in page and "data:image/png;base64," in page


def test_a_missing_dataset_fails_with_its_reason(tmp_path, monkeypatch):
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MLCYCLE_TERMINATION_LOG", str(log))
    with pytest.raises(SystemExit) as exit_:
        validate_data.main(["--dataset", str(tmp_path / "none.csv"), "--expectations", "{}"])
    assert exit_.value.code == 1 and json.loads(log.read_text())["error"]["reason"] == "DatasetNotFound"


def test_the_termination_message_drops_failures_to_fit():
    doc = {"result": "DataValidationFailed", "message": "m", "failures": [
        {"expectation": f"range(c{i})", "column": f"c{i}", "message": "x" * 290} for i in range(64)]}
    text = validate_data.termination_message(doc)
    assert len(text.encode()) <= MESSAGE_LIMIT and 0 < len(json.loads(text)["dataValidation"]["failures"]) < 64


def test_a_file_without_rows_has_its_columns_and_no_rows(tmp_path):
    pq.write_table(pa.table({"x": pa.array([], pa.float64()), "label": pa.array([], pa.string())}),
                   tmp_path / "d.parquet")
    found = validate(config(tmp_path / "d.parquet", {"columns": [{"name": "x"}], "minRows": 1}, "parquet"),
                     None, quiet)
    assert found.observed.columns == ["x", "label"]
    assert {o.expectation: o.result for o in found.outcomes} == {"rows": "failed", "exists(x)": "passed"}
