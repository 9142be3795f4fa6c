"""Introspection of the object store, for tests, benchmarks and curious users (Ray's internal_api).

Not part of Ray's stable API; ``juno.util.state`` is the supported way to list objects.
"""
from __future__ import annotations

from juno.api import _require
from juno.object_ref import ObjectRef


def _nodes(cw, node_id: str | None) -> list[dict]:
    nodes = [n for n in cw.gcs_call("get_nodes") if n["alive"]]
    if node_id is not None:
        nodes = [n for n in nodes if n["node_id"] == node_id]
        if not nodes:
            raise ValueError(f"No live node with id {node_id!r}.")
    return nodes


def store_stats(node_id: str | None = None) -> dict:
    """Object store figures (capacity, used bytes, objects, spilled...) summed over live nodes."""
    cw = _require()
    total: dict = {}
    for node in _nodes(cw, node_id):
        stats = cw.node_call("get_resources", address=node["address"])["object_store"]
        for key, value in stats.items():
            total[key] = total.get(key, 0) + value
    return total


def object_info(ref: ObjectRef) -> dict | None:
    """Where the store keeps ``ref``'s value (state, size, pins, shared memory or disk), or None.

    None also for small objects, which travel inline and never enter the store.
    """
    cw = _require()
    copy = None
    for node in _nodes(cw, None):
        (info,) = cw.node_call("object_info", [ref.binary()], address=node["address"])
        if info is not None:
            info["node_id"] = node["node_id"]
            if not info.get("secondary"):
                return info  # the primary, not a copy another node pulled
            copy = copy or info
    return copy


def memory_summary(stats_only: bool = True) -> str:
    stats = store_stats()
    mib = 1 << 20
    return (f"Object store: {stats.get('used', 0) / mib:.1f} MiB used of {stats.get('capacity', 0) / mib:.1f} MiB, "
            f"{stats.get('num_objects', 0)} objects ({stats.get('num_pinned', 0)} pinned), "
            f"{stats.get('num_spilled', 0)} spilled, {stats.get('num_restored', 0)} restored, "
            f"{stats.get('disk_bytes', 0) / mib:.1f} MiB on disk.")
