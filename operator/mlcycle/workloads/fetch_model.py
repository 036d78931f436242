"""`mlcycle fetch-model`: the init container of a serving pod. Downloads a ModelVersion's artifact from S3,
re-checks its sha256 against the digest the registry verified, and lays out a Triton model repository:

    <repository>/<model>/config.pbtxt
    <repository>/<model>/1/<artifact file>      (+ model.py for the python backend)

The download is streamed to disk while it is hashed (constant memory, whatever the model's size). A digest
that differs fails the pod with a termination message and leaves no artifact behind: an object replaced
after verification is never served.

Env (written by the operator): MLCYCLE_ARTIFACT_URI, MLCYCLE_ARTIFACT_DIGEST (sha256:<hex>),
MLCYCLE_ARTIFACT_FILE (model.pt, model.onnx, ...), MLCYCLE_MODEL_NAME, MLCYCLE_MODEL_REPOSITORY,
MLCYCLE_TRITON_CONFIG (config.pbtxt text), MLCYCLE_TRITON_BACKEND, MLCYCLE_TERMINATION_LOG, and the storage
credentials of `mlcycle.podenv.storage_env`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from mlcycle.clients import s3
from mlcycle.training import DEFAULT_TERMINATION_LOG, failure_message

PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")
CHUNK = 8 << 20
PROGRESS_EVERY = 5.0  # seconds between progress lines


class FetchFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def download(client, uri: str, dest: Path, expected: str) -> tuple[str, int]:
    """Stream `uri` to `dest` while hashing it; (digest, size). Raises FetchFailed on a digest mismatch,
    after removing what was written."""
    bucket, key = s3.parse_s3_uri(uri)
    sha, size, last = hashlib.sha256(), 0, time.monotonic()
    partial = dest.with_name(dest.name + ".partial")
    with s3.storage_errors(uri):
        response = client.get_object(bucket, key)
        try:
            total = int(response.headers.get("Content-Length") or 0)
            with open(partial, "wb") as out:
                for piece in response.stream(CHUNK):
                    sha.update(piece)
                    out.write(piece)
                    size += len(piece)
                    if time.monotonic() - last >= PROGRESS_EVERY:
                        last = time.monotonic()
                        share = f" ({100 * size / total:.0f}%)" if total else ""
                        print(f"fetch-model: {size / 1e6:.1f} MB of {uri}{share}", flush=True)
        finally:
            response.close()
            response.release_conn()
    digest = f"sha256:{sha.hexdigest()}"
    if digest != expected:
        partial.unlink(missing_ok=True)
        raise FetchFailed("DigestMismatch",
                          f"{uri} has digest {digest}, but the ModelVersion was verified with {expected}: the object "
                          "changed after verification, so it is not served; restore it or register a new version")
    partial.rename(dest)
    return digest, size


def lay_out(env: Mapping[str, str], client) -> dict:
    """The model repository for one model; returns what the termination message reports."""
    model = env["MLCYCLE_MODEL_NAME"]
    model_dir = Path(env["MLCYCLE_MODEL_REPOSITORY"]) / model
    version_dir = model_dir / "1"
    shutil.rmtree(model_dir, ignore_errors=True)  # a restarted init container starts clean
    version_dir.mkdir(parents=True)
    digest, size = download(client, env["MLCYCLE_ARTIFACT_URI"], version_dir / env["MLCYCLE_ARTIFACT_FILE"],
                            env["MLCYCLE_ARTIFACT_DIGEST"])
    (model_dir / "config.pbtxt").write_text(env["MLCYCLE_TRITON_CONFIG"])
    if env.get("MLCYCLE_TRITON_BACKEND") == "python":
        shutil.copyfile(PYTHON_MODEL, version_dir / "model.py")
    return {"model": model, "digest": digest, "size": size}


def run(env: Mapping[str, str]) -> int:
    termination_log = env.get("MLCYCLE_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG
    try:
        missing = [k for k in ("MLCYCLE_ARTIFACT_URI", "MLCYCLE_ARTIFACT_DIGEST", "MLCYCLE_ARTIFACT_FILE",
                               "MLCYCLE_MODEL_NAME", "MLCYCLE_MODEL_REPOSITORY", "MLCYCLE_TRITON_CONFIG")
                   if not env.get(k)]
        if missing:
            raise FetchFailed("InvalidConfig", f"missing env: {', '.join(missing)}")
        started = time.monotonic()
        result = lay_out(env, s3.client(s3.S3Config.from_env(env)))
    except FetchFailed as e:
        message = failure_message(e.reason, str(e))
    except s3.ObjectNotFound as e:
        message = failure_message("ArtifactNotFound", str(e))
    except s3.StorageAuthFailed as e:
        message = failure_message("StorageAuthFailed", str(e))
    except (s3.StorageError, ValueError, OSError) as e:
        message = failure_message("StorageError", str(e))
    else:
        print(f"fetch-model: {result['model']} ready, {result['size']} bytes, {result['digest']}, "
              f"{time.monotonic() - started:.1f}s", flush=True)
        _write(termination_log, json.dumps(result, separators=(",", ":")))
        return 0
    print(f"fetch-model failed: {message}", file=sys.stderr, flush=True)
    _write(termination_log, message)
    return 1


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        print(f"could not write termination message to {path}: {e}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if argv:
        print("usage: mlcycle fetch-model (configured by env; see the module docstring)", file=sys.stderr)
        return 2
    return run(os.environ)
