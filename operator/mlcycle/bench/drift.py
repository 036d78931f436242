"""Benchmark: `mlcycle drift`'s statistics vs Evidently's DataDriftPreset, and memory over a long window.

    .venv/bin/python -m mlcycle.bench.drift [--rows 1000000] [--reference-rows 100000] [--stream-rows 10000000]
        [--evidently-python /tmp/evidently-venv/bin/python]

Data: 20 features (14 numerical of several shapes, 6 categorical integer codes), half of them shifted by
various amounts in the current window, written as Parquet (row groups of 100,000 rows). Each side runs in
a subprocess of its own so that its peak memory (ru_maxrss) is its own:

- mlcycle: the reference's sketches (what the trainer stores in reference_profile.json), then the window
  streamed from the Parquet file newest row group first by columns (workloads.drift.newest_tables) into
  sketches, then stats.compare_all with method auto.
- Evidently: pandas.read_parquet of both, then Report([DataDriftPreset()]) with a DataDefinition naming the
  same numerical and categorical columns, default methods and thresholds (the same per-column choice as
  auto: Wasserstein >= 0.1 for numerical, Jensen-Shannon >= 0.1 for categorical above 1,000 reference rows).

Evidently runs from its own venv (the `bench` extra: it needs packages that clash with the local stack's);
without one, only the mlcycle side runs. Then the window grows to --stream-rows to show memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMERICAL = [f"num_{i:02d}" for i in range(14)]
CATEGORICAL = [f"cat_{i}" for i in range(6)]
ROW_GROUP = 100_000
# Shifts of the current window per feature (in the feature's standard deviations for numerical ones; a
# changed category mix for categorical ones): some clearly drifted, some clearly not.
NUM_SHIFTS = [0.0, 0.0, 0.0, 0.0, 0.03, 0.05, 0.0, 0.2, 0.3, 0.5, 1.0, 0.25, 0.0, 0.4]
CAT_SHIFTED = [False, False, True, False, True, False]


def _numerical(rng: np.random.Generator, i: int, n: int, shift: float) -> np.ndarray:
    shape = i % 4
    if shape == 0:
        x = rng.normal(10.0 * i, 1.0 + i, n)
        return x + shift * (1.0 + i)
    if shape == 1:
        x = rng.lognormal(0.0, 0.6, n)
        return x + shift * 0.75
    if shape == 2:
        return rng.uniform(-5, 5, n) + shift * 2.9
    x = np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(3, 1.0, n))  # bimodal
    return x + shift * 2.4


def _categorical(rng: np.random.Generator, i: int, n: int, shifted: bool) -> np.ndarray:
    k = 3 + i  # 3..8 categories
    p = np.linspace(1.0, 2.0, k)
    if shifted:
        p = p[::-1] ** 2
    return rng.choice(k, n, p=p / p.sum()).astype(np.int64)


def chunk(rng: np.random.Generator, n: int, current: bool) -> pa.Table:
    columns = {name: pa.array(_numerical(rng, i, n, NUM_SHIFTS[i] if current else 0.0))
               for i, name in enumerate(NUMERICAL)}
    columns |= {name: pa.array(_categorical(rng, i, n, current and CAT_SHIFTED[i]))
                for i, name in enumerate(CATEGORICAL)}
    return pa.table(columns)


def write(path: Path, rows: int, current: bool, seed: int) -> None:
    """Written a row group at a time, so even 10M rows never sit in memory."""
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, ROW_GROUP):
        table = chunk(rng, min(ROW_GROUP, rows - start), current)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    writer.close()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- the two sides, each run in its own process --------------------------------------------------


def side_mlcycle(reference: Path, current: Path, window: int) -> dict:
    from mlcycle.drift import stats
    from mlcycle.workloads.drift import newest_tables

    features = NUMERICAL + CATEGORICAL
    baseline = _rss_mb()
    started = time.perf_counter()
    table = pq.read_table(reference)
    references = {f: stats.Sketch.of_reference(table.column(f).to_numpy().astype(np.float64)) for f in features}
    del table
    profiled = time.perf_counter()
    currents = {f: references[f].empty_like() for f in features}
    rows = 0
    for part in newest_tables([lambda: pq.ParquetFile(current)], features, window):
        for f in features:
            currents[f].add(part.column(f).to_numpy())
        rows += part.num_rows
    read = time.perf_counter()
    result = stats.compare_all(references, currents, features)
    done = time.perf_counter()
    return {
        "rows": rows,
        "reference_seconds": profiled - started,
        "window_seconds": read - profiled,
        "compare_seconds": done - read,
        "seconds": done - profiled,
        "peak_mb": _peak_mb(),
        "baseline_mb": baseline,
        "features": {f.feature: {"method": f.method, "value": f.p_value if f.p_value is not None else f.statistic,
                                 "drifted": f.drifted} for f in result.features},
    }


_P_VALUE_NAMES = {"K-S p_value": "ks", "chi-square p_value": "chi2", "Z-test p_value": "z"}
_DISTANCE_NAMES = {"Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
                   "PSI": "psi"}


def side_evidently(reference: Path, current: Path, window: int) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    baseline = _rss_mb()
    started = time.perf_counter()
    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current).tail(window)
    loaded = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERICAL, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    done = time.perf_counter()
    features = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        name, value, threshold = config["method"], metric["value"], config["threshold"]
        if name in _P_VALUE_NAMES:
            method = _P_VALUE_NAMES[name]
            drifted = value <= threshold if method == "ks" else value < threshold
        else:
            method, drifted = _DISTANCE_NAMES.get(name, name), value >= threshold
        features[config["column"]] = {"method": method, "value": value, "drifted": bool(drifted)}
    return {"rows": len(cur), "load_seconds": loaded - started, "seconds": done - loaded, "peak_mb": _peak_mb(),
            "baseline_mb": baseline, "features": features}


def run_side(python: str, side: str, reference: Path, current: Path, window: int) -> dict:
    command = [python, __file__, "--side", side, "--reference", str(reference), "--current", str(current),
               "--window", str(window)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])} if side == "mlcycle" else None
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=["mlcycle", "evidently"])
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--current", type=Path)
    parser.add_argument("--window", type=int)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--stream-rows", type=int, default=10_000_000)
    parser.add_argument("--evidently-python", default="/tmp/evidently-venv/bin/python")
    parser.add_argument("--dir", type=Path, default=None, help="where the Parquet files go (a temp dir)")
    args = parser.parse_args(argv)
    if args.side:  # a child process: one side, JSON on the last line
        side = side_mlcycle if args.side == "mlcycle" else side_evidently
        print(json.dumps(side(args.reference, args.current, args.window)))
        return 0

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="mlcycle-drift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    reference, current = workdir / "reference.parquet", workdir / "current.parquet"
    print(f"cores: {os.cpu_count()}, load average at start: {load_average()}")
    print(f"writing {args.reference_rows:,} reference and {args.rows:,} current rows x 20 features to {workdir}")
    write(reference, args.reference_rows, current=False, seed=1)
    write(current, args.rows, current=True, seed=2)

    ours = run_side(sys.executable, "mlcycle", reference, current, args.rows)
    print(f"mlcycle drift: window {ours['rows']:,} rows read and summarised in {ours['window_seconds']:.2f} s, "
          f"compared in {ours['compare_seconds']:.3f} s (reference sketches {ours['reference_seconds']:.2f} s); "
          f"peak RSS {ours['peak_mb']:.0f} MB ({ours['baseline_mb']:.0f} MB after imports)")
    if Path(args.evidently_python).exists():
        theirs = run_side(args.evidently_python, "evidently", reference, current, args.rows)
        print(f"Evidently DataDriftPreset: {theirs['seconds']:.2f} s after {theirs['load_seconds']:.2f} s of "
              f"pandas.read_parquet; peak RSS {theirs['peak_mb']:.0f} MB "
              f"({theirs['baseline_mb']:.0f} MB after imports)")
        agree = [f for f in ours["features"] if ours["features"][f]["drifted"] == theirs["features"][f]["drifted"]]
        same_method = [f for f in ours["features"] if ours["features"][f]["method"] == theirs["features"][f]["method"]]
        print(f"decisions agree on {len(agree)} of {len(ours['features'])} features; same method on "
              f"{len(same_method)}; speed-up {theirs['seconds'] / ours['seconds']:.1f}x (window read + statistics "
              f"vs the report alone), {(theirs['seconds'] + theirs['load_seconds']) / ours['seconds']:.1f}x "
              "including Evidently's Parquet load")
        print(f"{'feature':<8} {'method':<14} {'mlcycle':>10} {'Evidently':>10}  drifted (mlcycle/Evidently)")
        for f, mine in ours["features"].items():
            other = theirs["features"][f]
            print(f"{f:<8} {mine['method']:<14} {mine['value']:>10.4f} {other['value']:>10.4f}  "
                  f"{mine['drifted']}/{other['drifted']}")
    else:
        print(f"no Evidently venv at {args.evidently_python}: compare with `--evidently-python`")

    if args.stream_rows:
        print(f"writing a {args.stream_rows:,}-row window")
        long = workdir / "long.parquet"
        write(long, args.stream_rows, current=True, seed=3)
        for window in sorted({args.rows, args.stream_rows // 2, args.stream_rows}):
            run = run_side(sys.executable, "mlcycle", reference, long, window)
            print(f"mlcycle drift, window {window:>12,} rows: {run['seconds']:6.2f} s, "
                  f"peak RSS {run['peak_mb']:.0f} MB")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
