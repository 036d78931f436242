"""Triton python-backend model that serves a TorchScript artifact with torch (`runtime.backend: python`).

`mlcycle fetch-model` copies this file to `<model>/1/model.py` next to `model.pt`; Triton's python stub imports
it. Inputs and outputs are taken from the generated config.pbtxt in order, so the same file serves any
signature. The requests Triton hands over together (dynamic batching) run as one forward pass.
"""

import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        here = os.path.join(args["model_repository"], args["model_version"])
        self.device = torch.device("cuda" if args.get("model_instance_kind") == "GPU" else "cpu")
        self.model = torch.jit.load(os.path.join(here, "model.pt"), map_location=self.device).eval()

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs] for r in requests]
        sizes = [a[0].shape[0] if a[0].ndim else 1 for a in arrays]
        batch = [torch.from_numpy(np.concatenate([a[i] for a in arrays])).to(self.device)
                 for i in range(len(self.inputs))]
        with torch.inference_mode():
            result = self.model(*batch)
        results = result if isinstance(result, (tuple, list)) else (result,)
        results = [r.detach().cpu().numpy() for r in results]
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(name, out[start:start + size].astype(dtype))
                       for (name, dtype), out in zip(self.outputs, results, strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
