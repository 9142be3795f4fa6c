"""Where a lease request runs in the cluster: one pure policy, no sockets.

Node managers use it to decide whether a request is queued on their own node or
spilled back to another one, and the GCS uses it to place actors. Both hand in a
cluster view (``{node_id: {"resources": totals, "available": free now, ...}}``),
the request's resources and its scheduling strategy, and get back a node id or an
error; they carry the answer out themselves, so every rule here is unit-tested.

The rules follow Ray's:

* DEFAULT (also ``None``, placement-group strategies, whose resources name their
  bundle's node, and label strategies): a node holding the request's large
  arguments first if it can run it now (locality), else the home node (the one
  asked) if it fits now, else the least loaded node where it fits now; if none
  fits now, wait at home if home could ever run it, else go to the least loaded
  node that could. A request no node can ever run waits at home (infeasible).
* SPREAD: the least loaded node where it fits now (ties rotate), so N requests
  land on N nodes when they fit.
* NodeAffinitySchedulingStrategy(node_id, soft): that node while it is alive
  (queued there if busy); ``soft=True`` falls back to DEFAULT when the node is
  dead, unknown or can never run the request (and, with ``_spill_on_unavailable``,
  when it is busy now); ``soft=False`` fails with TaskUnschedulableError when the
  node is not alive (and, with ``_fail_on_unavailable``, when it is busy now).

A request that was spilled already (``hops > 0``) stays where it arrived unless
that node can never run it: no ping-pong between nodes with stale views. Spills
promised but not yet visible in the view are remembered (:class:`ClusterPolicy`
``note_placed``) so a burst of requests does not pile onto one node.
"""
from __future__ import annotations

import time
from typing import Any

from juno import exceptions as exc
from juno.gcs.placement_group_resources import fits_bundle as fits  # every requested quantity is free

DEFAULT = "DEFAULT"
SPREAD = "SPREAD"
AFFINITY = "AFFINITY"

# A request is spilled at most this many times; then it waits where it is.
MAX_HOPS = 4
# Forget a promised spill after this long even if the view never changed.
PENDING_TTL_S = 2.0
_EPS = 1e-9

# choose() answers: (PLACE, node_id) run or queue there; (FAIL, error) fail the request;
# (INFEASIBLE, node_id) no node can ever run it: queue it there and warn.
PLACE = "place"
FAIL = "fail"
INFEASIBLE = "infeasible"


def strategy_kind(strategy: Any) -> str:
    """DEFAULT, SPREAD or AFFINITY for any strategy value users may pass."""
    if strategy is None:
        return DEFAULT
    if isinstance(strategy, str):
        return SPREAD if strategy == SPREAD else DEFAULT
    if getattr(strategy, "node_id", None):
        return AFFINITY
    return DEFAULT  # placement groups (resources already name the bundle's node), labels


def utilization(request: dict, node: dict, available: dict | None = None) -> float:
    """How busy a node is for this request: the highest used fraction of the resources it
    asks for (CPU when it asks for none), counting the request as placed there."""
    total = node.get("resources") or {}
    avail = (node.get("available") or {}) if available is None else available
    names = [k for k, v in request.items() if v] or ["CPU"]
    worst = 0.0
    for name in names:
        cap = total.get(name, 0.0)
        if cap <= 0:
            continue
        used = cap - avail.get(name, 0.0) + request.get(name, 0.0)
        worst = max(worst, used / cap)
    return worst


def unschedulable_error(node_id: str, is_actor: bool, why: str = "is not alive in this cluster "
                        "(it died, or no node has that id)") -> BaseException:
    cls = exc.ActorUnschedulableError if is_actor else exc.TaskUnschedulableError
    return cls(f"NodeAffinitySchedulingStrategy(soft=False) asks for node {node_id}, which {why}. "
               "Use soft=True to fall back to another node, or pick a live node id from juno.nodes().")


