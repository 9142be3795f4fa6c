"""Installing Juno enables its Jupyter extensions: the ones a user gets from the wheel,
and the ones this checkout's venv has (scripts/bootstrap.sh)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.path.dirname(sys.executable)


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _jupyter(*args: str) -> str:
    r = subprocess.run([os.path.join(BIN, "jupyter"), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"jupyter {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def test_lab_lists_the_prebuilt_extension_as_enabled():
    out = _jupyter("labextension", "list")
    line = next((ln for ln in out.splitlines() if "juno-jupyterlab" in ln), None)
    assert line is not None, f"juno-jupyterlab is not installed:\n{out}"
    assert "enabled" in line and "OK" in line, line


def test_server_lists_the_server_extension_as_enabled():
    out = _jupyter("server", "extension", "list")
    lines = out.splitlines()
    at = next((i for i, ln in enumerate(lines) if "juno.jupyter_extension" in ln), None)
    assert at is not None, f"juno.jupyter_extension is not enabled:\n{out}"
    assert "enabled" in lines[at], lines[at]
    # The validation lines below it say whether it imports and loads ("<name> OK") or why not.
    assert any(ln.split()[:2] == ["juno.jupyter_extension", "OK"] for ln in
               (strip_ansi(x) for x in lines[at + 1:at + 4])), "\n".join(lines[at:at + 4])


def test_the_wheel_carries_the_built_front_end_and_enables_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheel = next(tmp_path.glob("juno-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "juno-0.1.0.data/data/"
    for must in ("juno/jupyter_extension/__init__.py", "juno/dashboard/static/index.html",
                 "juno/dashboard/static/dashboard.js",
                 f"{data}etc/jupyter/jupyter_server_config.d/juno.json",
                 f"{data}share/jupyter/labextensions/juno-jupyterlab/package.json"):
        assert must in names, f"{must} is not in {wheel.name}"
    assert any(n.startswith(f"{data}share/jupyter/labextensions/juno-jupyterlab/static/remoteEntry.")
               for n in names), "the wheel has no built JupyterLab extension (remoteEntry.*.js)"
    assert not any("node_modules" in n for n in names)


def test_a_checkout_without_the_built_front_end_still_installs(tmp_path):
    """Binder installs ``.`` (binder/requirements.txt) before its postBuild builds the front
    end: the wheel must build then too, only without the JupyterLab extension."""
    skip = shutil.ignore_patterns(".git", ".venv", "node_modules", "labextension", "dashboard.js*",
                                  "test-artifacts", "__pycache__", "*.egg-info", "build", "dist")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=skip)
    assert not (src / "jupyter_extension" / "labextension").exists()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = set(zipfile.ZipFile(next((tmp_path / "dist").glob("juno-*.whl"))).namelist())
    assert "juno/api.py" in names and "juno/jupyter_extension/handlers.py" in names
    assert "juno-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/juno.json" in names
    assert not any("labextensions/juno-jupyterlab" in n for n in names)
