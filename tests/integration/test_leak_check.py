"""The suite's teardown leak check (tests/leak_check.py) blames a test only for what it started.

Each test here runs a small pytest session of its own (with this suite's conftest) in a
subprocess, so that session's leak check is the one under test: beside an unrelated Juno
cluster that starts while the inner test runs, it passes; with a store and a process
deliberately left behind, it fails and names them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import leak_check
from cli_harness import CMD_TIMEOUT, free_port
from helpers import wait_for_condition

TESTS = Path(__file__).resolve().parents[1]

BESIDE_A_NEIGHBOUR = """
    import os
    import pytest
    from helpers import wait_for_file

    def test_a_cluster_beside_a_neighbour(shutdown_only):
        import juno
        # The neighbour's $JUNO_ADDRESS and cluster file are not this run's: init() starts its own.
        ctx = juno.init(num_cpus=1)
        assert ctx.address_info["address"] != os.environ["NEIGHBOUR_ADDRESS"]
        open(os.environ["INNER_STARTED"], "w").close()
        wait_for_file(os.environ["INNER_GO"], timeout=60)  # the neighbour starts meanwhile
        assert juno.get(juno.put(7), timeout=30) == 7

    def test_auto_does_not_find_the_neighbours_cluster(shutdown_only):
        import juno
        with pytest.raises(ConnectionError, match="Could not find any running Juno instance"):
            juno.init(address="auto")
"""

LEAKS = """
    import os, subprocess, sys

    def test_leaves_a_store_and_a_process_behind(shutdown_only):
        import juno
        ctx = juno.init(num_cpus=1)
        session = os.path.basename(ctx.address_info["session_dir"])
        juno.shutdown()
        # What a node manager killed outright leaves behind: its store, with no one to remove it.
        os.mkdir(f"/dev/shm/juno-{session}-0badc0de")
        open(os.environ["INNER_LEAK"], "w").write(f"/dev/shm/juno-{session}-0badc0de")
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "juno-leak-check-orphan"],
                         start_new_session=True)
"""


def run_inner(tmp_path: Path, body: str, env: dict) -> subprocess.Popen:
    """Starts ``pytest`` on a test file holding ``body``, with this suite's conftest and helpers,
    as a run of its own (its own marker and temp folder); stdout and stderr together."""
    inner = tmp_path / "inner"
    inner.mkdir()
    for name in ("conftest.py", "helpers.py", "leak_check.py"):
        shutil.copy(TESTS / name, inner / name)
    (inner / "test_inner.py").write_text(textwrap.dedent(body))
    full_env = {k: v for k, v in os.environ.items() if k not in (leak_check.RUN_MARKER, "TMPDIR")}
    full_env.update(env, TMPDIR=leak_check.SYSTEM_TMPDIR)
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "120",
                             "--rootdir", str(inner), str(inner / "test_inner.py")],
                            cwd=inner, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def juno_cli(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "juno", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=CMD_TIMEOUT)


@pytest.fixture
def neighbour_env(tmp_path, _juno_leak_guard):
    """The environment of an unrelated cluster's `juno start`: the machine's temp folder
    arrangement of another user session (a folder of its own, not this run's) and a cluster file
    of its own. Whatever it started is stopped afterwards, by its address."""
    neighbour_tmp = tempfile.mkdtemp(prefix="juno-nb-", dir=leak_check.SYSTEM_TMPDIR)
    env = dict(os.environ, TMPDIR=neighbour_tmp, JUNO_CLUSTER_FILE=str(tmp_path / "neighbour" / "current"))
    addresses: list[str] = []
    yield env, addresses
    for address in addresses:
        juno_cli(env, "stop", "--address", address)
    shutil.rmtree(neighbour_tmp, ignore_errors=True)


def test_a_test_beside_an_unrelated_cluster_passes_its_leak_check(tmp_path, neighbour_env):
    env, addresses = neighbour_env
    port = free_port()
    address = f"127.0.0.1:{port}"
    started, go = tmp_path / "started", tmp_path / "go"
    inner = run_inner(tmp_path, BESIDE_A_NEIGHBOUR, {
        "INNER_STARTED": str(started), "INNER_GO": str(go), "NEIGHBOUR_ADDRESS": address,
        "JUNO_ADDRESS": address, "JUNO_CLUSTER_FILE": env["JUNO_CLUSTER_FILE"]})
    try:
        wait_for_condition(lambda: started.exists() or inner.poll() is not None, timeout=CMD_TIMEOUT)
        assert started.exists(), inner.communicate(timeout=CMD_TIMEOUT)[0]
        # The neighbour starts while the inner test runs: its store and processes are new then.
        addresses.append(address)
        r = juno_cli(env, "start", "--head", "--port", port, "--num-cpus", 1)
        assert r.returncode == 0, r.stdout + r.stderr
        go.touch()
        out, _ = inner.communicate(timeout=4 * CMD_TIMEOUT)
    finally:
        go.touch()
        if inner.poll() is None:
            inner.kill()
            inner.wait(10)
    assert inner.returncode == 0, out
    assert "2 passed" in out and "leak check" not in out, out
    # and the neighbour is untouched
    assert juno_cli(env, "status", "--address", address).returncode == 0


def test_a_store_and_a_process_left_behind_are_still_reported(tmp_path, _juno_leak_guard):
    leak = tmp_path / "leak"
    inner = run_inner(tmp_path, LEAKS, {"INNER_LEAK": str(leak), "PYTEST_JUNO_LEAK_WAIT_S": "2"})
    try:
        out, _ = inner.communicate(timeout=4 * CMD_TIMEOUT)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait(10)
        if leak.exists():
            shutil.rmtree(leak.read_text(), ignore_errors=True)
    assert inner.returncode != 0, out
    assert "leak check failed" in out, out
    assert "shared memory left behind" in out and leak.read_text() in out, out
    assert "juno-leak-check-orphan" in out, out


def test_a_killed_runs_temp_folder_is_removed_by_the_next_run(tmp_path):
    """A run killed before its clean-up (a CI timeout) leaves /tmp/juno-run-*; the next run's
    isolate_run() removes it, but never the folder of a run still going on."""
    import psutil

    def run_folder(name: str, pid: int, started: float) -> Path:
        folder = tmp_path / f"juno-run-{name}"
        (folder / "juno-clusters").mkdir(parents=True)
        (folder / leak_check.RUN_OWNER_FILE).write_text(f"{pid} {started}\n")
        return folder

    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone_started = psutil.Process(gone.pid).create_time()
    finally:
        gone.kill()
        gone.wait(10)
    killed = run_folder("killed", gone.pid, gone_started)
    running = run_folder("running", os.getpid(), psutil.Process().create_time())
    reused = run_folder("reused", os.getpid(), psutil.Process().create_time() - 3600)  # pid taken since
    being_made = tmp_path / "juno-run-new"  # mkdtemp'd a moment ago, its owner file not written yet
    being_made.mkdir()
    unrelated = tmp_path / "juno-nb-neighbour"
    unrelated.mkdir()

    leak_check.remove_stale_run_tmpdirs(str(tmp_path))

    assert not killed.exists() and not reused.exists()
    assert running.exists() and being_made.exists() and unrelated.exists()
