"""The KServe v2 (Open Inference Protocol) REST bodies, decoded into numpy arrays for the payload log.

A body is a JSON document, optionally followed by binary tensor data (Triton's binary extension, what
tritonclient sends by default): the `Inference-Header-Content-Length` header gives the JSON part's size,
and each tensor with `parameters.binary_data_size` takes that many bytes of the rest, in order.

Written here because tritonclient decodes only response bodies (its InferResult), and the log needs
request bodies decoded the same way: one small decoder serves both.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
INFER_PATH = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")

_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


class PayloadError(ValueError):
    """A body this module cannot decode; the request is still served, just not logged."""


def json_part(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON document, binary data) of a body, split by the `Inference-Header-Content-Length` value."""
    if not header_length:
        return body, b""
    try:
        n = int(header_length)
    except ValueError as e:
        raise PayloadError(f"{HEADER_LENGTH} is not a number: {header_length!r}") from e
    if not 0 <= n <= len(body):
        raise PayloadError(f"{HEADER_LENGTH} {n} outside the body of {len(body)} bytes")
    return body[:n], body[n:]


def request_id(document: bytes) -> str | None:
    """The request's own `id` field. The document is parsed only when it can contain one, so requests
    without an id (the common case) cost no JSON parse on the request path."""
    if b'"id"' not in document:
        return None
    try:
        value = json.loads(document).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _bytes_tensor(raw: bytes) -> np.ndarray:
    """BYTES in binary form: each element is a 4-byte little-endian length and that many bytes."""
    items, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + n].decode("utf-8", "replace"))
        offset += 4 + n
    return np.array(items, dtype=object)


def tensors(document: dict[str, Any], binary: bytes, key: str) -> dict[str, np.ndarray]:
    """The tensors listed under `key` ("inputs" or "outputs"), by name, in their declared shapes."""
    out, offset = {}, 0
    for t in document.get(key) or []:
        try:
            name, datatype, shape = t["name"], t["datatype"], [int(d) for d in t["shape"]]
        except (KeyError, TypeError, ValueError) as e:
            raise PayloadError(f"{key} entry without name/datatype/shape: {e}") from e
        size = (t.get("parameters") or {}).get("binary_data_size")
        try:
            if size is not None:
                raw = binary[offset : offset + int(size)]
                offset += int(size)
                arr = _bytes_tensor(raw) if datatype == "BYTES" else np.frombuffer(raw, _DTYPES[datatype])
            elif datatype == "BYTES":
                arr = np.array(t["data"], dtype=object)
            else:
                arr = np.asarray(t["data"], dtype=_DTYPES[datatype])
            out[name] = arr.reshape(shape)
        except (KeyError, ValueError, TypeError) as e:
            raise PayloadError(f"{key} tensor {name!r} ({datatype} {shape}): {e}") from e
    return out


def decode(body: bytes, header_length: str | None, key: str) -> dict[str, np.ndarray]:
    """The `key` tensors of a whole request or response body."""
    document, binary = json_part(body, header_length)
    try:
        parsed = json.loads(document)
    except ValueError as e:
        raise PayloadError(f"body is not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise PayloadError("body is not a JSON object")
    return tensors(parsed, binary, key)


def rows(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays side by side as one [rows, columns] matrix: the first dimension of each is the row
    (the batch), the rest is flattened into columns, in order."""
    if not arrays:
        raise PayloadError("no tensors")
    flat = [a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1) for a in arrays]
    if len({f.shape[0] for f in flat}) != 1:
        raise PayloadError(f"tensors disagree on the number of rows: {[f.shape[0] for f in flat]}")
    return flat[0] if len(flat) == 1 else np.concatenate(flat, axis=1)
