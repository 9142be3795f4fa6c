"""Cross-node placement decisions (runtime/node/cluster_policy.py), with no processes."""
import pytest

from juno import exceptions as exc
from juno.node.cluster_policy import (FAIL, INFEASIBLE, MAX_HOPS, PLACE, ClusterPolicy, locality_node,
                                      strategy_kind, utilization)
from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

A, B, C = "aa" * 14, "bb" * 14, "cc" * 14


def node(total, available=None):
    return {"resources": dict(total), "available": dict(total if available is None else available)}


def cluster(**nodes):
    names = {"a": A, "b": B, "c": C}
    return {names[k]: v for k, v in nodes.items()}


def test_default_runs_at_home_while_it_fits():
    nodes = cluster(a=node({"CPU": 2}), b=node({"CPU": 8}))
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}) == (PLACE, A)


def test_default_spills_from_a_busy_home_to_a_node_with_room():
    nodes = cluster(a=node({"CPU": 1}, {}), b=node({"CPU": 2}), c=node({"CPU": 2}, {"CPU": 1}))
    # b and c both fit; b is less loaded once the request is placed
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}) == (PLACE, B)


def test_default_waits_at_a_busy_home_when_no_node_has_room():
    nodes = cluster(a=node({"CPU": 1}, {}), b=node({"CPU": 1}, {}))
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}) == (PLACE, A)


def test_custom_resource_routes_to_the_only_node_that_has_it():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1, "pool": 1}, {"CPU": 1}))
    # b's pool is busy now, but only b could ever run it: go there and wait
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1, "pool": 1}) == (PLACE, B)


def test_a_request_no_node_can_run_is_infeasible_at_home():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 2}))
    assert ClusterPolicy(A).choose(nodes, {"GPU": 1}) == (INFEASIBLE, A)


def test_placement_group_resources_route_by_name():
    pg = "ab12" * 4
    bundle = {f"CPU_group_0_{pg}": 1.0}
    nodes = cluster(a=node({"CPU": 2}), b=node({"CPU": 2, f"CPU_group_0_{pg}": 1, f"CPU_group_{pg}": 1}))
    strategy = PlacementGroupSchedulingStrategy(object(), 0)
    assert strategy_kind(strategy) == "DEFAULT"
    assert ClusterPolicy(A).choose(nodes, bundle, strategy) == (PLACE, B)


def test_a_spilled_request_stays_where_it_arrived_unless_it_can_never_run_there():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}, {}))
    policy = ClusterPolicy(B)
    assert policy.choose(nodes, {"CPU": 1}, hops=1) == (PLACE, B)  # busy, but no ping-pong back to a
    nodes[C] = node({"CPU": 1, "pool": 1})
    assert policy.choose(nodes, {"pool": 1}, hops=1) == (PLACE, C)  # b never has "pool": move on
    assert policy.choose(nodes, {"pool": 1}, hops=MAX_HOPS) == (INFEASIBLE, B)  # hop limit reached


def test_spread_puts_n_requests_on_n_nodes():
    nodes = cluster(a=node({"CPU": 2}), b=node({"CPU": 2}), c=node({"CPU": 2}))
    policy = ClusterPolicy(A)
    chosen = []
    for _ in range(3):
        decision, where = policy.choose(nodes, {"CPU": 1}, "SPREAD")
        assert decision == PLACE
        chosen.append(where)
        if where == A:
            nodes[A]["available"]["CPU"] -= 1  # the home node's own accounting is exact
        else:
            policy.note_placed(where, {"CPU": 1}, nodes)  # promised spill, not yet in the view
    assert sorted(chosen) == sorted([A, B, C])


def test_spread_prefers_the_least_loaded_node():
    nodes = cluster(a=node({"CPU": 4}, {"CPU": 1}), b=node({"CPU": 4}, {"CPU": 3}), c=node({"CPU": 4}, {"CPU": 2}))
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}, "SPREAD") == (PLACE, B)


