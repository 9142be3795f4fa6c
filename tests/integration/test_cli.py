"""The ``juno`` command line, run as real processes: start, status, stop, drivers attaching.

Every cluster here is stopped by its own address or session folder (``juno stop
--address`` / ``--session-dir``), never by a bare ``juno stop``, which would stop
the clusters of anything else running on this machine. The current-cluster file
is a private one per test ($JUNO_CLUSTER_FILE).
"""
from __future__ import annotations

import glob
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

from helpers import wait_for_condition

MARKER = "PYTEST_JUNO_CLI_MARKER"  # not JUNO_*: that prefix is runtime config
CMD_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _juno_role(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return any(cmd[i] == "-m" and cmd[i + 1] in ("juno.gcs", "juno.node", "juno.worker")
               for i in range(len(cmd) - 1))


class Cli:
    """Runs ``python -m juno`` with a private cluster file and a marker in the environment
    that every process it starts inherits, so the test finds (and cleans up) exactly those."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.marker = uuid.uuid4().hex
        self.cluster_file = tmp_path / "current_cluster"
        self.env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
        self.env["JUNO_CLUSTER_FILE"] = str(self.cluster_file)
        self.env[MARKER] = self.marker
        self.sessions: list[str] = []
        self.popens: list[subprocess.Popen] = []

    def run(self, *args: str, env: dict | None = None, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "juno", *map(str, args)], env=env or self.env,
                              cwd=self.tmp, capture_output=True, text=True, timeout=timeout)

    def python(self, code: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env or self.env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=CMD_TIMEOUT)

    def note_session(self, stdout: str) -> str:
        m = re.search(r"^Session folder and logs: (\S+)$", stdout, re.M)
        assert m, f"no session folder in the output of juno start:\n{stdout}"
        self.sessions.append(m.group(1))
        return m.group(1)

    def start_head(self, port: int, *extra: str) -> str:
        r = self.run("start", "--head", "--port", port, "--num-cpus", 1, *extra)
        session = self.note_session(r.stdout) if r.returncode == 0 else None
        assert r.returncode == 0, f"juno start --head failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return session

    def processes(self, session: str | None = None) -> list[psutil.Process]:
        """Live juno runtime processes started by this test (of one session, if given)."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(MARKER) != self.marker or not _juno_role(proc) or not _alive(proc):
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


def shm_dirs(session: str) -> list[str]:
    return glob.glob(f"/dev/shm/juno-{os.path.basename(session)}-*")


def assert_user_error(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, f"exit code {r.returncode}, expected {code}:\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("juno: error: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, f"expected a one-line explanation:\n{r.stderr}"
    for needle in needles:
        assert needle in r.stderr, f"{needle!r} not in:\n{r.stderr}"


def total_cpu(status_out: str) -> float:
    total = status_out.split("Cluster total", 1)[1]
    m = re.search(r"^\s+CPU\s+[\d.]+ / ([\d.]+)$", total, re.M)
    assert m, status_out
    return float(m.group(1))


DRIVER = """
    import json, juno
    ctx = juno.init({args})
    @juno.remote
    def square(x):
        return x * x
    print(json.dumps({{"result": juno.get([square.remote(i) for i in range(4)], timeout=30),
                      "session_dir": ctx["session_dir"], "nodes": len(juno.nodes()),
                      "cpu": juno.cluster_resources()["CPU"]}}))
    juno.shutdown()
"""


def run_driver(cli: Cli, args: str = "", env: dict | None = None) -> dict:
    r = cli.python(DRIVER.format(args=args), env=env)
    assert r.returncode == 0, f"driver failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path)
    try:
        yield c
    finally:
        c.cleanup()


def test_head_status_drivers_second_node_and_stop(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    r = cli.run("start", "--head", "--port", port, "--num-cpus", 1)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    session = cli.note_session(r.stdout)
    for hint in ('juno.init(address="auto")', f'juno.init(address="{address}")',
                 f"juno start --address {address}", "juno stop"):
        assert hint in r.stdout, f"{hint!r} not in:\n{r.stdout}"
    assert cli.cluster_file.read_text().strip() == address

    # The processes outlive the CLI that started them.
    assert len(cli.processes(session)) >= 2

    status = cli.run("status")
    assert status.returncode == 0, status.stderr
    assert f"Juno cluster at {address}" in status.stdout
    assert "Nodes: 1 alive" in status.stdout
    assert re.search(r"^  node [0-9a-f]+  alive head ", status.stdout, re.M), status.stdout
    assert total_cpu(status.stdout) == 1.0
    assert "Jobs: 0 running" in status.stdout

    # A driver attaches with address="auto" (the cluster file) and runs tasks there.
    out = run_driver(cli, 'address="auto"')
    assert out == {"result": [0, 1, 4, 9], "session_dir": session, "nodes": 1, "cpu": 1.0}

    # JUNO_ADDRESS alone (no cluster file) points juno.init() and `juno status` at it.
    env = dict(cli.env, JUNO_ADDRESS=address, JUNO_CLUSTER_FILE=str(cli.tmp / "no-such-file"))
    out = run_driver(cli, "", env=env)
    assert out["session_dir"] == session and out["result"] == [0, 1, 4, 9]
    status = cli.run("status", env=env)
    assert status.returncode == 0 and "Nodes: 1 alive" in status.stdout, status.stdout + status.stderr
    assert "2 finished" in status.stdout, status.stdout

    # A second node on this machine joins the cluster.
    r = cli.run("start", "--address", address, "--num-cpus", 1)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "Added node" in r.stdout
    status = cli.run("status", "--address", address)
    assert status.returncode == 0, status.stderr
    assert "Nodes: 2 alive" in status.stdout, status.stdout
    assert total_cpu(status.stdout) == 2.0
    out = run_driver(cli, f'address="{address}"')
    assert out["nodes"] == 2 and out["cpu"] == 2.0

    # Stopping this cluster leaves nothing behind.
    assert shm_dirs(session)
    r = cli.run("stop", "--address", address)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "Stopped 1 GCS, 2 node managers" in r.stdout, r.stdout
    assert cli.processes() == []
    assert shm_dirs(session) == []
    assert not os.path.exists(session)
    assert not cli.cluster_file.exists()
    assert_user_error(cli.run("status"), 1, "no running Juno cluster")


def test_stop_by_address_stops_only_that_cluster(cli):
    port_a, port_b = free_port(), free_port()
    session_a = cli.start_head(port_a)
    session_b = cli.start_head(port_b)
    assert cli.cluster_file.read_text().strip() == f"127.0.0.1:{port_b}"
    assert cli.processes(session_a) and cli.processes(session_b)

    r = cli.run("stop", "--address", f"127.0.0.1:{port_a}", "--grace-period", 5)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert cli.processes(session_a) == [] and shm_dirs(session_a) == []
    assert len(cli.processes(session_b)) >= 2 and shm_dirs(session_b)
    assert cli.cluster_file.read_text().strip() == f"127.0.0.1:{port_b}"  # still names the live one
    status = cli.run("status")
    assert status.returncode == 0 and f"127.0.0.1:{port_b}" in status.stdout, status.stdout + status.stderr

    r = cli.run("stop", "--session-dir", session_b, "--force")
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert cli.processes() == [] and shm_dirs(session_b) == []
    assert not cli.cluster_file.exists()  # it named the cluster just stopped

    r = cli.run("stop", "--session-dir", session_b)
    assert r.returncode == 0 and "No Juno processes" in r.stdout, r.stdout + r.stderr


def test_block_stays_in_foreground_until_sigterm(cli):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "juno", "start", "--head", "--port", str(port), "--num-cpus", "1",
                             "--block"], env=cli.env, cwd=cli.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    cli.popens.append(proc)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    out, deadline = "", time.monotonic() + CMD_TIMEOUT
    while "(--block)" not in out:
        try:
            out += lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None and lines.empty():
                pytest.fail(f"juno start --block exited with {proc.returncode}:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"juno start --block printed no ready line in {CMD_TIMEOUT} s:\n{out}")
    session = cli.note_session(out)
    status = cli.run("status")
    assert status.returncode == 0 and "Nodes: 1 alive" in status.stdout, status.stdout + status.stderr
    assert proc.poll() is None

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    wait_for_condition(lambda: cli.processes() == [], timeout=10)
    assert shm_dirs(session) == [] and not os.path.exists(session)
    assert not cli.cluster_file.exists()


def test_busy_port_is_a_clear_error(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli.run("start", "--head", "--port", port, "--num-cpus", 1)
    assert_user_error(r, 1, f"port {port}", "--port")
    assert cli.processes() == []
    assert not cli.cluster_file.exists()


@pytest.mark.parametrize("resources, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"accel": "two"}', "non-negative number"),
    ('{"CPU": 4}', "--num-cpus"),
])
def test_bad_resources_exit_2(cli, resources, needle):
    r = cli.run("start", "--head", "--port", free_port(), "--resources", resources)
    assert_user_error(r, 2, "--resources" if "CPU" not in resources else "--num-cpus", needle)
    assert cli.processes() == []


def test_other_user_mistakes(cli):
    assert_user_error(cli.run("start", "--head", "--node-ip-address", "0.0.0.0"), 2, "loopback")
    assert_user_error(cli.run("start", "--num-cpus", 1), 2, "--head", "--address")
    assert_user_error(cli.run("start", "--head", "--num-cpus", -1), 2, "--num-cpus")
    r = cli.run("start", "--address", f"127.0.0.1:{free_port()}", "--timeout", 1)
    assert_user_error(r, 1, "no Juno cluster answered")
    assert cli.processes() == []


def test_status_without_a_cluster_exits_1(cli):
    assert_user_error(cli.run("status"), 1, "no running Juno cluster", "juno start --head")
    r = cli.run("status", "--address", f"127.0.0.1:{free_port()}", "--timeout", 1)
    assert_user_error(r, 1, "did not answer within 1 s")
    r = cli.run("stop", "--address", f"127.0.0.1:{free_port()}")
    assert r.returncode == 0 and "nothing to stop" in r.stdout, r.stdout + r.stderr


def test_version_help_and_console_script(cli):
    from juno import __version__
    from juno.cli import main

    r = cli.run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"juno {__version__}"
    script = Path(sys.executable).parent / "juno"
    assert script.exists(), "the `juno` console script is not installed (pip install -e .)"
    r = subprocess.run([str(script), "--version"], env=cli.env, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == f"juno {__version__}"
    r = cli.run("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("start", "stop", "status", "microbenchmark"))
    r = cli.run("microbenchmark", "--list")
    assert r.returncode == 0 and "single client tasks sync" in r.stdout, r.stdout + r.stderr
    assert main(["--version"]) == 0
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
