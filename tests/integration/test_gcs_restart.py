"""A GCS killed with SIGKILL and started again on the same port recovers the cluster:
running work goes on through the outage, and afterwards named and detached actors,
new tasks and actors, the node table and node failure detection all work
(runtime/gcs/recovery.py, runtime/gcs/client.py)."""
from __future__ import annotations

import os
import threading
import time

import pytest

from helpers import wait_for_condition, wait_for_file

# Short node death timeout so a node lost after the restart is noticed within the test.
SYSTEM_CONFIG = {"node_death_timeout_s": 2.0, "gcs_reconnect_timeout_s": 30.0}


@pytest.fixture
def two_nodes(_juno_leak_guard):
    """A head node and a worker node (1 CPU each), this process attached as the driver."""
    from juno.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, _system_config=SYSTEM_CONFIG)
    try:
        cluster.add_node(num_cpus=1, resources={"worker_node": 1})
        cluster.wait_for_nodes()
        cluster.connect(_system_config=SYSTEM_CONFIG)
        yield cluster
    finally:
        _juno_leak_guard.note_processes()
        if cluster.gcs_process is not None and cluster.gcs_process.poll() is not None:
            cluster.restart_gcs()  # a test that failed mid-outage: let everything stop cleanly
        cluster.shutdown()


def _alive_nodes(juno) -> set[str]:
    return {n["NodeID"] for n in juno.nodes() if n["Alive"]}


def test_cluster_survives_a_gcs_restart(two_nodes, tmp_path):
    import juno

    cluster = two_nodes
    worker_node = cluster.worker_nodes[0]

    @juno.remote(num_cpus=0)
    class Counter:
        def __init__(self, start=0):
            self.n = start

        def incr(self):
            self.n += 1
            return self.n

        def node(self):
            return juno.get_runtime_context().get_node_id()

    @juno.remote(num_cpus=1, resources={"worker_node": 1})
    def long_task(path):
        wait_for_file(path, timeout=60)
        return "finished after the restart"

    @juno.remote(num_cpus=1)
    def square(x):
        return x * x

    keeper = Counter.options(name="keeper", lifetime="detached").remote(100)
    plain = Counter.remote()
    assert juno.get([keeper.incr.remote(), plain.incr.remote()], timeout=30) == [101, 1]
    gate = str(tmp_path / "gate")
    long_ref = long_task.remote(gate)
    assert juno.get(square.remote(3), timeout=30) == 9
    ready, _ = juno.wait([long_ref], timeout=0.5)
    assert not ready

    cluster.kill_gcs()
    # Actor calls go straight to the actor's worker: they go on while the GCS is down.
    assert juno.get(plain.incr.remote(), timeout=10) == 2
    assert juno.get(keeper.incr.remote(), timeout=10) == 102
    # A GCS request made during the outage waits for the GCS (heartbeats go unanswered too) ...
    during: dict = {}
    lookup = threading.Thread(target=lambda: during.update(found=juno.get_actor("keeper")), daemon=True)
    lookup.start()
    time.sleep(1.0)
    assert lookup.is_alive()
    cluster.restart_gcs()
    lookup.join(30)
    assert "found" in during  # ... and is answered by the restarted one

    # The task that ran through the outage delivers its result.
    open(gate, "w").close()
    assert juno.get(long_ref, timeout=30) == "finished after the restart"
    # Both nodes are known and alive again.
    wait_for_condition(lambda: _alive_nodes(juno) == {cluster.head_node.node_id, worker_node.node_id}, timeout=15)
    cluster.wait_for_nodes(timeout=15)
    # The named detached actor is found, with its state.
    found = juno.get_actor("keeper")
    assert juno.get(found.incr.remote(), timeout=10) == 103
    assert juno.get(plain.incr.remote(), timeout=10) == 3
    # New tasks run (the function was exported before: workers fetch it from the recovered KV),
    # as do new actors, on either node.
    assert juno.get([square.remote(i) for i in range(4)], timeout=30) == [0, 1, 4, 9]
    fresh = Counter.options(resources={"worker_node": 0.5}).remote(7)
    assert juno.get(fresh.incr.remote(), timeout=30) == 8
    assert juno.get(fresh.node.remote(), timeout=10) == worker_node.node_id
    named = Counter.options(name="after", lifetime="detached").remote()
    assert juno.get(juno.get_actor("after").incr.remote(), timeout=30) == 1

    # A node lost after the restart is declared dead by the restarted GCS.
    cluster.remove_node(worker_node, allow_graceful=False)
    wait_for_condition(lambda: _alive_nodes(juno) == {cluster.head_node.node_id}, timeout=15)
    dead = [n for n in juno.nodes() if n["NodeID"] == worker_node.node_id]
    assert dead and not dead[0]["Alive"]
    juno.kill(found)
    juno.kill(named)


