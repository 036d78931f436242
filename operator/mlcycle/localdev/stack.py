"""`mlcycle stack up|down [cluster|minio]` and `mlcycle stack tools`: the local stack from the shell."""

from __future__ import annotations

import argparse
import time

from mlcycle.localdev import binaries, cluster, minio

PARTS = {"cluster": (cluster.up, cluster.down), "minio": (minio.up, minio.down)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mlcycle stack")
    parser.add_argument("action", choices=["up", "down", "tools"])
    parser.add_argument("parts", nargs="*", choices=[[], *PARTS], default=[])
    args = parser.parse_args(argv)
    if args.action == "tools":
        started = time.monotonic()
        for name, path in binaries.ensure_all().items():
            print(f"{name:<24} {path}")
        print(f"tools ready in {time.monotonic() - started:.1f}s")
        return 0
    for part in args.parts or list(PARTS):
        start, stop = PARTS[part]
        if args.action == "up":
            started = time.monotonic()
            result = start()
            print(f"{part} up in {time.monotonic() - started:.1f}s: {result}")
        else:
            stop()
            print(f"{part} down")
    return 0
