"""The memory monitor's decisions (runtime/node/memory_monitor.py), without processes:
which workers go over their memory= request, when the node is over its threshold, and
which worker is the victim then; plus the sampler's cgroup parsing on fake files and the
glue that builds the policy's view from a pool and its leases."""
from __future__ import annotations

import os
import types

import pytest

from juno.config import Config
from juno.node.memory_monitor import (
    POLICY_NODE, POLICY_REQUEST, MemoryMonitor, MemoryPolicy, MemorySampler, NodeUsage, WorkerUsage,
)
from juno.node.resources import Allocation, ResourceSet

MiB = 1 << 20
GiB = 1 << 30


def w(name: str, rss: int = 100 * MiB, *, request: int = 0, actor: bool = False, retriable: bool = True,
      started: float = 0.0, dying: bool = False, pid: int | None = None) -> WorkerUsage:
    return WorkerUsage(name.encode(), pid or hash(name) % 30000 + 2, rss, request, actor=actor,
                       retriable=retriable, started=started, name=name, dying=dying)


def node(fraction: float, limit: int = 10 * GiB) -> NodeUsage:
    return NodeUsage(int(limit * fraction), limit, "test")


# ---------------------------------------------------------------- policy 1: over the request

def test_request_limit_takes_the_larger_margin():
    assert MemoryPolicy(margin_fraction=0.05, margin_bytes=0).request_limit(200 * MiB) == 210 * MiB
    assert MemoryPolicy(margin_fraction=0.05, margin_bytes=50 * MiB).request_limit(200 * MiB) == 250 * MiB
    assert MemoryPolicy(margin_fraction=0.0, margin_bytes=0).request_limit(200 * MiB) == 200 * MiB


def test_worker_over_its_request_is_killed_whatever_the_node():
    policy = MemoryPolicy(margin_fraction=0.05)
    workers = [w("hog", 600 * MiB, request=200 * MiB), w("fine", 205 * MiB, request=200 * MiB),
               w("no_request", 5 * GiB)]
    kills = policy.decide(node(0.10), workers)
    assert [k.worker_id for k in kills] == [b"hog"]
    assert kills[0].policy == POLICY_REQUEST
    text = kills[0].reason
    assert "600 MiB" in text and "200 MiB" in text and "memory=" in text
    assert f"pid {workers[0].pid}" in text


def test_margin_boundary():
    policy = MemoryPolicy(margin_fraction=0.05)
    assert policy.decide(None, [w("a", 210 * MiB, request=200 * MiB)]) == []
    assert len(policy.decide(None, [w("a", 210 * MiB + 1, request=200 * MiB)])) == 1


def test_every_worker_over_its_request_goes_at_once_and_dying_ones_are_skipped():
    policy = MemoryPolicy()
    workers = [w("a", 1 * GiB, request=100 * MiB), w("b", 1 * GiB, request=100 * MiB, actor=True),
               w("c", 1 * GiB, request=100 * MiB, dying=True)]
    assert {k.worker_id for k in policy.decide(node(0.99), workers)} == {b"a", b"b"}


def test_request_kills_come_before_a_node_victim():
    """Killing the over-request worker frees memory: no second victim in the same check."""
    policy = MemoryPolicy()
    workers = [w("hog", 1 * GiB, request=100 * MiB, started=1), w("newest", 100 * MiB, started=9)]
    kills = policy.decide(node(0.99), workers)
    assert [(k.worker_id, k.policy) for k in kills] == [(b"hog", POLICY_REQUEST)]


# ---------------------------------------------------------------- policy 2: the node near its limit

@pytest.mark.parametrize("fraction, killed", [(0.50, False), (0.95, False), (0.951, True), (1.2, True)])
def test_threshold(fraction, killed):
    policy = MemoryPolicy(usage_threshold=0.95)
    assert bool(policy.decide(node(fraction), [w("t")])) is killed


def test_no_node_reading_or_zero_limit_never_kills():
    policy = MemoryPolicy()
    assert policy.decide(None, [w("t")]) == []
    assert policy.decide(NodeUsage(10, 0), [w("t")]) == []


def test_victim_is_the_most_recent_retriable_task():
    policy = MemoryPolicy()
    workers = [
        w("old_task", 3 * GiB, started=1),
        w("new_task", 200 * MiB, started=5),
        w("newer_actor", 4 * GiB, actor=True, started=8),
        w("newest_non_retriable", 4 * GiB, retriable=False, started=9),
    ]
    kills = policy.decide(node(0.97), workers)
    assert len(kills) == 1
    assert kills[0].worker_id == b"new_task" and kills[0].policy == POLICY_NODE
    text = kills[0].reason
    assert "most recently started retriable task" in text
    assert "memory_usage_threshold" in text and "0.970" in text and "9.70 GiB" in text


def test_restartable_actor_before_non_retriable_work():
    policy = MemoryPolicy()
    workers = [w("actor", actor=True, started=1), w("task", retriable=False, started=5),
               w("dead_end_actor", actor=True, retriable=False, started=9)]
    assert policy.pick_victim(workers).name == "actor"
    assert "actor that can restart" in policy.decide(node(0.99), workers)[0].reason


def test_non_retriable_only_when_nothing_else_runs():
    policy = MemoryPolicy()
    workers = [w("task", retriable=False, started=5), w("actor", actor=True, retriable=False, started=9)]
    assert policy.pick_victim(workers).name == "actor"
    assert policy.pick_victim([]) is None
    assert policy.decide(node(0.99), []) == []


def test_biggest_wins_a_tie():
    policy = MemoryPolicy()
    assert policy.pick_victim([w("small", 10 * MiB, started=3), w("big", 900 * MiB, started=3)]).name == "big"


