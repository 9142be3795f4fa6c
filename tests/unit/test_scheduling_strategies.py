"""Behaviour of juno.util.scheduling_strategies."""

from __future__ import annotations

import pickle

import pytest

from juno.util.scheduling_strategies import (
    DEFAULT_SCHEDULING_STRATEGY, SPREAD_SCHEDULING_STRATEGY, DoesNotExist, Exists, In,
    NodeAffinitySchedulingStrategy, NodeLabelSchedulingStrategy, NotIn,
    PlacementGroupSchedulingStrategy,
)

NODE = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789"


class FakePG:
    """Stand-in for a placement group: picklable, compared by id."""

    def __init__(self, pg_id: str) -> None:
        self.id = pg_id

    def __eq__(self, other):
        return isinstance(other, FakePG) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"FakePG({self.id!r})"


def test_constants():
    assert DEFAULT_SCHEDULING_STRATEGY == "DEFAULT"
    assert SPREAD_SCHEDULING_STRATEGY == "SPREAD"


# --- NodeAffinitySchedulingStrategy --------------------------------------------------

def test_node_affinity_fields():
    s = NodeAffinitySchedulingStrategy(NODE, soft=False)
    assert (s.node_id, s.soft, s._spill_on_unavailable, s._fail_on_unavailable) == \
        (NODE, False, False, False)
    s = NodeAffinitySchedulingStrategy(NODE, True, _spill_on_unavailable=True)
    assert s.soft and s._spill_on_unavailable


def test_node_affinity_accepts_bytes_id():
    s = NodeAffinitySchedulingStrategy(bytes.fromhex("ab12"), soft=True)
    assert s.node_id == "ab12"


@pytest.mark.parametrize("node_id,exc", [
    ("", ValueError), ("not-hex!", ValueError), ("xyz", ValueError),
    (None, TypeError), (1234, TypeError),
])
def test_node_affinity_bad_node_id(node_id, exc):
    with pytest.raises(exc, match="node_id"):
        NodeAffinitySchedulingStrategy(node_id, soft=False)


@pytest.mark.parametrize("kwargs", [
    {"soft": "yes"}, {"soft": None}, {"soft": True, "_spill_on_unavailable": 1},
    {"soft": False, "_fail_on_unavailable": "no"},
])
def test_node_affinity_flags_must_be_bool(kwargs):
    with pytest.raises(TypeError):
        NodeAffinitySchedulingStrategy(NODE, **kwargs)


def test_node_affinity_eq_hash_repr_pickle():
    a = NodeAffinitySchedulingStrategy(NODE, soft=True)
    b = NodeAffinitySchedulingStrategy(NODE, soft=True)
    c = NodeAffinitySchedulingStrategy(NODE, soft=False)
    assert a == b and hash(a) == hash(b) and a != c
    assert NODE in repr(a) and "soft=True" in repr(a)
    back = pickle.loads(pickle.dumps(a))
    assert back == a and type(back) is NodeAffinitySchedulingStrategy


# --- PlacementGroupSchedulingStrategy ----------------------------------------------

def test_placement_group_defaults():
    pg = FakePG("pg1")
    s = PlacementGroupSchedulingStrategy(pg)
    assert s.placement_group is pg
    assert s.placement_group_bundle_index == -1
    assert s.placement_group_capture_child_tasks is None


@pytest.mark.parametrize("kwargs,exc", [
    ({"placement_group_bundle_index": -2}, ValueError),
    ({"placement_group_bundle_index": 1.0}, TypeError),
    ({"placement_group_bundle_index": True}, TypeError),
    ({"placement_group_capture_child_tasks": "yes"}, TypeError),
])
def test_placement_group_bad_args(kwargs, exc):
    with pytest.raises(exc, match=next(iter(kwargs))):
        PlacementGroupSchedulingStrategy(FakePG("pg"), **kwargs)


def test_placement_group_eq_hash_repr_pickle():
    a = PlacementGroupSchedulingStrategy(FakePG("pg1"), 2, True)
    b = PlacementGroupSchedulingStrategy(FakePG("pg1"), placement_group_bundle_index=2,
                                         placement_group_capture_child_tasks=True)
    assert a == b and hash(a) == hash(b)
    assert a != PlacementGroupSchedulingStrategy(FakePG("pg2"), 2, True)
    assert a != PlacementGroupSchedulingStrategy(FakePG("pg1"), 1, True)
    assert "pg1" in repr(a) and "placement_group_bundle_index=2" in repr(a)
    back = pickle.loads(pickle.dumps(a))
    assert back == a


def test_strategies_of_different_types_are_not_equal():
    assert NodeAffinitySchedulingStrategy(NODE, soft=True) != \
        PlacementGroupSchedulingStrategy(FakePG("pg"))
    assert NodeAffinitySchedulingStrategy(NODE, soft=True) != "DEFAULT"


# --- NodeLabelSchedulingStrategy ------------------------------------------------------

def test_node_label_normalizes_plain_values():
    s = NodeLabelSchedulingStrategy({"zone": "us-east", "gpu": ["a100", "h100"]},
                                    soft={"spot": Exists()})
    assert s.hard == {"zone": In("us-east"), "gpu": In("a100", "h100")}
    assert s.soft == {"spot": Exists()}


def test_node_label_operators():
    s = NodeLabelSchedulingStrategy({"a": NotIn("x"), "b": DoesNotExist()})
    assert s.hard["a"] == NotIn("x") and s.hard["a"] != In("x")
    assert In("x", "y") == In("y", "x")
    assert repr(In("x")) == "In('x')"
    with pytest.raises(ValueError):
        In()
    with pytest.raises(TypeError):
        In(1)
    with pytest.raises(TypeError):
        Exists("x")


@pytest.mark.parametrize("hard,soft,exc", [
    (None, None, TypeError),
    ({}, None, ValueError),
    ("zone=a", None, TypeError),
    ({"zone": 3}, None, ValueError),
    ({"": "a"}, None, TypeError),
    ({"zone": "a"}, ["x"], TypeError),
])
def test_node_label_bad_args(hard, soft, exc):
    with pytest.raises(exc):
        NodeLabelSchedulingStrategy(hard, soft=soft)


def test_node_label_soft_only_is_allowed():
    s = NodeLabelSchedulingStrategy({}, soft={"zone": "a"})
    assert s.hard == {} and s.soft == {"zone": In("a")}


def test_node_label_soft_is_keyword_only():
    with pytest.raises(TypeError):
        NodeLabelSchedulingStrategy({"a": "b"}, {"c": "d"})  # type: ignore[misc]


def test_node_label_eq_hash_repr_pickle():
    a = NodeLabelSchedulingStrategy({"zone": In("a", "b")}, soft={"x": NotIn("y")})
    b = NodeLabelSchedulingStrategy({"zone": ["b", "a"]}, soft={"x": NotIn("y")})
    assert a == b and hash(a) == hash(b)
    assert a != NodeLabelSchedulingStrategy({"zone": In("a")})
    assert "zone" in repr(a) and "NotIn('y')" in repr(a)
    back = pickle.loads(pickle.dumps(a))
    assert back == a
