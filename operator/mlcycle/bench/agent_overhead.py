"""Benchmark: what the serving agent adds to a request, against calling Triton directly.

    .venv/bin/python -m mlcycle.bench.agent_overhead [--seconds 5] [--concurrency 1 8 32] [--rows 1]

Starts the local tritonserver with a small python-backend model (4 features, x * 2), two agents in front
of it (`mlcycle agent` as a serving pod runs it): one with logging off, one logging every request
(sampleRate 1) to the local MinIO (started if needed). At each concurrency, `c` client tasks each send
KServe v2 JSON requests back to back over keep-alive connections for `--seconds` (after a 1 s warm-up),
to Triton directly, then through each agent; the three targets take turns at each concurrency so that
a change in the machine's load hits all of them. Prints p50/p99 latency and requests/s per target and
the agents' added p50/p99 and throughput ratio against the direct baseline, as a Markdown table.
The client runs in this process on the same cores as Triton and the agent: on a small machine every
number includes that contention (say what else was running when you report them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np

MODEL = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT__0", pb_utils.get_input_tensor_by_name(r, "INPUT__0").as_numpy() * 2)]) for r in requests]
'''
CONFIG = """
name: "bench"
backend: "python"
max_batch_size: 64
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""
FEATURES = '["a", "b", "c", "d"]'


async def load(url: str, body: bytes, concurrency: int, seconds: float) -> tuple[list[float], float]:
    """Latencies (s) of every request completed in `seconds` by `concurrency` clients, and the elapsed time."""
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def client(until: float, record: bool) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")
                if record:
                    latencies.append(time.perf_counter() - started)

        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(client(warm, False) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds, True) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rows", type=int, default=1, help="input rows per request")
    args = parser.parse_args(argv)

    from mlcycle.localdev import minio, triton
    from mlcycle.localdev.processes import start_agent

    work = Path(tempfile.mkdtemp(prefix="mlcycle-bench-agent-"))
    (work / "repo" / "bench" / "1").mkdir(parents=True)
    (work / "repo" / "bench" / "config.pbtxt").write_text(CONFIG)
    (work / "repo" / "bench" / "1" / "model.py").write_text(MODEL)
    store = minio.up()
    bucket = store.make_bucket("mlcycle-bench")
    server = triton.start(work / "repo", work / "tritonserver.log")
    common = {"MLCYCLE_TRITON_URL": f"http://{server.http_url}", "MLCYCLE_MODEL_NAME": "bench",
              "MLCYCLE_MODEL_VERSION": "bench-v1", "MLCYCLE_FEATURE_NAMES": FEATURES}
    s3_env = {"MLCYCLE_S3_ENDPOINT": store.endpoint, "AWS_ACCESS_KEY_ID": store.access_key,
              "AWS_SECRET_ACCESS_KEY": store.secret_key}
    plain = start_agent(common, work / "agent-plain.log")
    logging_ = start_agent(common | s3_env | {"MLCYCLE_LOG_PREFIX": f"s3://{bucket}/agent-bench/{uuid.uuid4().hex}",
                                              "MLCYCLE_LOG_SAMPLE_RATE": "1"}, work / "agent-logging.log")
    targets = {"Triton directly": f"http://{server.http_url}", "agent, logging off": plain.url,
               "agent, sampleRate 1": logging_.url}
    x = np.arange(args.rows * 4, dtype=np.float32).reshape(args.rows, 4)
    body = json.dumps({"inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [args.rows, 4],
                                   "data": x.ravel().tolist()}]}).encode()
    results: dict[tuple[str, int], tuple[float, float, float]] = {}
    try:
        for c in args.concurrency:
            for name, url in targets.items():
                latencies, elapsed = asyncio.run(load(f"{url}/v2/models/bench/infer", body, c, args.seconds))
                p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
                results[name, c] = (p50, p99, len(latencies) / elapsed)
                print(f"# {name:<20} c={c:<3} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                      f"{results[name, c][2]:7.0f} req/s", flush=True)
        logged = next((float(line.split()[-1]) for line in logging_.metrics_text().splitlines()
                       if line.startswith("mlcycle_agent_log_records_total")), 0.0)
    finally:
        for process in (plain, logging_):
            process.stop()
        server.stop()

    print("\n| clients | target | p50 ms | p99 ms | req/s | added p50 | added p99 | throughput vs direct |")
    print("|---|---|---|---|---|---|---|---|")
    for c in args.concurrency:
        base = results["Triton directly", c]
        for name in targets:
            p50, p99, rps = results[name, c]
            added = " | | " if name == "Triton directly" else \
                f"{p50 - base[0]:+.2f} ms | {p99 - base[1]:+.2f} ms | {rps / base[2]:.0%}"
            print(f"| {c} | {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {added} |")
    print(f"\nrows written to MinIO by the logging agent: {logged:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
