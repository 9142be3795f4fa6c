"""``juno microbenchmark``: Ray's core microbenchmark rows, run against Juno.

Every row keeps the meaning of the row of the same name printed by ``ray
microbenchmark``: the same timed operation, the same batch sizes and the same
multiplier turning one call of the timed function into a count of operations.
Where Juno's values take another path than Ray's (small ``put`` values stay
inline in the owner instead of going to a shared-memory store) the row's name
says so, and every row states the path its values take.  Three rows Ray lacks
move 1-100 MiB arrays through the shared-memory store; Ray's side of them is
timed by the same code (runtime/cli/bench_timing.py, runtime/cli/microbenchmark_ray.py).

``--compare-ray PYTHON`` runs Ray's rows with the python of a separate Ray
environment in the same sitting and prints both columns with ratios
(runtime/cli/microbenchmark_compare.py); without it the table shows recorded Ray
figures, labelled with their date and machine.  The rows are listed in
``benchmarks/README.md``.

Usage::

    juno microbenchmark [--filter SUBSTRING] [--duration S] [--json PATH] [--compare-ray PYTHON]
    python -m juno.cli.microbenchmark --help
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import traceback
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

import juno
from juno.cli.bench_timing import (GET_100MIB, PUT_GET_1MIB, TASK_1MIB_ARG, TRANSFER_CHUNKED, Bench, bench_store_rows,
                               bench_transfer, memcpy_gbps, transfer_bytes)

INLINE = "inline in the owner"
STORE = "shared-memory store"
MESSAGES = "messages (values inline)"
PLASMA = "Plasma store"


@dataclass(frozen=True)
class Row:
    """A row: Juno's name, the path Juno's values take, and the row Ray prints for the same
    work (``ray``; None: Ray has none) with the path Ray's values take."""

    name: str
    path: str
    ray: str | None
    ray_path: str = ""

    @property
    def unit(self) -> str:
        return "GB/s" if "gigabytes" in self.name or "GB/s" in self.name else "ops/s"


def _same(name: str, path: str = MESSAGES) -> Row:
    """A row Ray prints under the same name, whose values take the same kind of path (Ray's
    shared-memory store is Plasma)."""
    return Row(name, path, name, PLASMA if path == STORE else path)


# In the order `ray microbenchmark` prints them ("client: ..." and placement-group rows are not
# part of Juno's set); the store rows Ray lacks are timed on Ray's side by
# runtime/cli/microbenchmark_ray.py with the same code (runtime/cli/bench_timing.py).
ROWS = [
    Row("single client get calls (inline in owner)", INLINE,
        "single client get calls (Plasma Store)", PLASMA),
    Row("single client put calls (inline in owner)", INLINE,
        "single client put calls (Plasma Store)", PLASMA),
    Row("multi client put calls (inline in owner)", INLINE,
        "multi client put calls (Plasma Store)", PLASMA),
    _same("single client put gigabytes", STORE),
    _same(PUT_GET_1MIB, STORE),
    _same(GET_100MIB, STORE),
    _same(TASK_1MIB_ARG, STORE),
    _same("single client tasks and get batch"),
    _same("multi client put gigabytes", STORE),
    Row("single client get object containing 10k refs", STORE + " (the list); refs' values " + INLINE,
        "single client get object containing 10k refs", PLASMA + " (the list and the refs' values)"),
    _same("single client wait 1k refs"),
    _same("single client tasks sync"),
    _same("single client tasks async"),
    _same("multi client tasks async"),
    _same("1:1 actor calls sync"),
    _same("1:1 actor calls async"),
    _same("1:1 actor calls concurrent"),
    _same("1:n actor calls async"),
    _same("n:n actor calls async"),
    Row("n:n actor calls with arg async", "the put(0) arg " + INLINE + ", copied into each call",
        "n:n actor calls with arg async", "the put(0) arg in the " + PLASMA),
    _same("1:1 async-actor calls sync"),
    _same("1:1 async-actor calls async"),
    _same("1:1 async-actor calls with args async"),
    _same("1:n async-actor calls async"),
    _same("n:n async-actor calls async"),
    # Juno's own rows: two nodes on this machine (runtime/store/transfer.py, spill-back).
    Row(TRANSFER_CHUNKED, "chunked transfer between node managers (ipc here, TCP between machines)",
        TRANSFER_CHUNKED, "chunked transfer between raylets' object managers (gRPC)"),
    Row("cross-node object transfer (GB/s, same-machine shortcut)",
        "one memcpy from the other node's arena (nodes on one machine only)", None),
    Row("cross-node task throughput", MESSAGES + ", spilled back to node 2", None),
]
ROW_BY_NAME = {row.name: row for row in ROWS}
TRANSFER_SHORTCUT, REMOTE_TASKS = (row.name for row in ROWS[-2:])
CROSS_NODE_ROWS = [TRANSFER_CHUNKED, TRANSFER_SHORTCUT, REMOTE_TASKS]

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


