"""Unit tests for juno.node.resources: fixed-point accounting and GPU packing."""

from __future__ import annotations

import pytest

from juno.node.resources import (
    Allocation,
    NodeResources,
    ResourceSet,
    from_units,
    normalize_request,
    to_units,
)


# --- fixed point ---------------------------------------------------------------


def test_units_round_trip() -> None:
    assert to_units(1.0) == 10_000
    assert to_units(0.1) == 1_000
    assert to_units(0.00004) == 0
    assert to_units(0.00005) in (0, 1)  # banker's rounding either way, never drift
    assert from_units(to_units(0.3)) == 0.3
    assert to_units(8 * 1024**3) == 8 * 1024**3 * 10_000  # big ints stay exact


def test_ten_tenths_sum_to_exactly_one() -> None:
    total = ResourceSet()
    for _ in range(10):
        total = total + ResourceSet({"CPU": 0.1})
    assert total.get("CPU") == 1.0
    assert total == ResourceSet({"CPU": 1.0})
    # The float way drifts; this is why units exist.
    assert sum([0.1] * 10) != 1.0


def test_node_accounting_has_no_drift() -> None:
    node = NodeResources({"CPU": 1})
    allocs = [node.allocate({"CPU": 0.1}) for _ in range(10)]
    assert all(a is not None for a in allocs)
    assert node.available["CPU"] == 0.0
    assert node.allocate({"CPU": 0.1}) is None
    for a in allocs:
        node.release(a)  # type: ignore[arg-type]
    assert node.available["CPU"] == 1.0


# --- ResourceSet -----------------------------------------------------------------


def test_resource_set_basics() -> None:
    a = ResourceSet.from_dict({"CPU": 2, "GPU": 0, "custom": 0.5})
    assert a.to_dict() == {"CPU": 2.0, "custom": 0.5}
    assert "GPU" not in a
    assert a.get("GPU") == 0.0
    assert a.get("missing") == 0.0
    assert a["custom"] == 0.5
    assert len(a) == 2
    assert not a.is_empty()
    assert ResourceSet({"X": 0}).is_empty()
    assert ResourceSet().is_empty()
    assert repr(a) == "ResourceSet({'CPU': 2.0, 'custom': 0.5})"


def test_resource_set_arithmetic_and_fits() -> None:
    a = ResourceSet({"CPU": 2, "node:127.0.0.1": 1})
    b = ResourceSet({"CPU": 0.5})
    assert (a + b).to_dict() == {"CPU": 2.5, "node:127.0.0.1": 1.0}
    assert (a - b).to_dict() == {"CPU": 1.5, "node:127.0.0.1": 1.0}
    assert (b - b).is_empty()
    assert (b - a).get("CPU") == -1.5  # negatives allowed in plain sets
    assert b.fits_in(a)
    assert not a.fits_in(b)
    assert ResourceSet({"other": 0.1}).fits_in(a) is False
    assert ResourceSet().fits_in(ResourceSet())


def test_resource_set_equality_and_hash() -> None:
    a = ResourceSet({"CPU": 1, "GPU": 0})
    b = ResourceSet({"CPU": 1.0})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != ResourceSet({"CPU": 2})
    assert a == {"CPU": 1.0}
    with pytest.raises(TypeError):
        a + {"CPU": 1}  # type: ignore[operator]


def test_resource_set_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="'CPU' must be a number"):
        ResourceSet({"CPU": "two"})
    with pytest.raises(ValueError, match="finite"):
        ResourceSet({"CPU": float("nan")})
    with pytest.raises(ValueError, match="strings"):
        ResourceSet({1: 1.0})  # type: ignore[dict-item]


# --- NodeResources construction --------------------------------------------------


def test_default_gpu_ids_and_totals() -> None:
    node = NodeResources({"CPU": 4, "GPU": 2, "memory": 1e9})
    assert node.gpu_ids == [0, 1]
    assert node.total == {"CPU": 4.0, "GPU": 2.0, "memory": 1e9}
    assert node.available == node.total
    assert node.used() == {}


def test_explicit_gpu_ids_must_match_total() -> None:
    node = NodeResources({"GPU": 2}, gpu_ids=[3, 5])
    assert node.gpu_ids == [3, 5]
    with pytest.raises(ValueError, match="does not match"):
        NodeResources({"GPU": 1}, gpu_ids=[0, 1])
    with pytest.raises(ValueError, match="does not match"):
        NodeResources({"CPU": 1}, gpu_ids=[0])
    with pytest.raises(ValueError, match="duplicate"):
        NodeResources({"GPU": 2}, gpu_ids=[0, 0])
    with pytest.raises(ValueError, match="whole"):
        NodeResources({"GPU": 1.5})
    with pytest.raises(ValueError, match=">= 0"):
        NodeResources({"CPU": -1})
    assert NodeResources({"CPU": 1}, gpu_ids=[]).gpu_ids == []


