"""Rows/s of Juno Data's groupby/sum and sort over 1M rows, beside pandas on the same machine.

    .venv/bin/python benchmarks/data/groupby_sort.py                  # 1M rows, 1000 groups, 8 blocks
    .venv/bin/python benchmarks/data/groupby_sort.py --rows 4000000 --blocks 16 --num-cpus 4

The input (an int64 key with ``--groups`` distinct values and a float64 value column) is in the
object store before the clock starts, as ``blocks`` blocks; each timed run executes the whole
plan and keeps its output in the store (``materialize()``), so it counts the shuffle's tasks and
the output blocks' writes. pandas runs the same operation on one DataFrame in this process. The
issue's target: groupby/sum within 5x of pandas. Ray Data's figures are measured separately (see
benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm: workers started, functions exported
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--num-cpus", type=int, default=None, help="the local cluster's CPUs (default: the machine's)")
    args = parser.parse_args()

    import juno
    import juno.data as rd
    from juno.data.all_to_all import api

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"k": rng.integers(0, args.groups, args.rows), "v": rng.random(args.rows)})
    n, b = args.rows, args.blocks
    juno.init(num_cpus=args.num_cpus)
    try:
        ds = rd.from_pandas([frame.iloc[i * n // b:(i + 1) * n // b].copy() for i in range(b)]).materialize()
        rows = {
            "groupby(k).sum(v)": (lambda: api.groupby(ds, "k").sum("v").materialize(),
                                  lambda: frame.groupby("k")["v"].sum()),
            "sort(v)": (lambda: api.sort(ds, "v").materialize(), lambda: frame.sort_values("v")),
        }
        print(f"{args.rows:,} rows, {args.groups:,} groups, {args.blocks} blocks, "
              f"{int(juno.cluster_resources().get('CPU', 0))} CPUs; median of {args.repeat}")
        print(f"{'operation':<20} {'Juno rows/s':>14} {'pandas rows/s':>14} {'Juno s':>8} {'pandas s':>9} "
              f"{'Juno/pandas':>12}")
        for name, (juno_fn, pandas_fn) in rows.items():
            juno_s = _median_seconds(juno_fn, args.repeat)
            pandas_s = _median_seconds(pandas_fn, args.repeat)
            print(f"{name:<20} {n / juno_s:>14,.0f} {n / pandas_s:>14,.0f} {juno_s:>8.3f} {pandas_s:>9.3f} "
                  f"{juno_s / pandas_s:>11.1f}x")
    finally:
        juno.shutdown()


if __name__ == "__main__":
    main()
