"""``juno microbenchmark``: Ray's core microbenchmark rows, run against Juno.

Every row keeps the name and the meaning of the row of the same name printed by
``ray microbenchmark``: the same timed operation, the same batch sizes and the
same multiplier turning one call of the timed function into a count of
operations.  Results print in Ray's format (``<name> per second <mean> +- <std>``)
followed by a table comparing against Ray 2.60 on a 2-core machine.  The row
definitions are listed in ``benchmarks/README.md``.

Usage::

    juno microbenchmark [--filter SUBSTRING] [--duration S] [--json PATH]
    python -m juno.microbenchmark --help
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
import traceback
from types import SimpleNamespace

import numpy as np

import juno

# Ray's rows, in the order `ray microbenchmark` prints them ("client: ..." and
# placement-group rows are not part of Juno's set).
ROWS = [
    "single client get calls (Plasma Store)",
    "single client put calls (Plasma Store)",
    "multi client put calls (Plasma Store)",
    "single client put gigabytes",
    "single client tasks and get batch",
    "multi client put gigabytes",
    "single client get object containing 10k refs",
    "single client wait 1k refs",
    "single client tasks sync",
    "single client tasks async",
    "multi client tasks async",
    "1:1 actor calls sync",
    "1:1 actor calls async",
    "1:1 actor calls concurrent",
    "1:n actor calls async",
    "n:n actor calls async",
    "n:n actor calls with arg async",
    "1:1 async-actor calls sync",
    "1:1 async-actor calls async",
    "1:1 async-actor calls with args async",
    "1:n async-actor calls async",
    "n:n async-actor calls async",
] + [
    # Juno's own rows: a cluster of two nodes on this machine (runtime/store/transfer.py, spill-back).
    "cross-node object transfer (GB/s)",
    "cross-node task throughput",
]
CROSS_NODE_ROWS = ROWS[-2:]

# `ray microbenchmark`, Ray 2.60, 2-core machine: ops/s (GB/s for the two
# "gigabytes" rows).  None: no reference figure was recorded for that row.
RAY_2_60: dict[str, float | None] = {
    "single client get calls (Plasma Store)": 8265,
    "single client put calls (Plasma Store)": 1770,
    "multi client put calls (Plasma Store)": 1223,
    "single client put gigabytes": 2.0,
    "single client tasks and get batch": 1.72,
    "multi client put gigabytes": 13.3,
    "single client get object containing 10k refs": 12.6,
    "single client wait 1k refs": 1.77,
    "single client tasks sync": 638,
    "single client tasks async": 1462,
    "multi client tasks async": 1781,
    "1:1 actor calls sync": 1262,
    "1:1 actor calls async": 3319,
    "1:1 actor calls concurrent": 4579,
    "1:n actor calls async": 4183,
    "n:n actor calls async": 4262,
    "n:n actor calls with arg async": 1345,
    "1:1 async-actor calls sync": 860,
    "1:1 async-actor calls async": 2178,
    "1:1 async-actor calls with args async": 1647,
    "1:n async-actor calls async": 2000,
    "n:n async-actor calls async": None,
    "cross-node object transfer (GB/s)": None,
    "cross-node task throughput": None,
}

GB_ROWS = {"single client put gigabytes", "multi client put gigabytes", "cross-node object transfer (GB/s)"}


# --- code that runs inside workers -------------------------------------------
# Plain module-level definitions, wrapped with juno.remote lazily (see
# _remotes), so `--help` needs no running runtime and workers import them by
# reference.

def _small_value():
    return b"ok"


def _put_small_100():
    for _ in range(100):
        juno.put(0)


def _put_10_x_80mb():
    for _ in range(10):
        juno.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))


def _create_object_containing_ref():
    return [juno.put(1) for _ in range(10000)]


def _call_actors_round_robin(actors, n):
    juno.get([actors[i % len(actors)].small_value.remote() for i in range(n)])


class _Actor:
    def small_value(self):
        return b"ok"

    def small_value_arg(self, x):
        return b"ok"

    def small_value_batch(self, n):
        task = _small_value_task()
        juno.get([task.remote() for _ in range(n)])


class _AsyncActor:
    async def small_value(self):
        return b"ok"

    async def small_value_with_arg(self, x):
        return b"ok"


class _Client:
    def __init__(self, servers):
        self.servers = servers if isinstance(servers, list) else [servers]

    def small_value_batch(self, n):
        juno.get([s.small_value.remote() for s in self.servers for _ in range(n)])

    def small_value_batch_arg(self, n):
        x = juno.put(0)
        juno.get([s.small_value_arg.remote(x) for s in self.servers for _ in range(n)])


class _Reader:
    def node_id(self):
        return juno.get_runtime_context().get_node_id()

    def nbytes(self, arr):
        return arr.nbytes


@functools.lru_cache(maxsize=None)
def _small_value_task():
    return juno.remote(_small_value)


@functools.lru_cache(maxsize=None)
def _remotes() -> SimpleNamespace:
    remote = juno.remote
    return SimpleNamespace(
        small_value=_small_value_task(),
        do_put_small=remote(_put_small_100),
        do_put=remote(_put_10_x_80mb),
        create_object_containing_ref=remote(_create_object_containing_ref),
        work=remote(_call_actors_round_robin),
        Actor=remote(num_cpus=0)(_Actor),
        AsyncActor=remote(_AsyncActor),
        Client=remote(num_cpus=0)(_Client),
    )


def _release(handles) -> None:
    """Kill the actors a row created, so later rows start from a clean node."""
    kill = getattr(juno, "kill", None)
    for handle in handles if kill is not None else ():
        try:
            kill(handle)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


# --- timing --------------------------------------------------------------------

class Bench:
    """Ray's ``timeit``: warm up, then time several trials of ``fn``.

    One trial counts calls of ``fn`` for ``trial_s`` seconds (checking the clock
    every ``step`` calls) and records ``multiplier * calls / elapsed``.  The row
    reports the mean and (population) standard deviation over the trials.
    """

    def __init__(self, duration: float, trials: int, pattern: str = ""):
        self.trials = max(1, trials)
        self.trial_s = duration / self.trials
        self.warmup_s = min(1.0, self.trial_s)
        self.pattern = pattern
        self.results: dict[str, tuple[float, float]] = {}

    def wants(self, name: str) -> bool:
        return self.pattern in name

    def timeit(self, name: str, fn, multiplier: float = 1) -> None:
        if not self.wants(name):
            return
        start, count = time.perf_counter(), 0
        while True:  # warm-up: at least one call
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= self.warmup_s:
                break
        step = max(1, int(count / elapsed * self.trial_s / 20))
        stats = []
        for _ in range(self.trials):
            start, count = time.perf_counter(), 0
            while time.perf_counter() - start < self.trial_s:
                for _ in range(step):
                    fn()
                count += step
            stats.append(multiplier * count / (time.perf_counter() - start))
        self.record(name, stats)

    def record(self, name: str, samples: list[float]) -> None:
        """A row timed by its own loop (one sample per trial)."""
        mean, std = float(np.mean(samples)), float(np.std(samples))
        print(name, "per second", round(mean, 2), "+-", round(std, 2), flush=True)
        self.results[name] = (mean, std)


# --- row groups ----------------------------------------------------------------

def bench_object_store(b: Bench, r: SimpleNamespace, n_cpu: int) -> None:
    value = juno.put(0)
    b.timeit("single client get calls (Plasma Store)", lambda: juno.get(value))
    b.timeit("single client put calls (Plasma Store)", lambda: juno.put(0))
    b.timeit("multi client put calls (Plasma Store)",
             lambda: juno.get([r.do_put_small.remote() for _ in range(10)]), 1000)
    if b.wants("single client put gigabytes"):
        arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)  # 800 MiB
        b.timeit("single client put gigabytes", lambda: juno.put(arr), 8 * 0.1)
        del arr
    b.timeit("multi client put gigabytes",
             lambda: juno.get([r.do_put.remote() for _ in range(10)]), 10 * 8 * 0.1)


def bench_refs(b: Bench, r: SimpleNamespace, n_cpu: int) -> None:
    name = "single client get object containing 10k refs"
    if b.wants(name):
        holder = r.create_object_containing_ref.remote()
        b.timeit(name, lambda: juno.get(holder))

    def wait_1k_refs():
        not_ready = [r.small_value.remote() for _ in range(1000)]
        fetch_local = True  # as in Ray: request the fetch once, then plain waits
        for _ in range(1000):
            _ready, not_ready = juno.wait(not_ready, fetch_local=fetch_local)
            fetch_local = False

    b.timeit("single client wait 1k refs", wait_1k_refs)


def bench_tasks(b: Bench, r: SimpleNamespace, n_cpu: int) -> None:
    def batch_1k():
        juno.get([r.small_value.remote() for _ in range(1000)])

    b.timeit("single client tasks and get batch", batch_1k)
    b.timeit("single client tasks sync", lambda: juno.get(r.small_value.remote()))
    b.timeit("single client tasks async", batch_1k, 1000)
    name = "multi client tasks async"
    if b.wants(name):
        n, m = 10000, 4
        actors = [r.Actor.remote() for _ in range(m)]
        b.timeit(name, lambda: juno.get([a.small_value_batch.remote(n) for a in actors]),
                 n * m)
        _release(actors)


def bench_one_to_one(b: Bench, r: SimpleNamespace, n_cpu: int, kind: str) -> None:
    """1:1 rows for "actor" (sync methods) or "async-actor" (async def methods)."""
    cls = r.Actor if kind == "actor" else r.AsyncActor
    rows = {
        f"1:1 {kind} calls sync": (cls, lambda a: a.small_value.remote(), 1),
        f"1:1 {kind} calls async": (cls, lambda a: [a.small_value.remote()
                                                   for _ in range(1000)], 1000),
    }
    if kind == "actor":
        rows["1:1 actor calls concurrent"] = (
            cls.options(max_concurrency=16),
            lambda a: [a.small_value.remote() for _ in range(1000)], 1000)
    else:
        rows["1:1 async-actor calls with args async"] = (
            cls, lambda a: [a.small_value_with_arg.remote(i) for i in range(1000)], 1000)
    for name, (factory, submit, multiplier) in rows.items():
        if not b.wants(name):
            continue
        actor = factory.remote()  # a fresh actor per row, as in Ray
        b.timeit(name, lambda: juno.get(submit(actor)), multiplier)
        _release([actor])


def bench_fan_out(b: Bench, r: SimpleNamespace, n_cpu: int, kind: str) -> None:
    """1:n and n:n rows; n_cpu = cpu_count // 2 servers, as in Ray."""
    cls = r.Actor if kind == "actor" else r.AsyncActor
    name = f"1:n {kind} calls async"
    if b.wants(name):
        n = 5000
        servers = [cls.remote() for _ in range(n_cpu)]
        client = r.Client.remote(servers)
        b.timeit(name, lambda: juno.get(client.small_value_batch.remote(n)),
                 n * len(servers))
        _release(servers + [client])
    name = f"n:n {kind} calls async"
    if b.wants(name):
        n, m = 5000, 4
        servers = [cls.remote() for _ in range(n_cpu)]
        b.timeit(name, lambda: juno.get([r.work.remote(servers, n) for _ in range(m)]),
                 m * n)
        _release(servers)
    name = "n:n actor calls with arg async"
    if kind == "actor" and b.wants(name):
        n = 1000
        servers = [cls.remote() for _ in range(n_cpu)]
        clients = [r.Client.remote(s) for s in servers]
        b.timeit(name, lambda: juno.get([c.small_value_batch_arg.remote(n)
                                         for c in clients]), n * len(clients))
        _release(servers + clients)


