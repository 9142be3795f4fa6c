"""Juno Serve beside Ray Serve 2.60: the same deployments, driven by the same load generator, each run in a
fresh process.

    .venv/bin/python benchmarks/serve/bench_serve.py --impl all                  # juno here, ray with $RAY_PYTHON
    .venv/bin/python benchmarks/serve/bench_serve.py --impl ray --ray-python /work/ray-venv/bin/python
    .venv/bin/python benchmarks/serve/bench_serve.py --impl juno --rows http8,handle1 --repeat 3

Every (implementation, row, run) is a process of its own: it imports the library, calls
``init(num_cpus=2)``, ``serve.start`` on a free loopback port and ``serve.run``s the row's application,
warms it up, and only then measures. The driver code is the same for both; only the module behind
``serve`` differs (``ray.serve`` or ``juno.serve``), which is what a port looks like. HTTP rows use
``loadgen.py`` (keep-alive threads on loopback); handle rows call ``handle.remote(...).result()`` from
threads through ``loadgen.drive``. Runs alternate between the implementations; figures are medians.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/: the shared runner
import loadgen  # noqa: E402
from peer_runs import add_run_arguments, log_path, parse_impls, parse_rows, run_child  # noqa: E402

IMPLS = ("juno", "ray")
CPUS = 2
REPLICAS = 2
REQUESTS = 500
FEATURES = 16

# name -> (what it measures, kind, concurrency, requests)
ROWS = {
    "http8": ("HTTP, trivial deployment, 2 replicas, 8 threads", "http", 8, REQUESTS),
    "http1": ("HTTP, trivial deployment, 2 replicas, 1 thread", "http", 1, REQUESTS),
    "http32": ("HTTP, trivial deployment, 2 replicas, 32 threads", "http", 32, REQUESTS),
    "handle1": ("handle calls, trivial deployment, 2 replicas, 1 caller", "handle", 1, REQUESTS),
    "handle8": ("handle calls, trivial deployment, 2 replicas, 8 callers", "handle", 8, REQUESTS),
    "torch8": ("HTTP, torch MLP with @serve.batch(8), 1 replica, 8 threads", "torch", 8, REQUESTS),
}

serve = None  # the child sets it to ray.serve or juno.serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trivial_app():
    @serve.deployment(num_replicas=REPLICAS)
    class Trivial:
        async def __call__(self, request=None):
            return {"ok": True}

    return Trivial.bind()


def torch_app():
    import torch

    @serve.deployment(num_replicas=1)
    class MLP:
        def __init__(self):
            torch.manual_seed(0)
            torch.set_num_threads(1)
            self.net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
            self.net.eval()

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
        async def predict(self, rows: list) -> list:
            with torch.no_grad():
                return self.net(torch.tensor(rows, dtype=torch.float32)).tolist()

        async def __call__(self, request):
            return {"y": await self.predict((await request.json())["x"])}

    return MLP.bind()


def wait_until_serving(url: str, body, timeout_s: float = 120.0) -> None:
    """The proxy may answer (404/503) before the application's route reaches it: wait for a 200."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = loadgen.run(url, 1, 1, json_body=body, timeout_s=10)
            if last["statuses"].get(200):
                return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s (last: {last})")


