"""`python -m mlcycle.bench.operator_footprint`: what an operator-only image would need to install.

Imports what `mlcycle run` imports (the operator and every handler) in a fresh process, maps the imported
top-level modules to their installed distributions, and prints the installed size of those distributions
against that of everything installed (torch and its CUDA wheels included), i.e. what the operator image
saves now that models are verified in their own pods and the operator never imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PROBE = ("import json, sys, mlcycle.operator_main, mlcycle.handlers; "
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")


def dist_size(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        path = Path(dist.locate_file(f))
        if path.is_file():
            total += path.stat().st_size
    return total


def main() -> int:
    imported = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                                         check=True).stdout)
    owners = metadata.packages_distributions()
    needed = sorted({d for m in imported for d in owners.get(m, [])} - {"mlcycle"})
    dists = {d.metadata["Name"]: d for d in metadata.distributions()}
    sizes = {name: dist_size(dist) for name, dist in dists.items()}
    operator = sum(sizes.get(n, 0) for n in needed)
    everything = sum(sizes.values())
    torch_like = {n: s for n, s in sizes.items() if n.lower().startswith(("torch", "nvidia", "triton"))}
    mb = 1024 * 1024
    print(f"torch imported by the operator: {'torch' in imported}")
    print(f"distributions the operator imports: {len(needed)}, {operator / mb:.0f} MiB installed")
    print(f"everything installed in this environment: {len(sizes)}, {everything / mb:.0f} MiB")
    print(f"of which torch, nvidia-* (CUDA) and triton: {sum(torch_like.values()) / mb:.0f} MiB")
    print(f"an operator-only image needs {operator / everything:.1%} of the packages' size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