GROUPS = [
    ("object store", bench_object_store),
    ("object refs", bench_refs),
    ("tasks", bench_tasks),
    ("1:1 actors", functools.partial(bench_one_to_one, kind="actor")),
    ("actor fan-out", functools.partial(bench_fan_out, kind="actor")),
    ("1:1 async actors", functools.partial(bench_one_to_one, kind="async-actor")),
    ("async actor fan-out", functools.partial(bench_fan_out, kind="async-actor")),
]


def _transfer_bytes() -> int:
    """1 GiB (the issue's figure) where the machine has room for it three times over, else 256 MiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return (1 << 30) if memory >= 16 << 30 else (256 << 20)


def bench_cross_node(b: Bench, errors: dict) -> None:
    """Rows over two nodes on this machine: a head node (the driver's) and node 2 (resource "node2")."""
    if not any(b.wants(name) for name in CROSS_NODE_ROWS):
        return
    from juno.cluster_utils import Cluster

    size = _transfer_bytes()
    store = 2 * size + (256 << 20)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store})
    try:
        cluster.add_node(num_cpus=2, resources={"node2": 1000}, object_store_memory=store)
        cluster.wait_for_nodes()
        cluster.connect()
        for name, run in zip(CROSS_NODE_ROWS, (_bench_transfer, _bench_remote_tasks)):
            if not b.wants(name):
                continue
            try:
                run(b, name, size)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next row
                errors[name] = f"{type(exc).__name__}: {exc}"
                print(f"[{name}] failed: {errors[name]}", file=sys.stderr)
    finally:
        cluster.shutdown()