def test_one_victim_at_a_time_while_one_is_exiting():
    policy = MemoryPolicy()
    workers = [w("exiting", started=9, dying=True), w("other", started=5)]
    assert policy.decide(node(0.99), workers) == []
    workers[0].dying = False
    assert [k.worker_id for k in policy.decide(node(0.99), workers)] == [b"exiting"]


def test_from_config():
    cfg = Config(memory_usage_threshold=0.8, memory_request_margin_fraction=0.1, memory_request_margin_bytes=7)
    policy = MemoryPolicy.from_config(cfg)
    assert (policy.usage_threshold, policy.margin_fraction, policy.margin_bytes) == (0.8, 0.1, 7)


# ---------------------------------------------------------------- the sampler's cgroup files

def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_cgroup_v2_limit_and_usage_without_reclaimable_cache(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/memory.max", "1073741824\n")
    _write(f"{root}/memory.current", str(600 * MiB))
    _write(f"{root}/memory.stat", f"anon 123\ninactive_file {100 * MiB}\nactive_file 5\n")
    usage = MemorySampler(root).node_usage()
    assert (usage.used, usage.limit) == (500 * MiB, GiB)
    assert "cgroup" in usage.source


def test_cgroup_v2_without_limit_falls_back_to_the_machine(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/memory.max", "max\n")
    _write(f"{root}/memory.current", "1000")
    usage = MemorySampler(root).node_usage()
    assert "machine" in usage.source and usage.limit > 0 and 0 < usage.used <= usage.limit


def test_cgroup_v1(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/memory/memory.limit_in_bytes", str(GiB))
    _write(f"{root}/memory/memory.usage_in_bytes", str(700 * MiB))
    _write(f"{root}/memory/memory.stat", f"inactive_file 1\ntotal_inactive_file {200 * MiB}\n")
    usage = MemorySampler(root).node_usage()
    assert (usage.used, usage.limit) == (500 * MiB, GiB)
    _write(f"{root}/memory/memory.limit_in_bytes", "9223372036854771712")
    assert "machine" in MemorySampler(root).node_usage().source


def test_private_rss_of_this_process_and_a_gone_one():
    sampler = MemorySampler()
    assert sampler.private_rss(os.getpid()) > 0
    assert sampler.private_rss(2 ** 22 + 12345) == 0


# ---------------------------------------------------------------- the node manager glue

class FakeSampler(MemorySampler):
    def __init__(self, rss: dict[int, int], node_usage: NodeUsage):
        super().__init__()
        self.rss, self.usage, self.asked = rss, node_usage, []

    def node_usage(self):
        return self.usage

    def private_rss(self, pid, children=True):
        self.asked.append(pid)
        return self.rss.get(pid, 0)


def _worker(pid, lease_id=None, kill_reason=None):
    return types.SimpleNamespace(worker_id=f"w{pid}".encode(), pid=pid, lease_id=lease_id, kill_reason=kill_reason)


def _lease(memory=0, actor=False, retriable=True, granted_at=0.0, name="f"):
    rs = ResourceSet({"CPU": 1, **({"memory": memory} if memory else {})})
    return types.SimpleNamespace(allocation=Allocation(rs), actor_id=b"a" if actor else None,
                                 retriable=retriable, granted_at=granted_at, name=name)


def test_monitor_samples_only_workers_with_requests_when_the_node_is_fine():
    workers = [_worker(1, 1), _worker(2, 2), _worker(3)]  # 3 is idle
    leases = {1: _lease(memory=100 * MiB), 2: _lease()}
    sampler = FakeSampler({1: 300 * MiB, 2: 5 * GiB, 3: 5 * GiB}, node(0.5))
    monitor = MemoryMonitor(Config(), lambda: workers, lambda wk: leases.get(wk.lease_id), lambda: [], sampler)
    kills = monitor.check()
    assert sampler.asked == [1]
    assert [k.worker_id for k in kills] == [b"w1"]


def test_monitor_never_picks_idle_workers_or_other_processes():
    workers = [_worker(1), _worker(2, 2, kill_reason=None)]
    leases = {2: _lease(granted_at=1.0, name="busy")}
    sampler = FakeSampler({1: 5 * GiB, 2: 10 * MiB}, node(0.99))
    monitor = MemoryMonitor(Config(), lambda: workers, lambda wk: leases.get(wk.lease_id), lambda: [99], sampler)
    kills = monitor.check()
    assert [k.worker_id for k in kills] == [b"w2"]
    assert 99 not in sampler.asked  # drivers only count toward a configured node limit


def test_monitor_with_a_configured_limit_counts_the_nodes_processes():
    workers = [_worker(1, 1), _worker(2, 2), _worker(3)]
    leases = {1: _lease(granted_at=1.0, name="small"), 2: _lease(granted_at=2.0, name="big")}
    rss = {1: 100 * MiB, 2: 500 * MiB, 3: 50 * MiB, 50: 100 * MiB, 51: 120 * MiB}
    cfg = Config(node_memory_limit_bytes=1000 * MiB)
    monitor = MemoryMonitor(cfg, lambda: workers, lambda wk: leases.get(wk.lease_id), lambda: [50, 51],
                            FakeSampler(rss, node(0.0)))
    assert monitor.check() == []  # 870 MiB of 1000: under 0.95
    rss[2] = 700 * MiB
    kills = monitor.check()
    assert [k.worker_id for k in kills] == [b"w2"]
    assert "node_memory_limit_bytes" in kills[0].reason and "task big" in kills[0].reason
