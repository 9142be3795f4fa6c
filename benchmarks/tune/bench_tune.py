"""Juno Tune beside Ray Tune 2.60: the same experiments, timed in fresh processes, run after run.

    .venv/bin/python benchmarks/tune/bench_tune.py --impl all                 # juno here, ray with $RAY_PYTHON
    .venv/bin/python benchmarks/tune/bench_tune.py --impl juno --rows 1,4 --repeat 5
    .venv/bin/python benchmarks/tune/bench_tune.py --impl ray --ray-python /work/ray-venv/bin/python

Every (implementation, row, run) is a process of its own that imports the library, calls
``init(num_cpus=2)`` and only then starts the clock around ``Tuner(...).fit()``, so the rows time
Tune's own overhead: trial actors, result polling, scheduling, storage. The driver code is the same
for both; only the module behind ``tune`` differs (``ray.tune`` or ``juno.tune``), which is what a
port looks like. Runs alternate between the implementations so a burst of load on a shared machine
hits both alike; each figure is the median (and min) of ``--repeat`` runs, and the 1-minute load
average is sampled while they run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: the shared runner
from peer_runs import add_run_arguments, log_path, parse_impls, parse_rows, run_child  # noqa: E402

IMPLS = ("juno", "ray")
CPUS = 2
TRIVIAL_TRIALS, SHORT_TRIALS, SHORT_REPORTS = 100, 30, 10
ASHA_TRIALS, ASHA_MAX_T, ASHA_GRACE, ASHA_RF = 32, 27, 1, 3
# Row 3's configs: a fixed grid (so both sides run the same 32 trials), in a seeded shuffled order
# (so the best one is neither first nor last to start).
ASHA_XS = random.Random(0).sample([round(i / (ASHA_TRIALS - 1), 4) for i in range(ASHA_TRIALS)], ASHA_TRIALS)
ASHA_OPTIMUM = 0.3

ROWS = {
    1: "100 trivial trials (1 report each)",
    2: f"{SHORT_TRIALS} short trials ({SHORT_REPORTS} reports each)",
    3: f"ASHA: {ASHA_TRIALS} trials, max_t={ASHA_MAX_T}, grace {ASHA_GRACE}, rf {ASHA_RF}",
    4: "100 trivial trials, reuse_actors=True",
}

tune = None  # the child sets it to ray.tune or juno.tune; the trainables below pickle it by reference


# --- the trainables: the same for both ---------------------------------------------------------------------------

def trivial(config: dict) -> None:
    """Rows 1 and 4: one report and done."""
    tune.report({"score": config["x"]})


def short(config: dict) -> None:
    """Row 2: ten reports without any work between them."""
    for step in range(SHORT_REPORTS):
        tune.report({"score": config["x"] * (step + 1)})


def curve(config: dict) -> None:
    """Row 3: a loss that falls as 1/t towards (x - 0.3)^2. The curves never cross, so the best
    trial leads at every rung and ASHA cannot stop it: both sides must find x nearest 0.3."""
    for t in range(1, ASHA_MAX_T + 1):
        tune.report({"loss": (config["x"] - ASHA_OPTIMUM) ** 2 + 1.0 / t})


# --- one run of one row, in a process of its own ---------------------------------------------------------------

def experiment(row: int, storage: str, reuse_actors: bool = False):
    """The Tuner of a row, built with APIs that exist in both Ray 2.60 and Juno. ``reuse_actors``
    (``--reuse-actors``) turns it on in every row: what is left is the cost of the reports alone."""
    reuse = reuse_actors or row == 4
    run_config = tune.RunConfig(name=f"bench-row{row}", storage_path=storage, verbose=0)
    if row in (1, 4):
        return tune.Tuner(trivial, param_space={"x": tune.uniform(0, 1)}, run_config=run_config,
                          tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=TRIVIAL_TRIALS,
                                                      reuse_actors=reuse))
    if row == 2:
        return tune.Tuner(short, param_space={"x": tune.uniform(0, 1)}, run_config=run_config,
                          tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=SHORT_TRIALS,
                                                      reuse_actors=reuse))
    scheduler = tune.schedulers.ASHAScheduler(max_t=ASHA_MAX_T, grace_period=ASHA_GRACE, reduction_factor=ASHA_RF)
    return tune.Tuner(curve, param_space={"x": tune.grid_search(ASHA_XS)}, run_config=run_config,
                      tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler,
                                                  reuse_actors=reuse))


def child(impl: str, row: int, reuse_actors: bool) -> None:
    """Import, init, time fit(), check the results; print the measurements as one JSON line."""
    global tune
    start = time.perf_counter()
    lib = importlib.import_module("ray" if impl == "ray" else "juno")
    tune = importlib.import_module(f"{lib.__name__}.tune")
    out = {"import": time.perf_counter() - start}
    start = time.perf_counter()
    init = {"log_to_driver": False} if impl == "ray" else {}
    lib.init(num_cpus=CPUS, include_dashboard=False, **init)
    out["init"] = time.perf_counter() - start
    storage = tempfile.mkdtemp(prefix=f"bench-tune-{impl}-")
    try:
        tuner = experiment(row, storage, reuse_actors)
        start = time.perf_counter()
        grid = tuner.fit()
        out["fit"] = time.perf_counter() - start
        out.update(check(row, grid))
    finally:
        lib.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    print("RESULT " + json.dumps(out), flush=True)


def check(row: int, grid) -> dict:
    """Every trial ended without error; row 3 also says what ASHA did and what it found."""
    results = list(grid)
    expected = {1: TRIVIAL_TRIALS, 2: SHORT_TRIALS, 3: ASHA_TRIALS, 4: TRIVIAL_TRIALS}[row]
    if len(results) != expected or grid.num_errors:
        raise RuntimeError(f"row {row}: {len(results)} trials, {grid.num_errors} errors; expected {expected} "
                           f"trials, none failing: {[r.error for r in results if r.error][:2]}")
    iterations = [r.metrics["training_iteration"] for r in results]
    out = {"trials": len(results), "iterations": sum(iterations)}
    if row == 2 and set(iterations) != {SHORT_REPORTS}:
        raise RuntimeError(f"row 2: every trial should report {SHORT_REPORTS} times, got {sorted(set(iterations))}")
    if row == 3:
        best = grid.get_best_result(metric="loss", mode="min", scope="last")
        out.update(stopped_early=sum(i < ASHA_MAX_T for i in iterations), best_x=best.config["x"],
                   best_loss=best.metrics["loss"], best_iterations=best.metrics["training_iteration"])
    return out


# --- the parent: alternate the runs, sample the load, summarize --------------------------------------------------

class LoadSampler:
    """The 1-minute load average every ``every`` seconds while the benchmark runs (the machine is shared)."""

    def __init__(self, every: float = 10.0) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append(os.getloadavg()[0])
        return (f"load (1-min average) at start {self.samples[0]:.2f}, min {min(self.samples):.2f}, median "
                f"{statistics.median(self.samples):.2f}, max {max(self.samples):.2f}, at end {self.samples[-1]:.2f}")


def launch(impl: str, python: str, row: int, args) -> dict | str:
    """One fresh process for one run of one row: its measurements, or why there are none."""
    cmd = [python, os.path.abspath(__file__), "--child", impl, "--rows", str(row)]
    cmd += ["--reuse-actors"] if args.reuse_actors else []
    return run_child(cmd, impl, python, args.run_timeout, log_path(args.log_dir, f"{impl}-row{row}"))


def figures(row: int, out: dict) -> dict[str, float]:
    """The figures of one run of one row."""
    rows = {"import": out["import"], "init": out["init"], "fit()": out["fit"],
            "trials/s (fit)": out["trials"] / out["fit"]}
    if row == 3:
        rows.update({"trials stopped early": out["stopped_early"], "iterations run (all trials)": out["iterations"],
                     "best x": out["best_x"], "best loss": out["best_loss"]})
    return rows


def summarize(results: dict[tuple[int, str], list]) -> None:
    """A markdown table: every figure's median and min over the runs that finished."""
    print("\n| Row | Implementation | Figure | median | min | runs |\n|---|---|---|---|---|---|")
    for (row, impl), runs in results.items():
        for failure in sorted({r for r in runs if isinstance(r, str)}):
            print(f"| {row} | {impl} | {failure} | | | {sum(r == failure for r in runs)} of {len(runs)} |")
        table = [figures(row, r) for r in runs if isinstance(r, dict)]
        for name in table[0] if table else ():
            values = [t[name] for t in table]
            unit = " s" if name in ("import", "init", "fit()") else ""
            print(f"| {row} | {impl} | {name} | {statistics.median(values):.4g}{unit} | {min(values):.4g}{unit} | "
                  f"{len(values)} of {len(runs)} |")
    for row in sorted({row for row, _ in results}):
        fits = {impl: statistics.median(r["fit"] for r in results[(row, impl)] if isinstance(r, dict))
                for r_, impl in results if r_ == row and any(isinstance(r, dict) for r in results[(row, impl)])}
        if "juno" in fits and "ray" in fits:
            print(f"\nrow {row} ({ROWS[row]}): Ray's fit() / Juno's fit() = {fits['ray'] / fits['juno']:.1f}x "
                  f"(medians {fits['ray']:.2f} s / {fits['juno']:.2f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--impl", default="all", help="all, juno or ray")
    p.add_argument("--rows", default="1,2,3,4", help="which rows, e.g. 1,4 (1: 100 trivial trials, 2: 30 short "
                   "trials, 3: ASHA, 4: 100 trivial trials with reuse_actors)")
    p.add_argument("--reuse-actors", action="store_true",
                   help="reuse_actors=True in every row (a diagnostic: trial start-up left out)")
    add_run_arguments(p, IMPLS, "tune")
    args = p.parse_args()
    rows = parse_rows(p, args.rows, ROWS, int)
    if args.child:
        if len(rows) != 1:
            p.error("--child runs one row")
        return child(args.child, rows[0], args.reuse_actors)
    impls, pythons = parse_impls(p, args, IMPLS, "tune")
    load = LoadSampler()
    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results: dict[tuple[int, str], list] = {(row, impl): [] for row in rows for impl in impls}
    for round_ in range(args.repeat):
        for row in rows:
            for impl in impls:
                out = launch(impl, pythons[impl], row, args)
                results[(row, impl)].append(out)
                shown = out if isinstance(out, str) else ", ".join(
                    f"{k} {v:.2f}" for k, v in figures(row, out).items())
                print(f"round {round_ + 1}, row {row}: {impl:4} {shown}", file=sys.stderr, flush=True)
    print(f"{began} to {time.strftime('%H:%M:%S UTC', time.gmtime())}, {os.cpu_count()} CPUs, init(num_cpus={CPUS})"
          f"{', reuse_actors=True in every row' if args.reuse_actors else ''}; {load.stop()}")
    for row in rows:
        print(f"row {row}: {ROWS[row]}")
    summarize(results)


if __name__ == "__main__":
    main()
