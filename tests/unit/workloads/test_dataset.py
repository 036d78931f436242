import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import training
from mlcycle.training import TrainingFailed
from mlcycle.workloads import dataset

pytestmark = pytest.mark.unit

# The same rows in three formats: numbers (ints and decimals mixed), a text column and a text label.
ROWS = [
    {"x": 1, "size": 0.5, "color": "red", "kind": "b"},
    {"x": 2.25, "size": -3, "color": "blue", "kind": "a"},
    {"x": -7, "size": 10, "color": "red", "kind": "10"},
    {"x": 4.5, "size": 2, "color": "green", "kind": "a"},
]


def write(tmp_path, fmt: str, rows=ROWS, name: str = "data") -> str:
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        columns = {k: [float(v) for v in vs] if k in ("x", "size") else vs for k, vs in columns.items()}
        pq.write_table(pa.table(columns), path)
    return str(path)


def load(path: str, fmt: str, **kwargs) -> dataset.Examples:
    return dataset.load_examples(path, label="kind", label_as_text=True, format=fmt, **kwargs)


def test_csv_parquet_and_jsonl_give_the_same_examples(tmp_path):
    loaded = {fmt: load(write(tmp_path, fmt), fmt) for fmt in dataset.FORMATS}
    csv = loaded["csv"]
    assert csv.features.dtype == np.float32 and csv.features.shape == (4, 3)
    assert csv.feature_names == ["x", "size", "color"]
    assert csv.categories == {"color": ["blue", "green", "red"]}
    assert csv.features[:, 2].tolist() == [2, 0, 2, 1]  # codes into the categories
    assert csv.features[:, :2].tolist() == [[1, 0.5], [2.25, -3], [-7, 10], [4.5, 2]]
    assert csv.classes == ["10", "a", "b"] and csv.targets.tolist() == [2, 1, 0, 1]
    for fmt in ("parquet", "jsonl"):
        other = loaded[fmt]
        assert np.array_equal(other.features, csv.features), fmt
        assert np.array_equal(other.targets, csv.targets), fmt
        assert (other.feature_names, other.categories, other.classes) == (csv.feature_names, csv.categories,
                                                                          csv.classes), fmt


@pytest.mark.parametrize("fmt", dataset.FORMATS)
def test_only_the_chosen_features_are_read_in_their_order(tmp_path, fmt):
    examples = dataset.load_examples(write(tmp_path, fmt), label="x", features=["size", "color"],
                                     label_as_text=False, format=fmt)
    assert examples.feature_names == ["size", "color"] and examples.features.shape == (4, 2)
    assert examples.targets.dtype == np.float32 and examples.targets.tolist() == [1, 2.25, -7, 4.5]
    assert examples.classes is None


@pytest.mark.parametrize("fmt", dataset.FORMATS)
def test_extra_columns_are_read_beside_the_features_without_becoming_inputs(tmp_path, fmt):
    examples = dataset.load_examples(write(tmp_path, fmt), label="kind", features=["x"], label_as_text=True,
                                     format=fmt, extra=["color", "size", "x"])
    assert examples.feature_names == ["x"] and examples.features.shape == (4, 1)
    assert examples.extra["color"].tolist() == ["red", "blue", "red", "green"]
    assert examples.extra["size"].dtype == np.float64 and examples.extra["size"].tolist() == [0.5, -3, 10, 2]
    assert "x" not in examples.extra  # a feature already


def test_a_missing_extra_column_is_named(tmp_path):
    with pytest.raises(TrainingFailed, match=r"columns \['sex'\] are not in the dataset") as failed:
        load(write(tmp_path, "csv"), "csv", features=["x"], extra=["sex"])
    assert failed.value.reason == "InvalidConfig"


def test_numbers_are_floats_even_when_the_first_mib_held_only_integers(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "_SAMPLE_BYTES", 16)  # type inference sees the first line or two only
    rows = [{"x": i, "kind": "a" if i % 2 else "b"} for i in range(50)] + [{"x": 0.5, "kind": "a"}]
    for fmt in ("csv", "jsonl"):
        examples = load(write(tmp_path, fmt, rows), fmt)
        assert examples.features[-1, 0] == 0.5, fmt