def test_promised_spills_count_until_the_node_reports_again():
    nodes = cluster(a=node({"CPU": 1}, {}), b=node({"CPU": 1}), c=node({"CPU": 1}))
    policy = ClusterPolicy(A)
    first = policy.choose(nodes, {"CPU": 1}, now=0.0)[1]
    policy.note_placed(first, {"CPU": 1}, nodes, now=0.0)
    second = policy.choose(nodes, {"CPU": 1}, now=0.1)[1]
    assert {first, second} == {B, C}
    policy.note_placed(second, {"CPU": 1}, nodes, now=0.1)
    assert policy.choose(nodes, {"CPU": 1}, now=0.2) == (PLACE, A)  # nothing has room: wait at home
    nodes[B] = node({"CPU": 1}, {"CPU": 1.0, "memory": 5})  # b reported since: its view entry is current
    assert policy.choose(nodes, {"CPU": 1}, now=0.3) == (PLACE, B)
    assert policy.available(C, nodes[C], now=99.0) == {"CPU": 1}  # promises expire


def test_hard_affinity_goes_to_its_node_even_when_busy():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}, {}))
    strategy = NodeAffinitySchedulingStrategy(B, soft=False)
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}, strategy) == (PLACE, B)
    assert ClusterPolicy(B).choose(nodes, {"CPU": 1}, strategy, hops=1) == (PLACE, B)


def test_hard_affinity_to_a_dead_node_fails_naming_it():
    nodes = cluster(a=node({"CPU": 1}))
    decision, error = ClusterPolicy(A).choose(nodes, {"CPU": 1}, NodeAffinitySchedulingStrategy(C, soft=False))
    assert decision == FAIL
    assert isinstance(error, exc.TaskUnschedulableError) and C in str(error) and "soft=True" in str(error)
    decision, error = ClusterPolicy(A).choose(nodes, {"CPU": 1}, NodeAffinitySchedulingStrategy(C, soft=False),
                                              is_actor=True)
    assert isinstance(error, exc.ActorUnschedulableError)


def test_soft_affinity_falls_back_when_the_node_is_dead_or_infeasible():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}))
    policy = ClusterPolicy(A)
    assert policy.choose(nodes, {"CPU": 1}, NodeAffinitySchedulingStrategy(C, soft=True)) == (PLACE, A)
    assert policy.choose(nodes, {"GPU": 1}, NodeAffinitySchedulingStrategy(B, soft=True)) == (INFEASIBLE, A)
    assert policy.choose(nodes, {"CPU": 1}, NodeAffinitySchedulingStrategy(B, soft=True)) == (PLACE, B)


def test_hard_affinity_to_a_node_that_can_never_run_it_waits_there():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}))
    assert ClusterPolicy(A).choose(nodes, {"GPU": 1}, NodeAffinitySchedulingStrategy(B, soft=False)) \
        == (INFEASIBLE, B)


def test_affinity_spill_and_fail_on_unavailable():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}, {}))
    spill = NodeAffinitySchedulingStrategy(B, soft=True, _spill_on_unavailable=True)
    assert ClusterPolicy(A).choose(nodes, {"CPU": 1}, spill) == (PLACE, A)
    fail = NodeAffinitySchedulingStrategy(B, soft=False, _fail_on_unavailable=True)
    decision, error = ClusterPolicy(A).choose(nodes, {"CPU": 1}, fail)
    assert decision == FAIL and "free now" in str(error)


def test_locality_prefers_the_node_with_the_arguments_when_it_has_room():
    nodes = cluster(a=node({"CPU": 1}), b=node({"CPU": 1}), c=node({"CPU": 1}, {}))
    policy = ClusterPolicy(A)
    assert policy.choose(nodes, {"CPU": 1}, prefer=B) == (PLACE, B)
    assert policy.choose(nodes, {"CPU": 1}, prefer=C) == (PLACE, A)  # c is busy: run at home
    assert locality_node({A: 1, B: 3}, A) == B
    assert locality_node({A: 2, B: 1}, A) is None
    assert locality_node({}, A) is None


def test_gcs_placement_prefers_the_owners_node_then_the_least_loaded():
    nodes = cluster(a=node({"CPU": 2}, {"CPU": 1}), b=node({"CPU": 2}), c=node({"CPU": 2}, {"CPU": 1}))
    gcs = ClusterPolicy()
    assert gcs.choose(nodes, {"CPU": 1}, home=C) == (PLACE, C)
    assert gcs.choose(nodes, {"CPU": 1}) == (PLACE, B)
    assert gcs.choose(nodes, {"CPU": 1, "pool": 1}) == (INFEASIBLE, A)


def test_utilization_counts_the_request_as_placed():
    assert utilization({"CPU": 1}, node({"CPU": 4}, {"CPU": 2})) == pytest.approx(0.75)
    assert utilization({}, node({"CPU": 2}, {"CPU": 2})) == pytest.approx(0.0)
