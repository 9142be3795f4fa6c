"""Juno Data beside Ray Data: the same script, the same work, run by each engine's python.

    .venv/bin/python benchmarks/data/bench_data.py --engine juno
    /work/ray-venv/bin/python benchmarks/data/bench_data.py --engine ray     # Ray in its own venv
    .venv/bin/python benchmarks/data/bench_data.py --compare /work/ray-venv/bin/python   # both, alternated

Each row runs once to warm up, then ``--repeat`` times; it prints the median rows per second
(and the pandas figure where one exists, measured in the same process). The code of every row
is the same for both engines: only ``import juno as ray`` differs, which is the point.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PIPELINE_ROWS = 2_000_000
TABLE_ROWS = 1_000_000
POOL_ROWS = 200_000
PARQUET_FILES = 8


def engine(name: str):
    if name == "ray":
        import ray
        import ray.data

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        return ray
    import juno as ray
    import juno.data

    ray.init(num_cpus=2, include_dashboard=False)
    juno.data.DataContext.get_current().enable_progress_bars = False
    return ray


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: workers started, code imported
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rows_pipeline(ray) -> int:
    """range -> map_batches (x * 2) -> batch filter (multiples of 3) -> sum."""
    ds = (ray.data.range(PIPELINE_ROWS)
          .map_batches(lambda b: {"id": b["id"] * 2})
          .map_batches(lambda b: {"id": b["id"][b["id"] % 3 == 0]}))
    kept = -(-PIPELINE_ROWS // 3)  # ids 0, 3, 6 ...: their doubles sum to 3 k (k - 1)
    total = ds.sum("id")
    assert total == 3 * kept * (kept - 1), total
    return PIPELINE_ROWS


def make_parquet(folder: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    per = TABLE_ROWS // PARQUET_FILES
    for i in range(PARQUET_FILES):
        ids = np.arange(i * per, (i + 1) * per)
        pq.write_table(pa.table({"id": ids, "value": ids * 0.5, "key": ids % 100}), f"{folder}/part-{i}.parquet")


def rows_parquet(ray, src: str, dst: str) -> int:
    """read_parquet -> map_batches (a derived column) -> write_parquet."""
    shutil.rmtree(dst, ignore_errors=True)

    def derive(batch):
        batch["value2"] = batch["value"] * 2
        return batch

    ray.data.read_parquet(src).map_batches(derive).write_parquet(dst)
    return TABLE_ROWS


def table(ray):
    keys = np.random.default_rng(0).integers(0, 100, TABLE_ROWS)
    values = np.random.default_rng(1).random(TABLE_ROWS)
    import pandas as pd

    frame = pd.DataFrame({"key": keys, "value": values})
    return frame, ray.data.from_pandas(frame).materialize()


def rows_sort(ds) -> int:
    ds.sort("value").materialize()
    return TABLE_ROWS


def rows_groupby(ds) -> int:
    out = ds.groupby("key").sum("value").to_pandas()
    assert len(out) == 100
    return TABLE_ROWS


class Scale:
    def __init__(self):
        self.factor = 3

    def __call__(self, batch):
        return {"id": batch["id"] * self.factor}


def rows_pool(ray, actors: int) -> int:
    """map_batches through a pool of ``actors`` actors of one CPU each."""
    ray.data.range(POOL_ROWS).map_batches(Scale, concurrency=actors, batch_size=1024, num_cpus=1).materialize()
    return POOL_ROWS


ROWS = {
    "pipeline 2M rows (range, map_batches, batch filter, sum)": "pipeline",
    "parquet read, map_batches, write (1M rows)": "parquet",
    "map_batches on a pool of 1 actor (200k rows)": "pool1",
    "map_batches on a pool of 2 actors on 2 CPUs (200k rows)": "pool2",
    "sort 1M rows": "sort",
    "groupby/sum 1M rows (100 keys)": "groupby",
    "pandas: sort 1M rows": "pandas_sort",
    "pandas: groupby/sum 1M rows": "pandas_groupby",
}


def run(name: str, repeat: int, only: list[str]) -> dict:
    ray = engine(name)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = f"{tmp}/in", f"{tmp}/out"
        os.makedirs(src)
        make_parquet(src)
        frame, ds = table(ray) if {"sort", "groupby", "pandas_sort", "pandas_groupby"} & set(only) else (None, None)
        work = {"pipeline": lambda: rows_pipeline(ray), "parquet": lambda: rows_parquet(ray, src, dst),
                "pool1": lambda: rows_pool(ray, 1), "pool2": lambda: rows_pool(ray, 2),
                "sort": lambda: rows_sort(ds), "groupby": lambda: rows_groupby(ds),
                "pandas_sort": lambda: len(frame.sort_values("value")),
                "pandas_groupby": lambda: len(frame) + 0 * len(frame.groupby("key")["value"].sum())}
        for label, key in ROWS.items():
            if key in only:
                fn = work[key]
                results[label] = (TABLE_ROWS if key.startswith("pandas") else fn()) / timed(fn, repeat)
                print(json.dumps({label: results[label]}), flush=True)
    ray.shutdown()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=["juno", "ray"], default="juno")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rows", default=",".join(ROWS.values()), help=f"which rows: {', '.join(ROWS.values())}")
    p.add_argument("--compare", metavar="RAY_PYTHON", help="run Juno here and Ray with this python, alternated")
    p.add_argument("--rounds", type=int, default=2, help="with --compare: how many times each engine runs")
    p.add_argument("--row-timeout", type=float, default=300, help="with --compare: seconds before a row counts "
                                                                 "as not finishing")
    args = p.parse_args()
    only = args.rows.split(",")
    if not args.compare:
        for label, value in run(args.engine, args.repeat, only).items():
            print(f"{args.engine:5} {label:58} {value:14,.0f} rows/s")
        return
    figures: dict[str, dict[str, list]] = {"juno": {}, "ray": {}}
    for _ in range(args.rounds):
        for key in only:  # each row in a process of its own, so a row that hangs costs only itself
            for name, python in (("juno", sys.executable), ("ray", args.compare)):
                label = next(lbl for lbl, k in ROWS.items() if k == key)
                try:
                    out = subprocess.run([python, __file__, "--engine", name, "--repeat", str(args.repeat),
                                          "--rows", key], capture_output=True, text=True,
                                         timeout=args.row_timeout).stdout
                    value = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])[label]
                except (subprocess.TimeoutExpired, IndexError, ValueError):
                    value = None  # did not finish (a hang) or failed; Juno's cluster dies with its driver
                    if name == "ray":  # Ray's outlives it: stop it (only this benchmark runs Ray here)
                        subprocess.run([os.path.join(os.path.dirname(python), "ray"), "stop", "--force"],
                                       capture_output=True, timeout=120)
                figures[name].setdefault(label, []).append(value)
                print(f"{name:5} {label:58} {'did not finish' if value is None else round(value):>14}", file=sys.stderr,
                      flush=True)
    print("| Row | Juno rows/s | Ray Data rows/s | Juno / Ray |\n|---|---|---|---|")
    for label, values in figures["juno"].items():
        print(f"| {label} | {_median(values)} | {_median(figures['ray'].get(label, []))} | "
              f"{_ratio(values, figures['ray'].get(label, []))} |")


def _median(values: list) -> str:
    done = [v for v in values if v is not None]
    if not done:
        return "did not finish" if values else "-"
    return f"{statistics.median(done):,.0f}" + (f" ({len(values) - len(done)} of {len(values)} did not finish)"
                                                 if len(done) < len(values) else "")


def _ratio(juno_values: list, ray_values: list) -> str:
    juno_done = [v for v in juno_values if v is not None]
    ray_done = [v for v in ray_values if v is not None]
    if juno_done and ray_values and not ray_done:
        return "Ray did not finish"
    if not juno_done or not ray_done:
        return "-"
    return f"{statistics.median(juno_done) / statistics.median(ray_done):.2f}x"


if __name__ == "__main__":
    main()
