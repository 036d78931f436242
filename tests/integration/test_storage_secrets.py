"""The operator's S3 clients are cached per Secret (no apiserver request per S3 operation), and a Secret that
changes still takes effect: a rotated key is used by the very next operation. Real MinIO, real credentials:
two service accounts of the MinIO root user, the second replacing the first."""

from __future__ import annotations

import uuid

import pytest
import yaml
from minio import MinioAdmin
from minio.credentials import StaticProvider

from mlcycle import kube, storage
from mlcycle.clients import s3
from mlcycle.localdev.sample import storage_secret
from mlcycle.modelversion.verification import current_etag


@pytest.fixture
def operator_kube(kube_api, monkeypatch):
    monkeypatch.setattr(kube, "api_client", lambda: kube_api)  # the operator's helpers, against this cluster


def _apply(cluster, obj):
    cluster.kubectl_run("apply", "-f", "-", input=yaml.safe_dump(obj))


def _service_account(admin: MinioAdmin) -> tuple[str, str]:
    access, secret = f"k{uuid.uuid4().hex[:15]}", uuid.uuid4().hex
    admin.add_service_account(access_key=access, secret_key=secret)
    return access, secret


def test_a_rotated_key_in_the_secret_is_used_by_the_next_operation(cluster, operator_kube, minio, bucket, namespace):
    admin = MinioAdmin(endpoint=minio.endpoint, credentials=StaticProvider(minio.access_key, minio.secret_key),
                       secure=False)
    s3.upload_bytes(minio.client(), bucket, "a/model.pt", b"weights")
    etag = minio.client().stat_object(bucket, "a/model.pt").etag.strip('"')
    uri = f"s3://{bucket}/a/model.pt"
    old_key, old_secret = _service_account(admin)
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, old_key, old_secret))

    def head():
        return storage.using(namespace, "s3", lambda client: current_etag(client, uri))

    assert head() == etag
    cluster.kubectl_run("delete", "secret", "s3", "-n", namespace)
    assert head() == etag  # the cached client: no read of the Secret (it is gone)

    new_key, new_secret = _service_account(admin)
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, new_key, new_secret))
    admin.delete_service_account(old_key)  # the rotation ends: the old key no longer works
    assert head() == etag  # refused with the cached key, the Secret read again, the new key used


def test_a_changed_secret_is_read_again_once_its_cache_entry_is_old(cluster, operator_kube, minio, bucket,
                                                                      namespace, monkeypatch):
    s3.upload_bytes(minio.client(), bucket, "b/model.pt", b"weights")
    uri = f"s3://{bucket}/b/model.pt"

    def head():
        return storage.using(namespace, "s3", lambda client: current_etag(client, uri))

    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key))
    etag = head()
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, minio.access_key, "not-the-secret-key"))
    assert head() == etag  # within CACHE_SECONDS: the cached client, the Secret is not read
    monkeypatch.setattr(storage, "CACHE_SECONDS", 0.0)  # as if that much time had passed
    with pytest.raises(s3.StorageAuthFailed):
        head()  # the Secret read again: its (wrong) key is the one used now


def test_a_missing_secret_is_said_and_not_cached(cluster, operator_kube, minio, namespace):
    with pytest.raises(storage.SecretProblem, match="does not exist"):
        storage.using(namespace, "s3", lambda client: None)
    _apply(cluster, storage_secret("s3", namespace, minio.endpoint, minio.access_key, minio.secret_key))
    assert storage.using(namespace, "s3", lambda client: client.bucket_exists("nothing-here")) is False
