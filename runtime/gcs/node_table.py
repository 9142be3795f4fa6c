"""The GCS's table of nodes: registration, heartbeats, death, and the cluster view.

Every node manager heartbeats every ``heartbeat_interval_s`` with its available
resources and its queued demand; a node silent for ``node_death_timeout_s`` is
declared dead (as is one that says it is stopping). Each heartbeat's reply carries
the cluster view (every live node's address and resources) when it changed since the
version the node last saw, so node managers can spill work to each other without
asking the GCS per task. No sockets here: the server calls in and acts on what
comes back, so the decisions are unit-tested.
"""
from __future__ import annotations

import time
from typing import Any

# Heartbeat replies: the node is known (with the view, or None if the node's copy is
# current), or the GCS does not know it (restarted without it, or declared it dead).
UNKNOWN_NODE = "unknown_node"
# A heartbeat carries at most this many of the node's queued requests (its demand).
MAX_DEMAND_REPORTED = 100


def empty_store_usage(capacity: int) -> dict:
    """A node's object store usage as heartbeats report it (runtime/node/manager.py), before any."""
    return {"used": 0, "total": int(capacity), "spilled": 0, "num_objects": 0}


class NodeTable:
    def __init__(self, death_timeout_s: float):
        self.death_timeout_s = death_timeout_s
        self.nodes: dict[str, dict] = {}
        self.version = 0  # bumped whenever the view changes
        self._view: dict[str, dict] | None = None

    def register(self, info: dict, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        node = dict(info)
        node.update(alive=True, available=dict(info.get("available") or info["resources"]), start_time=now,
                    last_heartbeat=time.monotonic(), death_reason=None, end_time=None,
                    demand=node.get("demand") or [])
        node.setdefault("object_store", empty_store_usage(info.get("object_store_memory") or 0))
        self.nodes[node["node_id"]] = node
        self._changed()
        return node

    def restore(self, node: dict) -> None:
        """A node as a previous GCS wrote it (runtime/gcs/recovery.py). A live one is unconfirmed:
        its heartbeat gets UNKNOWN_NODE so it registers again, and silence kills it as usual."""
        node = dict(node)
        if node.get("alive"):
            node.update(unconfirmed=True, last_heartbeat=time.monotonic())
        self.nodes[node["node_id"]] = node
        self._changed()

    def heartbeat(self, node_id: str, available: dict, demand: list, seen_version: int,
                  object_store: dict | None = None) -> Any:
        """Record a heartbeat; the reply for the node (see module docstring). ``object_store``
        (the store's usage) comes only when it changed: None keeps the last one."""
        node = self.nodes.get(node_id)
        if node is None or not node["alive"] or node.get("unconfirmed"):
            return UNKNOWN_NODE
        node["last_heartbeat"] = time.monotonic()
        node["demand"] = demand
        if object_store is not None:
            node["object_store"] = object_store  # not part of the view: no version bump
        if available != node["available"]:
            node["available"] = available
            self._changed()
        return (self.version, self.view() if seen_version != self.version else None)

    def report_resources(self, node_id: str, available: dict) -> None:
        node = self.nodes.get(node_id)
        if node is not None and node["alive"] and available != node["available"]:
            node["available"] = available
            self._changed()

    def set_totals(self, node_id: str, total: dict) -> None:
        """A node's totals changed (placement-group bundles were committed or returned there)."""
        node = self.nodes.get(node_id)
        if node is not None and node["alive"] and total != node["resources"]:
            node["resources"] = total
            self._changed()

    def expired(self, now_monotonic: float | None = None) -> list[str]:
        """Live nodes whose last heartbeat is older than the death timeout."""
        now = time.monotonic() if now_monotonic is None else now_monotonic
        return [nid for nid, n in self.nodes.items()
                if n["alive"] and now - n["last_heartbeat"] > self.death_timeout_s]

    def mark_dead(self, node_id: str, reason: str) -> dict | None:
        """Declare a node dead; returns it, or None if it was not alive."""
        node = self.nodes.get(node_id)
        if node is None or not node["alive"]:
            return None
        node.update(alive=False, death_reason=reason, end_time=time.time(), available={})
        self._changed()
        return node

    def alive(self) -> list[dict]:
        return [n for n in self.nodes.values() if n["alive"]]

    def view(self) -> dict[str, dict]:
        """What node managers need to place work elsewhere: each live node's address and resources."""
        if self._view is None:
            self._view = {n["node_id"]: {"node_id": n["node_id"], "address": n["address"],
                                         "resources": n["resources"], "available": n["available"],
                                         "is_head": n.get("is_head", False)}
                          for n in self.nodes.values() if n["alive"]}
        return self._view

    def _changed(self) -> None:
        self.version += 1
        self._view = None
