"""What the libraries' benchmarks share: which interpreter runs each side (Ray lives in a venv of its
own, never a Juno dependency), and one fresh process per run whose last ``RESULT {json}`` line is its
measurement."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def python_for(impl: str, ray_python: str | None) -> str | None:
    """The interpreter for ``impl``: this one, except Ray's (``--ray-python``/``$RAY_PYTHON``, or this one
    if it can import ray); None when there is no Ray to run."""
    if impl != "ray":
        return sys.executable
    if ray_python:
        return ray_python
    try:
        import ray  # noqa: F401
        return sys.executable
    except ImportError:
        return None


def run_child(cmd: list[str], impl: str, python: str, timeout_s: float, log_path: str | None) -> dict | str:
    """Run one measurement process; its result, or why there is none."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_ray(impl, python)
        return f"did not finish in {timeout_s:.0f} s"
    if log_path:
        with open(log_path, "w") as f:
            f.write(proc.stdout + proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        stop_ray(impl, python)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return "failed: " + " | ".join(tail)
    return json.loads(lines[-1][len("RESULT "):])


def stop_ray(impl: str, python: str) -> None:
    """Ray's cluster outlives a killed driver; stop it (Juno's ends with its driver)."""
    if impl == "ray":
        subprocess.run([os.path.join(os.path.dirname(python), "ray"), "stop", "--force"], capture_output=True,
                       timeout=120)


def log_path(log_dir: str | None, name: str) -> str | None:
    return os.path.join(log_dir, f"{name}-{time.time():.0f}.log") if log_dir else None


def add_run_arguments(parser, impls: tuple[str, ...], ray_extra: str, *, repeat_help: str = "runs of each row per "
                      "implementation, each a fresh process") -> None:
    """The options every benchmark takes: how many runs, the peer's interpreter, a run's time limit,
    where logs go, and the hidden --child that one measurement process is started with."""
    import argparse

    parser.add_argument("--repeat", type=int, default=3, help=repeat_help)
    parser.add_argument("--ray-python", default=os.environ.get("RAY_PYTHON"),
                        help=f"the python of a venv with ray[{ray_extra}]==2.60 (default $RAY_PYTHON; never a Juno "
                             f"dependency)")
    parser.add_argument("--run-timeout", type=float, default=300, help="seconds before a run counts as not finishing")
    parser.add_argument("--log-dir", help="keep every run's stdout and stderr here")
    parser.add_argument("--child", choices=impls, help=argparse.SUPPRESS)


def parse_impls(parser, args, impls: tuple[str, ...], ray_extra: str) -> tuple[list[str], dict[str, str]]:
    """``--impl`` (all, or some of ``impls`` separated by commas) and each one's interpreter. Ray is left
    out, with a note, when "all" was asked and there is no Ray; asked by name, that is an error."""
    chosen = list(impls) if args.impl == "all" else [i.strip() for i in args.impl.split(",") if i.strip()]
    if not chosen or set(chosen) - set(impls):
        parser.error(f"--impl {args.impl!r}: say all, or some of {', '.join(impls)} separated by commas")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    pythons = {impl: python_for(impl, args.ray_python) for impl in chosen}
    if "ray" in chosen and pythons["ray"] is None:
        if args.impl != "all":
            parser.error(f"Ray is not importable here: pass --ray-python or set $RAY_PYTHON to a venv's python with "
                         f"ray[{ray_extra}]==2.60 installed")
        print("skipping ray: set $RAY_PYTHON or pass --ray-python", file=sys.stderr)
        chosen.remove("ray")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
    return chosen, pythons


def parse_rows(parser, text: str, rows, convert=str) -> list:
    """``--rows`` as a list of known row names (``convert`` turns each into the name's type)."""
    try:
        chosen = [convert(r.strip()) for r in text.split(",") if r.strip()]
    except ValueError:
        chosen = []
    if not chosen or set(chosen) - set(rows):
        parser.error(f"--rows {text!r}: give some of {', '.join(map(str, rows))} separated by commas")
    return chosen