class ClusterPolicy:
    """Placement decisions for one deciding process (a node manager, or the GCS with no home)."""

    def __init__(self, home: str | None = None, pending_ttl_s: float = PENDING_TTL_S):
        self.home = home
        self.pending_ttl_s = pending_ttl_s
        # node id -> [(expires, that node's "available" when we spilled, resources)]: spills
        # sent there that the view does not show yet.
        self._pending: dict[str, list[tuple[float, dict, dict]]] = {}
        self._turn = 0

    # ------------------------------------------------------------------ promised spills
    def note_placed(self, node_id: str, resources: dict, nodes: dict, now: float | None = None) -> None:
        """Remember that ``resources`` were sent to ``node_id`` (until its view entry changes)."""
        node = nodes.get(node_id)
        if node is None or node_id == self.home or not resources:
            return
        now = time.monotonic() if now is None else now
        seen = dict(node.get("available") or {})
        self._pending.setdefault(node_id, []).append((now + self.pending_ttl_s, seen, dict(resources)))

    def available(self, node_id: str, node: dict, now: float | None = None) -> dict:
        """The node's free resources as the view says, minus spills it has not reported yet."""
        avail = node.get("available") or {}
        pending = self._pending.get(node_id)
        if not pending:
            return avail
        now = time.monotonic() if now is None else now
        live = [p for p in pending if p[0] > now and p[1] == avail]
        if len(live) != len(pending):
            if live:
                self._pending[node_id] = live
            else:
                del self._pending[node_id]
        if not live:
            return avail
        out = dict(avail)
        for _, _, resources in live:
            for k, v in resources.items():
                out[k] = out.get(k, 0.0) - v
        return out

    # ------------------------------------------------------------------ the decision
    def choose(self, nodes: dict[str, dict], resources: dict, strategy: Any = None, *, hops: int = 0,
               prefer: str | None = None, is_actor: bool = False, home: str | None = None,
               now: float | None = None) -> tuple:
        """Where the request goes: (PLACE, node_id), (INFEASIBLE, node_id) or (FAIL, error).

        ``nodes`` holds live nodes only; the home node's entry should be exact (the node
        manager passes its own current availability). ``prefer`` is the node holding the
        request's large arguments, ``hops`` how often it was spilled already; ``home``
        overrides the deciding node (the GCS passes the actor owner's node).
        """
        now = time.monotonic() if now is None else now
        home = home or self.home
        home = home if home in nodes else None
        kind = strategy_kind(strategy)
        if kind == AFFINITY:
            decided = self._affinity(nodes, resources, strategy, is_actor, now)
            if decided is not None:
                return decided
            kind = DEFAULT
        if home is not None and hops > 0:
            if self._feasible(nodes[home], resources):
                return (PLACE, home)  # spilled here already: wait here rather than bounce on
            if hops >= MAX_HOPS:
                return (INFEASIBLE, home)
        if kind == SPREAD:
            best = self._least_loaded(nodes, resources, now, rotate=True)
            if best is not None:
                return (PLACE, best)
        else:
            if prefer is not None and prefer in nodes and fits(resources, self.available(prefer, nodes[prefer], now)):
                return (PLACE, prefer)
            if home is not None and fits(resources, self.available(home, nodes[home], now)):
                return (PLACE, home)
            best = self._least_loaded(nodes, resources, now, rotate=False)
            if best is not None:
                return (PLACE, best)
        if home is not None and self._feasible(nodes[home], resources):
            return (PLACE, home)
        feasible = [nid for nid, n in nodes.items() if self._feasible(n, resources)]
        if feasible:
            return (PLACE, min(feasible, key=lambda nid: (utilization(resources, nodes[nid],
                                                                      self.available(nid, nodes[nid], now)), nid)))
        if home is not None:
            return (INFEASIBLE, home)
        return (INFEASIBLE, next(iter(nodes), None))

    def _affinity(self, nodes: dict, resources: dict, strategy: Any, is_actor: bool, now: float) -> tuple | None:
        """The affinity decision, or None to fall back to DEFAULT (soft)."""
        target = strategy.node_id
        soft = bool(getattr(strategy, "soft", False))
        node = nodes.get(target)
        if node is None:
            return None if soft else (FAIL, unschedulable_error(target, is_actor))
        if not self._feasible(node, resources):
            return None if soft else (INFEASIBLE, target)
        busy = not fits(resources, self.available(target, node, now))
        if busy and soft and getattr(strategy, "_spill_on_unavailable", False):
            return None
        if busy and not soft and getattr(strategy, "_fail_on_unavailable", False):
            return (FAIL, unschedulable_error(target, is_actor, "has not the requested resources free now "
                                              "(_fail_on_unavailable=True)"))
        return (PLACE, target)

    def _least_loaded(self, nodes: dict, resources: dict, now: float, rotate: bool) -> str | None:
        """The node where the request fits now with the lowest load after placing it."""
        ids = sorted(nodes)
        if rotate and ids:
            start = self._turn % len(ids)
            self._turn += 1
            ids = ids[start:] + ids[:start]
        best, best_load = None, None
        for nid in ids:
            avail = self.available(nid, nodes[nid], now)
            if not fits(resources, avail):
                continue
            load = utilization(resources, nodes[nid], avail)
            if best_load is None or load < best_load - _EPS:
                best, best_load = nid, load
        return best

    @staticmethod
    def _feasible(node: dict, resources: dict) -> bool:
        return fits(resources, node.get("resources") or {})


def locality_node(node_bytes: dict[str, int], home: str) -> str | None:
    """The node holding most of a task's large arguments, if that is not ``home``."""
    if not node_bytes:
        return None
    best = max(sorted(node_bytes), key=lambda nid: node_bytes[nid])
    return None if best == home else best