def test_an_actor_created_during_the_outage_comes_up(two_nodes, tmp_path):
    """The GCS dies while an actor's constructor runs: the worker's report reaches the
    restarted GCS, and the actor is usable (not created twice)."""
    import juno

    cluster = two_nodes
    started, gate = str(tmp_path / "ctor-started"), str(tmp_path / "ctor-gate")

    @juno.remote(num_cpus=0)
    class Slow:
        def __init__(self, started, gate):
            with open(started, "a") as f:
                f.write(f"{os.getpid()}\n")
            wait_for_file(gate, timeout=60)
            self.pid = os.getpid()

        def where(self):
            return self.pid, os.getpid()

    slow = Slow.options(name="slow").remote(started, gate)
    wait_for_file(started, timeout=30)  # the constructor runs on a worker: now the GCS dies
    cluster.kill_gcs()
    open(gate, "w").close()  # the constructor finishes while the GCS is down
    time.sleep(0.5)
    cluster.restart_gcs()
    pid, same = juno.get(slow.where.remote(), timeout=30)
    assert pid == same
    with open(started) as f:
        assert f.read().split() == [str(pid)]  # constructed once, by the worker that was at it
    assert juno.get(juno.get_actor("slow").where.remote(), timeout=10) == (pid, pid)
    from juno.util.state import list_actors

    assert [a["state"] for a in list_actors() if a["name"] == "slow"] == ["ALIVE"]


def test_gcs_calls_fail_clearly_when_the_gcs_stays_down(two_nodes):
    """A GCS request waits gcs_reconnect_timeout_s for the GCS to come back, then fails
    saying what to do; once the GCS is back, requests work again."""
    import juno
    from juno.owner.core_worker import global_worker
    from juno.gcs.client import GcsUnavailableError

    cluster = two_nodes
    juno.shutdown()
    cluster.connect(_system_config=dict(SYSTEM_CONFIG, gcs_reconnect_timeout_s=2.0))
    assert global_worker().gcs.reconnect_timeout_s == 2.0
    cluster.kill_gcs()
    start = time.monotonic()
    with pytest.raises(GcsUnavailableError, match="did not answer 'get_named_actor' for 2 s") as info:
        juno.get_actor("nobody")
    assert 1.5 < time.monotonic() - start < 10
    port = cluster.address.split(":")[1]
    assert f"--port {port} --session-dir {cluster.session_dir}" in str(info.value)
    assert "gcs_reconnect_timeout_s" in str(info.value)
    cluster.restart_gcs()
    with pytest.raises(ValueError, match="Failed to look up actor"):
        juno.get_actor("nobody")


def test_deaths_during_the_outage_are_handled_after_it(two_nodes):
    """An actor's worker and a whole node die while the GCS is down: the restarted GCS
    restarts the actor (max_restarts) and declares the silent node dead, and actors that
    lived there restart on the surviving node."""
    import juno

    cluster = two_nodes
    head, worker_node = cluster.head_node, cluster.worker_nodes[0]

    @juno.remote(num_cpus=0, max_restarts=1, max_task_retries=-1)
    class Where:
        def where(self):
            return os.getpid(), juno.get_runtime_context().get_node_id()

    on_head = Where.options(scheduling_strategy=juno.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
        head.node_id, soft=True)).remote()
    pid, node = juno.get(on_head.where.remote(), timeout=30)
    assert node == head.node_id
    roaming = Where.options(scheduling_strategy=juno.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
        worker_node.node_id, soft=True)).remote()
    assert juno.get(roaming.where.remote(), timeout=30)[1] == worker_node.node_id

    cluster.kill_gcs()
    os.kill(pid, 9)  # the head actor's worker dies ...
    cluster.remove_node(worker_node, allow_graceful=False)  # ... and so does the worker node
    time.sleep(0.5)
    cluster.restart_gcs()

    new_pid, node = juno.get(on_head.where.remote(), timeout=30)
    assert node == head.node_id and new_pid != pid
    wait_for_condition(lambda: _alive_nodes(juno) == {head.node_id}, timeout=15)
    # The actor that lived on the lost node (soft affinity) restarts on the head node.
    assert juno.get(roaming.where.remote(), timeout=30)[1] == head.node_id