def _bench_transfer(b: Bench, name: str, size: int) -> None:
    """A numpy array put on the head node, read by an actor task on node 2: each trial a new
    object, timed from the call to its answer (the pull is most of it)."""
    reader = juno.remote(num_cpus=0, resources={"node2": 1})(_Reader).remote()
    juno.get(reader.node_id.remote(), timeout=60)
    arr = np.ones(size // 8, dtype=np.int64)
    cold, warm = [], []
    for _ in range(b.trials):  # the local figures to compare with: one memcpy of the same bytes
        out = np.empty_like(arr)
        for rates_ in (cold, warm):  # into fresh pages (faulted in by the copy), then into the same pages
            start = time.perf_counter()
            np.copyto(out, arr)
            rates_.append(size / (time.perf_counter() - start) / 1e9)
        del out
    juno.get(reader.nbytes.remote(juno.put(arr)), timeout=300)  # warm-up: worker, store pages
    rates = []
    for _ in range(max(b.trials, 3)):
        ref = juno.put(arr)
        start = time.perf_counter()
        assert juno.get(reader.nbytes.remote(ref), timeout=300) == arr.nbytes
        rates.append(size / (time.perf_counter() - start) / 1e9)
        del ref
    b.record(name, rates)
    print(f"  ({size >> 20} MiB per object; a local memcpy of it on this machine: {np.mean(cold):.2f} GB/s "
          f"into fresh pages, {np.mean(warm):.2f} GB/s into pages already mapped)", flush=True)
    _release([reader])


def _bench_remote_tasks(b: Bench, name: str, size: int) -> None:
    """Tasks that only node 2 can run (its custom resource), submitted from the head's driver."""
    task = juno.remote(resources={"node2": 0.001})(_small_value)
    try:
        juno.get([task.remote() for _ in range(10)], timeout=60)
    except juno.exceptions.GetTimeoutError:
        raise RuntimeError("tasks for node 2 were not run within 60 s: this runtime does not send "
                           "tasks to other nodes (spill-back)") from None
    b.timeit(name, lambda: juno.get([task.remote() for _ in range(1000)], timeout=300), 1000)


# --- reporting -----------------------------------------------------------------

def _ratio(name: str, results: dict) -> float | None:
    ref = RAY_2_60.get(name)
    return results[name][0] / ref if ref and name in results else None


def print_table(rows: list[str], results: dict[str, tuple[float, float]]) -> None:
    width = max(len(n) for n in rows)
    header = f"{'Row':<{width}}  {'Juno':>24}  {'Ray 2.60 (2-core)':>17}  {'vs Ray 2.60':>11}"
    print()
    print(header)
    print("-" * len(header))
    for name in rows:
        juno_col = "%.2f +- %.2f" % results[name] if name in results else "—"
        ref = RAY_2_60.get(name)
        ref_col = f"{ref:g}" if ref is not None else "—"
        ratio = _ratio(name, results)
        ratio_col = f"{ratio:.2f}x" if ratio is not None else "—"
        print(f"{name:<{width}}  {juno_col:>24}  {ref_col:>17}  {ratio_col:>11}")
    print("(ops/s; GB/s for the 'gigabytes' rows; vs Ray 2.60 = Juno / Ray)")


def write_json(path: str, args, rows: list[str], results: dict, errors: dict) -> None:
    doc = {
        "benchmark": "juno microbenchmark",
        "juno_version": getattr(juno, "__version__", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "num_cpus": args.num_cpus,
        "duration_s": args.duration,
        "trials": args.trials,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": [
            {
                "name": name,
                "unit": "GB/s" if name in GB_ROWS else "ops/s",
                "mean": results[name][0] if name in results else None,
                "std": results[name][1] if name in results else None,
                "ray_2_60": RAY_2_60.get(name),
                "vs_ray_2_60": _ratio(name, results),
            }
            for name in rows
        ],
        "errors": errors,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="juno microbenchmark",
        description="Run Ray's core microbenchmark rows (tasks, actors, objects) on Juno "
                    "and compare with Ray 2.60 figures from a 2-core machine.")
    p.add_argument("--filter", default="", metavar="SUBSTRING",
                   help="run only rows whose name contains SUBSTRING")
    p.add_argument("--duration", type=float, default=4.0, metavar="SECONDS",
                   help="timed seconds per row, split over the trials (default 4; "
                        "plus up to 1 s warm-up)")
    p.add_argument("--trials", type=int, default=4,
                   help="timed trials per row (default 4, as in Ray)")
    p.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="juno.init(num_cpus=N); fan-out rows use max(1, N // 2) "
                        "actors (default: os.cpu_count())")
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.trials < 1 or args.num_cpus < 1:
        p.error("--duration, --trials and --num-cpus must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    rows = [name for name in ROWS if args.filter in name]
    if args.list:
        print("\n".join(rows))
        return 0
    if not rows:
        print(f"no row matches --filter {args.filter!r}", file=sys.stderr)
        return 2

    bench = Bench(args.duration, args.trials, args.filter)
    errors: dict[str, str] = {}
    print(f"Juno microbenchmark: {len(rows)} rows, num_cpus={args.num_cpus}, "
          f"{args.trials} trials x {bench.trial_s:.2f}s per row", flush=True)
    juno.init(num_cpus=args.num_cpus)
    try:
        remotes = _remotes()
        n_cpu = max(1, args.num_cpus // 2)
        for group, run in GROUPS:
            try:
                run(bench, remotes, n_cpu)
            except Exception as exc:  # noqa: BLE001 - report, go on with the next group
                errors[group] = f"{type(exc).__name__}: {exc}"
                print(f"[{group}] failed:", file=sys.stderr)
                traceback.print_exc()
    finally:
        juno.shutdown()
    bench_cross_node(bench, errors)

    print_table(rows, bench.results)
    for group, err in errors.items():
        print(f"error in {group}: {err}")
    if args.json:
        write_json(args.json, args, rows, bench.results, errors)
        print(f"wrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: workers must be able
    # to import the benchmark's functions by name.
    from juno.microbenchmark import main as _main

    sys.exit(_main())
