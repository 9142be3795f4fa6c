"""Placement groups without processes: bundle resource names, validation, where bundles go
(runtime/gcs/placement_group_scheduling.py) and a node's reservations (runtime/node/placement_group_bundles.py)."""
from __future__ import annotations

import pytest

from juno.gcs import placement_group_resources as br
from juno.gcs.placement_group_scheduling import NodeRoom, place_bundles
from juno.gcs.placement_groups import GroupRecord
from juno.node.placement_group_bundles import BundleTable
from juno.node.resources import NodeResources

PG = "ab" * 16


# ------------------------------------------------------------------ names and requests
def test_resource_names_follow_rays_scheme():
    assert br.resource_name("CPU", PG) == f"CPU_group_{PG}"
    assert br.resource_name("CPU", PG, 2) == f"CPU_group_2_{PG}"
    assert br.parse_name(f"GPU_group_3_{PG}") == ("GPU", 3, PG)
    assert br.parse_name(f"my_res_group_{PG}") == ("my_res", -1, PG)
    assert br.parse_name("CPU") is None
    assert br.group_of("my_group_thing") is None  # not a placement group resource
    assert br.groups_in({f"CPU_group_{PG}": 1, "CPU": 1}) == {PG}


def test_bundle_totals_give_indexed_wildcard_and_bundle_resources():
    totals = br.bundle_totals(PG, 1, {"CPU": 2, "custom": 0.5})
    assert totals == {f"CPU_group_1_{PG}": 2.0, f"CPU_group_{PG}": 2.0, f"custom_group_1_{PG}": 0.5,
                      f"custom_group_{PG}": 0.5, f"bundle_group_1_{PG}": br.BUNDLE_UNITS,
                      f"bundle_group_{PG}": br.BUNDLE_UNITS}


def test_requests_in_a_group_take_the_wildcard_and_a_bit_of_the_bundle():
    assert br.request_in_group({"CPU": 1}, PG, -1) == {f"CPU_group_{PG}": 1.0,
                                                        f"bundle_group_{PG}": br.BUNDLE_REQUEST}
    assert br.request_in_group({"CPU": 1}, PG, 0) == {f"CPU_group_{PG}": 1.0, f"CPU_group_0_{PG}": 1.0,
                                                       f"bundle_group_0_{PG}": br.BUNDLE_REQUEST}
    # Zero-CPU work (a default actor) still lands on the bundle's node.
    assert br.request_in_group({}, PG, 1) == {f"bundle_group_1_{PG}": br.BUNDLE_REQUEST}


@pytest.mark.parametrize("bundles, error, text", [
    ([], ValueError, "empty list"),
    ([{}], ValueError, "only 0 values"),
    ([{"CPU": 0, "GPU": 0}], ValueError, "only 0 values"),
    ([{"CPU": -1}], ValueError, ">= 0"),
    ([{"CPU": "1"}], TypeError, "number"),
    ({"CPU": 1}, TypeError, "list of dicts"),
    ([{"CPU": 1}, 3], TypeError, "Bundle 1"),
    ([{f"CPU_group_{PG}": 1}], ValueError, "placement group resource"),
])
def test_bad_bundles_are_refused_with_a_clear_message(bundles, error, text):
    with pytest.raises(error, match=text):
        br.validate_bundles(bundles)


def test_bundles_are_normalized():
    assert br.validate_bundles([{"CPU": 1, "GPU": 0}, {"custom": 2}]) == [{"CPU": 1.0}, {"custom": 2.0}]


def test_unknown_strategy_and_bad_index_and_oversized_requests():
    with pytest.raises(ValueError, match="Supported strategies are: PACK, SPREAD, STRICT_PACK, STRICT_SPREAD"):
        br.validate_strategy("PACKED")
    with pytest.raises(ValueError, match="out of range.*2 bundle"):
        br.check_bundle_index(2, 2)
    br.check_bundle_index(-1, 2)
    br.check_bundle_index(1, 2)
    with pytest.raises(ValueError, match="cannot fit into bundle 0"):
        br.check_fits({"CPU": 2}, [{"CPU": 1}, {"CPU": 4}], 0, "task f")
    br.check_fits({"CPU": 2}, [{"CPU": 1}, {"CPU": 4}], -1, "task f")
    with pytest.raises(ValueError, match="cannot fit into any bundle"):
        br.check_fits({"GPU": 1}, [{"CPU": 1}], -1, "task f")


# ------------------------------------------------------------------ placement decisions
def nodes(*cpus, **extra):
    return [NodeRoom(f"n{i}", {"CPU": float(c), **extra}, {"CPU": float(c), **extra}) for i, c in enumerate(cpus)]


