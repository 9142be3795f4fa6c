"""What ``juno status`` and ``juno.nodes()`` show of a cluster, computed from the GCS's tables.

Pure functions, no sockets: the CLI fetches the node table (``get_nodes``), the jobs,
the placement groups (when the GCS has them) and each local node's store usage, and
hands them here. Every node the GCS has seen appears, alive or dead with its reason;
resources are shown as used / total per node and summed over the live nodes; pending
demand (the resource shapes queued at node managers, sent with their heartbeats) is
grouped and counted as Ray's ``ray status`` "Demands" section does.
"""
from __future__ import annotations

import re
import time
from typing import Any, Iterable

# A node at MAX_DEMAND_REPORTED queued requests in its heartbeat may have more: shown as "N+".
from juno.gcs.node_table import MAX_DEMAND_REPORTED

FIRST_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")
BYTE_RESOURCES = ("memory", "object_store_memory")
# Ray's node death reasons (NodeDeathInfo.Reason), as ray.nodes() reports them.
DEATH_UNSPECIFIED, DEATH_EXPECTED, DEATH_UNEXPECTED = 0, 1, 2
# Placement groups reserve bundles as derived resources ("CPU_group_<pg>", "CPU_group_0_<pg>"):
# bookkeeping, not capacity, so status leaves them out (as Ray does).
_BUNDLE_RESOURCE = re.compile(r"_group_(\d+_)?[0-9a-fA-F]+$")


# ============================================================================ numbers
def format_number(v: float) -> str:
    text = f"{v:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def format_value(name: str, v: float) -> str:
    if name in BYTE_RESOURCES:
        return f"{v / 2**30:.2f} GiB"
    return format_number(v)


def resource_names(resources: Iterable[str]) -> list[str]:
    """Names worth showing, CPU/GPU/memory/object store first, then custom ones sorted."""
    names = set(resources)
    shown = [n for n in FIRST_RESOURCES if n in names]
    shown += sorted(n for n in names if n not in FIRST_RESOURCES and not n.startswith("node:")
                    and not _BUNDLE_RESOURCE.search(n))
    return shown


def format_resources(resources: dict) -> str:
    """'CPU 2.0, memory 1.50 GiB, accel 2.0' (what a node has)."""
    return ", ".join(f"{n} {format_value(n, resources[n])}" for n in resource_names(resources))


def format_shape(shape: dict) -> str:
    """A resource request as Ray prints it in "Demands": {'CPU': 1.0, 'GPU': 1.0}."""
    return "{" + ", ".join(f"{k!r}: {float(v)!r}" for k, v in sorted(shape.items()) if v) + "}"


