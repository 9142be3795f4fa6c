"""What `juno status` and `juno.nodes()` make of the GCS's tables (runtime/observability/cluster_status.py)."""
import json

from juno.gcs.node_table import MAX_DEMAND_REPORTED
from juno.observability.cluster_status import (DEATH_EXPECTED, DEATH_UNEXPECTED, cluster_usage, format_shape,
                                 group_demand, node_usage, normalize_placement_groups, placement_group_demand,
                                 ray_node_entry, render_status, resource_names)

GIB = float(2**30)
NOW = 1_000_000.0


def node(nid, alive=True, head=False, cpus=2.0, avail_cpus=None, demand=(), **extra):
    resources = {"CPU": cpus, "memory": 4 * GIB, "object_store_memory": GIB, "node:127.0.0.1": 1.0}
    resources.update(extra.pop("resources", {}))
    available = dict(resources, CPU=cpus if avail_cpus is None else avail_cpus)
    n = {"node_id": nid, "alive": alive, "is_head": head, "address": f"ipc:///tmp/{nid}", "pid": 7,
         "resources": resources, "available": available if alive else {}, "demand": list(demand),
         "start_time": NOW - 100, "end_time": None if alive else NOW - 5,
         "death_reason": None if alive else "the node sent no heartbeat for 5 s (its machine died)"}
    n.update(extra)
    return n


def test_usage_is_total_minus_available_and_the_store_counts_its_own_bytes():
    n = node("a", cpus=4.0, avail_cpus=1.5)
    usage = node_usage(n, store={"used": 256 << 20, "capacity": 1 << 30})
    assert usage["CPU"] == (2.5, 4.0)
    assert usage["object_store_memory"] == (float(256 << 20), GIB)
    assert usage["memory"] == (0.0, 4 * GIB)
    assert "node:127.0.0.1" not in usage
    # A resource reported without its key in `available` (heartbeats drop zeros) is all used.
    n["available"].pop("CPU")
    assert node_usage(n)["CPU"] == (4.0, 4.0)


def test_cluster_totals_sum_live_nodes_only():
    nodes = [node("a", head=True, cpus=2.0, avail_cpus=1.0), node("b", cpus=3.0, avail_cpus=3.0),
             node("c", alive=False, cpus=8.0)]
    total = cluster_usage(nodes)
    assert total["CPU"] == (1.0, 5.0)
    assert list(total)[:3] == ["CPU", "memory", "object_store_memory"]


def test_bundle_and_node_resources_are_hidden_custom_ones_sorted():
    names = resource_names(["zeta", "CPU", "accel", "node:1.2.3.4", "CPU_group_0_ab12cd", "CPU_group_ab12cd",
                            "GPU", "object_store_memory"])
    assert names == ["CPU", "GPU", "object_store_memory", "accel", "zeta"]


def test_demand_grouped_by_shape_most_first_and_capped_reports_marked():
    nodes = [node("a", demand=[{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}]),
             node("b", demand=[{"CPU": 1}, {"GPU": 1.0, "CPU": 1.0}, {"CPU": 1.0}]),
             node("c", alive=False, demand=[{"accel": 1.0}])]  # a dead node's queue is gone
    groups = group_demand(nodes)
    assert groups == [({"CPU": 1.0}, 4, False), ({"CPU": 1.0, "GPU": 1.0}, 2, False)]
    full = [node("a", demand=[{"CPU": 2.0}] * MAX_DEMAND_REPORTED)]
    assert group_demand(full) == [({"CPU": 2.0}, MAX_DEMAND_REPORTED, True)]
    assert format_shape({"GPU": 1, "CPU": 0.5, "zero": 0}) == "{'CPU': 0.5, 'GPU': 1.0}"


