"""The multi-node test helper ``juno.cluster_utils.Cluster``: real node managers on this
machine that tests add, remove, kill and wait for, and that leave nothing behind."""
from __future__ import annotations

import glob
import os
import time

import psutil
import pytest

from helpers import wait_for_condition

FAST = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 1.0}


def shm_dirs(cluster) -> list[str]:
    return glob.glob(f"/dev/shm/juno-{cluster.session_name}-*")


def processes_of(cluster) -> list[psutil.Process]:
    """Live GCS, node manager and worker processes of the cluster."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and cluster.session_dir in " ".join(proc.cmdline()):
                out.append(proc)
                out += [c for c in proc.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            continue
    return out


@pytest.fixture
def make_cluster(_juno_leak_guard):
    from juno.cluster_utils import Cluster

    made = []

    def make(**kwargs):
        kwargs.setdefault("_system_config", FAST)
        c = Cluster(**kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


def test_add_nodes_connect_run_tasks_and_shutdown_leaves_nothing(make_cluster):
    import juno

    cluster = make_cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    assert cluster.head_node.head and cluster.head_node.alive()
    worker = cluster.add_node(num_cpus=1, resources={"pool": 2}, object_store_memory=64 << 20)
    cluster.wait_for_nodes(timeout=10)
    assert cluster.list_all_nodes() == [cluster.head_node, worker]
    assert cluster.alive_node_ids() == {cluster.head_node.node_id, worker.node_id}
    assert len(shm_dirs(cluster)) == 2

    cluster.connect()
    assert juno.is_initialized()
    nodes = {n["NodeID"]: n for n in juno.nodes()}
    assert set(nodes) == {cluster.head_node.node_id, worker.node_id}
    assert nodes[cluster.head_node.node_id]["IsHead"] and not nodes[worker.node_id]["IsHead"]
    assert nodes[worker.node_id]["Resources"]["pool"] == 2.0
    assert juno.cluster_resources()["CPU"] == 2.0 and juno.cluster_resources()["pool"] == 2.0

    @juno.remote
    def double(x):
        return 2 * x

    assert juno.get([double.remote(i) for i in range(4)], timeout=30) == [0, 2, 4, 6]
    assert processes_of(cluster)

    session = cluster.session_dir
    from juno.cluster.local_cluster import token_path

    token_file = token_path(cluster.gcs_address)
    assert os.path.exists(token_file)
    cluster.shutdown()
    assert not juno.is_initialized()
    assert processes_of(cluster) == []
    assert shm_dirs(cluster) == [] and not os.path.exists(session)
    assert not os.path.exists(token_file), "the cluster's stored token outlived it"
    cluster.shutdown()  # twice is harmless


def test_node_killed_without_grace_is_seen_dead_within_the_timeout(make_cluster):
    import juno

    cluster = make_cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 1})
    victim = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes(timeout=10)
    wait_for_condition(lambda: juno.available_resources().get("CPU") == 2.0, timeout=5)
    workers = [p for p in psutil.Process(victim.pid).children()]
    cluster.remove_node(victim, allow_graceful=False)
    killed_at = time.monotonic()
    assert not victim.alive()
    assert workers
    wait_for_condition(lambda: not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
                       timeout=5)  # its workers die with it (SIGKILL lands at once; reaping may lag)
    assert not glob.glob(victim.info["store_dir"])  # its store is cleaned up for it

    # The GCS declares it dead after node_death_timeout_s (1 s) of silence, not later.
    cluster.wait_for_nodes(timeout=FAST["node_death_timeout_s"] + 3)
    assert time.monotonic() - killed_at < FAST["node_death_timeout_s"] + 1.5
    assert cluster.alive_node_ids() == {cluster.head_node.node_id}
    dead = [n for n in juno.nodes() if n["NodeID"] == victim.node_id]
    assert len(dead) == 1 and dead[0]["Alive"] is False and dead[0]["Resources"] == {}
    assert "no heartbeat" in dead[0]["DeathReasonMessage"]
    assert juno.cluster_resources()["CPU"] == 1.0
    wait_for_condition(lambda: juno.available_resources().get("CPU") == 1.0, timeout=5)  # live nodes only

    # A node removed gracefully says goodbye: dead at once, with an "expected" reason.
    other = cluster.add_node(num_cpus=1)
    cluster.remove_node(other)
    entry = wait_for_condition(lambda: [n for n in juno.nodes() if n["NodeID"] == other.node_id
                                        and not n["Alive"]], timeout=2)[0]
    assert "stopped" in entry["DeathReasonMessage"]
    with pytest.raises(ValueError, match="not a node of this cluster"):
        cluster.remove_node(other)


def test_wait_for_nodes_times_out_and_fails_fast_with_reasons(make_cluster):
    cluster = make_cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1)
    with pytest.raises(ValueError, match="positive"):
        cluster.wait_for_nodes(timeout=0)

    # Killed behind the helper's back: waiting is pointless, said at once with the log to read.
    os.killpg(node.pid, 9)
    node.process.wait(10)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"exited with code -9; see .*node-"):
        cluster.wait_for_nodes(timeout=20)
    assert time.monotonic() - start < 2
    cluster.remove_node(node, allow_graceful=False)

    # Killed through the helper: until the GCS notices (about 1 s), the wait times out,
    # naming what the GCS sees; then it returns.
    extra = cluster.add_node(num_cpus=1)
    cluster.remove_node(extra, allow_graceful=False)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"Timed out after 0.3 s .*the GCS sees alive: .*"
                                           + extra.node_id[:12]):
        cluster.wait_for_nodes(timeout=0.3)
    assert time.monotonic() - start < 2
    cluster.wait_for_nodes(timeout=5)

    cluster.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        cluster.wait_for_nodes(timeout=1)


def test_bad_arguments_are_clear(make_cluster):
    from juno.cluster_utils import Cluster

    with pytest.raises(ValueError, match="initialize_head=True"):
        Cluster(connect=True)
    cluster = make_cluster()
    assert cluster.head_node is None and cluster.list_all_nodes() == []
    with pytest.raises(TypeError, match="unexpected arguments.*cpus"):
        cluster.add_node(cpus=1)
    head = cluster.add_node(num_cpus=1)  # the first node added is the head
    assert head is cluster.head_node and head.head
    cluster.wait_for_nodes(timeout=10)
