"""The node's lease scheduling decisions, with no sockets and no processes.

Given the queued lease requests, the node's resources and how many idle and
starting workers each runtime env has, :meth:`LeaseScheduler.schedule` decides
which requests are granted now (taking their resources), which must wait for
a worker to start, which can never run here (warn once), and which fail. The
node manager only carries those decisions out, so all of it is unit-tested.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from juno import exceptions as exc
from juno.node.resources import Allocation, NodeResources
from juno.node.worker_pool import env_key

MAX_FAILED_STARTS = 3


class LeaseRequest:
    """One caller's request for a worker with some resources (a task lease or an actor)."""

    __slots__ = ("owner", "rid", "resources", "runtime_env", "strategy", "name", "reply", "actor_id",
                 "warned", "env_key", "retriable", "hops", "prefer")

    def __init__(self, owner: str, rid: int, resources: dict | None, runtime_env: dict | None = None,
                 strategy: Any = None, name: str = "", reply: Any = None, actor_id: bytes | None = None,
                 retriable: bool = True, hops: int = 0, prefer: str | None = None):
        self.owner = owner
        self.rid = rid
        self.resources = {k: v for k, v in (resources or {}).items() if v}
        self.runtime_env = runtime_env
        self.strategy = strategy
        self.name = name
        self.reply = reply
        self.actor_id = actor_id
        self.warned = False
        self.env_key = env_key(runtime_env)
        self.retriable = retriable  # max_retries != 0 / restarts left: the memory monitor kills these first
        self.hops = hops  # times it was spilled back from node to node (runtime/node/cluster_policy.py)
        self.prefer = prefer  # the node holding its large arguments, if the owner knows one

    def describe(self) -> str:
        return f"actor {self.name}" if self.actor_id else f"task {self.name}"


@dataclass
class Decisions:
    grants: list[tuple[LeaseRequest, Allocation]] = field(default_factory=list)
    warnings: list[tuple[LeaseRequest, str]] = field(default_factory=list)
    failures: list[tuple[LeaseRequest, BaseException]] = field(default_factory=list)
    starts: list[tuple[str, dict | None]] = field(default_factory=list)


class LeaseScheduler:
    def __init__(self, resources: NodeResources, node_id: str):
        self.resources = resources
        self.node_id = node_id
        self.requests: list[LeaseRequest] = []

    def add(self, req: LeaseRequest) -> None:
        """Queue a request; raises TaskUnschedulableError if its strategy rules this node out."""
        node_id = getattr(req.strategy, "node_id", None)
        if node_id and node_id != self.node_id and not getattr(req.strategy, "soft", False):
            raise exc.TaskUnschedulableError(
                f"NodeAffinitySchedulingStrategy asks for node {node_id}, which is not alive in this "
                "cluster (soft=False). Use soft=True to fall back to any node.")
        self.requests.append(req)

    def cancel(self, owner: str, rid: int) -> LeaseRequest | None:
        for req in self.requests:
            if req.owner == owner and req.rid == rid:
                self.requests.remove(req)
                return req
        return None

    def drop_owner(self, owner: str) -> list[LeaseRequest]:
        """Forget the task requests of a caller that went away (actor requests belong to the GCS)."""
        dropped = [r for r in self.requests if r.owner == owner and r.actor_id is None]
        for req in dropped:
            self.requests.remove(req)
        return dropped

    def schedule(self, idle: dict[str, int], starting: dict[str, int], failed_starts: dict[str, int]) -> Decisions:
        """Decide in FIFO order; a request that doesn't fit doesn't block others behind it."""
        out = Decisions()
        idle = dict(idle)
        waiting: dict[str, int] = {}
        env_of: dict[str, dict | None] = {}
        for req in list(self.requests):
            if not self.resources.is_feasible(req.resources):
                if not req.warned:
                    req.warned = True
                    out.warnings.append((req, self._infeasible_text(req)))
                continue
            if not self.resources.can_allocate(req.resources):
                continue
            if failed_starts.get(req.env_key, 0) >= MAX_FAILED_STARTS:
                self.requests.remove(req)
                out.failures.append((req, exc.RuntimeEnvSetupError(
                    f"Workers for runtime_env {req.runtime_env} failed to start {MAX_FAILED_STARTS} times "
                    "in a row; see the worker logs in the session's logs folder.")))
                continue
            if idle.get(req.env_key, 0) <= 0:
                waiting[req.env_key] = waiting.get(req.env_key, 0) + 1
                env_of[req.env_key] = req.runtime_env
                continue
            idle[req.env_key] -= 1
            allocation = self.resources.allocate(req.resources)
            self.requests.remove(req)
            out.grants.append((req, allocation))
        for key, n in waiting.items():
            for _ in range(max(0, n - starting.get(key, 0))):
                out.starts.append((key, env_of[key]))
        return out

    def _infeasible_text(self, req: LeaseRequest) -> str:
        reason = self.resources.infeasible_reason(req.resources) or "asks for more than this node has"
        return (f"The {req.describe()} cannot be scheduled right now: it {reason}. It will stay pending "
                "until a node with enough resources joins the cluster; check the resources you request "
                "(num_cpus, num_gpus, resources=...) against juno.cluster_resources().")
