"""A driver attached to a multi-node cluster is killed: its job ends, its non-detached
actors die, its detached ones live on, its objects leave every node's store and the
workers it leased on other nodes are reclaimed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import multi_node_cluster, wait_for_condition

FAST = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 2.0}

DRIVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import juno
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    juno.init(address=sys.argv[1], namespace="dd")
    other = NodeAffinitySchedulingStrategy(sys.argv[2], soft=False)

    @juno.remote(num_cpus=0)
    class Keeper:
        def ping(self):
            return "pong"

    @juno.remote(num_cpus=1)
    def make():
        return np.ones(1 << 20, dtype=np.uint8)

    @juno.remote(num_cpus=1)
    def hog():
        time.sleep(600)

    detached = Keeper.options(name="keeper", lifetime="detached").remote()
    normal = Keeper.options(name="normal", scheduling_strategy=other).remote()
    assert juno.get([detached.ping.remote(), normal.ping.remote()], timeout=60) == ["pong", "pong"]
    here = juno.put(np.ones(1 << 20, dtype=np.uint8))     # in the head node's store
    there = make.options(scheduling_strategy=other).remote()  # in the other node's store
    assert juno.wait([there], timeout=60)[0]
    hogging = hog.options(scheduling_strategy=other).remote()  # holds the other node's CPU
    print("READY", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def two_nodes(_juno_leak_guard):
    with multi_node_cluster(_juno_leak_guard, {"num_cpus": 1}, {"num_cpus": 1}, system_config=FAST,
                            connect={"namespace": "dd"}) as (cluster, (node,)):
        yield cluster, node


def _objects(node_id: str) -> int:
    from juno.internal_api import store_stats

    return store_stats(node_id)["num_objects"]


def test_killed_driver_frees_everything_but_its_detached_actors(two_nodes, tmp_path):
    import juno
    from juno.util.state import list_actors

    cluster, node = two_nodes
    head = cluster.head_node.node_id
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, str(script), cluster.address, node.node_id], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        for line in proc.stdout:  # noqa: B007 - read until the driver is set up
            if "READY" in line:
                break
        assert "READY" in line, f"the driver did not get ready: {line}{proc.stdout.read() if proc.poll() else ''}"
        assert _objects(head) >= 1 and _objects(node.node_id) >= 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()

    # Its objects leave both stores.
    wait_for_condition(lambda: _objects(head) == 0 and _objects(node.node_id) == 0, timeout=20)

    # Its normal actor dies saying why; the detached one lives on and serves calls.
    def states():
        return {a["name"]: a for a in list_actors(detail=True)}

    wait_for_condition(lambda: states()["normal"]["state"] == "DEAD", timeout=20)
    assert "driver" in str(states()["normal"]["death_cause"])
    assert states()["keeper"]["state"] == "ALIVE"
    keeper = juno.get_actor("keeper", namespace="dd")
    assert juno.get(keeper.ping.remote(), timeout=30) == "pong"

    # The worker it leased on the other node was reclaimed: that node's CPU runs our task.
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @juno.remote(num_cpus=1)
    def where():
        return juno.get_runtime_context().get_node_id()

    strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
    assert juno.get(where.options(scheduling_strategy=strategy).remote(), timeout=30) == node.node_id
    juno.kill(keeper)
