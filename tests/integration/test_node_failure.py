"""A node dies mid-job (SIGKILL of its node manager and workers): tasks retry on another
node or fail with NodeDiedError, actors restart elsewhere or die saying why, objects
whose only copy was there are rebuilt from their lineage or reported lost."""
from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import multi_node_cluster, wait_for_condition, wait_for_file

# Nodes are declared dead after 2 s of silence instead of 5 (not less: a busy machine must not
# make a live node look dead).
FAST = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 2.0}
BIG = 300_000  # bytes: larger than max_inline_object_bytes, so results live in a node's store


@pytest.fixture
def two_nodes(_juno_leak_guard):
    """A head node and one more, each with one CPU and one "pool" resource; a driver attached."""
    import juno

    pool = {"num_cpus": 1, "resources": {"pool": 1}}
    with multi_node_cluster(_juno_leak_guard, pool, pool, system_config=FAST) as (cluster, (node,)):
        _wait_until_known(juno, node.node_id)
        yield cluster, node


def _on(node_id: str, soft: bool = False):
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=soft)


def _wait_until_known(juno, node_id: str) -> None:
    """Until the head's node manager has the new node in its cluster view (soft affinity to a
    node it does not know yet falls back to any node)."""
    @juno.remote(num_cpus=0)
    def where():
        return juno.get_runtime_context().get_node_id()

    def there():
        return juno.get(where.options(scheduling_strategy=_on(node_id, soft=True)).remote(), timeout=10) == node_id

    wait_for_condition(there, timeout=20)


def test_running_tasks_retry_on_another_node(two_nodes, tmp_path):
    import juno

    cluster, node = two_nodes
    gate = str(tmp_path / "gate")

    @juno.remote(resources={"pool": 1}, num_cpus=0, max_retries=2)
    def work(i, gate, marks):
        node_id = juno.get_runtime_context().get_node_id()
        open(os.path.join(marks, f"{i}-{node_id}"), "w").close()
        wait_for_file(gate, 60)
        return i * 10, node_id

    head = cluster.head_node.node_id
    refs = [work.options(scheduling_strategy=_on(head)).remote(0, gate, str(tmp_path)),
            work.options(scheduling_strategy=_on(node.node_id, soft=True)).remote(1, gate, str(tmp_path))]
    # One runs on each node (each has one "pool").
    wait_for_condition(lambda: len([m for m in os.listdir(tmp_path) if m != "gate"]) == 2, timeout=30)
    on_dead = [m for m in os.listdir(tmp_path) if m.endswith(node.node_id)]
    assert len(on_dead) == 1, os.listdir(tmp_path)
    cluster.remove_node(node, allow_graceful=False)
    open(gate, "w").close()
    results = juno.get(refs, timeout=60)
    assert [r[0] for r in results] == [0, 10]
    assert all(r[1] == head for r in results), results  # the one from the dead node ran again here
    dead = [n for n in juno.nodes() if n["NodeID"] == node.node_id]
    assert dead and not dead[0]["Alive"]


def test_task_without_retries_fails_with_node_died_error(two_nodes, tmp_path):
    import juno
    from juno.exceptions import NodeDiedError

    cluster, node = two_nodes

    @juno.remote(max_retries=0, num_cpus=1)
    def stuck(marks):
        open(os.path.join(marks, "started"), "w").close()
        wait_for_file(os.path.join(marks, "never"), 60)

    ref = stuck.options(scheduling_strategy=_on(node.node_id)).remote(str(tmp_path))
    wait_for_condition(lambda: os.path.exists(tmp_path / "started"), timeout=30)
    cluster.remove_node(node, allow_graceful=False)
    with pytest.raises(NodeDiedError) as info:
        juno.get(ref, timeout=30)
    assert "died" in str(info.value) and "max_retries" in str(info.value)


def test_actor_restarts_on_another_node_or_dies_saying_why(two_nodes):
    import juno
    from juno.exceptions import ActorDiedError

    cluster, node = two_nodes

    @juno.remote(num_cpus=0)
    class Where:
        def __init__(self):
            self.calls = 0

        def node(self):
            self.calls += 1
            return juno.get_runtime_context().get_node_id(), self.calls

    keeper = Where.options(max_restarts=1, max_task_retries=-1,
                           scheduling_strategy=_on(node.node_id, soft=True)).remote()
    mortal = Where.options(max_restarts=0, scheduling_strategy=_on(node.node_id)).remote()
    assert juno.get(keeper.node.remote(), timeout=30) == (node.node_id, 1)
    assert juno.get(mortal.node.remote(), timeout=30)[0] == node.node_id
    cluster.remove_node(node, allow_graceful=False)

    # The restarted actor (new state: calls counted from 1 again) serves calls on the head node;
    # this call, sent before the node was declared dead, is retried there (max_task_retries).
    head = cluster.head_node.node_id
    assert juno.get(keeper.node.remote(), timeout=30) == (head, 1)
    with pytest.raises(ActorDiedError) as info:
        juno.get(mortal.node.remote(), timeout=30)
    assert node.node_id[:12] in str(info.value) and "died" in str(info.value)
    from juno.util.state import list_actors

    states = {a["actor_id"]: a for a in list_actors(detail=True)}
    assert states[keeper._actor_id.hex()]["num_restarts"] == 1


