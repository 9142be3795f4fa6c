"""Fate sharing (docs/cluster.md): each process role is killed with SIGKILL and the test checks
what is left a few seconds later: what the killed process owned is gone, what survives works."""
from __future__ import annotations

import os
import signal

import psutil
import pytest

from helpers import multi_node_cluster, process_alive, wait_for_condition

GONE_S = 20  # "a few seconds", with room for a busy machine


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


def test_a_worker_whose_node_manager_died_while_it_started_exits(tmp_path):
    """The race the parent-death signal leaves open: the node manager dies before its new worker
    asks for the signal. The worker sees it was reparented and exits instead of living on."""
    import json
    import subprocess
    import sys

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
