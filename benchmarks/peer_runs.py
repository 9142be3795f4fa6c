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