def test_placement_groups_from_a_dict_or_a_list():
    table = {"ab" * 8: {"placement_group_id": "ab" * 8, "name": "pg1", "strategy": "STRICT_SPREAD",
                        "state": "PENDING", "bundles": {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}},
             "cd" * 8: {"placement_group_id": bytes.fromhex("cd" * 8), "strategy": "PACK", "state": "created",
                        "bundles": [{"GPU": 1.0}]}}
    pgs = normalize_placement_groups(table)
    assert [(p["id"], p["state"], len(p["bundles"])) for p in pgs] == [("ab" * 8, "PENDING", 2),
                                                                       ("cd" * 8, "CREATED", 1)]
    assert normalize_placement_groups(list(table.values())) == pgs
    assert placement_group_demand(pgs) == [("{'CPU': 1.0} * 2 (STRICT_SPREAD)", 1)]
    assert normalize_placement_groups(None) == [] and normalize_placement_groups({}) == []


def test_render_shows_every_node_dead_ones_with_reason_totals_demand_and_jobs():
    nodes = [node("b" * 56, cpus=1.0, avail_cpus=0.0, demand=[{"CPU": 1.0}] * 3),
             node("a" * 56, head=True, cpus=2.0, avail_cpus=1.0, resources={"accel": 2.0}),
             node("c" * 56, alive=False)]
    jobs = [{"is_dead": False}, {"is_dead": True}, {"is_dead": True}]
    info = {"session_dir": "/tmp/juno-clusters/s1", "start_time": NOW - 65}
    text = render_status("127.0.0.1:6379", info, nodes, jobs, stores={"a" * 56: {"used": 2**29}}, now=NOW)
    lines = text.splitlines()
    assert lines[0] == "Juno cluster at 127.0.0.1:6379" and "up 1m 05s" in lines[1]
    assert "Nodes: 2 alive, 1 dead" in lines
    node_lines = [line for line in lines if line.startswith("  node ")]
    assert node_lines[0].startswith(f"  node {'a' * 56}  alive head ")  # head first, dead last
    assert node_lines[1].startswith(f"  node {'b' * 56}  alive ")
    assert node_lines[2].startswith(f"  node {'c' * 56}  dead ")
    head_usage = lines[lines.index(node_lines[0]) + 1]
    assert head_usage.startswith("    used / total: CPU 1.0 / 2.0")
    assert "object_store_memory 0.50 GiB / 1.00 GiB" in head_usage and "accel 0.0 / 2.0" in head_usage
    death = lines[lines.index(node_lines[2]) + 1]
    assert death == "    died 0m 05s ago: the node sent no heartbeat for 5 s (its machine died)"
    total = text.split("Cluster total (used / total):", 1)[1]
    assert "\n  CPU                  2.0 / 3.0\n" in total  # the dead node's 2 CPUs are not counted
    assert "  {'CPU': 1.0}: 3 pending tasks/actors" in lines
    assert "Placement groups" not in text  # the GCS has no table: no section
    assert lines[-1] == "Jobs: 1 running, 2 finished"


def test_render_without_demand_and_with_placement_groups():
    pgs = [{"placement_group_id": "ef" * 8, "name": "train", "strategy": "PACK", "state": "CREATED",
            "bundles": [{"CPU": 1.0}, {"CPU": 1.0}]},
           {"placement_group_id": "01" * 8, "strategy": "SPREAD", "state": "PENDING", "bundles": [{"GPU": 4.0}]},
           {"placement_group_id": "99" * 8, "strategy": "PACK", "state": "REMOVED", "bundles": [{"CPU": 1.0}]}]
    text = render_status("h:1", {}, [node("a", head=True)], [], placement_groups=pgs, now=NOW)
    assert "  (no resource demands)" not in text
    assert "  {'GPU': 4.0} (SPREAD): 1 pending placement groups" in text
    assert "Placement groups: 3 (1 created, 1 pending, 1 removed)" in text
    assert "99" * 8 not in text  # removed groups are counted, not listed
    assert f"  {'ef' * 8} 'train'  PACK  CREATED  bundles {{'CPU': 1.0}} * 2" in text
    empty = render_status("h:1", {}, [node("a", head=True)], [], placement_groups=[], now=NOW)
    assert "  (no resource demands)" in empty and "Placement groups: 0" in empty


