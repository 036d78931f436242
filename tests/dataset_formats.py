"""The same rows in each dataset format the trainer reads, for the e2e tests."""

import json

import pyarrow
import pyarrow.csv
import pyarrow.parquet


def as_format(csv_data: bytes, fmt: str) -> bytes:
    """CSV rows as `fmt`: csv (unchanged), parquet or jsonl."""
    if fmt == "csv":
        return csv_data
    table = pyarrow.csv.read_csv(pyarrow.py_buffer(csv_data))
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in table.to_pylist()).encode()
    out = pyarrow.BufferOutputStream()
    pyarrow.parquet.write_table(table, out)
    return out.getvalue().to_pybytes()