def test_pack_puts_everything_on_one_node_when_it_fits():
    p = place_bundles("PACK", [{"CPU": 1}, {"CPU": 1}], nodes(1, 2))
    assert p.assignment == {0: "n1", 1: "n1"}


def test_pack_spreads_over_nodes_only_when_it_must():
    p = place_bundles("PACK", [{"CPU": 2}, {"CPU": 1}, {"CPU": 1}], nodes(2, 2))
    assert p.assignment == {0: "n0", 1: "n1", 2: "n1"}


def test_strict_pack_needs_one_node_for_everything():
    p = place_bundles("STRICT_PACK", [{"CPU": 1}, {"CPU": 1}], nodes(1, 1))
    assert p.assignment is None and "STRICT_PACK" in p.reason
    assert place_bundles("STRICT_PACK", [{"CPU": 1}, {"CPU": 1}], nodes(1, 2)).assignment == {0: "n1", 1: "n1"}


def test_spread_prefers_distinct_nodes_but_doubles_up_when_it_must():
    assert place_bundles("SPREAD", [{"CPU": 1}] * 2, nodes(2, 2)).assignment == {0: "n0", 1: "n1"}
    assert place_bundles("SPREAD", [{"CPU": 1}] * 3, nodes(2, 1)).assignment == {0: "n0", 1: "n1", 2: "n0"}


def test_strict_spread_needs_distinct_nodes():
    p = place_bundles("STRICT_SPREAD", [{"CPU": 1}] * 3, nodes(4, 4))
    assert p.assignment is None and "3 distinct nodes" in p.reason and "only 2" in p.reason
    p = place_bundles("STRICT_SPREAD", [{"CPU": 1}] * 3, nodes(1, 1, 1))
    assert sorted(p.assignment.values()) == ["n0", "n1", "n2"]


def test_strict_spread_backtracks_to_find_a_fit():
    # Greedy in order would put the small bundle on the big node and strand the big bundle.
    ns = [NodeRoom("big", {"CPU": 4}, {"CPU": 4}), NodeRoom("small", {"CPU": 1}, {"CPU": 1})]
    p = place_bundles("STRICT_SPREAD", [{"CPU": 1}, {"CPU": 4}], ns)
    assert p.assignment == {0: "small", 1: "big"}


def test_rescheduling_places_only_lost_bundles_and_avoids_nodes_in_use():
    p = place_bundles("STRICT_SPREAD", [{"CPU": 1}] * 2, nodes(1, 1, 1), fixed={0: "n0"})
    assert p.assignment == {1: "n1"}
    p = place_bundles("PACK", [{"CPU": 1}] * 2, nodes(2, 2), fixed={0: "n1"})
    assert p.assignment == {1: "n1"}  # joins the node the group already uses


def test_custom_resources_and_free_versus_total():
    ns = [NodeRoom("a", {"CPU": 0.0, "acc": 1.0}, {"CPU": 2.0, "acc": 1.0}), NodeRoom("b", {"CPU": 2.0}, {"CPU": 2.0})]
    assert place_bundles("PACK", [{"CPU": 1, "acc": 1}], ns).assignment is None  # busy now
    assert place_bundles("PACK", [{"CPU": 1, "acc": 1}], ns, use_totals=True).assignment == {0: "a"}  # feasible
    assert place_bundles("PACK", [{"acc": 2}], ns, use_totals=True).assignment is None  # never


def test_max_cpu_fraction_leaves_cpus_free_per_node():
    assert place_bundles("PACK", [{"CPU": 2}], nodes(4), max_cpu_fraction=0.5).assignment == {0: "n0"}
    assert place_bundles("PACK", [{"CPU": 3}], nodes(4), max_cpu_fraction=0.5).assignment is None
    busy = [NodeRoom("n0", {"CPU": 2.0}, {"CPU": 4.0, f"CPU_group_{PG}": 2.0})]  # 2 CPUs held by another group
    assert place_bundles("PACK", [{"CPU": 1}], busy, max_cpu_fraction=0.5).assignment is None


# ------------------------------------------------------------------ a node's reservations
def test_prepare_is_all_or_nothing():
    res = NodeResources({"CPU": 2})
    table = BundleTable(res)
    ok, why = table.prepare(PG, [(0, {"CPU": 1}), (1, {"CPU": 2})])
    assert not ok and "bundle 1" in why
    assert res.available == {"CPU": 2.0}  # nothing held after a refusal
    assert table.prepare(PG, [(0, {"CPU": 1}), (1, {"CPU": 1})]) == (True, "")
    assert res.available == {"CPU": 0.0}
    assert table.summary() == {PG: {0: "prepared", 1: "prepared"}}


