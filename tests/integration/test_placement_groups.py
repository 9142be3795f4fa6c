"""Placement groups on real clusters: reservation by strategy, work placed in bundles, removal,
names, job ends, nodes joining and dying (juno.util.placement_group)."""
import os
import subprocess
import sys
import textwrap

import cloudpickle
import pytest

from helpers import multi_node_cluster, wait_for_condition

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

SYSTEM_CONFIG = {"heartbeat_interval_s": 0.2, "node_death_timeout_s": 1.5}


def _node():
    import juno
    return juno.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def two_nodes(_juno_module_leak_guard):
    """head (2 CPUs, where the driver is) and b (2 CPUs); a driver attached."""
    with multi_node_cluster(_juno_module_leak_guard, {"num_cpus": 2}, {"num_cpus": 2},
                            system_config=SYSTEM_CONFIG) as (c, (b,)):
        yield c, c.head_node.node_id, b.node_id


def _cpus_free():
    import juno
    return juno.available_resources().get("CPU", 0)


def _bundle_nodes(pg):
    from juno.util import placement_group_table
    return placement_group_table(pg)["bundles_to_node_id"]


def test_pack_and_strict_pack_reserve_on_one_node_and_removal_frees(two_nodes):
    import juno
    from juno.util import placement_group, placement_group_table, remove_placement_group

    _, head, b = two_nodes
    for strategy in ("PACK", "STRICT_PACK"):
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy=strategy)
        assert juno.get(pg.ready(), timeout=20) == pg
        assert pg.wait(5)
        row = placement_group_table(pg)
        assert row["state"] == "CREATED" and row["strategy"] == strategy
        assert row["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}
        nodes = set(row["bundles_to_node_id"].values())
        assert len(nodes) == 1 and nodes <= {head, b}
        wait_for_condition(lambda: _cpus_free() == 2, timeout=10)  # 2 of 4 CPUs are held by the group
        remove_placement_group(pg)
        assert placement_group_table(pg)["state"] == "REMOVED"
        wait_for_condition(lambda: _cpus_free() == 4, timeout=10)


def test_strict_spread_bundles_on_distinct_nodes_and_actors_follow_them(two_nodes):
    import juno
    from juno.util import get_current_placement_group, placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    _, head, b = two_nodes
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    juno.get(pg.ready(), timeout=20)
    where = _bundle_nodes(pg)
    assert {where[0], where[1]} == {head, b}

    @juno.remote(num_cpus=1)
    class Member:
        def info(self):
            return _node(), get_current_placement_group()

    try:
        actors = [Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                  for i in range(2)]
        infos = juno.get([a.info.remote() for a in actors], timeout=30)
        assert [node for node, _ in infos] == [where[0], where[1]]
        assert all(current == pg for _, current in infos)
        # A default actor (0 CPUs) still lands on its bundle's node.
        light = Member.options(num_cpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1))
        assert juno.get(light.remote().info.remote(), timeout=30)[0] == where[1]
    finally:
        remove_placement_group(pg)


def test_tasks_in_a_bundle_run_on_its_node(two_nodes):
    import juno
    from juno.util import placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    juno.get(pg.ready(), timeout=20)
    where = _bundle_nodes(pg)
    task = juno.remote(num_cpus=1)(_node)
    zero = juno.remote(num_cpus=0)(_node)
    try:
        for index in (0, 1):
            strategy = PlacementGroupSchedulingStrategy(pg, index)
            assert juno.get([task.options(scheduling_strategy=strategy).remote() for _ in range(3)],
                            timeout=30) == [where[index]] * 3
            assert juno.get(zero.options(scheduling_strategy=strategy).remote(), timeout=30) == where[index]
        # Ray's older options spell the same thing.
        assert juno.get(task.options(placement_group=pg, placement_group_bundle_index=1).remote(),
                        timeout=30) == where[1]
    finally:
        remove_placement_group(pg)


def test_removal_kills_actors_fails_tasks_and_ready(two_nodes):
    import juno
    from juno.exceptions import TaskUnschedulableError
    from juno.util import placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}], strategy="PACK")
    juno.get(pg.ready(), timeout=20)
    strategy = PlacementGroupSchedulingStrategy(pg, 0)

    @juno.remote(num_cpus=1, max_restarts=3)
    class Member:
        def pid(self):
            return os.getpid()

    actor = Member.options(scheduling_strategy=strategy).remote()
    pid = juno.get(actor.pid.remote(), timeout=30)
    wait_for_condition(lambda: _cpus_free() == 3, timeout=10)
    remove_placement_group(pg)  # returns at once; the nodes kill the group's workers right after
    wait_for_condition(lambda: _died_with_group(actor), timeout=20)
    wait_for_condition(lambda: not _pid_alive(pid), timeout=10)
    wait_for_condition(lambda: _cpus_free() == 4, timeout=10)  # the bundle's CPU is back
    with pytest.raises(TaskUnschedulableError, match="placement group .* was removed"):
        juno.get(juno.remote(_node).options(scheduling_strategy=strategy).remote(), timeout=30)
    with pytest.raises(TaskUnschedulableError, match="was removed before it was ready"):
        juno.get(pg.ready(), timeout=30)
    assert not pg.wait(1)


