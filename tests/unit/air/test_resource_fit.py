"""check_resources_fit: a placement group no set of alive nodes can ever hold is refused, saying why."""
from __future__ import annotations

import pytest

from juno.air.validation import ResourcesUnavailableError, check_resources_fit


def node(alive=True, **resources):
    """A juno.nodes() entry (only the keys the check reads, plus one it must ignore)."""
    return {"NodeID": "n", "Alive": alive, "Resources": {k: float(v) for k, v in resources.items()},
            "NodeManagerAddress": "127.0.0.1"}


def workers(n, **per_worker):
    return [dict(per_worker) for _ in range(n)]


def refused(bundles, strategy, nodes) -> str:
    with pytest.raises(ResourcesUnavailableError) as info:
        check_resources_fit(bundles, strategy, nodes)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize("strategy", ["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD", "pack"])
def test_a_group_that_fits_passes(strategy):
    nodes = [node(CPU=4, memory=1e9), node(CPU=4), node(CPU=2, GPU=1)]
    check_resources_fit(workers(2, CPU=1), strategy, nodes)
    check_resources_fit([], strategy, nodes)
    check_resources_fit(workers(3, CPU=1, GPU=0), strategy, nodes)  # zero quantities ask for nothing


def test_a_gpu_no_node_has_names_gpu_the_totals_and_use_gpu_false():
    text = refused(workers(2, CPU=1, GPU=1), "PACK", [node(CPU=4), node(CPU=2)])
    assert "each worker needs GPU=1 but no alive node has any GPU" in text
    assert "It asks for 2 worker(s), {CPU: 1, GPU: 1} per worker, {CPU: 2, GPU: 2} in all" in text
    assert "the cluster's alive nodes have {CPU: 6} in all (2 node(s): {CPU: 4, GPU: 0}; {CPU: 2, GPU: 0})" in text
    assert "use_gpu=False" in text and "juno.init(num_gpus=N)" in text
    assert "ScalingConfig(num_workers=...)" in text and "smaller resources_per_worker" in text


def test_a_worker_bigger_than_every_node_names_the_largest_node():
    text = refused(workers(1, CPU=8), "SPREAD", [node(CPU=4), node(CPU=2)])
    assert "each worker needs CPU=8 but the largest node has CPU=4" in text


def test_too_many_workers_for_the_totals():
    text = refused(workers(5, CPU=2), "PACK", [node(CPU=4), node(CPU=4)])
    assert "the run needs CPU=10 in all but the cluster has CPU=8" in text
    assert "more nodes or bigger ones" in text


def test_pack_places_each_bundle_on_one_node_so_totals_are_not_enough():
    # 3 CPUs free on each of two nodes: 6 in all, but two 2-CPU workers per node do not fit.
    nodes = [node(CPU=3), node(CPU=3)]
    check_resources_fit(workers(2, CPU=2), "PACK", nodes)
    text = refused(workers(3, CPU=2), "PACK", nodes)
    assert "the totals are enough, but split over the nodes no placement gives each worker one node" in text


def test_bin_packing_finds_a_placement_first_fit_decreasing_alone_would_miss():
    # First fit decreasing puts the 2-CPU worker on the GPU node and dead-ends; the exact search
    # finds 2 CPU -> second node, the GPU worker and the 1-CPU one -> first node.
    nodes = [node(CPU=2, GPU=1), node(CPU=2)]
    bundles = [{"CPU": 2}, {"CPU": 1, "GPU": 1}, {"CPU": 1}]
    check_resources_fit(bundles, "PACK", nodes)
    check_resources_fit(bundles, "SPREAD", nodes)
    text = refused(bundles + [{"CPU": 0.5}], "PACK", nodes)
    assert "the run needs CPU=4.5 in all but the cluster has CPU=4" in text
    refused([{"CPU": 2}, {"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1}], "PACK", nodes)


def test_strict_pack_needs_one_node_with_everything():
    nodes = [node(CPU=4), node(CPU=4)]
    check_resources_fit(workers(4, CPU=1), "STRICT_PACK", nodes)
    text = refused(workers(3, CPU=2), "STRICT_PACK", nodes)
    assert "STRICT_PACK puts every worker on one node, and no node has {CPU: 6}" in text
    assert "the best has CPU=4" in text and "placement_strategy='PACK'" in text


def test_strict_spread_needs_a_distinct_node_per_bundle():
    nodes = [node(CPU=4), node(CPU=4, GPU=1), node(CPU=1)]
    check_resources_fit(workers(3, CPU=1), "STRICT_SPREAD", nodes)
    text = refused(workers(3, CPU=2), "STRICT_SPREAD", nodes)
    assert "STRICT_SPREAD puts each worker on its own node, and only 2 of the 3 alive node(s) can hold one" in text
    assert "placement_strategy='SPREAD'" in text
    # A matching, not a greedy pick: the GPU worker must take the GPU node even if listed last.
    check_resources_fit([{"CPU": 1}, {"CPU": 1, "GPU": 1}], "STRICT_SPREAD", [node(CPU=4, GPU=1), node(CPU=4)])
    assert "and only 3 node(s) are alive" in refused(workers(4, CPU=1), "STRICT_SPREAD", nodes)
    # Every node holds some worker and the totals suffice, but both 2-CPU workers want the one big node.
    text = refused([{"CPU": 2}, {"CPU": 2}, {"CPU": 1}], "STRICT_SPREAD", [node(CPU=3), node(CPU=1), node(CPU=1)])
    assert "and no assignment gives every worker one that fits" in text


def test_dead_nodes_do_not_count_and_no_alive_node_says_so():
    nodes = [node(CPU=8, alive=False), node(CPU=1)]
    assert "each worker needs CPU=2 but the largest node has CPU=1" in refused(workers(1, CPU=2), "PACK", nodes)
    text = refused(workers(1, CPU=1), "PACK", [node(CPU=8, alive=False)])
    assert "the cluster has no alive node" in text


def test_custom_resources_and_different_bundles_are_listed():
    text = refused([{"CPU": 1}, {"CPU": 1, "accel": 2}], "PACK", [node(CPU=4, accel=1)])
    assert "each worker needs accel=2 but the largest node has accel=1" in text
    assert "per worker: {CPU: 1}, {CPU: 1, accel: 2}" in text


def test_an_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="placement strategy must be one of PACK, SPREAD, STRICT_PACK, "
                                         "STRICT_SPREAD, got 'TIGHT'"):
        check_resources_fit(workers(1, CPU=1), "TIGHT", [node(CPU=1)])


def test_a_large_undecidable_search_never_refuses():
    # Many different bundles over many nodes: whatever the search cannot settle within its
    # budget is let through (the GCS then warns and waits), never refused wrongly.
    bundles = [{"CPU": 1 + (i % 7) / 10, "mem": 1 + (i % 5) / 10} for i in range(40)]
    nodes = [node(CPU=5.05 + i / 100, mem=5.05) for i in range(12)]
    check_resources_fit(bundles, "PACK", nodes)
