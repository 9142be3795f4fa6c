"""Objects between nodes: a process reads an object held in another node's store (get,
task and actor arguments, wait(fetch_local=True)); copies are pulled once, freed with
the object, and an object whose node is gone raises ObjectLostError."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from helpers import multi_node_cluster, wait_for_condition

FAST = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 1.0}
# The shared cluster sends chunks over sockets, as nodes on separate machines do; the
# same-machine shortcut (a memcpy between the stores) has its own test below.
OVER_SOCKETS = dict(FAST, object_transfer_same_machine=False)
STORE = 400 << 20
MB = 1 << 20


@pytest.fixture(scope="class")
def two_nodes(_juno_module_leak_guard):
    """Head node A (the driver's) and node B with resource "B"; 400 MiB stores."""
    with _two_node_cluster(_juno_module_leak_guard, OVER_SOCKETS, STORE) as (cluster, (node_b,)):
        yield cluster, cluster.head_node.node_id, node_b.node_id


def _two_node_cluster(guard, system_config: dict, store: int | None = None):
    """Head node A (the driver's) and node B with resource "B", one CPU each (and stores of
    ``store`` bytes, if given); yields the cluster and [node B]."""
    memory = {} if store is None else {"object_store_memory": store}
    return multi_node_cluster(guard, {"num_cpus": 1, **memory}, {"num_cpus": 1, "resources": {"B": 10}, **memory},
                              system_config=system_config)


def _remotes():
    import juno

    @juno.remote(num_cpus=1)
    def checksum_task(arr):
        return (juno.get_runtime_context().get_node_id(), arr.shape, int(arr[0]), int(arr[-1]), int(arr.sum()))

    @juno.remote(num_cpus=0, resources={"B": 1}, max_concurrency=8)
    class OnB:
        def node(self):
            return juno.get_runtime_context().get_node_id()

        def checksum(self, arr):
            return (juno.get_runtime_context().get_node_id(), arr.shape, int(arr[0]), int(arr[-1]), int(arr.sum()))

        def checksum_in_task(self, refs):
            # A task submitted from node B leases a worker on node B.
            return juno.get(checksum_task.remote(refs[0]), timeout=60)

        def make_array(self, n):
            return np.arange(n, dtype=np.int64)

        def put_array(self, n):
            return [juno.put(np.arange(n, dtype=np.int64))]

        def put_arrays(self, k, n):
            return [juno.put(np.full(n, i, dtype=np.int64)) for i in range(k)]

        def read_together(self, refs, barrier_dir, i, n):
            # Every caller reaches the get at the same moment: concurrent pulls of one object.
            open(os.path.join(barrier_dir, f"ready-{i}"), "w").close()
            deadline = time.monotonic() + 30
            while len(os.listdir(barrier_dir)) < n and time.monotonic() < deadline:
                time.sleep(0.002)
            arr = juno.get(refs[0], timeout=60)
            return int(arr.sum())

    return checksum_task, OnB


def _expected(n: int) -> int:
    return n * (n - 1) // 2


def _stats(node_id: str) -> dict:
    from juno import internal_api

    return internal_api.store_stats(node_id)


def _actor_on_b(*empty_nodes: str):
    """An ``OnB`` actor, returned once it runs and the stores of ``empty_nodes`` hold no
    object (those of earlier tests are freed)."""
    import juno

    _, OnB = _remotes()
    actor = OnB.remote()
    juno.get(actor.node.remote(), timeout=60)
    wait_for_condition(lambda: all(_stats(node)["num_objects"] == 0 for node in empty_nodes), timeout=20)
    return actor


class TestTwoNodes:
    """Tests sharing one two-node cluster (torn down before the tests that make their own)."""

    def test_large_array_put_on_one_node_is_read_by_a_task_and_an_actor_on_another(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        _, OnB = _remotes()
        n = 150 * MB // 8  # 150 MiB of int64
        arr = np.arange(n, dtype=np.int64)
        ref = juno.put(arr)
        del arr
        actor = OnB.remote()
        assert juno.get(actor.node.remote(), timeout=60) == node_b
        before_b, before_a = _stats(node_b), _stats(node_a)

        # An actor argument on node B, then a task on node B (borrowed ref): values checked.
        assert juno.get(actor.checksum.remote(ref), timeout=60) == (node_b, (n,), 0, n - 1, _expected(n))
        assert juno.get(actor.checksum_in_task.remote([ref]), timeout=60) == (node_b, (n,), 0, n - 1, _expected(n))

        after_b, after_a = _stats(node_b), _stats(node_a)
        assert after_b["num_pulls"] - before_b["num_pulls"] == 1  # the second reader used the local copy
        assert after_b["bytes_pulled"] - before_b["bytes_pulled"] >= n * 8
        assert after_a["num_served"] - before_a["num_served"] == 1
        assert after_b["num_secondary_copies"] == 1

        # Arguments passed by value travel in the caller's store too (here 8 MiB), pulled the same way.
        small = np.arange(MB, dtype=np.int64)
        assert juno.get(actor.checksum.remote(small), timeout=60) == (node_b, (MB,), 0, MB - 1, _expected(MB))

        # The other way: a large result made on node B, read by the driver on node A.
        m = 20 * MB // 8
        result = actor.make_array.remote(m)
        out = juno.get(result, timeout=60)
        assert out.shape == (m,) and int(out[-1]) == m - 1 and int(out.sum()) == _expected(m)
        assert not out.flags.writeable  # read zero-copy from the local copy, as any shared-memory object
        juno.kill(actor)


    def test_a_task_sent_to_another_node_reads_its_arguments_from_the_callers_node(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        checksum_task, _ = _remotes()
        n = 40 * MB // 8
        ref = juno.put(np.arange(n, dtype=np.int64))
        on_b = checksum_task.options(resources={"B": 1})
        # By reference, and by value (the arguments themselves live in the driver's store).
        assert juno.get(on_b.remote(ref), timeout=60) == (node_b, (n,), 0, n - 1, _expected(n))
        arr = np.arange(n, dtype=np.int64)
        assert juno.get(on_b.remote(arr), timeout=60) == (node_b, (n,), 0, n - 1, _expected(n))

    def test_a_get_of_many_objects_on_another_node_pulls_them_all(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        _, OnB = _remotes()
        actor = OnB.remote()
        k, n = 24, 3 * MB // 8  # more objects than chunks may be in flight at once
        refs = juno.get(actor.put_arrays.remote(k, n), timeout=60)
        before = _stats(node_a)
        arrays = juno.get(refs, timeout=60)
        assert [(a.shape, int(a[0]), int(a[-1])) for a in arrays] == [((n,), i, i) for i in range(k)]
        after = _stats(node_a)
        assert after["num_pulls"] - before["num_pulls"] == k
        assert after["pulls_in_flight"] == 0 and after["num_pulls_failed"] == before["num_pulls_failed"]
        del arrays, refs
        juno.kill(actor)

    def test_wait_fetch_local_pulls_a_copy_to_this_node(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        _, OnB = _remotes()
        actor = OnB.remote()
        m = 10 * MB // 8
        result = actor.make_array.remote(m)
        ready, _ = juno.wait([result], fetch_local=False, timeout=60)
        assert ready == [result]
        copies = _stats(node_a)["num_secondary_copies"]
        ready, not_ready = juno.wait([result], fetch_local=True, timeout=60)
        assert ready == [result] and not_ready == []
        assert _stats(node_a)["num_secondary_copies"] == copies + 1  # the copy is here before get
        pulls = _stats(node_a)["num_pulls"]
        assert int(juno.get(result, timeout=60)[-1]) == m - 1
        assert _stats(node_a)["num_pulls"] == pulls  # get used the copy wait fetched
        juno.kill(actor)


    def test_many_concurrent_readers_on_a_node_pull_the_object_once(self, two_nodes, tmp_path):
        import juno

        cluster, node_a, node_b = two_nodes
        _, OnB = _remotes()
        n = 60 * MB // 8
        ref = juno.put(np.arange(n, dtype=np.int64))
        actors = [OnB.remote() for _ in range(2)]
        assert juno.get([a.node.remote() for a in actors], timeout=60) == [node_b, node_b]
        before_b, before_a = _stats(node_b), _stats(node_a)
        readers = 8
        calls = [actors[i % 2].read_together.remote([ref], str(tmp_path), i, readers) for i in range(readers)]
        assert juno.get(calls, timeout=90) == [_expected(n)] * readers

        after_b, after_a = _stats(node_b), _stats(node_a)
        assert after_b["num_pulls"] - before_b["num_pulls"] == 1
        assert after_b["bytes_pulled"] - before_b["bytes_pulled"] < 2 * n * 8
        assert after_a["num_served"] - before_a["num_served"] == 1
        assert after_b["num_pull_requests"] - before_b["num_pull_requests"] >= 2  # two processes asked
        for a in actors:
            juno.kill(a)


    def test_an_object_freed_by_its_owner_leaves_every_store(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        actor = _actor_on_b(node_a, node_b)

        # A put on A, copied to B by a reader there.
        n = 30 * MB // 8
        ref = juno.put(np.arange(n, dtype=np.int64))
        assert juno.get(actor.checksum.remote(ref), timeout=60)[-1] == _expected(n)
        # A result on B, copied to A by the driver.
        result = actor.make_array.remote(n)
        assert int(juno.get(result, timeout=60).sum()) == _expected(n)
        a, b = _stats(node_a), _stats(node_b)
        assert a["num_objects"] == 2 and b["num_objects"] == 2
        assert a["num_secondary_copies"] == 1 and b["num_secondary_copies"] == 1
        assert a["used"] >= 2 * n * 8 and b["used"] >= 2 * n * 8

        del ref, result
        wait_for_condition(lambda: _stats(node_a)["num_objects"] == 0 and _stats(node_b)["num_objects"] == 0,
                           timeout=20)
        assert _stats(node_a)["used"] == 0 and _stats(node_b)["used"] == 0
        juno.kill(actor)


    def test_copies_are_evicted_before_primaries_are_spilled(self, two_nodes):
        import juno

        cluster, node_a, node_b = two_nodes
        actor = _actor_on_b(node_a)  # the store is ours alone
        n = 100 * MB // 8
        result = actor.make_array.remote(n)  # primary on B
        assert int(juno.get(result, timeout=60)[-1]) == n - 1  # copy on A, unpinned once the array is gone
        assert _stats(node_a)["num_secondary_copies"] == 1
        spilled, evicted = _stats(node_a)["num_spilled"], _stats(node_a)["num_copies_evicted"]
        primaries = [juno.put(np.full(n, i, dtype=np.int64)) for i in range(3)]  # 300 MiB more in a 400 MiB store
        a = _stats(node_a)
        assert a["num_copies_evicted"] == evicted + 1 and a["num_secondary_copies"] == 0
        assert a["num_spilled"] == spilled  # room came from the copy, not from spilling a primary
        assert int(juno.get(result, timeout=60)[-1]) == n - 1  # pulled again from B
        assert [int(juno.get(p)[0]) for p in primaries] == [0, 1, 2]
        del primaries, result
        juno.kill(actor)


def test_nodes_on_one_machine_copy_objects_between_their_stores_directly(_juno_leak_guard):
    import juno

    with _two_node_cluster(_juno_leak_guard, FAST, STORE) as (cluster, (node_b,)):
        checksum_task, OnB = _remotes()
        actor = OnB.remote()
        n = 150 * MB // 8
        big = juno.put(np.arange(n, dtype=np.int64))  # on the head node
        assert juno.get(actor.checksum.remote(big), timeout=60) == (node_b.node_id, (n,), 0, n - 1, _expected(n))
        (on_b,) = juno.get(actor.put_array.remote(n), timeout=60)
        arr = juno.get(on_b, timeout=60)
        assert arr.shape == (n,) and int(arr[-1]) == n - 1 and int(arr.sum()) == _expected(n)
        head = cluster.head_node.node_id
        assert _stats(node_b.node_id)["num_same_machine_copies"] == 1
        assert _stats(head)["num_same_machine_copies"] == 1
        del arr, big, on_b
        juno.kill(actor)


def test_reading_an_object_whose_node_was_removed_raises_object_lost(_juno_leak_guard):
    import juno

    with _two_node_cluster(_juno_leak_guard, FAST) as (cluster, (node_b,)):
        _, OnB = _remotes()
        actor = OnB.remote()
        (ref,) = juno.get(actor.put_array.remote(1 * MB), timeout=60)  # a juno.put on node B
        ready, _ = juno.wait([ref], fetch_local=False, timeout=60)  # its location, not its bytes
        assert ready == [ref]
        (copied,) = juno.get(actor.put_array.remote(1 * MB), timeout=60)
        assert int(juno.get(copied, timeout=60)[-1]) == MB - 1  # a copy of this one is on the head node
        head = cluster.head_node.node_id
        assert _stats(head)["num_secondary_copies"] == 1
        cluster.remove_node(node_b, allow_graceful=False)
        cluster.wait_for_nodes(timeout=10)
        # Copies of a dead node's objects are dropped (no owner's delete could reach them later).
        wait_for_condition(lambda: _stats(head)["num_secondary_copies"] == 0, timeout=10)
        start = time.monotonic()
        with pytest.raises(juno.exceptions.ObjectLostError) as info:
            juno.get(ref, timeout=30)
        assert ref.hex() in str(info.value)
        assert time.monotonic() - start < 15


def test_a_pull_from_an_unresponsive_node_times_out_with_a_clear_error(_juno_leak_guard):
    import juno

    config = {"heartbeat_interval_s": 0.1, "node_death_timeout_s": 30.0, "object_transfer_timeout_s": 1.0}
    with _two_node_cluster(_juno_leak_guard, config) as (cluster, (node_b,)):
        _, OnB = _remotes()
        actor = OnB.remote()
        result = actor.make_array.remote(1 * MB)
        juno.wait([result], fetch_local=False, timeout=60)
        os.kill(node_b.pid, signal.SIGSTOP)  # alive to the GCS, but it answers nothing
        try:
            start = time.monotonic()
            with pytest.raises(juno.exceptions.ObjectFetchTimedOutError, match="timed out") as info:
                juno.get(result, timeout=30)
            assert time.monotonic() - start < 10
            assert "object_transfer_timeout_s" in str(info.value)
        finally:
            os.kill(node_b.pid, signal.SIGCONT)
        assert int(juno.get(result, timeout=60)[-1]) == 1 * MB - 1  # the next read pulls it
