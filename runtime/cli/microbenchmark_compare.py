"""Juno against Ray in one sitting: run both sides, print both columns with ratios.

``juno microbenchmark --compare-ray PYTHON`` runs Juno's rows (``python -m
juno.cli.microbenchmark`` in a child process) and then Ray's (runtime/cli/microbenchmark_ray.py
with Ray's python), ``--repeat`` times, alternating, and reports the median of each
row's means. Each side runs under a supervisor: a row that takes longer than
``--row-timeout`` is killed and shown as missing, the side restarts with the rows
left, and a side that fails reports its rows missing without ending the run.

Without ``--compare-ray`` the Ray column holds recorded figures (RECORDED_RAY), labelled
with the date and machine they come from.
"""
from __future__ import annotations

import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from juno.cli.bench_timing import ROW_START, memcpy_gbps, parse_result

# A labelled fallback: `juno microbenchmark --compare-ray` of Ray 2.60.0 (ray_perf's rows, and the
# store rows timed by runtime/cli/microbenchmark_ray.py), keyed by Ray's row names.
RECORDED_RAY_SOURCE = ("Ray 2.60, recorded before 2026-11-23 on a 2-core machine "
                       "(ray microbenchmark; run date not kept)")
RECORDED_RAY: dict[str, float] = {
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
}
_STARTUP_S = 90.0  # before the first row: starting a cluster, importing the side
_EXIT_GRACE_S = 30.0  # for a side to shut its cluster down once it has printed its last row
_RAY_SIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "microbenchmark_ray.py")


class SideRun:
    """One side's results from one run: name -> (mean, std), and name -> why it is missing."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[float, float]] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []


def run_side(label: str, command: list[str], rows: list[str], row_timeout: float,
             env: dict | None = None) -> SideRun:
    """Run ``command --rows-json ROWS``, echoing its lines prefixed with ``label``; a row over
    ``row_timeout`` seconds is killed and the side restarted with the rows after it."""
    run = SideRun()
    remaining = list(rows)
    while remaining:
        current, progressed, rc, tail = _run_once(label, command, remaining, row_timeout, env, run)
        done = set(run.results) | set(run.errors)
        if current is not None and current not in done:
            run.errors[current] = (f"timed out after {row_timeout:g} s" if rc is None
                                   else f"the {label} side exited with status {rc} during this row: {tail}")
        remaining = [name for name in remaining if name not in run.results and name not in run.errors]
        if remaining and (not progressed or rc == 0):
            for name in remaining:  # the side ran to its end or made no progress: don't loop
                run.errors[name] = (f"not run (the {label} side exited with status {rc}"
                                    + (f": {tail}" if tail else "") + ")")
            remaining = []
    return run


def _run_once(label: str, command: list[str], rows: list[str], row_timeout: float, env: dict | None,
              run: SideRun) -> tuple[str | None, bool, int | None, str]:
    """One child process; returns (row it was in when it ended, whether it started a row,
    exit status or None when killed, the tail of its stderr)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command + ["--rows-json", json.dumps(rows)], stdout=subprocess.PIPE,
                                stderr=err, env=env, start_new_session=True)
        current, progressed, killed, pending = None, False, False, b""
        deadline = time.monotonic() + _STARTUP_S + row_timeout
        fd = proc.stdout.fileno()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    killed = True
                    break
                if not select.select([fd], [], [], left)[0]:
                    continue
                chunk = os.read(fd, 65536)  # raw reads: no lines left behind in a buffer select can't see
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    print(f"[{label}] {line}", flush=True)
                    if line.startswith(ROW_START):
                        current, progressed = line[len(ROW_START):].strip(), True
                        deadline = time.monotonic() + row_timeout
                    elif line.startswith("ray-version:"):
                        run.notes.append(line)
                    elif (parsed := parse_result(line)) is not None:
                        run.results[parsed[0]] = parsed[1:]
                        current = None
                        deadline = time.monotonic() + row_timeout
        finally:
            rc = _end(proc, killed)
            proc.stdout.close()
        err.seek(0)
        tail = " ".join(err.read().strip().splitlines()[-3:])[-400:]
    return current, progressed, (None if killed else rc), tail


