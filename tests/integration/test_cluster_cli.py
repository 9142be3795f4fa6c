"""Operating a multi-node cluster with the ``juno`` CLI, as real processes: a head and nodes
added with ``juno start --address``, ``juno status`` (nodes alive and dead, used / total,
demand), ``juno stop --address``, and an added node in the foreground (``--block``).

Every cluster is stopped by its own address or session folder, never by a bare ``juno
stop`` (it would stop the `juno start` clusters of anything else running here). The
current-cluster file is private to each test ($JUNO_CLUSTER_FILE).
"""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

from cli_harness import CMD_TIMEOUT, fast_heartbeat_cli, free_port, shm_dirs
from helpers import wait_for_condition

DEATH_TIMEOUT_S = 1.5  # node_death_timeout_s of the clusters started here


def node_lines(status: str) -> dict[str, tuple[str, str]]:
    """node id -> (its line, the line under it) in `juno status`."""
    lines = status.splitlines()
    out = {}
    for i, line in enumerate(lines):
        m = re.match(r"^  node ([0-9a-f]+)  ", line)
        if m:
            out[m.group(1)] = (line, lines[i + 1] if i + 1 < len(lines) else "")
    return out


def node_of(status: str, prefix: str) -> tuple[str, str]:
    found = [v for k, v in node_lines(status).items() if k.startswith(prefix)]
    assert len(found) == 1, f"node {prefix} not (once) in:\n{status}"
    return found[0]


def total(status: str, name: str) -> tuple[float, float]:
    section = status.split("Cluster total (used / total):", 1)[1].split("\n\n", 1)[0]
    m = re.search(rf"^  {re.escape(name)}\s+([\d.]+)(?: GiB)? / ([\d.]+)(?: GiB)?$", section, re.M)
    assert m, f"no {name} total in:\n{status}"
    return float(m.group(1)), float(m.group(2))


@pytest.fixture
def cli(tmp_path):
    with fast_heartbeat_cli(tmp_path, "PYTEST_JUNO_CLUSTER_CLI_MARKER", DEATH_TIMEOUT_S) as c:  # a killed node is seen dead fast
        yield c


HOLD_CPUS = """
    import os, time, juno
    juno.init(address={address!r})

    @juno.remote(num_cpus=1)
    def hold(gate):
        while not os.path.exists(gate):
            time.sleep(0.02)
        return juno.get_runtime_context().get_node_id()

    # Distinct shapes (memory=, well above what a task uses) so that each task asks for its own
    # lease instead of queuing behind another on a leased worker: what does not fit waits at a
    # node manager.
    refs = [hold.options(memory=(256 + i) << 20).remote({gate!r}) for i in range(5)]
    print("submitted", flush=True)
    print("ran on", len(set(juno.get(refs, timeout=60))), "nodes", flush=True)
    juno.shutdown()
"""