def test_a_directory_is_every_file_of_the_format_in_path_order(tmp_path):
    write(tmp_path, "csv", ROWS[2:], name="b")
    write(tmp_path, "csv", ROWS[:2], name="a")
    (tmp_path / "notes.txt").write_text("ignored")
    examples = load(str(tmp_path), "csv")
    assert examples.features[:, 0].tolist() == [1, 2.25, -7, 4.5]
    data = (tmp_path / "a.csv").read_bytes() + (tmp_path / "b.csv").read_bytes()
    assert examples.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_files_with_different_columns_are_unreadable(tmp_path):
    (tmp_path / "a.csv").write_text("x,kind\n1,a\n")
    (tmp_path / "b.csv").write_text("z,kind\n1,b\n")
    with pytest.raises(TrainingFailed, match="has columns") as caught:
        load(str(tmp_path), "csv")
    assert caught.value.reason == training.DATASET_UNREADABLE


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (b"", "no header row"),
        (b"x,kind\n1,a,3\n", "Expected 2 columns, got 3"),
        (b"\xff\xfe\x00x", "not UTF-8"),
        (b"x,kind\n1,a\n,b\n", "column 'x', data row 2 is empty, NaN or infinite"),
        (b"x,kind\n1,a\nnan,b\n", "column 'x', data row 2 is empty, NaN or infinite"),
        (b"x,kind\n1,a\n", "has 1 rows; need at least 2"),
        (b"x,kind\n1,a\n2,a\n", "only the class\\(es\\) \\['a'\\]"),
        (b"x,kind\n1,a\n2, \n3,b\n", "label column 'kind' has empty labels"),
    ],
)
def test_malformed_csv_is_unreadable_and_says_why(tmp_path, content, names):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(TrainingFailed, match=names) as caught:
        load(str(path), "csv")
    assert caught.value.reason == training.DATASET_UNREADABLE


def test_missing_columns_are_named(tmp_path):
    path = write(tmp_path, "csv")
    with pytest.raises(TrainingFailed, match="label column 'y' is not in the dataset") as caught:
        dataset.load_examples(path, label="y", label_as_text=False)
    assert caught.value.reason == training.LABEL_COLUMN_MISSING
    with pytest.raises(TrainingFailed, match="feature columns \\['nope'\\]") as caught:
        dataset.load_examples(path, label="kind", features=["x", "nope"], label_as_text=True)
    assert caught.value.reason == training.INVALID_CONFIG


def test_a_text_column_with_too_many_values_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_CATEGORIES", 2)
    with pytest.raises(TrainingFailed, match="'color' has 3 distinct text values") as caught:
        load(write(tmp_path, "csv"), "csv")
    assert caught.value.reason == training.DATASET_UNREADABLE


def test_numeric_class_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,10\n2,2\n3,1\n")
    assert dataset.load_examples(str(path), label="y", label_as_text=True).classes == ["1", "2", "10"]


def test_a_missing_path_is_not_found(tmp_path):
    with pytest.raises(TrainingFailed) as caught:
        load(str(tmp_path / "nope.csv"), "csv")
    assert caught.value.reason == training.DATASET_NOT_FOUND
    with pytest.raises(TrainingFailed, match="no .parquet/.pq files") as caught:
        load(str(tmp_path), "parquet")
    assert caught.value.reason == training.DATASET_NOT_FOUND


@pytest.mark.parametrize("fmt", dataset.FORMATS)
def test_digest_is_the_sha256_of_the_file_and_is_verified(tmp_path, fmt):
    path = write(tmp_path, fmt)
    good = "sha256:" + hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert load(path, fmt).digest == good
    assert load(path, fmt, digest=good).digest == good
    with pytest.raises(TrainingFailed, match="expected sha256:0000") as caught:
        load(path, fmt, digest="sha256:" + "0" * 64)
    assert caught.value.reason == training.DIGEST_MISMATCH
    with pytest.raises(TrainingFailed, match="must be sha256:") as caught:
        load(path, fmt, digest="md5:abc")
    assert caught.value.reason == training.INVALID_CONFIG


def test_data_that_differs_from_its_digest_says_so_rather_than_why_it_does_not_parse(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"x,kind\n1,a,3\n")
    with pytest.raises(TrainingFailed) as caught:
        load(str(path), "csv", digest="sha256:" + "0" * 64)
    assert caught.value.reason == training.DIGEST_MISMATCH


def test_unknown_formats_are_refused(tmp_path):
    with pytest.raises(TrainingFailed, match="'xls' is not supported") as caught:
        load(str(tmp_path), "xls")
    assert caught.value.reason == training.INVALID_CONFIG


def test_a_file_larger_than_the_sample_and_the_block_is_read_whole(tmp_path, monkeypatch):
    """The sniffed sample is handed back to pyarrow before the rest of the stream, and HTTP bodies may return
    fewer bytes than asked: every read must still be whole, or pyarrow takes it for the end of a block."""
    monkeypatch.setattr(dataset, "_SAMPLE_BYTES", 100_000)  # more than what reading the header leaves over
    monkeypatch.setattr(dataset, "_BLOCK_BYTES", 50_000)
    rows = [{"x": i, **{f"f{j}": 0.25 * j for j in range(10)}, "kind": "a" if i % 3 else "b"} for i in range(4000)]
    for fmt in ("csv", "jsonl"):
        examples = load(write(tmp_path, fmt, rows), fmt)
        assert examples.features[:, 0].tolist() == list(range(4000)), fmt