def _died_with_group(actor):
    import juno
    from juno.exceptions import ActorDiedError

    method = getattr(actor, "pid", None) or actor.node
    try:
        juno.get(method.remote(), timeout=10)
    except ActorDiedError as e:
        assert "placement group was removed" in str(e), str(e)
        return True
    return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_group_bigger_than_the_cluster_stays_pending_and_warns(two_nodes, capfd):
    import juno
    from juno.exceptions import GetTimeoutError
    from juno.util import placement_group, placement_group_table, remove_placement_group

    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    try:
        assert not pg.wait(1)
        with pytest.raises(GetTimeoutError):
            juno.get(pg.ready(), timeout=0.5)
        assert placement_group_table(pg)["state"] == "PENDING"
        wait_for_condition(lambda: "cannot be created" in capfd.readouterr().err, timeout=10)
    finally:
        remove_placement_group(pg)


def test_invalid_groups_and_requests_fail_clearly(two_nodes):
    import juno
    from juno.util import get_placement_group, placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    with pytest.raises(ValueError, match="empty list"):
        placement_group([])
    with pytest.raises(ValueError, match="only 0 values"):
        placement_group([{"CPU": 0}])
    with pytest.raises(ValueError, match="Invalid placement group strategy"):
        placement_group([{"CPU": 1}], strategy="EVERYWHERE")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    with pytest.raises(ValueError, match="Failed to look up placement group with name: nope"):
        get_placement_group("nope")
    pg = placement_group([{"CPU": 1}], name="only-one")
    try:
        with pytest.raises(ValueError, match="already exists"):
            placement_group([{"CPU": 1}], name="only-one")
        task = juno.remote(num_cpus=1)(_node)
        with pytest.raises(ValueError, match="out of range"):
            task.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
        with pytest.raises(ValueError, match="cannot fit into bundle 0"):
            task.options(num_cpus=2, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    finally:
        remove_placement_group(pg)


def test_named_groups_and_the_table(two_nodes):
    import juno
    from juno.util import get_placement_group, placement_group, placement_group_table, remove_placement_group

    pg = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="SPREAD", name="trainers")
    try:
        juno.get(pg.ready(), timeout=20)
        found = get_placement_group("trainers")
        assert found == pg and found.bundle_specs == [{"CPU": 0.5}, {"CPU": 0.5}] and found.bundle_count == 2
        table = placement_group_table()
        row = table[pg.id.hex()]
        assert row["name"] == "trainers" and row["strategy"] == "SPREAD" and row["state"] == "CREATED"
        assert len(set(row["bundles_to_node_id"].values())) == 2  # SPREAD: distinct nodes when they fit
        from juno.util.state import list_placement_groups

        listed = list_placement_groups(filters=[("name", "=", "trainers")], detail=True)
        assert [(r.placement_group_id, r.state, r.strategy) for r in listed] == [(pg.id.hex(), "CREATED", "SPREAD")]
        assert [b["node_id"] for b in listed[0].bundles] == [row["bundles_to_node_id"][0], row["bundles_to_node_id"][1]]
    finally:
        remove_placement_group(pg)
    with pytest.raises(ValueError):
        get_placement_group("trainers")


def test_child_tasks_are_captured_only_when_asked(two_nodes):
    import juno
    from juno.util import get_current_placement_group, placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1}], strategy="STRICT_PACK")
    juno.get(pg.ready(), timeout=20)

    @juno.remote(num_cpus=0.5)
    def child():
        current = get_current_placement_group()
        return current.id.hex() if current else None, sorted(juno.get_runtime_context().get_assigned_resources())

    @juno.remote(num_cpus=0.5)
    def parent():  # the bundle has room for the child too
        return juno.get(child.remote(), timeout=30)

    try:
        for capture in (True, False):
            strategy = PlacementGroupSchedulingStrategy(pg, 0, placement_group_capture_child_tasks=capture)
            pg_hex, resources = juno.get(parent.options(scheduling_strategy=strategy).remote(), timeout=60)
            if capture:
                assert pg_hex == pg.id.hex()
                assert f"CPU_group_{pg.id.hex()}" in resources  # it used the group's CPUs
            else:
                assert pg_hex is None and resources == ["CPU"]
        assert get_current_placement_group() is None  # the driver is in no group
    finally:
        remove_placement_group(pg)


DRIVER = textwrap.dedent("""
    import juno
    from juno.util import placement_group
    juno.init(address={address!r}, namespace="jobs")
    kept = placement_group([{{"CPU": 0.1}}], name="kept", lifetime="detached")
    gone = placement_group([{{"CPU": 0.1}}], name="gone")
    juno.get([kept.ready(), gone.ready()], timeout=30)
    print("READY", flush=True)
""")