def uptime(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


# ============================================================================ usage
def node_usage(node: dict, store: dict | None = None) -> dict[str, tuple[float, float]]:
    """name -> (used, total) for a live node. The object store's use is the store's own
    count of bytes when known (``store``: the node's ``get_resources()["object_store"]``)."""
    total = node.get("resources") or {}
    avail = node.get("available") or {}
    out = {}
    for name in resource_names(total):
        used = max(0.0, total[name] - avail.get(name, 0.0))
        out[name] = (used, float(total[name]))
    if store and "object_store_memory" in out:
        out["object_store_memory"] = (float(store.get("used", 0)), out["object_store_memory"][1])
    return out


def cluster_usage(nodes: list[dict], stores: dict[str, dict] | None = None) -> dict[str, tuple[float, float]]:
    """name -> (used, total) summed over the live nodes."""
    stores = stores or {}
    out: dict[str, tuple[float, float]] = {}
    for n in nodes:
        if not n.get("alive"):
            continue
        for name, (used, total) in node_usage(n, stores.get(n["node_id"])).items():
            u, t = out.get(name, (0.0, 0.0))
            out[name] = (u + used, t + total)
    return {name: out[name] for name in resource_names(out)}


def _usage_line(usage: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{name} {format_value(name, u)} / {format_value(name, t)}" for name, (u, t) in usage.items())


# ============================================================================ demand
def group_demand(nodes: list[dict]) -> list[tuple[dict, int, bool]]:
    """The live nodes' queued requests grouped by shape: [(shape, count, more_may_wait)],
    most requested first. ``more_may_wait`` is True when a node's report was cut at the cap."""
    counts: dict[tuple, int] = {}
    capped: set[tuple] = set()
    for n in nodes:
        if not n.get("alive"):
            continue
        demand = n.get("demand") or []
        for shape in demand:
            key = tuple(sorted((k, float(v)) for k, v in (shape or {}).items() if v))
            counts[key] = counts.get(key, 0) + 1
            if len(demand) >= MAX_DEMAND_REPORTED:
                capped.add(key)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(dict(key), count, key in capped) for key, count in ordered]


# ============================================================================ placement groups
def normalize_placement_groups(table: Any) -> list[dict]:
    """The GCS's placement group table (a list, or a dict id -> entry as Ray's
    ``placement_group_table()``) as a list of {id, name, strategy, state, bundles}."""
    if not table:
        return []
    entries = list(table.values()) if isinstance(table, dict) else list(table)
    out = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        pg_id = e.get("placement_group_id") or e.get("id") or e.get("pg_id") or ""
        if isinstance(pg_id, bytes):
            pg_id = pg_id.hex()
        bundles = e.get("bundles") or []
        if isinstance(bundles, dict):
            bundles = [bundles[k] for k in sorted(bundles)]
        out.append({"id": str(pg_id), "name": e.get("name") or "", "strategy": str(e.get("strategy") or "PACK"),
                    "state": str(e.get("state") or "UNKNOWN").upper(), "bundles": [dict(b) for b in bundles]})
    return out


def _bundle_summary(bundles: list[dict]) -> str:
    groups: dict[str, int] = {}
    for b in bundles:
        text = format_shape(b)
        groups[text] = groups.get(text, 0) + 1
    return ", ".join(f"{text} * {n}" if n > 1 else text for text, n in groups.items()) or "{}"


def placement_group_demand(pgs: list[dict]) -> list[tuple[str, int]]:
    """Pending placement groups grouped as Ray prints them: ("{'CPU': 1.0} * 2 (PACK)", count)."""
    counts: dict[str, int] = {}
    for pg in pgs:
        if pg["state"] in ("PENDING", "RESCHEDULING"):
            key = f"{_bundle_summary(pg['bundles'])} ({pg['strategy']})"
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


# ============================================================================ juno status
def render_status(address: str, info: dict, nodes: list[dict], jobs: list[dict],
                  placement_groups: Any = None, stores: dict[str, dict] | None = None,
                  now: float | None = None) -> str:
    """The text of ``juno status``.

    ``placement_groups`` is None when the GCS has no placement group table (nothing is
    shown), ``stores`` maps node id -> that node's object store stats where they could
    be read (nodes on this machine)."""
    now = time.time() if now is None else now
    stores = stores or {}
    alive = [n for n in nodes if n.get("alive")]
    dead = len(nodes) - len(alive)
    lines = [f"Juno cluster at {address}",
             f"  session: {info.get('session_dir')}   up {uptime(now - info.get('start_time', now))}",
             "",
             f"Nodes: {len(alive)} alive" + (f", {dead} dead" if dead else "")]
    ordered = sorted(nodes, key=lambda n: (not n.get("alive"), not n.get("is_head"), n.get("start_time", 0)))
    for n in ordered:
        flags = ["alive" if n.get("alive") else "dead"] + (["head"] if n.get("is_head") else [])
        lines.append(f"  node {n['node_id']}  {' '.join(flags)}  {n.get('ip', '127.0.0.1')}  "
                     f"pid {n.get('pid', '?')}  {n.get('address', '')}")
        if n.get("alive"):
            lines.append("    used / total: " + _usage_line(node_usage(n, stores.get(n["node_id"]))))
        else:
            ago = f" {uptime(now - n['end_time'])} ago" if n.get("end_time") else ""
            lines.append(f"    died{ago}: {n.get('death_reason') or 'reason unknown'}")
    lines += ["", "Cluster total (used / total):"]
    for name, (used, total) in cluster_usage(nodes, stores).items():
        lines.append(f"  {name:<20} {format_value(name, used)} / {format_value(name, total)}")

    pgs = normalize_placement_groups(placement_groups) if placement_groups is not None else None
    lines += ["", "Demands:"]
    demand = group_demand(nodes)
    pg_demand = placement_group_demand(pgs or [])
    for shape, count, more in demand:
        lines.append(f"  {format_shape(shape)}: {count}{'+' if more else ''} pending tasks/actors")
    for text, count in pg_demand:
        lines.append(f"  {text}: {count} pending placement groups")
    if not demand and not pg_demand:
        lines.append("  (no resource demands)")

    if pgs is not None:
        states: dict[str, int] = {}
        for pg in pgs:
            states[pg["state"]] = states.get(pg["state"], 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
        lines += ["", f"Placement groups: {len(pgs)}" + (f" ({summary})" if summary else "")]
        for pg in sorted(pgs, key=lambda p: (p["state"] != "CREATED", p["id"])):
            if pg["state"] == "REMOVED":
                continue  # counted above; listing every group ever removed would bury the live ones
            name = f" {pg['name']!r}" if pg["name"] else ""
            lines.append(f"  {pg['id'][:16]}{name}  {pg['strategy']}  {pg['state']}  "
                         f"bundles {_bundle_summary(pg['bundles'])}")

    running = sum(1 for j in jobs if not j.get("is_dead"))
    lines += ["", f"Jobs: {running} running, {len(jobs) - running} finished"]
    return "\n".join(lines)


# ============================================================================ juno.nodes()
def death_reason_code(message: str | None) -> int:
    """Ray's DeathReason for a node the GCS declared dead with ``message``."""
    if not message:
        return DEATH_UNSPECIFIED
    return DEATH_EXPECTED if message.startswith("the node was stopped") else DEATH_UNEXPECTED


def ray_node_entry(n: dict) -> dict:
    """One GCS node record in the shape of Ray's ``ray.nodes()`` entries."""
    alive = bool(n.get("alive"))
    ip = n.get("ip", "127.0.0.1")
    return {
        "NodeID": n["node_id"], "Alive": alive, "alive": alive,
        "NodeManagerAddress": ip, "NodeManagerHostname": n.get("hostname"), "NodeName": ip,
        "NodeManagerPort": 0, "ObjectManagerPort": 0, "MetricsExportPort": 0,
        "ObjectStoreSocketName": n.get("store_dir"), "RayletSocketName": n.get("address"),
        "Resources": dict(n.get("resources") or {}) if alive else {},
        "Labels": dict(n.get("labels") or {}),
        "IsHead": bool(n.get("is_head")),
        "DeathReason": DEATH_UNSPECIFIED if alive else death_reason_code(n.get("death_reason")),
        "DeathReasonMessage": "" if alive else (n.get("death_reason") or ""),
        "StartTime": n.get("start_time"), "EndTime": n.get("end_time"),
    }