# --- allocate / release --------------------------------------------------------------


def test_allocate_release_round_trip() -> None:
    node = NodeResources({"CPU": 4, "GPU": 2, "memory": 1000, "custom": 3})
    before = node.available
    req = {"CPU": 1.5, "GPU": 1, "memory": 250, "custom": 2}
    a = node.allocate(req)
    assert a is not None
    assert isinstance(a, Allocation)
    assert a.resources == ResourceSet(req)
    assert node.available == {"CPU": 2.5, "GPU": 1.0, "memory": 750.0, "custom": 1.0}
    assert node.used() == {"CPU": 1.5, "GPU": 1.0, "memory": 250.0, "custom": 2.0}
    assert node.utilization() == {
        "CPU": (1.5, 4.0),
        "GPU": (1.0, 2.0),
        "memory": (250.0, 1000.0),
        "custom": (2.0, 3.0),
    }
    node.release(a)
    assert node.available == before
    assert node.gpu_available() == {0: 1.0, 1: 1.0}
    assert node.used() == {}


def test_allocation_ids_are_unique() -> None:
    node = NodeResources({"CPU": 4})
    a = node.allocate({"CPU": 1})
    b = node.allocate({"CPU": 1})
    assert a is not None and b is not None
    assert a.id != b.id


def test_double_release_raises() -> None:
    node = NodeResources({"CPU": 2})
    a = node.allocate({"CPU": 1})
    assert a is not None
    node.release(a)
    with pytest.raises(ValueError, match="already released"):
        node.release(a)
    assert node.available["CPU"] == 2.0


def test_release_of_foreign_allocation_raises() -> None:
    node = NodeResources({"CPU": 2})
    other = NodeResources({"CPU": 8})
    a = other.allocate({"CPU": 4})
    assert a is not None
    with pytest.raises(ValueError):
        node.release(a)
    assert node.available["CPU"] == 2.0


def test_zero_entries_are_ignored() -> None:
    node = NodeResources({"CPU": 1})
    a = node.allocate({"CPU": 1, "GPU": 0, "unknown": 0})
    assert a is not None
    assert a.resources.to_dict() == {"CPU": 1.0}
    assert a.gpu_ids == ()
    assert node.is_feasible({"GPU": 0, "CPU": 0})
    empty = node.allocate({})
    assert empty is not None and empty.resources.is_empty()
    node.release(empty)
    node.release(a)
    assert node.available == {"CPU": 1.0}


def test_custom_and_node_resources() -> None:
    node = NodeResources({"CPU": 2, "node:127.0.0.1": 1, "accel": 2})
    a = node.allocate({"CPU": 1, "node:127.0.0.1": 0.001, "accel": 1.5})
    assert a is not None
    assert node.available["accel"] == 0.5
    assert node.available["node:127.0.0.1"] == 0.999
    assert node.allocate({"accel": 1}) is None
    assert node.can_allocate({"accel": 0.5})
    node.release(a)
    assert node.available["accel"] == 2.0
    assert node.available["node:127.0.0.1"] == 1.0


# --- feasibility ---------------------------------------------------------------------


def test_infeasible_vs_not_now() -> None:
    node = NodeResources({"CPU": 2, "GPU": 1})
    busy = node.allocate({"CPU": 2})
    assert busy is not None
    # Not now: fits the node, but the CPUs are taken.
    assert node.is_feasible({"CPU": 1})
    assert node.infeasible_reason({"CPU": 1}) is None
    assert not node.can_allocate({"CPU": 1})
    assert node.allocate({"CPU": 1}) is None
    # Never: more than the node has.
    assert not node.is_feasible({"GPU": 2})
    assert node.infeasible_reason({"GPU": 2}) == "requires {'GPU': 2.0} but this node has {'GPU': 1.0}"
    assert node.allocate({"GPU": 2}) is None
    node.release(busy)
    assert node.can_allocate({"CPU": 1})


def test_infeasible_reason_names_unknown_and_multiple_resources() -> None:
    node = NodeResources({"CPU": 2})
    reason = node.infeasible_reason({"CPU": 4, "TPU": 1, "memory": 0})
    assert reason == "requires {'CPU': 4.0, 'TPU': 1.0} but this node has {'CPU': 2.0, 'TPU': 0.0}"
    assert not node.is_feasible({"GPU": 0.5})
    assert "GPU" in (node.infeasible_reason({"GPU": 0.5}) or "")