def test_groups_end_with_their_job_unless_detached(two_nodes):
    from juno.util import placement_group_table, remove_placement_group

    cluster, _, _ = two_nodes
    out = subprocess.run([sys.executable, "-c", DRIVER.format(address=cluster.address)], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert "READY" in out.stdout, out.stderr

    def states():
        return {row["name"]: row["state"] for row in placement_group_table().values()
                if row["name"] in ("kept", "gone")}

    wait_for_condition(lambda: states() == {"kept": "CREATED", "gone": "REMOVED"}, timeout=15)
    kept = next(row for row in placement_group_table().values() if row["name"] == "kept" and
                row["state"] == "CREATED")
    from juno.util.placement_group import PlacementGroup

    remove_placement_group(PlacementGroup(bytes.fromhex(kept["placement_group_id"])))
    wait_for_condition(lambda: states() == {"kept": "REMOVED", "gone": "REMOVED"}, timeout=10)


def test_strict_spread_waits_for_nodes_and_moves_off_a_dead_one(_juno_leak_guard):
    """Not enough nodes: PENDING until one joins. A node holding a bundle dies: the bundle moves."""
    import juno
    from juno.cluster_utils import Cluster
    from juno.util import placement_group, placement_group_table
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if juno.is_initialized():
        juno.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, _system_config=SYSTEM_CONFIG)
    try:
        c.connect()
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        assert not pg.wait(1)
        b = c.add_node(num_cpus=1)
        assert juno.get(pg.ready(), timeout=20) == pg
        where = placement_group_table(pg)["bundles_to_node_id"]
        assert {where[0], where[1]} == {c.head_node.node_id, b.node_id}
        lost = next(i for i, n in where.items() if n == b.node_id)

        @juno.remote(num_cpus=1, max_restarts=1)
        class Member:
            def node(self):
                return _node()

        member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, lost)).remote()
        assert juno.get(member.node.remote(), timeout=30) == b.node_id
        n3 = c.add_node(num_cpus=1)
        _juno_leak_guard.note_processes()
        c.remove_node(b, allow_graceful=False)

        def moved():
            row = placement_group_table(pg)
            return row["state"] == "CREATED" and row["bundles_to_node_id"].get(lost) == n3.node_id

        wait_for_condition(moved, timeout=20)
        assert placement_group_table(pg)["stats"]["scheduling_attempt"] >= 2
        # The actor restarts in its bundle, now on the new node.
        wait_for_condition(lambda: juno.get(member.node.remote(), timeout=10) == n3.node_id, timeout=30)
    finally:
        _juno_leak_guard.note_processes()
        c.shutdown()


def test_groups_survive_a_gcs_restart(_juno_leak_guard):
    """The table is persisted; nodes report the bundles they hold when they register again."""
    import juno
    from juno.cluster_utils import Cluster
    from juno.util import get_placement_group, placement_group, placement_group_table, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if juno.is_initialized():
        juno.shutdown()
    config = dict(SYSTEM_CONFIG, gcs_reconnect_timeout_s=30.0)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, _system_config=config)
    try:
        c.add_node(num_cpus=1)
        c.wait_for_nodes()
        c.connect(_system_config=config)
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD", name="survivor")
        juno.get(pg.ready(), timeout=20)
        where = placement_group_table(pg)["bundles_to_node_id"]

        @juno.remote(num_cpus=1)
        class Member:
            def node(self):
                return _node()

        member = Member.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
        assert juno.get(member.node.remote(), timeout=30) == where[1]

        c.kill_gcs()
        c.restart_gcs()
        wait_for_condition(lambda: placement_group_table(pg)["state"] == "CREATED", timeout=30)
        assert placement_group_table(pg)["bundles_to_node_id"] == where
        assert get_placement_group("survivor") == pg
        assert juno.get(member.node.remote(), timeout=30) == where[1]
        wait_for_condition(lambda: _cpus_free() == 0, timeout=15)  # both bundles still held
        remove_placement_group(pg)
        wait_for_condition(lambda: _died_with_group(member), timeout=20)
        wait_for_condition(lambda: _cpus_free() == 2, timeout=15)
    finally:
        _juno_leak_guard.note_processes()
        if c.gcs_process is not None and c.gcs_process.poll() is not None:
            c.restart_gcs()
        c.shutdown()


def test_gpu_bundles_hand_their_gpu_ids_to_the_work_in_them(_juno_leak_guard):
    import juno
    from juno.cluster_utils import Cluster
    from juno.util import placement_group, remove_placement_group
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if juno.is_initialized():
        juno.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2}, _system_config=SYSTEM_CONFIG)
    try:
        c.connect()
        pg = placement_group([{"CPU": 0.5, "GPU": 1}, {"CPU": 0.5, "GPU": 1}], strategy="STRICT_PACK")
        juno.get(pg.ready(), timeout=20)

        @juno.remote(num_cpus=0.5, num_gpus=1)
        def gpus():
            return juno.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

        got = juno.get([gpus.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                        for i in (0, 1)], timeout=30)
        ids = [g[0] for g in got]
        assert sorted(i for one in ids for i in one) == [0, 1], got  # one GPU each, distinct
        assert [g[1] for g in got] == [",".join(str(i) for i in one) for one in ids]
        remove_placement_group(pg)
    finally:
        _juno_leak_guard.note_processes()
        c.shutdown()