def test_lost_objects_are_rebuilt_from_lineage_recursively(two_nodes, tmp_path):
    import juno

    cluster, node = two_nodes
    marks = str(tmp_path)

    @juno.remote(num_cpus=1, max_retries=2)
    def make(marks):
        with open(os.path.join(marks, "make"), "a") as f:
            f.write(juno.get_runtime_context().get_node_id() + "\n")
        return np.arange(BIG // 8, dtype=np.int64)

    @juno.remote(num_cpus=1, max_retries=2)
    def double(x, marks):
        with open(os.path.join(marks, "double"), "a") as f:
            f.write(juno.get_runtime_context().get_node_id() + "\n")
        return x * 2

    there = _on(node.node_id, soft=True)
    a = make.options(scheduling_strategy=there).remote(marks)
    b = double.options(scheduling_strategy=there).remote(a, marks)
    ready, _ = juno.wait([b], timeout=30, fetch_local=False)  # no copy of it on this node
    assert ready
    del a  # only b's lineage keeps the chain alive now
    runs = lambda name: open(os.path.join(marks, name)).read().split()  # noqa: E731
    assert runs("make") == [node.node_id] and runs("double") == [node.node_id]

    cluster.remove_node(node, allow_graceful=False)
    value = juno.get(b, timeout=60)
    assert np.array_equal(value, np.arange(BIG // 8, dtype=np.int64) * 2)
    head = cluster.head_node.node_id
    assert runs("make") == [node.node_id, head]  # the lost argument was rebuilt first
    assert runs("double") == [node.node_id, head]


def test_lost_objects_that_cannot_be_rebuilt_raise(two_nodes):
    import juno
    from juno.exceptions import (ObjectLostError, ObjectReconstructionFailedError,
                                 ObjectReconstructionFailedMaxAttemptsExceededError, OwnerDiedError)

    cluster, node = two_nodes

    @juno.remote(num_cpus=1, max_retries=0)
    def once():
        return np.ones(BIG // 8)

    @juno.remote(num_cpus=1)
    def put_there():
        return [juno.put(np.ones(BIG // 8))]  # owned by this worker, stored on its node

    @juno.remote(num_cpus=0)
    class Maker:
        def make(self):
            return np.ones(BIG // 8)

    there = _on(node.node_id)
    no_retry = once.options(scheduling_strategy=there).remote()
    by_actor = Maker.options(scheduling_strategy=there).remote().make.remote()
    assert juno.wait([by_actor], timeout=30, fetch_local=False)[0]
    [put_ref] = juno.get(put_there.options(scheduling_strategy=there).remote(), timeout=30)
    assert juno.get(put_ref, timeout=30).sum() == BIG // 8  # readable while its node lives
    assert juno.wait([no_retry], timeout=30, fetch_local=False)[0]

    cluster.remove_node(node, allow_graceful=False)

    def lost(ref):
        try:
            juno.get(ref, timeout=30)
        except ObjectLostError as e:
            return e
        return None  # a copy read before the node's death reached this driver

    error = wait_for_condition(lambda: lost(no_retry), timeout=30)
    assert isinstance(error, ObjectReconstructionFailedMaxAttemptsExceededError), error
    assert "died" in str(error) and "no retries left" in str(error)
    error = wait_for_condition(lambda: lost(by_actor), timeout=30)
    assert type(error) is ObjectReconstructionFailedError and "actor task" in str(error), error
    # The put object's owner (the worker that put it) died with the node.
    error = wait_for_condition(lambda: lost(put_ref), timeout=30)
    assert isinstance(error, OwnerDiedError), error


def test_owner_forgets_borrowers_that_died_with_their_node(two_nodes):
    import juno
    from juno.internal_api import store_stats

    cluster, node = two_nodes
    head = cluster.head_node.node_id

    @juno.remote(num_cpus=0)
    class Holder:
        def hold(self, refs):
            self.refs = refs  # borrows the object for as long as the actor lives
            return True

    holder = Holder.options(scheduling_strategy=_on(node.node_id)).remote()
    ref = juno.put(np.ones(BIG // 8))
    assert juno.get(holder.hold.remote([ref]), timeout=30)
    del ref
    assert store_stats(head)["num_objects"] == 1  # the borrower on the other node keeps it alive
    cluster.remove_node(node, allow_graceful=False)
    # The borrower died with its node: the owner (this driver) hears of it and frees the object.
    wait_for_condition(lambda: store_stats(head)["num_objects"] == 0, timeout=20)


def test_a_borrower_reads_the_rebuilt_object(two_nodes):
    import juno

    cluster, node = two_nodes

    @juno.remote(num_cpus=1, max_retries=1)
    def make():
        return np.arange(BIG // 8, dtype=np.int64)

    @juno.remote(num_cpus=1)
    def total(refs):  # a borrower: the ref arrives nested, and is fetched from its owner
        return int(juno.get(refs[0], timeout=60).sum())

    a = make.options(scheduling_strategy=_on(node.node_id, soft=True)).remote()
    assert juno.wait([a], timeout=30, fetch_local=False)[0]
    cluster.remove_node(node, allow_graceful=False)
    assert juno.get(total.remote([a]), timeout=60) == int(np.arange(BIG // 8).sum())