def test_fractional_gpu_is_feasible_with_one_gpu() -> None:
    node = NodeResources({"GPU": 1})
    assert node.is_feasible({"GPU": 0.25})
    assert node.is_feasible({"GPU": 1})


# --- invalid requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"GPU": 1.5}, "GPU requests above 1 must be whole numbers, got 1.5"),
        ({"CPU": -1}, "'CPU' must be >= 0, got -1.0"),
        ({"custom": -0.5}, "'custom' must be >= 0"),
        ({"CPU": "1"}, "'CPU' must be a number"),
        ({"CPU": True}, "'CPU' must be a number"),
        ({"CPU": float("inf")}, "'CPU' must be finite"),
    ],
)
def test_invalid_requests_raise(request_: dict, message: str) -> None:
    node = NodeResources({"CPU": 4, "GPU": 4, "custom": 1})
    for method in (node.allocate, node.can_allocate, node.is_feasible, node.infeasible_reason):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            method(request_)
    assert node.available == node.total


def test_whole_gpu_counts_above_one_are_fine() -> None:
    node = NodeResources({"GPU": 4})
    a = node.allocate({"GPU": 2.0})
    assert a is not None and a.gpu_ids == (0, 1)


# --- GPUs ----------------------------------------------------------------------------


def test_whole_gpu_requests_get_distinct_ids() -> None:
    node = NodeResources({"GPU": 4})
    a = node.allocate({"GPU": 2})
    b = node.allocate({"GPU": 1})
    c = node.allocate({"GPU": 1})
    assert a is not None and b is not None and c is not None
    assert a.gpu_ids == (0, 1)
    assert b.gpu_ids == (2,)
    assert c.gpu_ids == (3,)
    assert a.gpu_shares == ((0, 10_000), (1, 10_000))
    assert len(set(a.gpu_ids + b.gpu_ids + c.gpu_ids)) == 4
    assert node.allocate({"GPU": 1}) is None
    node.release(b)
    d = node.allocate({"GPU": 1})
    assert d is not None and d.gpu_ids == (2,)


def test_whole_gpus_use_given_ids_lowest_first() -> None:
    node = NodeResources({"GPU": 3}, gpu_ids=[7, 2, 5])
    a = node.allocate({"GPU": 2})
    assert a is not None and a.gpu_ids == (2, 5)


def test_two_halves_share_one_gpu() -> None:
    node = NodeResources({"GPU": 2})
    a = node.allocate({"GPU": 0.5})
    b = node.allocate({"GPU": 0.5})
    assert a is not None and b is not None
    assert a.gpu_ids == b.gpu_ids == (0,)
    assert a.gpu_shares == ((0, 5_000),)
    assert node.gpu_available() == {0: 0.0, 1: 1.0}
    assert node.available["GPU"] == 1.0


def test_half_then_whole_uses_a_different_gpu() -> None:
    node = NodeResources({"GPU": 2})
    half = node.allocate({"GPU": 0.5})
    whole = node.allocate({"GPU": 1})
    assert half is not None and whole is not None
    assert half.gpu_ids == (0,)
    assert whole.gpu_ids == (1,)
    # Another whole GPU cannot be found although 0.5 GPU is free in aggregate.
    assert node.available["GPU"] == 0.5
    assert node.allocate({"GPU": 1}) is None
    assert node.is_feasible({"GPU": 1})


def test_thirds_pack_then_spill() -> None:
    node = NodeResources({"GPU": 2})
    allocs = [node.allocate({"GPU": 0.3}) for _ in range(3)]
    assert all(a is not None and a.gpu_ids == (0,) for a in allocs)
    fourth = node.allocate({"GPU": 0.3})
    assert fourth is not None and fourth.gpu_ids == (1,)
    assert node.gpu_available() == {0: 0.1, 1: 0.7}
    # Best fit: a 0.1 request fills the nearly full GPU 0, not GPU 1.
    tiny = node.allocate({"GPU": 0.1})
    assert tiny is not None and tiny.gpu_ids == (0,)


def test_best_fit_prefers_fullest_gpu_and_ties_go_low() -> None:
    node = NodeResources({"GPU": 3})
    a = node.allocate({"GPU": 0.2})  # -> 0 (tie, lowest id)
    b = node.allocate({"GPU": 1})  # -> 1
    c = node.allocate({"GPU": 0.6})  # -> 0 (0.8 left is the best fit)
    assert a is not None and b is not None and c is not None
    assert (a.gpu_ids, b.gpu_ids, c.gpu_ids) == ((0,), (1,), (0,))
    node.release(b)
    d = node.allocate({"GPU": 0.5})  # 0 has 0.2 left: doesn't fit; 1 and 2 tie -> 1
    assert d is not None and d.gpu_ids == (1,)


