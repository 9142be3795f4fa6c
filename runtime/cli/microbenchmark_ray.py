"""Ray's side of ``juno microbenchmark --compare-ray``: run by the python of Ray's own environment.

It never imports juno. Ray's rows are the work Ray's own ``ray._private.ray_perf.main``
defines (what ``ray microbenchmark`` runs), with its ``timeit`` replaced by the
``Bench`` of runtime/cli/bench_timing.py, so both columns are timed by the same code,
and only the requested rows are timed (``ray_perf.main`` stops after the last one).
The store rows Ray's microbenchmark lacks run through ``bench_store_rows``, the code
Juno's side runs. Each row prints ``row-start: <name>`` and then Ray's
``<name> per second <mean> +- <std>`` line for the supervisor.

    <ray-venv>/bin/python runtime/cli/microbenchmark_ray.py --rows-json '["1:1 actor calls sync"]'
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys


def _load_timing():
    """runtime/cli/bench_timing.py, loaded by path (juno is not installed in Ray's environment)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_timing.py")
    spec = importlib.util.spec_from_file_location("juno_bench_timing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


timing = _load_timing()


class _AllRowsDone(Exception):
    """Raised from the patched timeit once every requested Ray row has run."""


def run_ray_perf(bench, rows: list[str]) -> None:
    """The requested rows of Ray's own microbenchmark, timed by ``bench``."""
    import ray
    from ray._private import ray_perf

    left = [name for name in rows if name not in timing.STORE_ROWS and name != timing.TRANSFER_CHUNKED]
    if not left:
        return

    def timeit(name, fn, multiplier=1, warmup_time_sec=None):
        if name in left:
            bench.timeit(name, fn, multiplier)
            left.remove(name)
            if not left:
                raise _AllRowsDone
        return [None]

    ray_perf.timeit = timeit
    ray_perf.client_microbenchmark_main = lambda results=None: None  # "client: ..." rows: not Juno's
    try:
        ray_perf.main()
    except _AllRowsDone:
        pass
    finally:
        ray.shutdown()


def run_store_rows(bench, rows: list[str]) -> None:
    import ray

    if not any(name in timing.STORE_ROWS for name in rows):
        return
    ray.init()
    try:
        @ray.remote
        def nbytes(arr):
            return arr.nbytes

        timing.bench_store_rows(bench, ray.put, ray.get, nbytes)
    finally:
        ray.shutdown()


def run_cross_node(bench, rows: list[str]) -> None:
    """The chunked transfer row on Ray's side: two raylets on this machine (ray.cluster_utils)."""
    import ray
    from ray.cluster_utils import Cluster

    if timing.TRANSFER_CHUNKED not in rows:
        return
    size = timing.transfer_bytes()
    store = 2 * size + (256 << 20)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store})
    try:
        cluster.add_node(num_cpus=2, resources={"node2": 1000}, object_store_memory=store)
        ray.init(address=cluster.address)
        cluster.wait_for_nodes()

        @ray.remote(num_cpus=0, resources={"node2": 1})
        class Reader:
            def nbytes(self, arr):
                return arr.nbytes

        timing.bench_transfer(bench, timing.TRANSFER_CHUNKED, ray.put, ray.get, Reader.remote(), size)
    finally:
        ray.shutdown()
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows-json", required=True, help="the Ray row names to run, as a JSON list")
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--settle", type=float, default=0.0)
    p.add_argument("--num-cpus", type=int, default=None, help="ignored: Ray's rows use ray.init() as Ray does")
    args = p.parse_args(argv)
    import ray

    print("ray-version:", ray.__version__, flush=True)
    rows = json.loads(args.rows_json)
    bench = timing.Bench(args.duration, args.trials, set(rows), args.settle)
    run_ray_perf(bench, rows)
    run_store_rows(bench, rows)
    run_cross_node(bench, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
