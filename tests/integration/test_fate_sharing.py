"""Fate sharing (docs/cluster.md): each process role is killed with SIGKILL and the test checks
what is left a few seconds later. What the killed process owned is gone (processes by pid, its
node's store in /dev/shm, its session folder), and what survives still works.

Roles: the driver of a juno.init() cluster, its GCS, a node manager, a worker, and
``juno start ... --block`` (an added node, and a head). A notebook kernel's cluster is in
tests/kernel/test_kernel_restart.py. Every path checked belongs to the cluster the test started.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from cli_harness import Cli, fast_heartbeat_cli, free_port, shm_dirs
from helpers import multi_node_cluster, process_alive, wait_for_condition, wait_for_file

GONE_S = 20  # "a few seconds", with room for a busy machine

# Printed by a driver once its cluster is up: its processes (those started with its session folder:
# GCS, node manager, dashboard; the node manager's children: its workers and its store janitor),
# its node's store and the session folder.
CLUSTER_INFO = """
    import json, os, psutil, juno
    from juno.owner.core_worker import global_worker

    def cluster_info():
        cw = global_worker()
        session = cw.node["session_dir"]
        children = psutil.Process(cw.node["pid"]).children(recursive=True)
        started = [p.pid for p in psutil.process_iter(["cmdline"]) if session in (p.info["cmdline"] or [])]
        return {"driver": os.getpid(), "gcs": cw.gcs_call("cluster_info")["pid"], "node": cw.node["pid"],
                "children": [c.pid for c in children] + started, "store": cw.node["store_dir"],
                "session": session}
"""

DRIVER = CLUSTER_INFO + """
    import sys, time
    import numpy as np

    juno.init(num_cpus=1)

    @juno.remote(num_cpus=0)
    class Counter:
        def __init__(self):
            self.n = 0
        def incr(self):
            self.n += 1
            return self.n

    @juno.remote
    def total(a):
        return int(a.sum())

    counter = Counter.remote()
    big = juno.put(np.ones(1 << 20, dtype=np.uint8))  # in the node's store
    assert juno.get([counter.incr.remote(), total.remote(big)], timeout=60) == [1, 1 << 20]
    print("INFO", json.dumps(cluster_info()), flush=True)
    if len(sys.argv) > 1:  # a gate: once it exists (the test killed the GCS), work again
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
            time.sleep(0.02)
        print("AFTER", json.dumps([juno.get(counter.incr.remote(), timeout=30), juno.get(total.remote(big), timeout=30),
                                   int(juno.get(juno.put(np.ones(1 << 20, dtype=np.uint8)), timeout=30).sum())]),
              flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return process_alive(psutil.Process(pid))
    except psutil.Error:
        return False


def _left(info: dict, *, session: bool = True) -> list[str]:
    """What is left of the cluster ``info`` describes (empty: nothing)."""
    left = [f"pid {pid}" for pid in [info["gcs"], info["node"], *info["children"]] if _alive(pid)]
    left += [path for path in [info["store"]] + ([info["session"]] if session else []) if os.path.exists(path)]
    return left


def _nothing_left(info: dict, **kwargs) -> None:
    try:
        wait_for_condition(lambda: not _left(info, **kwargs), timeout=GONE_S)
    except RuntimeError:
        pytest.fail(f"{GONE_S} s after the kill, still there: {_left(info, **kwargs)}")


def _read_tagged(proc: subprocess.Popen, tag: str):
    """The JSON after ``tag`` on the first line of the driver's output that starts with it (its
    log lines, on stderr, come in between)."""
    seen = ""
    for line in proc.stdout:
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1:])
        seen += line
    pytest.fail(f"the driver exited (code {proc.wait(10)}) without printing {tag}:\n{seen}")


@pytest.fixture
def driver(tmp_path, _juno_leak_guard):
    """Starts DRIVER (a juno.init() cluster) as a process of its own; returns a function that starts
    it with the given arguments and returns it with its cluster's info. Killed at the end."""
    procs = []

    def start(*args: str) -> tuple[subprocess.Popen, dict]:
        script = tmp_path / "driver.py"
        script.write_text(textwrap.dedent(DRIVER))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc, _read_tagged(proc, "INFO")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


def test_a_killed_driver_takes_its_cluster_along(driver):
    proc, info = driver()
    assert info["children"] and os.path.isdir(info["store"]) and os.path.isdir(info["session"])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # The GCS and node manager see their lifeline close; the node's workers die with it; the
    # store, the spill and session folders go.
    _nothing_left(info)


def test_a_killed_gcs_leaves_the_driver_working_and_orphans_nothing(driver, tmp_path):
    gate = tmp_path / "gcs-killed"
    proc, info = driver(str(gate))
    os.kill(info["gcs"], signal.SIGKILL)
    wait_for_condition(lambda: not _alive(info["gcs"]), timeout=10)
    gate.touch()
    # The node, its workers and its store serve the driver without the GCS: actor calls, tasks, objects.
    assert _read_tagged(proc, "AFTER") == [2, 1 << 20, 1 << 20]
    assert _alive(info["node"]) and os.path.isdir(info["store"])
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # Its owner gone, the node goes too. (The session folder stays: its GCS, which removes it, died first.)
    _nothing_left(info, session=False)


FAST = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 2.0}


@pytest.fixture
def two_nodes(_juno_leak_guard):
    with multi_node_cluster(_juno_leak_guard, {"num_cpus": 1}, {"num_cpus": 1}, system_config=FAST) \
            as (cluster, (node,)):
        yield cluster, node


