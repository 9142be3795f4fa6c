"""The router's decisions without processes: power of two choices, capacity, FIFO waiting, back
pressure, membership changes and probes of other routers' load."""
import random

import pytest

from juno.serve.exceptions import BackPressureError
from juno.serve.router import ReplicaScheduler


def scheduler(*replicas, max_queued=-1, seed=0):
    s = ReplicaScheduler(rng=random.Random(seed), max_queued_requests=max_queued, deployment="d")
    assert s.set_replicas(replicas) == []
    return s


def test_power_of_two_choices_takes_the_less_loaded():
    s = scheduler(("a", 10), ("b", 10))
    for _ in range(3):
        assert s.try_assign() in ("a", "b")
    # With two replicas both are always the candidates: loads stay within one of each other.
    for _ in range(7):
        s.try_assign()
    assert abs(s.ongoing("a") - s.ongoing("b")) <= 1


def test_spreads_over_many_replicas():
    s = scheduler(*((f"r{i}", 1000) for i in range(8)), seed=3)
    for _ in range(800):
        s.try_assign()
    counts = [s.ongoing(f"r{i}") for i in range(8)]
    assert max(counts) - min(counts) <= 10, counts


def test_never_past_max_ongoing_and_waiters_go_first_in_order():
    s = scheduler(("a", 2))
    assert [s.try_assign(), s.try_assign(), s.try_assign()] == ["a", "a", None]
    s.enqueue("t1")
    s.enqueue("t2")
    assert s.num_queued == 2
    assert s.finished("a") == [("t1", "a")]
    assert s.try_assign() is None  # t2 waits: a newcomer does not overtake it
    assert s.finished("a") == [("t2", "a")]
    assert s.num_queued == 0 and s.ongoing("a") == 2


def test_back_pressure_past_max_queued_requests():
    s = scheduler(("a", 1), max_queued=2)
    s.try_assign()
    s.enqueue(1)
    s.enqueue(2)
    with pytest.raises(BackPressureError, match="max_queued_requests=2") as info:
        s.enqueue(3)
    assert info.value.num_queued_requests == 2 and info.value.deployment == "d"
    unlimited = scheduler(("a", 1))
    unlimited.try_assign()
    for token in range(1000):
        unlimited.enqueue(token)
    none_may_wait = scheduler(("a", 1), max_queued=0)
    none_may_wait.try_assign()
    with pytest.raises(BackPressureError):
        none_may_wait.enqueue(1)


def test_cancel_and_drain():
    s = scheduler(("a", 1))
    s.try_assign()
    s.enqueue("x")
    s.enqueue("y")
    assert s.cancel("x") and not s.cancel("x")
    assert s.finished("a") == [("y", "a")]
    s.enqueue("z")
    assert s.drain() == ["z"] and s.num_queued == 0


def test_membership_keeps_counts_and_new_replicas_take_the_waiting():
    s = scheduler(("a", 1))
    s.try_assign()
    s.enqueue("t1")
    s.enqueue("t2")
    assert s.set_replicas([("a", 1), ("b", 1)]) == [("t1", "b")]
    assert s.ongoing("a") == 1  # kept across the change
    assert s.set_replicas([("a", 3), ("b", 1)]) == [("t2", "a")]  # a larger max_ongoing makes room
    s.set_replicas([("b", 1)])
    assert s.finished("a") == []  # a request on a removed replica no longer counts
    assert s.replica_ids() == ["b"]


def test_no_replica_means_wait():
    s = scheduler()
    assert s.try_assign() is None
    s.enqueue("t")
    assert s.set_replicas([("a", 1)]) == [("t", "a")]


def test_removed_replica_gets_nothing_more():
    s = scheduler(("a", 5), ("b", 5))
    s.remove("a")
    assert {s.try_assign() for _ in range(5)} == {"b"}
    assert s.try_assign() is None


def test_probes_weigh_other_routers_requests():
    s = scheduler(("a", 100), ("b", 100), seed=1)
    assert sorted(s.probes_due(now=0.0)) == ["a", "b"]
    assert s.probes_due(now=0.5) == []  # not again within the period
    s.probe_result("a", 50, now=0.5)  # other routers keep a busy
    s.probe_result("b", 0, now=0.5)
    picks = [s.try_assign() for _ in range(20)]
    assert picks.count("b") == 20
    assert s.probes_due(now=1.0) == []
    assert sorted(s.probes_due(now=1.6)) == ["a", "b"]
    s.probe_result("a", None, now=1.6)  # a failed probe keeps the old estimate, and is asked again later
    assert s.probes_due(now=2.7) == ["a"]  # b's probe is still out


def test_probes_only_when_there_is_a_choice():
    assert scheduler(("a", 1)).probes_due(now=100.0) == []
