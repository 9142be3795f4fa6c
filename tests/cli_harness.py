"""A harness for tests that run the ``juno`` command line as real processes.

``Cli`` runs ``python -m juno`` with a private cluster file ($JUNO_CLUSTER_FILE) and a
marker in the environment that every process it starts inherits, so a test finds (and
cleans up) exactly the processes it started. Its clusters are stopped by their session
folders, never by a bare ``juno stop``.
"""
from __future__ import annotations

import glob
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from helpers import process_alive

CMD_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _juno_role(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return any(cmd[i] == "-m" and cmd[i + 1] in ("juno.gcs", "juno.node", "juno.worker", "juno.dashboard")
               for i in range(len(cmd) - 1))


def shm_dirs(session: str) -> list[str]:
    return glob.glob(f"/dev/shm/juno-{os.path.basename(session)}-*")


class Cli:
    """``python -m juno`` with a private cluster file and a marker (environment variable
    ``marker_env``, not JUNO_*: that prefix is runtime config) that every process it starts
    inherits; ``extra_env`` is added to the environment of everything it runs."""

    def __init__(self, tmp_path: Path, marker_env: str = "PYTEST_JUNO_CLI_MARKER", extra_env: dict | None = None):
        self.tmp = tmp_path
        self.marker_env = marker_env
        self.marker = uuid.uuid4().hex
        self.cluster_file = tmp_path / "current_cluster"
        self.env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
        self.env.update({"JUNO_CLUSTER_FILE": str(self.cluster_file), marker_env: self.marker})
        self.env.update(extra_env or {})
        self.sessions: list[str] = []
        self.popens: list[subprocess.Popen] = []

    def run(self, *args, env: dict | None = None, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "juno", *map(str, args)], env=env or self.env,
                              cwd=self.tmp, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args) -> str:
        """Runs ``juno *args``, which must succeed and print nothing on stderr; returns its stdout."""
        r = self.run(*args)
        assert r.returncode == 0, f"juno {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert r.stderr == "", r.stderr
        return r.stdout

    def python(self, code: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env or self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=CMD_TIMEOUT)

    def spawn_python(self, code: str) -> subprocess.Popen:
        """Starts ``python -c code`` (dedented) in the background, stdout and stderr together;
        killed at cleanup if still running."""
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=self.env, cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.popens.append(proc)
        return proc

    def start_block(self, *args) -> tuple[subprocess.Popen, str]:
        """``juno start *args --block`` in the background; returns it and what it printed up to
        its ready line (the one that mentions ``(--block)``)."""
        what = f"juno start {' '.join(map(str, args))} --block"
        proc = subprocess.Popen([sys.executable, "-m", "juno", "start", *map(str, args), "--block"], env=self.env,
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.popens.append(proc)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        out, deadline = "", time.monotonic() + CMD_TIMEOUT
        while "(--block)" not in out:
            try:
                out += lines.get(timeout=0.5)
            except queue.Empty:
                if proc.poll() is not None and lines.empty():
                    pytest.fail(f"{what} exited with {proc.returncode}:\n{out}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} printed no ready line in {CMD_TIMEOUT} s:\n{out}")
        return proc, out

    def note_session(self, stdout: str) -> str:
        m = re.search(r"^Session folder and logs: (\S+)$", stdout, re.M)
        assert m, f"no session folder in the output of juno start:\n{stdout}"
        self.sessions.append(m.group(1))
        return m.group(1)

    def start_head(self, port: int, *extra) -> str:
        """`juno start --head` with one CPU; returns its session folder."""
        return self.note_session(self.ok("start", "--head", "--port", port, "--num-cpus", 1, *extra))

    def add_node(self, address: str, *extra) -> str:
        """`juno start --address`; returns the new node's id prefix."""
        out = self.ok("start", "--address", address, *extra)
        m = re.search(r"^Added node ([0-9a-f]{12}) ", out, re.M)
        assert m, out
        return m.group(1)

    def processes(self, session: str | None = None) -> list[psutil.Process]:
        """Live juno runtime processes started by this test (of one session, if given)."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(self.marker_env) != self.marker or not _juno_role(proc) or not process_alive(proc):
                    continue
                if session is not None and not self._in_session(proc, session):
                    continue
            except psutil.Error:
                continue
            found.append(proc)
        return found

    @staticmethod
    def _in_session(proc: psutil.Process, session: str) -> bool:
        cmd = proc.cmdline()
        if session in cmd:
            return True
        info = proc.environ().get("JUNO_WORKER_INFO")  # workers: their node's session
        return bool(info) and json.loads(info).get("session_dir") == session

    def cleanup(self) -> None:
        for p in self.popens:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for session in self.sessions:
            self.run("stop", "--session-dir", session, "--force", timeout=30)
        leftover = self.processes()
        for proc in leftover:  # last resort: only processes this test started
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftover, timeout=10)
        for session in self.sessions:
            for path in shm_dirs(session):
                shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(session, ignore_errors=True)


@contextmanager
def fast_heartbeat_cli(tmp_path: Path, marker_env: str, death_timeout_s: float) -> Iterator[Cli]:
    """A Cli whose clusters heartbeat every 0.1 s and declare a silent node dead after
    ``death_timeout_s``, so a killed node is seen dead fast; cleaned up on exit."""
    cli = Cli(tmp_path, marker_env=marker_env, extra_env={"JUNO_HEARTBEAT_INTERVAL_S": "0.1",
                                                          "JUNO_NODE_DEATH_TIMEOUT_S": str(death_timeout_s)})
    try:
        yield cli
    finally:
        cli.cleanup()