def test_a_killed_node_manager_takes_its_workers_and_store_along(two_nodes):
    import juno
    from juno.exceptions import ActorDiedError
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster, node = two_nodes

    @juno.remote(num_cpus=0)
    class Where:
        def node(self):
            return juno.get_runtime_context().get_node_id()

    there = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    keeper = Where.options(max_restarts=1, max_task_retries=-1,
                           scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=True)).remote()
    mortal = Where.options(max_restarts=0, scheduling_strategy=there).remote()
    assert juno.get([keeper.node.remote(), mortal.node.remote()], timeout=60) == [node.node_id] * 2
    children = psutil.Process(node.pid).children(recursive=True)  # its workers and store janitor
    assert sum("juno.worker" in c.cmdline() for c in children) >= 2 and os.path.isdir(node.info["store_dir"])

    os.kill(node.pid, signal.SIGKILL)  # the node manager alone, not its process group
    try:
        wait_for_condition(lambda: not any(process_alive(c) for c in children)
                           and not os.path.exists(node.info["store_dir"]), timeout=GONE_S)
    except RuntimeError:
        pytest.fail(f"left after the node manager's death: {[c.pid for c in children if process_alive(c)]}, "
                    f"store there: {os.path.exists(node.info['store_dir'])}")

    # The GCS declares the node dead: the restartable actor moves to the head, the other fails naming the node.
    head = cluster.head_node.node_id
    assert juno.get(keeper.node.remote(), timeout=30) == head
    with pytest.raises(ActorDiedError) as info:
        juno.get(mortal.node.remote(), timeout=30)
    assert node.node_id[:12] in str(info.value) and "died" in str(info.value)
    assert os.path.isdir(cluster.head_node.info["store_dir"])


def test_a_killed_worker_is_replaced_and_its_task_retried(shutdown_only, tmp_path):
    import juno
    from juno.owner.core_worker import global_worker

    juno.init(num_cpus=1)
    gate = str(tmp_path / "gate")

    @juno.remote(max_retries=1)
    def work(x, marks, gate):
        open(os.path.join(marks, str(os.getpid())), "w").close()
        wait_for_file(gate, 60)
        return x * 2

    ref = work.remote(21, str(tmp_path), gate)
    first = int(wait_for_condition(lambda: [m for m in os.listdir(tmp_path) if m.isdigit()], timeout=30)[0])
    os.kill(first, signal.SIGKILL)
    open(gate, "w").close()
    assert juno.get(ref, timeout=60) == 42  # run again on a new worker
    node = global_worker().node
    # The node manager reaped it (no zombie) and lives on with its store.
    wait_for_condition(lambda: not _alive(first), timeout=10)
    assert _alive(node["pid"]) and os.path.isdir(node["store_dir"])
    assert {int(m) for m in os.listdir(tmp_path) if m.isdigit()} - {first}


DEATH_TIMEOUT_S = 1.5


@pytest.fixture
def cli(tmp_path):
    with fast_heartbeat_cli(tmp_path, "PYTEST_JUNO_FATE_MARKER", DEATH_TIMEOUT_S) as c:  # a killed node is seen dead fast
        yield c


def _node_pids(cli: Cli, session: str) -> dict[str, int]:
    """node manager pid -> its node id prefix (8 hex digits, as in its store's name)."""
    out = {}
    for p in cli.processes(session):
        cmd = p.cmdline()
        if "juno.node" in cmd:
            out[p.pid] = cmd[cmd.index("--node-id") + 1][:8]
    return out


def test_a_killed_block_cli_takes_its_node_along(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    session = cli.start_head(port)
    head = set(_node_pids(cli, session))
    proc, out = cli.start_block("--address", address, "--num-cpus", 1)
    node_pid, node = next((pid, n) for pid, n in _node_pids(cli, session).items() if pid not in head)
    workers = psutil.Process(node_pid).children(recursive=True)
    assert workers and len(shm_dirs(session)) == 2

    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    store = [d for d in shm_dirs(session) if d.endswith(node)]
    wait_for_condition(lambda: not _alive(node_pid) and not any(process_alive(w) for w in workers)
                       and not any(os.path.exists(d) for d in store), timeout=GONE_S)
    # The node said goodbye: the GCS knows it dead at once; the head and its store live on.
    status = cli.ok("status")
    assert "Nodes: 1 alive, 1 dead" in status, status
    assert set(_node_pids(cli, session)) == head and len(shm_dirs(session)) == 1


def test_a_killed_block_head_takes_its_cluster_along(cli):
    port = free_port()
    proc, out = cli.start_block("--head", "--port", port, "--num-cpus", 1)
    session = cli.note_session(out)
    procs = cli.processes(session)
    assert len(procs) >= 3 and shm_dirs(session) and cli.cluster_file.exists()

    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # GCS, head node, workers, store, session folder and the current-cluster record: all gone.
    wait_for_condition(lambda: not any(process_alive(p) for p in procs) and not shm_dirs(session)
                       and not os.path.exists(session) and not cli.cluster_file.exists(), timeout=GONE_S)
    r = cli.run("status", "--address", f"127.0.0.1:{port}", "--timeout", 1)
    assert r.returncode == 1 and "nothing listens at" in r.stderr, r.stderr


def test_a_worker_whose_node_manager_died_while_it_started_exits(tmp_path):
    """The race the parent-death signal leaves open: the node manager dies before its new worker
    asks for the signal. The worker sees it was reparented and exits instead of living on."""
    not_its_parent = psutil.Process().ppid()  # a live process, but not the worker's parent
    info = {"worker_id": "00" * 16, "node": {"pid": not_its_parent}, "gcs_address": "tcp://127.0.0.1:9",
            "session_dir": str(tmp_path)}
    env = dict(os.environ, JUNO_WORKER_INFO=json.dumps(info))
    proc = subprocess.Popen([sys.executable, "-m", "juno.worker"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        out = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 1 and f"its node manager (pid {not_its_parent}) is gone; exiting" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
