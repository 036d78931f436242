import hashlib

import pytest

from mlcycle import training
from mlcycle.training import TrainingFailed
from mlcycle.workloads import dataset

pytestmark = pytest.mark.unit


def test_a_directory_is_every_csv_in_path_order_with_the_first_header(tmp_path):
    (tmp_path / "b.csv").write_text("x,y\n3,4\n")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n\n")
    (tmp_path / "notes.txt").write_text("ignored")
    table = dataset.load_table(str(tmp_path))
    assert table.columns == ["x", "y"] and table.rows == [["1", "2"], ["3", "4"]]


def test_files_with_a_different_header_are_unreadable(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,z\n1,2\n")
    with pytest.raises(TrainingFailed, match="has columns") as caught:
        dataset.load_table(str(tmp_path))
    assert caught.value.reason == training.DATASET_UNREADABLE


@pytest.mark.parametrize(
    ("content", "names"),
    [(b"", "no header row"), (b"x,y\n1,2,3\n", "line 2: 3 fields"), (b"\xff\xfe\x00x", "not UTF-8")],
)
def test_malformed_csv_is_unreadable_and_says_where(tmp_path, content, names):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(TrainingFailed, match=names) as caught:
        dataset.load_table(str(path))
    assert caught.value.reason == training.DATASET_UNREADABLE


def test_a_missing_path_is_not_found(tmp_path):
    with pytest.raises(TrainingFailed) as caught:
        dataset.load_table(str(tmp_path / "nope.csv"))
    assert caught.value.reason == training.DATASET_NOT_FOUND


def test_digest_is_verified(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n")
    good = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert dataset.load_table(str(path), digest=good).rows == [["1", "2"]]
    with pytest.raises(TrainingFailed, match="expected sha256:0000") as caught:
        dataset.load_table(str(path), digest="sha256:" + "0" * 64)
    assert caught.value.reason == training.DIGEST_MISMATCH
    with pytest.raises(TrainingFailed, match="must be sha256:") as caught:
        dataset.load_table(str(path), digest="md5:abc")
    assert caught.value.reason == training.INVALID_CONFIG


def test_only_csv_is_supported(tmp_path):
    with pytest.raises(TrainingFailed, match="'parquet' is not supported") as caught:
        dataset.load_table(str(tmp_path), format="parquet")
    assert caught.value.reason == training.INVALID_CONFIG


def test_table_digest_is_the_sha256_of_the_file(tmp_path):
    import hashlib

    from mlcycle.workloads.dataset import load_table

    data = b"x,label\n1,a\n2,b\n"
    (tmp_path / "d.csv").write_bytes(data)
    assert load_table(str(tmp_path / "d.csv")).digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
