"""Tasks and actors placed across the nodes of a real multi-node cluster (spill-back,
SPREAD, node affinity, custom resources, argument locality)."""
import sys
import time

import cloudpickle
import pytest

from helpers import multi_node_cluster, wait_for_condition, wait_for_file

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

SYSTEM_CONFIG = {"heartbeat_interval_s": 0.2, "node_death_timeout_s": 2.0}


def _node_of():
    import juno
    return juno.get_runtime_context().get_node_id()


def _wait_idle():
    """All 6 CPUs free, and the nodes' views of each other current (spill decisions use them)."""
    import juno
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == 6, timeout=20)
    time.sleep(3 * SYSTEM_CONFIG["heartbeat_interval_s"])


@pytest.fixture(scope="module")
def three_nodes(_juno_module_leak_guard):
    """head (2 CPUs), b (2 CPUs, custom resource "pool"), c (2 CPUs); a driver attached."""
    with multi_node_cluster(_juno_module_leak_guard, {"num_cpus": 2}, {"num_cpus": 2, "resources": {"pool": 1}},
                            {"num_cpus": 2}, system_config=SYSTEM_CONFIG) as (c, (b, n3)):
        yield c, c.head_node.node_id, b.node_id, n3.node_id


def test_custom_resource_routes_tasks_to_the_node_that_has_it(three_nodes):
    import juno

    _, head, b, _ = three_nodes
    where = juno.remote(resources={"pool": 1})(_node_of)
    assert juno.get([where.remote() for _ in range(3)], timeout=30) == [b, b, b]
    assert juno.get(juno.remote(_node_of).remote(), timeout=30) == head  # DEFAULT: local first


def test_busy_head_spills_to_another_node(three_nodes, gate):
    import juno
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _, head, _, _ = three_nodes

    @juno.remote(num_cpus=2, scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False))
    def hold(started, path):
        open(started, "w").close()
        wait_for_file(path, 30)
        return _node_of()

    _wait_idle()
    started = gate.parent / "started"
    holder = hold.remote(str(started), str(gate))  # takes every CPU of the head until the gate opens
    t0 = time.monotonic()
    wait_for_file(str(started), 20)
    time.sleep(3 * SYSTEM_CONFIG["heartbeat_interval_s"])  # the head's view of the others is current
    ran_on = juno.get(juno.remote(_node_of).remote(), timeout=30)
    assert ran_on != head, "the task waited for the busy head instead of spilling"
    assert time.monotonic() - t0 < 25
    gate.touch()
    assert juno.get(holder, timeout=30) == head


def test_spread_puts_tasks_on_different_nodes(three_nodes):
    import juno

    _, head, b, n3 = three_nodes

    @juno.remote(scheduling_strategy="SPREAD")
    def spread():
        time.sleep(1.0)  # all three run at once
        return _node_of()

    _wait_idle()  # every node has room for two: only SPREAD puts one on each
    assert sorted(juno.get([spread.remote() for _ in range(3)], timeout=30)) == sorted([head, b, n3])


def test_hard_and_soft_affinity_pick_the_node(three_nodes):
    import juno
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _, head, b, n3 = three_nodes
    where = juno.remote(_node_of)
    for target in (head, b, n3):
        for soft in (False, True):
            strategy = NodeAffinitySchedulingStrategy(target, soft=soft)
            assert juno.get(where.options(scheduling_strategy=strategy).remote(), timeout=30) == target


def test_actor_placed_by_custom_resource_and_by_affinity(three_nodes):
    import juno
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _, head, b, n3 = three_nodes

    @juno.remote
    class Where:
        def node(self):
            return _node_of()

    by_resource = Where.options(resources={"pool": 0.5}).remote()
    by_affinity = Where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n3, soft=False)).remote()
    assert juno.get(by_resource.node.remote(), timeout=30) == b
    assert juno.get(by_affinity.node.remote(), timeout=30) == n3
    juno.kill(by_resource)
    juno.kill(by_affinity)


def test_actors_spread_over_nodes(three_nodes):
    import juno

    _, head, b, n3 = three_nodes

    @juno.remote(num_cpus=1, scheduling_strategy="SPREAD")
    class Where:
        def node(self):
            return _node_of()

    _wait_idle()
    actors = [Where.remote() for _ in range(3)]
    assert sorted(juno.get([a.node.remote() for a in actors], timeout=30)) == sorted([head, b, n3])
    for a in actors:
        juno.kill(a)


def test_task_goes_to_the_node_holding_its_large_argument(three_nodes):
    import numpy as np

    import juno
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _, head, _, n3 = three_nodes

    @juno.remote(scheduling_strategy=NodeAffinitySchedulingStrategy(n3, soft=False))
    def make():
        return np.ones(1 << 20, dtype=np.uint8)  # 1 MiB: kept in n3's shared-memory store

    @juno.remote
    def use(array):
        return _node_of(), int(array.sum())

    # Locality is a preference for a node with room (as in Ray): the actors the test before
    # killed must be gone from n3 first, or n3 is full and the task rightly runs elsewhere.
    _wait_idle()
    big = make.remote()
    juno.wait([big], timeout=30, fetch_local=False)
    assert juno.get(use.remote(big), timeout=30) == (n3, 1 << 20)


def test_affinity_to_a_removed_node(three_nodes):
    import juno
    from juno import exceptions as exc
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    c, head, _, _ = three_nodes
    gone = c.add_node(num_cpus=1)
    try:
        c.wait_for_nodes()
        where = juno.remote(_node_of)
        hard = NodeAffinitySchedulingStrategy(gone.node_id, soft=False)
        assert juno.get(where.options(scheduling_strategy=hard).remote(), timeout=30) == gone.node_id
    finally:
        c.remove_node(gone, allow_graceful=False)
    c.wait_for_nodes()
    soft = NodeAffinitySchedulingStrategy(gone.node_id, soft=True)
    assert juno.get(where.options(scheduling_strategy=soft).remote(), timeout=30) != gone.node_id
    with pytest.raises(exc.TaskUnschedulableError, match=gone.node_id):
        juno.get(where.options(scheduling_strategy=hard).remote(), timeout=30)
    unknown = NodeAffinitySchedulingStrategy("ab" * 14, soft=False)
    with pytest.raises(exc.TaskUnschedulableError, match="soft=True"):
        juno.get(where.options(scheduling_strategy=unknown).remote(), timeout=30)

    @juno.remote
    class Where:
        def node(self):
            return _node_of()

    moved = Where.options(scheduling_strategy=soft).remote()
    assert juno.get(moved.node.remote(), timeout=30) == head  # the creating process's node
    stuck = Where.options(scheduling_strategy=hard).remote()
    with pytest.raises(exc.ActorDiedError, match=gone.node_id):
        juno.get(stuck.node.remote(), timeout=30)
    juno.kill(moved)


def test_infeasible_task_and_actor_start_when_a_node_that_can_run_them_joins(three_nodes):
    import juno

    c = three_nodes[0]

    @juno.remote
    class Where:
        def node(self):
            return _node_of()

    task = juno.remote(resources={"late": 1})(_node_of).remote()
    actor = Where.options(resources={"late_actor": 1}).remote()
    ready, _ = juno.wait([task], timeout=1.0)
    assert not ready, "no node has the resource yet: the task must wait"
    late = c.add_node(num_cpus=2, resources={"late": 1, "late_actor": 1})
    try:
        assert juno.get(task, timeout=30) == late.node_id
        assert juno.get(actor.node.remote(), timeout=30) == late.node_id
        juno.kill(actor)
    finally:
        c.remove_node(late)
    c.wait_for_nodes()