def _end(proc: subprocess.Popen, stuck: bool) -> int:
    """Let a side that closed its output finish shutting its cluster down; a side that is stuck
    (or does not finish) gets SIGTERM, then SIGKILL, sent to its whole process group."""
    if not stuck:
        try:
            return proc.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def compare(args, rows: list[str]) -> int:
    """Juno, then Ray, ``args.repeat`` times; the table shows medians of the runs' means."""
    from juno.cli.microbenchmark import ROW_BY_NAME

    common = ["--duration", str(args.duration), "--trials", str(args.trials),
              "--num-cpus", str(args.num_cpus), "--settle", str(args.settle)]
    juno_cmd = [sys.executable, "-m", "juno.cli.microbenchmark", *common]
    ray_cmd = [args.compare_ray, _RAY_SIDE, *common]
    ray_rows = [ROW_BY_NAME[n].ray for n in rows if ROW_BY_NAME[n].ray]
    ray_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUNO_", "PYTHONPATH", "VIRTUAL_ENV"))}
    ray_env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    juno_runs: dict[str, list[float]] = {}
    ray_runs: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    notes: set[str] = set()
    print(f"Juno vs Ray, same sitting: {len(rows)} rows, {args.repeat} run(s) each, "
          f"{args.trials} trials x {args.duration / args.trials:.2f}s per row, row timeout {args.row_timeout:g}s",
          flush=True)
    for i in range(args.repeat):
        for label, command, names, runs in (("juno", juno_cmd, rows, juno_runs),
                                            ("ray", ray_cmd, ray_rows, ray_runs)):
            if not names:
                continue
            side = run_side(label, command, names, args.row_timeout, None if label == "juno" else ray_env)
            for name, (mean, _std) in side.results.items():
                runs.setdefault(name, []).append(mean)
            for name, why in side.errors.items():
                errors[f"{label}: {name} (run {i + 1})"] = why
            notes.update(side.notes)
    memcpy = memcpy_gbps(100 << 20)
    ray_label = " ".join(sorted(notes)) or "Ray"
    print_table(rows, juno_runs, ray_runs, memcpy, ray_label.replace("ray-version:", "Ray"))
    for key, why in errors.items():
        print(f"missing: {key}: {why}")
    if args.json:
        write_json(args.json, args, rows, juno_runs, ray_runs, errors, memcpy, ray_label)
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown_table(rows, juno_runs, ray_runs))
        print(f"wrote {args.markdown}")
    return 0


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def print_table(rows: list[str], juno_runs: dict, ray_runs: dict | None, memcpy: tuple[float, float],
                ray_label: str = "") -> None:
    """Medians per row; ``ray_runs`` None: the recorded Ray figures, labelled as such."""
    from juno.cli.microbenchmark import ROW_BY_NAME

    width = max(len(n) for n in rows)
    ray_head = "Ray (same run)" if ray_runs is not None else "Ray (recorded)"
    header = f"{'Row':<{width}}  {'Juno':>12}  {ray_head:>14}  {'Juno/Ray':>8}  Juno's path"
    print()
    print(header)
    print("-" * len(header))
    for name in rows:
        row = ROW_BY_NAME[name]
        juno_value = _median(juno_runs.get(name))
        ray_value = _ray_value(row.ray, ray_runs)
        ratio = juno_value / ray_value if juno_value is not None and ray_value else None
        print(f"{name:<{width}}  {_fmt(juno_value):>12}  {_fmt(ray_value):>14}  "
              f"{(f'{ratio:.2f}x' if ratio is not None else '—'):>8}  {row.path}")
    print("(ops/s; GB/s for the 'gigabytes' and 'GB/s' rows; Juno/Ray = Juno / Ray; medians over runs)")
    if ray_runs is None:
        print(f"Ray column: {RECORDED_RAY_SOURCE}; run with --compare-ray PYTHON for a same-run figure.")
    elif ray_label:
        print(f"Ray column: {ray_label}, run in this sitting.")
    print(f"A numpy copy of 100 MiB on this machine: {memcpy[0]:.2f} GB/s into fresh pages, "
          f"{memcpy[1]:.2f} GB/s into pages already mapped.")


def markdown_table(rows: list[str], juno_runs: dict, ray_runs: dict | None) -> str:
    """The table as benchmarks/README.md shows it: both paths of every row, medians, ratios."""
    from juno.cli.microbenchmark import ROW_BY_NAME

    lines = ["| Row | Juno's path | Ray's path | Juno | Ray | Juno / Ray |", "|---|---|---|---|---|---|"]
    for name in rows:
        row = ROW_BY_NAME[name]
        juno_value = _median(juno_runs.get(name))
        ray_value = _ray_value(row.ray, ray_runs)
        ratio = f"{juno_value / ray_value:.2f}x" if juno_value is not None and ray_value else "—"
        ray_name = f" (Ray: {row.ray})" if row.ray and row.ray != name else ""
        lines.append(f"| {name}{ray_name} | {row.path} | {row.ray_path or '—'} | {_fmt(juno_value)} | "
                     f"{_fmt(ray_value)} | {ratio} |")
    return "\n".join(lines) + "\n"


def _ray_value(ray_name: str | None, ray_runs: dict | None) -> float | None:
    if ray_name is None:
        return None
    if ray_runs is None:
        return RECORDED_RAY.get(ray_name)
    return _median(ray_runs.get(ray_name))


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def write_json(path: str, args, rows: list[str], juno_runs: dict, ray_runs: dict | None, errors: dict,
               memcpy: tuple[float, float], ray_label: str = "") -> None:
    from juno import __version__
    from juno.cli.microbenchmark import ROW_BY_NAME

    doc = {
        "benchmark": "juno microbenchmark",
        "juno_version": __version__,
        "ray": ray_label if ray_runs is not None else RECORDED_RAY_SOURCE,
        "ray_same_run": ray_runs is not None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "num_cpus": args.num_cpus,
        "duration_s": args.duration,
        "trials": args.trials,
        "repeat": getattr(args, "repeat", 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "memcpy_100mib_gbps": {"fresh_pages": memcpy[0], "mapped_pages": memcpy[1]},
        "results": [],
        "errors": errors,
    }
    for name in rows:
        row = ROW_BY_NAME[name]
        juno_value = _median(juno_runs.get(name))
        ray_value = _ray_value(row.ray, ray_runs)
        doc["results"].append({
            "name": name, "unit": row.unit, "path": row.path,
            "ray_name": row.ray, "ray_path": row.ray_path or None,
            "juno": juno_value, "juno_runs": juno_runs.get(name, []),
            "ray": ray_value, "ray_runs": (ray_runs or {}).get(row.ray, []) if row.ray else [],
            "juno_over_ray": juno_value / ray_value if juno_value is not None and ray_value else None,
        })
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