def test_head_two_added_nodes_status_demand_and_stop(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    session = cli.start_head(port)
    accel = cli.add_node(address, "--num-cpus", 1, "--resources", '{"accel": 2}')
    gpu = cli.add_node(address, "--num-cpus", 1, "--num-gpus", 1, "--object-store-memory", 64 << 20)
    assert accel != gpu
    assert len(shm_dirs(session)) == 3  # every node has its own store

    status = cli.ok("status")
    assert f"Juno cluster at {address}" in status
    assert "Nodes: 3 alive\n" in status, status
    assert len(node_lines(status)) == 3
    head = [line for line, _ in node_lines(status).values() if " head " in line]
    assert len(head) == 1 and " alive head " in head[0]
    assert "accel 0.0 / 2.0" in node_of(status, accel)[1]
    gpu_usage = node_of(status, gpu)[1]
    assert "GPU 0.0 / 1.0" in gpu_usage and "object_store_memory 0.00 GiB / 0.06 GiB" in gpu_usage
    assert total(status, "CPU") == (0.0, 3.0)
    assert total(status, "GPU") == (0.0, 1.0) and total(status, "accel") == (0.0, 2.0)
    assert "(no resource demands)" in status

    # A driver holds every CPU and queues more: status shows the CPUs used and the demand.
    gate = cli.tmp / "gate"
    driver = cli.spawn_python(HOLD_CPUS.format(address=address, gate=str(gate)))
    try:
        def busy():
            s = cli.ok("status")
            queued = re.search(r"^  \{'CPU': 1\.0, 'memory': \d+\.0\}: 1 pending tasks/actors$", s, re.M)
            return s if queued and total(s, "CPU")[0] >= 1.0 else None
        status = wait_for_condition(busy, timeout=30)
        assert "Jobs: 1 running" in status
    finally:
        gate.touch()
    out, _ = driver.communicate(timeout=CMD_TIMEOUT)
    assert driver.returncode == 0 and "ran on" in out, out
    wait_for_condition(lambda: "(no resource demands)" in cli.ok("status"), timeout=10)

    r = cli.run("stop", "--address", address)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "Stopped 1 GCS, 3 node managers" in r.stdout, r.stdout
    assert cli.processes() == []
    assert shm_dirs(session) == []
    assert not os.path.exists(session)  # logs, sockets and all
    assert not cli.cluster_file.exists()
    r = cli.run("status", "--address", address, "--timeout", 1)
    assert r.returncode == 1 and "nothing listens at" in r.stderr, r.stderr


def test_a_killed_node_shows_dead_with_its_reason_and_stop_cleans_it_up(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    session = cli.start_head(port)
    victim = cli.add_node(address, "--num-cpus", 1)
    survivor = cli.add_node(address, "--num-cpus", 1)
    line, _ = node_of(cli.ok("status"), victim)
    pid = int(re.search(r"  pid (\d+)  ", line).group(1))
    os.killpg(pid, signal.SIGKILL)  # the node manager and its workers, as when a machine dies
    killed_at = time.monotonic()

    status = wait_for_condition(lambda: (s := cli.ok("status")) and "Nodes: 2 alive, 1 dead" in s and s,
                                timeout=DEATH_TIMEOUT_S + 10)
    assert time.monotonic() - killed_at < DEATH_TIMEOUT_S + 5
    line, reason = node_of(status, victim)
    assert "  dead  " in line and "no heartbeat" in reason and reason.lstrip().startswith("died ")
    assert "  alive  " in node_of(status, survivor)[0]
    assert total(status, "CPU")[1] == 2.0  # the dead node's CPU is gone from the totals
    assert list(node_lines(status))[-1].startswith(victim)  # dead nodes last

    # Its store janitor (it outlives the process group) removed its store; stop removes the rest.
    wait_for_condition(lambda: len(shm_dirs(session)) == 2, timeout=10)
    r = cli.run("stop", "--address", address, "--grace-period", 5)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "Stopped 1 GCS, 2 node managers" in r.stdout, r.stdout
    assert cli.processes() == [] and shm_dirs(session) == [] and not os.path.exists(session)


def test_added_node_in_the_foreground_stops_alone(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    session = cli.start_head(port)
    # "auto": the cluster `juno start --head` recorded (the private cluster file here)
    proc, out = cli.start_block("--address", "auto", "--num-cpus", 1, "--resources", '{"pool": 1}')
    node = re.search(r"^Added node ([0-9a-f]{12}) .* to the Juno cluster at (\S+)\.$", out, re.M)
    assert node and node.group(2) == address, out
    node = node.group(1)
    status = cli.ok("status")
    assert "Nodes: 2 alive\n" in status and "pool 0.0 / 1.0" in node_of(status, node)[1]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    status = cli.ok("status")  # the node said goodbye: dead at once, not after the heartbeat timeout
    line, reason = node_of(status, node)
    assert "  dead  " in line and "stopped" in reason
    assert "Nodes: 1 alive, 1 dead" in status and "pool" not in status.split("Cluster total", 1)[1]
    assert len(shm_dirs(session)) == 1  # only the head's store is left

    cli.ok("stop", "--session-dir", session)
    assert cli.processes() == [] and shm_dirs(session) == []


HOLD_GROUPS = """
    import os, time, juno
    from juno.util.placement_group import placement_group
    juno.init(address={address!r})
    ready = placement_group([{{"CPU": 1}}, {{"CPU": 1}}], strategy="STRICT_SPREAD", name="pair")
    juno.get(ready.ready(), timeout=30)
    waiting = placement_group([{{"CPU": 1}}] * 3, strategy="STRICT_SPREAD")  # 3 nodes needed, 2 here
    print("created", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists({gate!r}) and time.monotonic() < deadline:
        time.sleep(0.05)
    juno.shutdown()
"""


def test_status_shows_placement_groups_and_their_demand(cli):
    port = free_port()
    address = f"127.0.0.1:{port}"
    cli.start_head(port)
    cli.add_node(address, "--num-cpus", 1)
    gate = cli.tmp / "gate"
    driver = cli.spawn_python(HOLD_GROUPS.format(address=address, gate=str(gate)))
    try:
        status = wait_for_condition(
            lambda: (s := cli.ok("status")) and "Placement groups: 2 (1 created, 1 pending)" in s and s, timeout=30)
        assert re.search(r"^  [0-9a-f]{16} 'pair'  STRICT_SPREAD  CREATED  bundles \{'CPU': 1\.0\} \* 2$",
                         status, re.M), status
        assert "  {'CPU': 1.0} * 3 (STRICT_SPREAD): 1 pending placement groups" in status
        assert total(status, "CPU") == (2.0, 2.0)  # both CPUs are reserved by the group
        assert "_group_" not in status  # the bundles' bookkeeping resources are not shown
    finally:
        gate.touch()
    out, _ = driver.communicate(timeout=CMD_TIMEOUT)
    assert driver.returncode == 0, out
    cli.ok("stop", "--address", address)
    assert cli.processes() == []
