"""A node manager's part in cross-node scheduling: spill lease requests to other nodes.

The node manager asks :meth:`Spillback.place` about each new lease request that
could belong elsewhere (a strategy, a locality hint, or more than one live node).
The pure policy (runtime/node/cluster_policy.py) decides over the node's cluster
view (refreshed by every heartbeat), with this node's own availability exact; a
request for another node is answered ``("spillback", node_id, node_manager_address)``
and its owner asks that node manager instead. :meth:`rebalance` does the same later
for requests queued here that cannot get resources here now, when another node can
run them (a busy node sheds work; a node with enough resources joined).
"""
from __future__ import annotations

import logging
from typing import Any

from juno.node.cluster_policy import AFFINITY, FAIL, INFEASIBLE, PLACE, ClusterPolicy, strategy_kind
from juno.node.scheduler import LeaseRequest

logger = logging.getLogger(__name__)


class Spillback:
    def __init__(self, nm):
        self.nm = nm
        # A promised spill counts until the target's next report reaches us (about two heartbeats).
        self.policy = ClusterPolicy(nm.node_id, pending_ttl_s=2 * nm.config.heartbeat_interval_s + 0.1)

    def nodes(self) -> dict[str, dict]:
        """The live nodes as of the last heartbeat, with this node's entry exact."""
        nm = self.nm
        nodes = dict(nm.cluster_view)
        nodes[nm.node_id] = {"node_id": nm.node_id, "address": nm.address, "resources": nm.resources.total,
                             "available": nm.available_resources()}
        return nodes

    def place(self, req: LeaseRequest, refreshed: bool = False) -> bool:
        """True: queue the request on this node. False: it was answered (spilled or failed)."""
        nm = self.nm
        if req.strategy is None and req.prefer is None and (
                nm.resources.can_allocate(req.resources) if req.hops == 0 else nm.resources.is_feasible(req.resources)):
            return True  # the fast path: it runs here now (or was sent here and can run here)
        nodes = self.nodes()
        decision, value = self.policy.choose(nodes, req.resources, req.strategy, hops=req.hops, prefer=req.prefer,
                                             is_actor=req.actor_id is not None)
        if decision == FAIL:
            if not refreshed and strategy_kind(req.strategy) == AFFINITY and req.strategy.node_id not in nodes:
                self._refresh_then_place(req)  # a node that joined since the last heartbeat?
                return False
            req.reply.fail(value)
            return False
        if decision == INFEASIBLE and not refreshed:
            self._refresh_then_place(req)  # no node known can run it: maybe one joined since
            return False
        if value is None or value == nm.node_id:
            return True  # PLACE here, or INFEASIBLE everywhere: queue here (the scheduler warns once)
        self._spill(req, value, nodes)
        return False

    def rebalance(self) -> None:
        """Spill queued requests that cannot get resources here now to a node that can run them."""
        nm = self.nm
        if len(nm.cluster_view) < 2 or not nm.scheduler.requests:
            return
        nodes = None
        for req in list(nm.scheduler.requests):
            if nm.resources.can_allocate(req.resources):
                continue
            if nodes is None:
                nodes = self.nodes()
            decision, value = self.policy.choose(nodes, req.resources, req.strategy, hops=req.hops,
                                                 prefer=req.prefer, is_actor=req.actor_id is not None)
            if decision != PLACE or value == nm.node_id or value not in nodes:
                continue
            try:
                nm.scheduler.requests.remove(req)
            except ValueError:
                continue
            self._spill(req, value, nodes)

    def _spill(self, req: LeaseRequest, node_id: str, nodes: dict) -> None:
        self.policy.note_placed(node_id, req.resources, nodes)
        req.reply.send(("spillback", node_id, nodes[node_id]["address"]))

    def _refresh_then_place(self, req: LeaseRequest) -> None:
        """Ask the GCS for the current view, then decide once more (and fail for good if still unknown)."""
        nm = self.nm

        def done(ok: bool, value: Any) -> None:
            if ok:
                version, view = value
                if version >= nm.cluster_view_version:
                    nm.cluster_view, nm.cluster_view_version = view, version
            if self.place(req, refreshed=True):
                nm.scheduler.add(req)
                nm.schedule()

        nm.call(nm.gcs_address, "get_cluster_view", callback=done, timeout=nm.config.rpc_timeout_s)
