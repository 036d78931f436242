"""Artifact verification: stream the object to a temporary file while hashing it (constant memory whatever
its size), compare the digest, check the file is what `format` says, and that the signature fits it.

It runs in the verification pod (`mlcycle verify`, see modelversion/verifyjob.py), never in the operator: the
TorchScript probe runs the model's own code. The pod reports through its termination message
(`result_message` / `parse_result`).

Failures are `VerificationFailed` with a CamelCase reason; `healable` ones (object missing, storage down,
bad credentials) are retried with backoff, the others wait for the spec or the object to change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import minio

from mlcycle import clock
from mlcycle.api import labels as keys
from mlcycle.api.base import SHA256_PATTERN
from mlcycle.clients import s3
from mlcycle.modelversion import onnx

PROBE_TIMEOUT = 600
# Entries that torch.jit.save writes and torch.save does not.
TORCHSCRIPT_ENTRIES = ("data.pkl", "constants.pkl", "code/")


# Causes that can go away without a spec change; they are retried with backoff.
RETRIED = frozenset({"ArtifactNotFound", "StorageAuthFailed", "StorageUnavailable", "SecretProblem", "ProbeFailed"})
REASONS = RETRIED | {"DigestChanged", "DigestMismatch", "InvalidFormat", "SignatureMissing", "SignatureMismatch"}
RESULT_MESSAGE_LIMIT = 2048  # of a failure's text, so the whole result fits a termination message (4 KiB)
# What the model loader's process may see of the verification pod's env: no credentials, no cluster address.
PROBE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
             "LD_PRELOAD", "OMP_NUM_THREADS")


class VerificationFailed(Exception):
    def __init__(self, reason: str, message: str, etag: str | None = None):
        super().__init__(message)
        self.reason, self.message, self.etag = reason, message, etag

    @property
    def healable(self) -> bool:
        return self.reason in RETRIED


@dataclass(frozen=True)
class Verified:
    digest: str  # sha256:<hex>
    size: int
    etag: str
    detail: str  # what was checked, for the condition message


def fingerprint(artifact: dict, signature: dict | None) -> str:
    """What a verification result depends on in the spec; a new fingerprint means verify again."""
    return hashlib.sha256(json.dumps([artifact, signature], sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def storage_failures(uri: str, secret: str) -> Iterator[None]:
    """Storage exceptions as healable VerificationFailed (never with credentials in the message)."""
    try:
        yield
    except s3.ObjectNotFound as e:
        raise VerificationFailed("ArtifactNotFound", f"artifact not found: {e}") from e
    except s3.StorageAuthFailed as e:
        raise VerificationFailed("StorageAuthFailed", f"{e}; Secret {secret}") from e
    except s3.StorageError as e:
        raise VerificationFailed("StorageUnavailable", f"cannot read the artifact: {e}") from e


def download(client: minio.Minio, uri: str, directory: str | None = None) -> tuple[Path, str, int, str]:
    """Stream the object into a new temporary file: (path, sha256:<hex>, size, etag). The caller removes it."""
    bucket, key = s3.parse_s3_uri(uri)
    sha, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(prefix="mlcycle-artifact-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, s3.storage_errors(uri):
            response = client.get_object(bucket, key)
            try:
                etag = response.headers.get("ETag", "").strip('"')
                for piece in response.stream(s3.CHUNK):
                    sha.update(piece)
                    out.write(piece)
                    size += len(piece)
            finally:
                response.close()
                response.release_conn()
    except BaseException:
        os.unlink(name)
        raise
    return Path(name), f"sha256:{sha.hexdigest()}", size, etag


def current_etag(client: minio.Minio, uri: str) -> str:
    """The object's ETag (a HEAD request): a cheap way to notice it was overwritten."""
    bucket, key = s3.parse_s3_uri(uri)
    with s3.storage_errors(uri):
        return client.stat_object(bucket, key).etag.strip('"')


def digest_problem(actual: str, expected: str | None, previous: str | None) -> VerificationFailed | None:
    if previous and actual != previous:
        return VerificationFailed("DigestChanged", f"the object changed after it was verified: it was {previous}, "
                                  f"it is now {actual}; artifacts are immutable: restore it or register a new version")
    if expected and actual != expected:
        return VerificationFailed("DigestMismatch", f"digest mismatch: spec.artifact.digest is {expected}, "
                                  f"the object's is {actual}")
    return None


