"""Just enough of ONNX to check a file: a reader of the protobuf wire format that walks ModelProto → graph →
inputs/outputs and seeks past everything else (node lists, weights), so memory stays constant whatever the
file's size and no onnx/protobuf package is needed. Field numbers are those of onnx.proto3."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

# TensorProto.DataType -> Triton's type names (without TYPE_).
ELEM_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
              9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16"}
MAX_IR_VERSION = 100


class NotOnnx(ValueError):
    pass


def _varint(f: BinaryIO) -> int:
    shift = result = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise NotOnnx("truncated varint")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise NotOnnx("varint longer than 10 bytes")


def _fields(f: BinaryIO, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, wire type, value) of each field up to `end`; for length-delimited fields the value is
    the payload length and the file is positioned at the payload (the caller may read it or not)."""
    while f.tell() < end:
        key = _varint(f)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise NotOnnx("field number 0")
        if wire == 0:
            yield number, wire, _varint(f)
        elif wire in (1, 5):
            f.seek(8 if wire == 1 else 4, 1)
            yield number, wire, 0
        elif wire == 2:
            length = _varint(f)
            start = f.tell()
            if start + length > end:
                raise NotOnnx("field runs past the end of its message")
            yield number, wire, length
            f.seek(start + length)
        else:
            raise NotOnnx(f"unsupported wire type {wire}")
    if f.tell() != end:
        raise NotOnnx("message runs past its end")


def _message(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Fields of a small in-memory message; length-delimited values are the payload bytes."""
    import io

    f = io.BytesIO(data)
    for number, wire, value in _fields(f, len(data)):
        yield number, wire, f.read(value) if wire == 2 else value


def _tensor_type(data: bytes) -> tuple[str | None, list[int | None] | None]:
    dtype, shape = None, None
    for number, wire, value in _message(data):
        if number == 1 and wire == 0:
            dtype = ELEM_TYPES.get(value, f"onnx type {value}")
        elif number == 2 and wire == 2:
            shape = []
            for n, w, dim in _message(value):
                if n == 1 and w == 2:
                    fixed = [v for dn, dw, v in _message(dim) if dn == 1 and dw == 0]
                    shape.append(fixed[0] if fixed else None)  # None: a symbolic or unknown dimension
    return dtype, shape


def _value_info(data: bytes) -> dict:
    info: dict = {"name": None, "dtype": None, "shape": None}
    for number, wire, value in _message(data):
        if number == 1 and wire == 2:
            info["name"] = value.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            for n, w, v in _message(value):
                if n == 1 and w == 2:  # TypeProto.tensor_type
                    info["dtype"], info["shape"] = _tensor_type(v)
    return info


def _tensor_name(f: BinaryIO, end: int) -> str | None:
    name = None
    for number, wire, value in _fields(f, end):
        if number == 8 and wire == 2:
            name = f.read(value).decode("utf-8", "replace")
    return name


def read_graph(f: BinaryIO, size: int) -> dict:
    """{irVersion, nodes, inputs, outputs} of an ONNX ModelProto; inputs leave out initializers (weights that
    older exporters list as inputs). Raises NotOnnx when the bytes are not a ModelProto."""
    ir_version, graph = None, None
    for number, wire, value in _fields(f, size):
        if number == 1 and wire == 0:
            ir_version = value
        elif number == 7 and wire == 2:
            graph = {"nodes": 0, "inputs": [], "outputs": [], "initializers": set()}
            for n, w, v in _fields(f, f.tell() + value):
                if n == 1 and w == 2:
                    graph["nodes"] += 1
                elif n == 5 and w == 2:
                    graph["initializers"].add(_tensor_name(f, f.tell() + v))
                elif n in (11, 12) and w == 2:
                    graph["inputs" if n == 11 else "outputs"].append(_value_info(f.read(v)))
    if ir_version is None or not 1 <= ir_version <= MAX_IR_VERSION:
        raise NotOnnx("no ModelProto.ir_version")
    if graph is None or not graph["outputs"]:
        raise NotOnnx("no graph with outputs")
    inputs = [i for i in graph["inputs"] if i["name"] not in graph["initializers"]]
    return {"irVersion": ir_version, "nodes": graph["nodes"], "inputs": inputs, "outputs": graph["outputs"]}