def _nbytes(arr):
    return arr.nbytes


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
        nbytes=remote(_nbytes),
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


# --- row groups ----------------------------------------------------------------

def bench_object_store(b: Bench, r: SimpleNamespace, n_cpu: int) -> None:
    value = juno.put(0)
    get_name, put_name, multi_name = (row.name for row in ROWS[:3])
    b.timeit(get_name, lambda: juno.get(value))
    b.timeit(put_name, lambda: juno.put(0))
    b.timeit(multi_name, lambda: juno.get([r.do_put_small.remote() for _ in range(10)]), 1000)
    if b.wants("single client put gigabytes"):
        arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)  # 800 MiB
        b.timeit("single client put gigabytes", lambda: juno.put(arr), 8 * 0.1)
        del arr
    bench_store_rows(b, juno.put, juno.get, r.nbytes)
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


def bench_cross_node(b: Bench, errors: dict) -> None:
    """Rows over two nodes on this machine: a head node (the driver's) and node 2 (resource
    "node2"). The chunked row and the task row run on a cluster with the same-machine shortcut
    off (the path between machines), the shortcut row on a second cluster with it on."""
    plan = [(False, [(TRANSFER_CHUNKED, _bench_transfer), (REMOTE_TASKS, _bench_remote_tasks)]),
            (True, [(TRANSFER_SHORTCUT, _bench_transfer)])]
    for same_machine, rows in plan:
        rows = [(name, run) for name, run in rows if b.wants(name)]
        if rows:
            _on_two_nodes(b, errors, same_machine, rows)


def _on_two_nodes(b: Bench, errors: dict, same_machine: bool, rows: list) -> None:
    from juno.cluster_utils import Cluster

    size = transfer_bytes()
    store = 2 * size + (256 << 20)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store},
                      _system_config={"object_transfer_same_machine": same_machine})
    try:
        cluster.add_node(num_cpus=2, resources={"node2": 1000}, object_store_memory=store)
        cluster.wait_for_nodes()
        cluster.connect()
        for name, run in rows:
            _reporting_failure(errors, name, run, b, name, size)
    finally:
        cluster.shutdown()


def _bench_transfer(b: Bench, name: str, size: int) -> None:
    reader = juno.remote(num_cpus=0, resources={"node2": 1})(_Reader).remote()
    juno.get(reader.node_id.remote(), timeout=60)
    bench_transfer(b, name, juno.put, juno.get, reader, size)
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


# --- running -------------------------------------------------------------------

