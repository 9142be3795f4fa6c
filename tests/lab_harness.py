"""JupyterLab and headless Chromium, really started, for the browser tests.

``LabServer`` runs ``jupyter lab`` from this venv on a free loopback port with a
token, private config/data/runtime/settings folders (nothing of the user's leaks in
or out) and the environment a test gives it. ``browser()`` launches Debian's
Chromium through playwright; never a downloaded browser.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cli_harness import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Flags of a quiet headless Chromium on a machine without a network: no background
# fetches (refused connections by the dozen otherwise), no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


class LabServer:
    """``jupyter lab`` in a subprocess; ``url(path)`` builds an address with the token."""

    def __init__(self, tmp_path: Path, env: dict | None = None, base_url: str = "/", start_timeout: float = 90):
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base_url = base_url
        self.root = tmp_path / "lab-root"
        self.root.mkdir(parents=True, exist_ok=True)
        home = tmp_path / "lab-home"
        dirs = {name: home / name for name in ("config", "data", "runtime", "settings", "workspaces")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
        full_env.update({"JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
                         "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTER_PLATFORM_DIRS": "1"})
        full_env.update(env or {})
        # No "get notified about Jupyter news?" toast over the page (nor a fetch for it).
        news = dirs["settings"] / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        self.log_path = tmp_path / "jupyter-lab.log"
        lab = os.path.join(os.path.dirname(sys.executable), "jupyter-lab")
        args = [lab, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", f"--ServerApp.base_url={base_url}",
                f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}",
                "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:
            args.append("--allow-root")  # CI machines run the suite as root
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready(start_timeout)

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}{self.base_url}{path}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", body: dict | None = None, timeout: float = 30) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.base_url}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("api/status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"jupyter lab did not answer within {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def browser():
    """A headless Chromium page (1400x900) that fails the test on any uncaught page error."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = b.new_page(viewport={"width": 1400, "height": 900})
            page.page_errors = []
            page.on("pageerror", lambda e: page.page_errors.append(str(e)))
            yield page
        finally:
            b.close()


def screenshot(page, name: str) -> Path:
    """Saves a PNG under test-artifacts/ (kept by CI as the run's artifacts)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    return path