def test_fractional_release_returns_share_to_same_gpu() -> None:
    node = NodeResources({"GPU": 2})
    a = node.allocate({"GPU": 0.7})
    b = node.allocate({"GPU": 0.7})
    assert a is not None and b is not None
    assert (a.gpu_ids, b.gpu_ids) == ((0,), (1,))
    node.release(b)
    assert node.gpu_available() == {0: 0.3, 1: 1.0}
    node.release(a)
    assert node.gpu_available() == {0: 1.0, 1: 1.0}
    assert node.available["GPU"] == 2.0


# --- blocked workers --------------------------------------------------------------------


def test_blocked_worker_lends_cpus_and_oversubscribes_on_return() -> None:
    node = NodeResources({"CPU": 2, "GPU": 1})
    parent = node.allocate({"CPU": 2, "GPU": 1})
    assert parent is not None
    assert node.allocate({"CPU": 1}) is None

    node.release_cpus(parent)  # parent blocks in get()
    assert node.is_blocked(parent)
    assert node.available == {"CPU": 2.0, "GPU": 0.0}  # GPU stays held
    child = node.allocate({"CPU": 1})
    assert child is not None

    node.reacquire_cpus(parent)  # parent wakes while child still runs
    assert not node.is_blocked(parent)
    assert node.available["CPU"] == -1.0
    assert node.used()["CPU"] == 3.0
    assert not node.can_allocate({"CPU": 0.5})
    assert node.can_allocate({})  # zero-CPU work is still admitted

    node.release(child)
    assert node.available["CPU"] == 0.0
    assert not node.can_allocate({"CPU": 0.1})
    node.release(parent)
    assert node.available == {"CPU": 2.0, "GPU": 1.0}


def test_release_while_blocked_does_not_double_release() -> None:
    node = NodeResources({"CPU": 4})
    a = node.allocate({"CPU": 3})
    assert a is not None
    node.release_cpus(a)
    assert node.available["CPU"] == 4.0
    node.release(a)  # task finished (or died) while blocked
    assert node.available["CPU"] == 4.0
    assert not node.is_blocked(a)
    with pytest.raises(ValueError):
        node.reacquire_cpus(a)
    assert node.available["CPU"] == 4.0


def test_block_unblock_are_idempotent() -> None:
    node = NodeResources({"CPU": 4})
    a = node.allocate({"CPU": 1})
    assert a is not None
    node.release_cpus(a)
    node.release_cpus(a)
    assert node.available["CPU"] == 4.0
    node.reacquire_cpus(a)
    node.reacquire_cpus(a)
    assert node.available["CPU"] == 3.0
    node.reacquire_cpus(a)  # never blocked again: no change
    node.release(a)
    assert node.available["CPU"] == 4.0


# --- normalize_request ---------------------------------------------------------------------


def test_normalize_request_defaults() -> None:
    assert normalize_request() == {"CPU": 1.0}
    assert normalize_request(default_cpus=0) == {}
    assert normalize_request(num_cpus=0, num_gpus=0) == {}
    assert normalize_request(num_cpus=2, num_gpus=0.5) == {"CPU": 2.0, "GPU": 0.5}


def test_normalize_request_all_fields() -> None:
    assert normalize_request(
        num_cpus=0.5,
        num_gpus=2,
        memory=1024,
        object_store_memory=2048,
        resources={"custom": 1, "zero": 0},
    ) == {
        "CPU": 0.5,
        "GPU": 2.0,
        "memory": 1024.0,
        "object_store_memory": 2048.0,
        "custom": 1.0,
    }


def test_normalize_request_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="num_cpus/num_gpus instead of 'CPU'"):
        normalize_request(resources={"CPU": 1})
    with pytest.raises(ValueError, match="instead of 'GPU'"):
        normalize_request(resources={"GPU": 1})
    with pytest.raises(ValueError, match="CPU must be >= 0"):
        normalize_request(num_cpus=-1)
    with pytest.raises(ValueError, match="'custom' must be >= 0"):
        normalize_request(resources={"custom": -2})
    with pytest.raises(ValueError, match="whole number"):
        normalize_request(num_gpus=1.5)
    with pytest.raises(ValueError, match="must be a number"):
        normalize_request(memory="lots")  # type: ignore[arg-type]


def test_normalize_request_feeds_node_resources() -> None:
    node = NodeResources({"CPU": 1, "GPU": 1, "memory": 100})
    req = normalize_request(num_gpus=0.5, memory=100)
    a = node.allocate(req)
    assert a is not None
    assert a.resources.to_dict() == {"CPU": 1.0, "GPU": 0.5, "memory": 100.0}