def test_commit_adds_bundle_resources_that_work_in_the_group_can_take():
    res = NodeResources({"CPU": 3})
    table = BundleTable(res)
    table.prepare(PG, [(0, {"CPU": 1}), (1, {"CPU": 1})])
    assert table.commit(PG, [0, 1]) == (True, "")
    assert res.total[f"CPU_group_{PG}"] == 2.0 and res.total[f"CPU_group_1_{PG}"] == 1.0
    assert res.available["CPU"] == 1.0
    task = res.allocate(br.request_in_group({"CPU": 1}, PG, 1))
    assert task is not None
    assert res.allocate(br.request_in_group({"CPU": 1}, PG, 1)) is None  # bundle 1 is full
    assert res.allocate(br.request_in_group({"CPU": 1}, PG, -1)) is not None  # bundle 0 still has room
    assert res.allocate(br.request_in_group({"CPU": 1}, PG, 0)) is None  # the wildcard is used up
    assert table.commit(PG, [5]) == (False, "bundles [5] were not prepared on this node")


def test_remove_returns_everything_and_late_releases_are_harmless():
    res = NodeResources({"CPU": 2})
    table = BundleTable(res)
    table.prepare(PG, [(0, {"CPU": 2})])
    table.commit(PG, [0])
    lease = res.allocate(br.request_in_group({"CPU": 1}, PG, 0))
    assert table.remove(PG, "removed by the user") == [0]
    assert res.total == {"CPU": 2.0} and res.available == {"CPU": 2.0}
    res.release(lease)  # the killed worker's lease comes back after the group is gone
    assert res.total == {"CPU": 2.0} and res.available == {"CPU": 2.0}
    assert table.removed_group(br.request_in_group({"CPU": 1}, PG, 0)) == PG
    assert table.prepare(PG, [(0, {"CPU": 1})]) == (False, "the placement group was removed")


def test_cancel_gives_back_some_bundles():
    res = NodeResources({"CPU": 2})
    table = BundleTable(res)
    table.prepare(PG, [(0, {"CPU": 1}), (1, {"CPU": 1})])
    table.commit(PG, [0])
    assert sorted(table.cancel(PG, [0, 1])) == [0, 1]
    assert res.total == {"CPU": 2.0} and res.available == {"CPU": 2.0}
    assert table.summary() == {}


def test_group_record_survives_storage_and_shows_rays_columns():
    rec = GroupRecord(bytes.fromhex(PG), [{"CPU": 1}], "PACK", "g", "ns", 1, False, "addr", None)
    back = GroupRecord.from_dict(rec.to_dict())
    assert back.row()["bundles"] == {0: {"CPU": 1}}
    row = rec.row()
    assert row["placement_group_id"] == PG and row["state"] == "PENDING" and row["strategy"] == "PACK"
    assert row["bundles_to_node_id"] == {} and row["stats"]["scheduling_state"] == "QUEUED"


def test_work_in_a_gpu_bundle_gets_that_bundles_gpu_ids():
    res = NodeResources({"CPU": 2, "GPU": 3}, [0, 1, 2])
    table = BundleTable(res)
    table.prepare(PG, [(0, {"GPU": 1}), (1, {"GPU": 1})])
    table.commit(PG, [0, 1])
    ids = {i: table.bundles[(PG, i)][1].gpu_ids for i in (0, 1)}
    assert ids[0] != ids[1]
    whole = res.allocate(br.request_in_group({"GPU": 1}, PG, 1))
    assert whole.gpu_ids == ids[1]
    assert res.allocate(br.request_in_group({"GPU": 1}, PG, 1)) is None
    halves = [res.allocate(br.request_in_group({"GPU": 0.5}, PG, -1)) for _ in range(2)]
    assert [h.gpu_ids for h in halves] == [ids[0], ids[0]]  # both share bundle 0's GPU
    assert res.allocate(br.request_in_group({"GPU": 0.5}, PG, -1)) is None
    plain = res.allocate({"GPU": 1})
    assert plain.gpu_ids == (2,)  # the GPU no bundle holds
    for a in (whole, *halves, plain):
        res.release(a)
    late = res.allocate(br.request_in_group({"GPU": 1}, PG, 0))
    assert late.gpu_ids == ids[0]
    table.remove(PG, "done")
    res.release(late)  # released after its group is gone: nothing is counted twice
    assert res.gpu_available() == {0: 1.0, 1: 1.0, 2: 1.0}
