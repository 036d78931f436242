import hashlib

import pytest
from minio.error import S3Error

from mlcycle.clients import s3

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://data/iris.csv", ("data", "iris.csv")),
        ("s3://data/runs/1/", ("data", "runs/1/")),
        ("s3://data", ("data", "")),
        ("s3://my.bucket-1/a/b/c.csv", ("my.bucket-1", "a/b/c.csv")),
    ],
)
def test_parse_s3_uri_splits_bucket_and_key(uri, expected):
    assert s3.parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "names"),
    [
        ("http://data/x.csv", "not an S3 URI"),
        ("data/x.csv", "not an S3 URI"),
        ("s3:///x.csv", "invalid bucket name"),
        ("s3://Data/x.csv", "invalid bucket name"),
        ("s3://ab/x.csv", "invalid bucket name"),
    ],
)
def test_parse_s3_uri_rejects_malformed_uris_with_a_clear_message(uri, names):
    with pytest.raises(ValueError, match=names):
        s3.parse_s3_uri(uri)


def test_join_key_puts_name_under_prefix():
    assert s3.join_key("", "model.pt") == "model.pt"
    assert s3.join_key("runs/1", "model.pt") == "runs/1/model.pt"
    assert s3.join_key("runs/1/", "model.pt") == "runs/1/model.pt"


def test_config_from_env_accepts_host_port_and_urls():
    env = {"MLCYCLE_S3_ENDPOINT": "minio:9000", "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}
    assert s3.S3Config.from_env(env) == s3.S3Config("minio:9000", "ak", "sk", False, None)
    https = s3.S3Config.from_env({**env, "MLCYCLE_S3_ENDPOINT": "https://s3.example.com", "AWS_REGION": "eu"})
    assert (https.endpoint, https.secure, https.region) == ("s3.example.com", True, "eu")
    forced = s3.S3Config.from_env(
        {**env, "MLCYCLE_S3_ENDPOINT": "https://s3.example.com", "MLCYCLE_S3_SECURE": "false"}
    )
    assert forced.secure is False


def test_config_from_env_names_what_is_wrong():
    with pytest.raises(ValueError, match="MLCYCLE_S3_ENDPOINT is not set"):
        s3.S3Config.from_env({})
    with pytest.raises(ValueError, match="MLCYCLE_S3_SECURE must be true or false"):
        s3.S3Config.from_env({"MLCYCLE_S3_ENDPOINT": "m:9000", "MLCYCLE_S3_SECURE": "maybe"})
    with pytest.raises(ValueError, match="scheme must be http or https"):
        s3.S3Config.create("ftp://m:9000", "ak", "sk")


def test_config_repr_hides_credentials():
    text = repr(s3.S3Config.create("http://m:9000", "the-access-key", "the-secret-key"))
    assert "the-access-key" not in text and "the-secret-key" not in text


def _s3_error(code: str) -> S3Error:
    return S3Error(None, code, f"{code} message", "/b/k", "req", "host", "b", "k")


@pytest.mark.parametrize(
    ("code", "exception"),
    [
        ("NoSuchKey", s3.ObjectNotFound),
        ("NoSuchBucket", s3.ObjectNotFound),
        ("InvalidAccessKeyId", s3.StorageAuthFailed),
        ("SignatureDoesNotMatch", s3.StorageAuthFailed),
        ("AccessDenied", s3.StorageAuthFailed),
        ("SlowDown", s3.StorageError),
    ],
)
def test_storage_errors_classifies_minio_error_codes(code, exception):
    with pytest.raises(exception, match=f"s3://b/k: {code}") as caught:
        with s3.storage_errors("s3://b/k"):
            raise _s3_error(code)
    assert type(caught.value) is exception


def test_file_digest_streams_in_chunks(tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert s3.file_digest(path, chunk=1000) == (hashlib.sha256(data).hexdigest(), len(data))