def run_rows(rows: list[str], duration: float, trials: int, num_cpus: int,
             settle_s: float = 0.0) -> tuple[dict, dict]:
    """Run the named rows on Juno, printing each result line; returns (results, errors)."""
    bench = Bench(duration, trials, set(rows), settle_s)
    errors: dict[str, str] = {}
    juno.init(num_cpus=num_cpus)
    try:
        remotes = _remotes()
        n_cpu = max(1, num_cpus // 2)
        for group, run in GROUPS:
            _reporting_failure(errors, group, run, bench, remotes, n_cpu)
    finally:
        juno.shutdown()
    bench_cross_node(bench, errors)
    return bench.results, errors


def _reporting_failure(errors: dict, what: str, fn, *args) -> None:
    """``fn(*args)``; a failure is printed and kept in ``errors[what]``, and the run goes on."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - report, go on with the next row or group
        errors[what] = f"{type(exc).__name__}: {exc}"
        print(f"[{what}] failed:", file=sys.stderr)
        traceback.print_exc()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="juno microbenchmark",
        description="Run Ray's core microbenchmark rows (tasks, actors, objects) on Juno; with "
                    "--compare-ray, run Ray's too in the same sitting and print both with ratios.")
    p.add_argument("--filter", default="", metavar="SUBSTRING",
                   help="run only rows whose name contains SUBSTRING")
    p.add_argument("--duration", type=float, default=4.0, metavar="SECONDS",
                   help="timed seconds per row, split over the trials (default 4; "
                        "plus up to 1 s warm-up)")
    p.add_argument("--trials", type=int, default=4,
                   help="timed trials per row (default 4, as in Ray)")
    p.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    p.add_argument("--markdown", metavar="PATH",
                   help="with --compare-ray: also write the table as Markdown (benchmarks/README.md's)")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="juno.init(num_cpus=N); fan-out rows use max(1, N // 2) "
                        "actors (default: os.cpu_count())")
    p.add_argument("--compare-ray", metavar="PYTHON", default=os.environ.get("JUNO_RAY_PYTHON") or None,
                   help="the python of a virtual environment with Ray installed (default "
                        "$JUNO_RAY_PYTHON): run Ray's rows with it in the same sitting and print "
                        "both columns with ratios")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="with --compare-ray: run Juno then Ray N times, report medians (default 1)")
    p.add_argument("--row-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="with --compare-ray: a row that takes longer is killed and shown as "
                        "missing (default 300)")
    p.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                   help="pause before each row (Ray's own run pauses 10 s; default 0)")
    p.add_argument("--list", action="store_true", help="list the rows and the path of each, and exit")
    p.add_argument("--rows-json", help=argparse.SUPPRESS)  # a supervisor's exact row list: print lines only
    args = p.parse_args(argv)
    if args.duration <= 0 or args.trials < 1 or args.num_cpus < 1 or args.repeat < 1 or args.row_timeout <= 0:
        p.error("--duration, --trials, --num-cpus, --repeat and --row-timeout must be positive")
    if args.settle < 0:
        p.error("--settle must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    from juno.cli import microbenchmark_compare as compare

    args = _parse_args(argv)
    if args.rows_json is not None:  # one side of a comparison, run by its supervisor
        _results, errors = run_rows(json.loads(args.rows_json), args.duration, args.trials,
                                    args.num_cpus, args.settle)
        return 1 if errors else 0
    rows = [row.name for row in ROWS if args.filter in row.name]
    if args.list:
        for name in rows:
            print(f"{name}  [{ROW_BY_NAME[name].path}]")
        return 0
    if not rows:
        print(f"no row matches --filter {args.filter!r}", file=sys.stderr)
        return 2
    if args.compare_ray:
        return compare.compare(args, rows)
    print(f"Juno microbenchmark: {len(rows)} rows, num_cpus={args.num_cpus}, "
          f"{args.trials} trials x {args.duration / args.trials:.2f}s per row", flush=True)
    results, errors = run_rows(rows, args.duration, args.trials, args.num_cpus, args.settle)
    memcpy = memcpy_gbps(100 << 20)
    compare.print_table(rows, {name: [mean] for name, (mean, _) in results.items()}, None, memcpy)
    for group, err in errors.items():
        print(f"error in {group}: {err}")
    if args.json:
        compare.write_json(args.json, args, rows, {n: [m] for n, (m, _) in results.items()}, None, errors, memcpy)
        print(f"wrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: workers must be able
    # to import the benchmark's functions by name.
    from juno.cli.microbenchmark import main as _main

    sys.exit(_main())