def child(impl: str, row: str) -> None:
    """Import, init, start, deploy, warm up, measure; print the figures as one RESULT line."""
    global serve
    _, kind, concurrency, requests = ROWS[row]
    start = time.perf_counter()
    lib = importlib.import_module("ray" if impl == "ray" else "juno")
    serve = importlib.import_module(f"{lib.__name__}.serve")
    out = {"import": time.perf_counter() - start}
    start = time.perf_counter()
    lib.init(num_cpus=CPUS, include_dashboard=False, **({"log_to_driver": False} if impl == "ray" else {}))
    out["init"] = time.perf_counter() - start
    try:
        port = free_port()
        start = time.perf_counter()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        handle = serve.run(torch_app() if kind == "torch" else trivial_app(), name="bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}/"
        body = {"x": [0.1] * FEATURES} if kind == "torch" else None
        if kind != "handle":
            wait_until_serving(url, body)
        out["deploy"] = time.perf_counter() - start
        if kind == "handle":
            def make_call():
                def call() -> int:
                    handle.remote(None).result(timeout_s=30)
                    return 200
                return call
            result = loadgen.drive(make_call, concurrency, requests, warmup=10)
        else:
            result = loadgen.run(url, concurrency, requests, json_body=body, warmup=10)
        if result["errors"]:
            raise RuntimeError(f"{row}: {result['errors']} of {result['requests']} requests failed: "
                               f"{result['statuses']}")
        out.update({k: result[k] for k in ("requests", "errors", "rps", "p50_ms", "p99_ms")})
    finally:
        try:
            serve.shutdown()
        finally:
            lib.shutdown()
    print("RESULT " + json.dumps(out), flush=True)


def summarize(results: dict[tuple[str, str], list]) -> None:
    print("\n| Row | Implementation | req/s | p50 ms | p99 ms | runs |\n|---|---|---|---|---|---|")
    for (row, impl), runs in results.items():
        ok = [r for r in runs if isinstance(r, dict)]
        for failure in sorted({r for r in runs if isinstance(r, str)}):
            print(f"| {row} | {impl} | {failure} | | | {sum(r == failure for r in runs)} of {len(runs)} |")
        if ok:
            med = {k: statistics.median(r[k] for r in ok) for k in ("rps", "p50_ms", "p99_ms")}
            print(f"| {row} | {impl} | {med['rps']:.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | "
                  f"{len(ok)} of {len(runs)} |")
    for row in dict.fromkeys(r for r, _ in results):
        rps = {impl: statistics.median(r["rps"] for r in results[(row, impl)] if isinstance(r, dict))
               for (r_, impl) in results if r_ == row and any(isinstance(r, dict) for r in results[(row, impl)])}
        if "juno" in rps and "ray" in rps:
            print(f"{row} ({ROWS[row][0]}): Juno / Ray req/s = {rps['juno'] / rps['ray']:.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impl", default="all", help="all, juno or ray")
    p.add_argument("--rows", default=",".join(ROWS), help=f"some of {', '.join(ROWS)}, separated by commas")
    add_run_arguments(p, IMPLS, "serve")
    args = p.parse_args()
    rows = parse_rows(p, args.rows, ROWS)
    if args.child:
        if len(rows) != 1:
            p.error("--child runs one row")
        return child(args.child, rows[0])
    impls, pythons = parse_impls(p, args, IMPLS, "serve")
    began, load = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), [os.getloadavg()[0]]
    results: dict[tuple[str, str], list] = {(row, impl): [] for row in rows for impl in impls}
    for round_ in range(args.repeat):
        for row in rows:
            for impl in impls:
                cmd = [pythons[impl], os.path.abspath(__file__), "--child", impl, "--rows", row]
                out = run_child(cmd, impl, pythons[impl], args.run_timeout, log_path(args.log_dir, f"{impl}-{row}"))
                results[(row, impl)].append(out)
                load.append(os.getloadavg()[0])
                shown = out if isinstance(out, str) else (f"{out['rps']:.0f} req/s, p50 {out['p50_ms']:.2f} ms, "
                                                          f"p99 {out['p99_ms']:.2f} ms (deploy {out['deploy']:.1f} s)")
                print(f"round {round_ + 1}, {row}: {impl:4} {shown}", file=sys.stderr, flush=True)
    print(f"{began} to {time.strftime('%H:%M:%S UTC', time.gmtime())}, {os.cpu_count()} CPUs, init(num_cpus={CPUS}); "
          f"1-min load average min {min(load):.2f}, median {statistics.median(load):.2f}, max {max(load):.2f}")
    for row in rows:
        print(f"{row}: {ROWS[row][0]}, {ROWS[row][3]} requests")
    summarize(results)


if __name__ == "__main__":
    main()
