"""The node's lease decisions, tested without sockets or processes."""
import pytest

from juno import exceptions as exc
from juno.node.resources import NodeResources
from juno.node.scheduler import MAX_FAILED_STARTS, LeaseRequest, LeaseScheduler
from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

NODE = "ab" * 14


def make(total=None, gpu_ids=None):
    return LeaseScheduler(NodeResources(total or {"CPU": 2}, gpu_ids), NODE)


def req(rid, owner="o", **resources):
    return LeaseRequest(owner, rid, resources or {"CPU": 1}, name=f"t{rid}")


def test_grants_in_order_until_resources_run_out():
    s = make()
    for i in range(3):
        s.add(req(i))
    d = s.schedule(idle={"": 5}, starting={}, failed_starts={})
    assert [r.rid for r, _ in d.grants] == [0, 1]
    assert [r.rid for r in s.requests] == [2]
    assert s.resources.available["CPU"] == 0


def test_released_resources_let_the_next_request_through():
    s = make()
    for i in range(3):
        s.add(req(i))
    d = s.schedule(idle={"": 5}, starting={}, failed_starts={})
    s.resources.release(d.grants[0][1])
    d2 = s.schedule(idle={"": 5}, starting={}, failed_starts={})
    assert [r.rid for r, _ in d2.grants] == [2]


def test_a_big_request_does_not_block_smaller_ones_behind_it():
    s = make({"CPU": 2})
    s.add(req(0, CPU=1))
    s.add(req(1, CPU=2))
    s.add(req(2, CPU=1))
    d = s.schedule(idle={"": 5}, starting={}, failed_starts={})
    assert [r.rid for r, _ in d.grants] == [0, 2]


def test_no_idle_worker_asks_to_start_only_the_missing_ones():
    s = make({"CPU": 4})
    for i in range(3):
        s.add(req(i))
    d = s.schedule(idle={"": 1}, starting={"": 1}, failed_starts={})
    assert [r.rid for r, _ in d.grants] == [0]
    # two still wait, one worker is already starting: start one more
    assert d.starts == [("", None)]


def test_runtime_envs_get_their_own_workers():
    s = make({"CPU": 4})
    env = {"env_vars": {"A": "1"}}
    s.add(LeaseRequest("o", 1, {"CPU": 1}, env))
    d = s.schedule(idle={"": 3}, starting={}, failed_starts={})
    assert d.grants == []
    assert len(d.starts) == 1 and d.starts[0][1] == env


def test_infeasible_request_warns_once_and_stays_queued():
    s = make({"CPU": 2})
    s.add(req(0, GPU=1))
    d = s.schedule(idle={"": 2}, starting={}, failed_starts={})
    assert len(d.warnings) == 1
    text = d.warnings[0][1]
    assert "GPU" in text and "cluster_resources" in text
    assert s.requests and not d.grants
    again = s.schedule(idle={"": 2}, starting={}, failed_starts={})
    assert again.warnings == []


def test_repeated_worker_start_failures_fail_the_request():
    s = make()
    env = {"env_vars": {"A": "1"}}
    r = LeaseRequest("o", 1, {"CPU": 1}, env)
    s.add(r)
    key = r.env_key
    d = s.schedule(idle={}, starting={}, failed_starts={key: MAX_FAILED_STARTS})
    assert len(d.failures) == 1
    assert isinstance(d.failures[0][1], exc.RuntimeEnvSetupError)
    assert not s.requests


def test_hard_affinity_to_another_node_is_rejected_soft_is_accepted():
    s = make()
    other = "cd" * 14
    with pytest.raises(exc.TaskUnschedulableError, match="soft=True"):
        s.add(LeaseRequest("o", 1, {"CPU": 1}, strategy=NodeAffinitySchedulingStrategy(other, soft=False)))
    s.add(LeaseRequest("o", 2, {"CPU": 1}, strategy=NodeAffinitySchedulingStrategy(other, soft=True)))
    s.add(LeaseRequest("o", 3, {"CPU": 1}, strategy=NodeAffinitySchedulingStrategy(NODE, soft=False)))
    d = s.schedule(idle={"": 2}, starting={}, failed_starts={})
    assert sorted(r.rid for r, _ in d.grants) == [2, 3]


def test_cancel_and_drop_owner():
    s = make()
    s.add(req(1, owner="a"))
    s.add(req(2, owner="b"))
    s.add(req(3, owner="b"))
    assert s.cancel("a", 1).rid == 1
    assert s.cancel("a", 1) is None
    assert [r.rid for r in s.drop_owner("b")] == [2, 3]
    assert s.requests == []


def test_actor_requests_survive_their_callers_going_away():
    s = make()
    s.add(LeaseRequest("gcs", 1, {"CPU": 1}, actor_id=b"x" * 16))
    assert s.drop_owner("gcs") == []
    assert len(s.requests) == 1


def test_gpu_grants_carry_distinct_ids():
    s = make({"CPU": 4, "GPU": 2})
    s.add(req(1, CPU=1, GPU=1))
    s.add(req(2, CPU=1, GPU=1))
    d = s.schedule(idle={"": 4}, starting={}, failed_starts={})
    ids = [a.gpu_ids for _, a in d.grants]
    assert sorted(ids) == [(0,), (1,)]