def torchscript_archive_problem(path: Path) -> str | None:
    """Why the file is not a TorchScript archive (a zip with code/, constants.pkl and data.pkl), or None.
    Reads only the zip's central directory."""
    if not zipfile.is_zipfile(path):
        return "not a zip archive, so not a TorchScript file (save the model with torch.jit.save)"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    missing = [e for e in TORCHSCRIPT_ENTRIES
               if not any(n.split("/", 1)[-1].startswith(e) for n in names if "/" in n)]
    if missing:
        hint = " (a torch.save() checkpoint? save the scripted model with torch.jit.save)" if "data.pkl" not in \
            missing else ""
        return f"a zip archive without {', '.join(missing)}: not TorchScript{hint}"
    return None


def probe_env(env: dict[str, str]) -> dict[str, str]:
    """The loader's env: what a Python process needs, nothing else (storage credentials stay with the parent)."""
    return {k: v for k, v in env.items() if k in PROBE_ENV or k.startswith("NSS_WRAPPER_")}


def probe_torchscript(path: Path, signature: dict | None, timeout: float = PROBE_TIMEOUT) -> dict:
    """Load the model in a child process (see probe.py), with an env stripped to `probe_env`, and return what
    it found."""
    try:
        done = subprocess.run([sys.executable, "-m", "mlcycle.modelversion.probe", str(path)],
                              input=json.dumps(signature), capture_output=True, text=True, timeout=timeout,
                              env=probe_env(dict(os.environ)))
    except subprocess.TimeoutExpired as e:
        raise VerificationFailed("ProbeFailed", f"loading the model took longer than {timeout:.0f}s") from e
    if done.returncode < 0:
        # Killed, most likely for memory: the loader needs about the model's size on top of the operator's.
        raise VerificationFailed("ProbeFailed", f"the model loader was killed by signal {-done.returncode} "
                                 "(out of memory? loading needs about the model's size in memory)")
    if done.returncode != 0:
        return {"loadError": f"the loader exited with code {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shape_problem(what: str, expected: list[int], actual: list[int | None]) -> str | None:
    if len(expected) != len(actual):
        return f"{what} has rank {len(actual)} {actual}, the signature says {expected}"
    if any(e >= 0 and a is not None and a != e for e, a in zip(expected, actual, strict=True)):
        return f"{what} has shape {actual}, the signature says {expected}"
    return None


def torchscript_signature_problems(found: dict, signature: dict) -> list[str]:
    args, inputs, outputs = found["arguments"], signature["inputs"], signature["outputs"]
    required = sum(not a["hasDefault"] for a in args)
    if not required <= len(inputs) <= len(args):
        names = ", ".join(a["name"] for a in args)
        return [f"forward({names}) takes {required}..{len(args)} inputs, the signature lists {len(inputs)}"]
    if found.get("runError"):
        return [f"forward() on zero tensors shaped as the signature's inputs failed: {found['runError']}"]
    if found.get("outputs") is None:
        return []
    if len(found["outputs"]) != len(outputs):
        return [f"forward() returns {len(found['outputs'])} output(s), the signature lists {len(outputs)}"]
    problems = []
    for spec, got in zip(outputs, found["outputs"], strict=True):
        if got["dtype"] != spec["dtype"]:
            problems.append(f"output {spec['name']} is {got['dtype']}, the signature says {spec['dtype']}")
        # The probe ran with every variable dimension at 1, so only fixed dimensions can be compared.
        elif problem := _shape_problem(f"output {spec['name']}", spec["shape"], got.get("shape") or []):
            problems.append(problem)
    return problems


def onnx_signature_problems(graph: dict, signature: dict) -> list[str]:
    problems = []
    for side in ("inputs", "outputs"):
        declared = {t["name"]: t for t in graph[side]}
        for spec in signature[side]:
            got = declared.get(spec["name"])
            if got is None:
                problems.append(f"{side[:-1]} {spec['name']} is not in the graph (it has {', '.join(declared)})")
            elif got["dtype"] != spec["dtype"]:
                problems.append(f"{side[:-1]} {spec['name']} is {got['dtype']}, the signature says {spec['dtype']}")
            elif got["shape"] is not None and (p := _shape_problem(f"{side[:-1]} {spec['name']}", spec["shape"],
                                                                   got["shape"])):
                problems.append(p)
    missing = sorted({t["name"] for t in graph["inputs"]} - {t["name"] for t in signature["inputs"]})
    if missing:
        problems.append(f"the graph needs input(s) {', '.join(missing)} that the signature does not list")
    return problems


def check_format(path: Path, fmt: str, signature: dict | None) -> str:
    """A short description of what was checked; raises VerificationFailed when the file does not fit."""
    if fmt == "torchscript":
        if problem := torchscript_archive_problem(path):
            raise VerificationFailed("InvalidFormat", problem)
        found = probe_torchscript(path, signature)
        if found.get("loadError"):
            raise VerificationFailed("InvalidFormat", f"torch.jit.load failed: {found['loadError']}")
        if signature is None:
            raise VerificationFailed("SignatureMissing", "spec.signature is required to serve a torchscript model")
        if problems := torchscript_signature_problems(found, signature):
            raise VerificationFailed("SignatureMismatch", "; ".join(problems))
        return "TorchScript loads; the signature matches forward()"
    if fmt == "onnx":
        try:
            with open(path, "rb") as f:
                graph = onnx.read_graph(f, path.stat().st_size)
        except onnx.NotOnnx as e:
            raise VerificationFailed("InvalidFormat", f"not an ONNX model: {e}") from e
        if signature is None:
            raise VerificationFailed("SignatureMissing", "spec.signature is required to serve an onnx model")
        if problems := onnx_signature_problems(graph, signature):
            raise VerificationFailed("SignatureMismatch", "; ".join(problems))
        return f"ONNX parses (IR {graph['irVersion']}, {graph['nodes']} nodes); the signature matches the graph"
    return f"format {fmt} is not inspected"


def verify(client: minio.Minio, artifact: dict, signature: dict | None, previous_digest: str | None,
           secret: str, directory: str | None = None) -> Verified:
    """Download, hash and check one artifact. `previous_digest` is what an earlier verification found: the
    object must still have it."""
    uri = artifact["uri"]
    with storage_failures(uri, secret):
        path, digest, size, etag = download(client, uri, directory)
    try:
        if failure := digest_problem(digest, artifact.get("digest"), previous_digest):
            failure.etag = etag
            raise failure
        try:
            detail = check_format(path, artifact["format"], signature)
        except VerificationFailed as e:
            e.etag = etag
            raise
    finally:
        path.unlink(missing_ok=True)
    return Verified(digest, size, etag, detail)


def result_message(outcome: Verified | VerificationFailed) -> str:
    """The verification pod's termination message."""
    if isinstance(outcome, Verified):
        doc: dict = {"verified": {"digest": outcome.digest, "size": outcome.size, "etag": outcome.etag,
                                  "detail": outcome.detail[:RESULT_MESSAGE_LIMIT]}}
    else:
        doc = {"failed": {"reason": outcome.reason, "message": outcome.message[:RESULT_MESSAGE_LIMIT]}
               | ({"etag": outcome.etag} if outcome.etag else {})}
    return json.dumps(doc, separators=(",", ":"))


def parse_result(doc: dict | None) -> Verified | VerificationFailed | None:
    """The outcome a verification pod reported, or None when it reported none. Fields are checked: the pod ran
    a model's code, so nothing it says is trusted to fit the status schema."""
    doc = doc or {}
    if isinstance(ok := doc.get("verified"), dict):
        digest, size = ok.get("digest"), ok.get("size")
        if isinstance(digest, str) and re.fullmatch(SHA256_PATTERN, digest) and isinstance(size, int) and size >= 0:
            return Verified(digest, size, str(ok.get("etag") or ""), str(ok.get("detail") or ""))
    if isinstance(failed := doc.get("failed"), dict):
        reason = failed.get("reason") if failed.get("reason") in REASONS else "ProbeFailed"
        return VerificationFailed(reason, str(failed.get("message") or "")[:RESULT_MESSAGE_LIMIT],
                                  str(failed["etag"]) if failed.get("etag") else None)
    return None


# Bookkeeping, in the annotation ANNOTATION: {"for": fingerprint, "etag": ..., "attempts": n, "retryAt": iso}.
# "for" says which spec the result in status belongs to; "etag" lets a periodic HEAD notice an overwritten
# object; "attempts"/"retryAt" schedule the next try after a healable failure.
ANNOTATION = keys.VERIFICATION_ANNOTATION
BACKOFF_BASE_SECONDS = 10
BACKOFF_MAX_SECONDS = 300


def backoff(attempts: int) -> int:
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))


def next_record(outcome: Verified | VerificationFailed, fp: str, previous: dict | None, now: datetime) -> dict:
    if isinstance(outcome, Verified):
        return {"for": fp, "etag": outcome.etag}
    if outcome.healable:
        attempts = 1 + ((previous or {}).get("attempts", 0) if (previous or {}).get("for") == fp else 0)
        return {"for": fp, "attempts": attempts,
                "retryAt": clock.iso(now + timedelta(seconds=backoff(attempts)))}
    return {"for": fp} | ({"etag": outcome.etag} if outcome.etag else {})


def retry_due(record: dict | None, now: datetime) -> bool:
    retry_at = (record or {}).get("retryAt")
    return retry_at is not None and clock.parse(retry_at) <= now


def verification_due(record: dict | None, fp: str, now: datetime) -> bool:
    """Whether to (re)verify: never verified for this spec, or a retry whose time has come."""
    return not record or record.get("for") != fp or retry_due(record, now)
