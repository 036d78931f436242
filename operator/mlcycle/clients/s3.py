"""S3 object storage: `s3://` URIs, connection settings (from a pod's env or from a Secret), and
streaming helpers that return the sha256 digest and size of what they read or wrote.

minio errors are translated into two exceptions the callers can act on: `ObjectNotFound` and
`StorageAuthFailed`; every other storage failure is a `StorageError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

import minio
import urllib3
from minio.error import MinioException, S3Error

CHUNK = 8 * 1024 * 1024

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "ResourceNotFound", "NoSuchObject"}
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class StorageError(Exception):
    """A storage operation failed; the message names the object and the cause, never credentials."""


class ObjectNotFound(StorageError):
    pass


class StorageAuthFailed(StorageError):
    pass


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); the key may be empty or a prefix ending in /."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ValueError(
            f"invalid bucket name {bucket!r} in {uri!r}: 3-63 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return bucket, key


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def join_key(prefix: str, name: str) -> str:
    """The key of `name` under `prefix` ("" or "a/b" or "a/b/" -> "name", "a/b/name")."""
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach S3. `endpoint` is host:port, without scheme."""

    endpoint: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    secure: bool = False
    region: str | None = None

    @classmethod
    def create(
        cls,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        secure: bool | None = None,
        region: str | None = None,
    ) -> S3Config:
        """From explicit values; `endpoint` may be `host:port` or `http(s)://host:port`, and when `secure`
        is None it follows the scheme (https -> True, otherwise False)."""
        scheme, sep, rest = endpoint.partition("://")
        if sep and scheme not in ("http", "https"):
            raise ValueError(f"S3 endpoint scheme must be http or https: {endpoint!r}")
        host = (rest if sep else endpoint).rstrip("/")
        if not host or "/" in host:
            raise ValueError(f"S3 endpoint must be host[:port], optionally with http(s)://: {endpoint!r}")
        if secure is None:
            secure = scheme == "https"
        return cls(host, access_key or None, secret_key or None, secure, region or None)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> S3Config:
        """From MLCYCLE_S3_ENDPOINT, MLCYCLE_S3_SECURE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
        AWS_REGION."""
        endpoint = env.get("MLCYCLE_S3_ENDPOINT", "")
        if not endpoint:
            raise ValueError("MLCYCLE_S3_ENDPOINT is not set")
        secure_env = env.get("MLCYCLE_S3_SECURE", "")
        return cls.create(
            endpoint,
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
            _parse_bool("MLCYCLE_S3_SECURE", secure_env) if secure_env else None,
            env.get("AWS_REGION"),
        )


def client(cfg: S3Config, http_client: urllib3.PoolManager | None = None) -> minio.Minio:
    """A client for `cfg`; `http_client` replaces minio's default pool (5-minute timeouts, its own
    retries) where the caller wants other timeouts or retries, e.g. a writer that retries by itself."""
    return minio.Minio(
        cfg.endpoint,
        access_key=cfg.access_key,
        secret_key=cfg.secret_key,
        secure=cfg.secure,
        region=cfg.region,
        http_client=http_client,
    )


@contextlib.contextmanager
def storage_errors(uri: str) -> Iterator[None]:
    """Translate minio and connection errors raised inside the block into our exceptions, naming `uri`."""
    try:
        yield
    except S3Error as e:
        if e.code in _NOT_FOUND_CODES:
            raise ObjectNotFound(f"{uri}: {e.code}: {e.message}") from e
        if e.code in _AUTH_CODES:
            raise StorageAuthFailed(f"{uri}: {e.code}: {e.message} (check the S3 access key and secret key)") from e
        raise StorageError(f"{uri}: {e.code}: {e.message}") from e
    except (MinioException, urllib3.exceptions.HTTPError) as e:
        raise StorageError(f"{uri}: {type(e).__name__}: {e}") from e


def object_digest(client: minio.Minio, bucket: str, key: str, chunk: int = CHUNK) -> tuple[str, int]:
    """(sha256 hex, size) of an object, read as a stream in `chunk`-sized pieces (constant memory)."""
    sha, size = hashlib.sha256(), 0
    with storage_errors(s3_uri(bucket, key)):
        response = client.get_object(bucket, key)
        try:
            for piece in response.stream(chunk):
                sha.update(piece)
                size += len(piece)
        finally:
            response.close()
            response.release_conn()
    return sha.hexdigest(), size


def read_bytes(client: minio.Minio, bucket: str, key: str) -> bytes:
    """The whole object in memory: for small objects such as datasets and JSON documents."""
    with storage_errors(s3_uri(bucket, key)):
        response = client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


@contextlib.contextmanager
def open_object(client: minio.Minio, bucket: str, key: str) -> Iterator[BinaryIO]:
    """The object as a stream, read as it arrives: memory stays small whatever its size."""
    with storage_errors(s3_uri(bucket, key)):
        response = client.get_object(bucket, key)
        try:
            yield response
        finally:
            response.close()
            response.release_conn()


def list_keys(client: minio.Minio, bucket: str, prefix: str) -> list[str]:
    """Every object key under `prefix` (recursively), sorted."""
    with storage_errors(s3_uri(bucket, prefix)):
        return sorted(o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True))


def list_objects(client: minio.Minio, bucket: str, prefix: str) -> list[tuple[str, datetime, int]]:
    """(key, last modified, size) of every object under `prefix` (recursively), sorted by key."""
    with storage_errors(s3_uri(bucket, prefix)):
        found = [(o.object_name, o.last_modified, o.size)
                 for o in client.list_objects(bucket, prefix=prefix, recursive=True)]
    return sorted(found)


def upload_bytes(
    client: minio.Minio, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
) -> tuple[str, int]:
    with storage_errors(s3_uri(bucket, key)):
        client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)
    return hashlib.sha256(data).hexdigest(), len(data)


def file_digest(path: str | os.PathLike, chunk: int = CHUNK) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while piece := f.read(chunk):
            sha.update(piece)
            size += len(piece)
    return sha.hexdigest(), size


def upload_file(
    client: minio.Minio,
    bucket: str,
    key: str,
    path: str | os.PathLike,
    content_type: str = "application/octet-stream",
) -> tuple[str, int]:
    """Upload a local file as a stream (multipart for large files); returns its (sha256 hex, size)."""
    digest = file_digest(path)
    with storage_errors(s3_uri(bucket, key)):
        client.fput_object(bucket, key, os.fspath(path), content_type=content_type)
    return digest
