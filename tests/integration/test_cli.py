"""The ``juno`` command line, run as real processes: start, status, stop, drivers attaching.

Every cluster here is stopped by its own address or session folder (``juno stop
--address`` / ``--session-dir``), never by a bare ``juno stop``, which would stop
the clusters of anything else running on this machine. The current-cluster file
is a private one per test ($JUNO_CLUSTER_FILE).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import leak_check
from cli_harness import CMD_TIMEOUT, Cli, free_port, shm_dirs
from helpers import wait_for_condition


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
    assert "2 worker fork servers" in r.stdout, r.stdout  # counted apart from the workers they forked
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


def test_bare_stop_stops_only_the_clusters_started_with_its_temp_folder(cli):
    """A bare `juno stop` run beside this test run with another $TMPDIR (a user's shell, a second
    checkout) leaves the run's clusters and cluster file alone; with the run's temp folder it stops
    them (this test's only: the run's tests go one at a time)."""
    address = f"127.0.0.1:{free_port()}"
    session = cli.start_head(address.rsplit(":", 1)[1])
    elsewhere = tempfile.mkdtemp(prefix="juno-nb-", dir=leak_check.SYSTEM_TMPDIR)
    try:
        r = cli.run("stop", env=dict(cli.env, TMPDIR=elsewhere))
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "No Juno processes were running." in r.stdout, r.stdout
    assert "Left alone" in r.stdout and "juno stop --all" in r.stdout, r.stdout
    assert len(cli.processes(session)) >= 2 and shm_dirs(session)
    assert cli.cluster_file.read_text().strip() == address

    r = cli.run("stop")
    assert r.returncode == 0 and "Stopped 1 GCS, 1 node manager" in r.stdout, f"{r.stdout}\n{r.stderr}"
    assert cli.processes() == [] and shm_dirs(session) == [] and not cli.cluster_file.exists()


def test_block_stays_in_foreground_until_sigterm(cli):
    port = free_port()
    proc, out = cli.start_block("--head", "--port", port, "--num-cpus", 1)
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
    r = cli.run("status", "--address", f"127.0.0.1:{free_port()}", "--timeout", 30)
    assert_user_error(r, 1, "nothing listens at 127.0.0.1:", "juno start --head")  # at once, not after 30 s
    with socket.socket() as silent:  # something listens but never answers: the timeout applies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        r = cli.run("status", "--address", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", 1)
    assert_user_error(r, 1, "did not answer within 1 s")
    r = cli.run("stop", "--address", f"127.0.0.1:{free_port()}")
    assert r.returncode == 0 and "nothing to stop" in r.stdout, r.stdout + r.stderr


def test_version_help_and_console_script(cli):
    from juno import __version__
    from juno.cli.commands import main

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