def test_ray_node_entries_alive_and_dead():
    alive = ray_node_entry(node("a", head=True))
    assert alive["NodeID"] == "a" and alive["Alive"] is True and alive["alive"] is True
    assert alive["Resources"]["CPU"] == 2.0 and alive["DeathReasonMessage"] == "" and alive["IsHead"]
    for key in ("NodeManagerAddress", "NodeManagerHostname", "NodeManagerPort", "ObjectManagerPort",
                "ObjectStoreSocketName", "NodeName", "Labels", "DeathReason"):
        assert key in alive
    dead = ray_node_entry(node("b", alive=False))
    assert dead["Alive"] is False and dead["Resources"] == {}
    assert dead["DeathReason"] == DEATH_UNEXPECTED and "no heartbeat" in dead["DeathReasonMessage"]
    stopped = ray_node_entry(node("c", alive=False, death_reason="the node was stopped"))
    assert stopped["DeathReason"] == DEATH_EXPECTED


class _Proc:
    """What `juno stop` reads of a process: its pid and (for workers) its environment."""

    def __init__(self, pid, session=None):
        self.pid = pid
        self._env = {"JUNO_WORKER_INFO": json.dumps({"session_dir": session})} if session else {}

    def environ(self):
        return self._env


def proc(pid, role, *args, ppid=1, session=None):
    """A process as `juno stop` finds it: ``role`` started with ``args`` by parent ``ppid``."""
    from juno.cli.stop import JunoProcess

    module = {"GCS": "juno.gcs", "node manager": "juno.node", "worker": "juno.worker"}[role]
    return JunoProcess(_Proc(pid, session), role, ("python", "-m", module, *args), ppid)


def test_bare_stop_picks_what_juno_start_started_and_its_workers():
    from juno.cli.stop import started_by_juno_start

    cli_gcs = proc(10, "GCS", "--session-dir", "/t/a")
    cli_node = proc(11, "node manager", "--session-dir", "/t/a")
    cli_worker = proc(12, "worker", ppid=11)
    orphan = proc(13, "worker", ppid=999, session="/t/a")  # its node manager is gone
    # juno.init()'s private cluster (and cluster_utils'): they have an owner; leave them alone
    owned_gcs = proc(20, "GCS", "--session-dir", "/t/b", "--owner-pid", "5")
    owned_node = proc(21, "node manager", "--session-dir", "/t/b", "--owner-pid", "5")
    owned_worker = proc(22, "worker", ppid=21)
    # a node `juno start --address` added to that private cluster: ours, but not its GCS
    added = proc(30, "node manager", "--session-dir", "/t/b")
    added_worker = proc(31, "worker", ppid=30)
    everything = [cli_gcs, cli_node, cli_worker, orphan, owned_gcs, owned_node, owned_worker, added, added_worker]
    picked = started_by_juno_start(everything, "/t")
    assert {p.proc.pid for p in picked} == {10, 11, 12, 13, 30, 31}


def test_bare_stop_leaves_alone_what_juno_start_started_with_another_temp_folder():
    """A test run (or a second user session) with a $TMPDIR of its own keeps its clusters when
    someone runs a bare `juno stop` beside it."""
    from juno.cli.stop import started_by_juno_start

    mine = [proc(10, "GCS", "--session-dir", "/tmp/juno-clusters/s1"),
            proc(11, "node manager", "--session-dir", "/tmp/juno-clusters/s1"), proc(12, "worker", ppid=11)]
    theirs = [proc(20, "GCS", "--session-dir", "/tmp/juno-run-x/juno-clusters/s2"),
              proc(21, "node manager", "--session-dir", "/tmp/juno-run-x/juno-clusters/s2"),
              proc(22, "worker", ppid=21),
              proc(23, "worker", ppid=999, session="/tmp/juno-run-x/juno-clusters/s2"),  # orphaned
              proc(24, "GCS", "--session-dir", "/tmp/juno-clusters-other/s3")]  # a look-alike prefix
    picked = started_by_juno_start(mine + theirs, "/tmp/juno-clusters")
    assert {p.proc.pid for p in picked} == {10, 11, 12}
