"""`python -m mlcycle.modelversion.probe MODEL_FILE` (stdin: the signature as JSON): loads a TorchScript file
and calls forward once with zero tensors shaped by the signature (-1 becomes 1). Prints JSON on stdout.

It runs in a child process of the verification pod (`mlcycle verify`), with an env that holds no credentials.
"""

from __future__ import annotations

import json
import sys

DTYPES = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32",
          "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64", "BF16": "bfloat16"}
TRITON_DTYPES = {v: k for k, v in DTYPES.items()}


def probe(path: str, signature: dict | None) -> dict:
    import torch

    model = torch.jit.load(path, map_location="cpu")
    args = [{"name": a.name, "hasDefault": a.has_default_value()} for a in model.forward.schema.arguments[1:]]
    result: dict = {"arguments": args, "outputs": None, "runError": None}
    inputs = (signature or {}).get("inputs") or []
    if not inputs or any(i["dtype"] not in DTYPES for i in inputs):
        return result  # nothing to run with (e.g. STRING inputs): the argument check is all we can do
    tensors = [torch.zeros([max(d, 1) for d in i["shape"]], dtype=getattr(torch, DTYPES[i["dtype"]]))
               for i in inputs]
    try:
        with torch.no_grad():
            out = model(*tensors)
    except Exception as e:  # the model's own error is the finding
        result["runError"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        return result
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    result["outputs"] = [{"dtype": TRITON_DTYPES.get(str(o.dtype).removeprefix("torch."), str(o.dtype)),
                          "shape": list(o.shape)} if isinstance(o, torch.Tensor) else {"dtype": type(o).__name__}
                         for o in outs]
    return result


def main() -> int:
    signature = json.loads(sys.stdin.read() or "null")
    try:
        result = probe(sys.argv[1], signature)
    except Exception as e:
        result = {"loadError": f"{type(e).__name__}: {str(e).strip()[:500]}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
