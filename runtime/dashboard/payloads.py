"""The dashboard's JSON payloads, built from what the GCS and the nodes answer.

Pure functions, no sockets: runtime/dashboard/state_service.py gathers the raw tables
and hands them here, so each payload's shape (the dashboard's state API contract: keys,
units, order) is decided in one place. Times are unix seconds, ids hex strings, bytes integers.
"""
from __future__ import annotations

import re
import time
from typing import Any, Iterable

from juno.observability import state_schema as schema
from juno.observability import task_events as te
from juno.observability.cluster_status import cluster_usage, node_usage, resource_names
from juno.gcs.node_table import empty_store_usage

STORE_KEYS = ("used", "total", "spilled", "num_objects")
MAX_TASK_LIMIT = 1000
MAX_OBJECT_LIMIT = 10000
MAX_LOG_LINES = 5000
MIN_ID_PREFIX = 8  # hex characters of an id prefix the logs accept
HEX = re.compile(r"^[0-9a-fA-F]+$")


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _number(v: float) -> float | int:
    """2.0 -> 2 where a value is whole (JSON stays short and bytes stay integers)."""
    return int(v) if float(v).is_integer() else float(v)


# ============================================================================ nodes
def node_store(n: dict) -> dict:
    """The node's object store usage as its heartbeats last reported it (zeros while dead)."""
    store = n.get("object_store") or empty_store_usage(n.get("object_store_memory") or 0)
    out = {k: int(store.get(k) or 0) for k in STORE_KEYS}
    if not n.get("alive"):
        out.update(used=0, num_objects=0, spilled=0)
    return out


def node_resources(n: dict) -> dict[str, dict]:
    """name -> {used, total}; the object store is reported apart (``object_store``)."""
    usage = node_usage(n) if n.get("alive") else {name: (0.0, float((n.get("resources") or {})[name]))
                                                  for name in resource_names(n.get("resources") or {})}
    return {name: {"used": _number(used), "total": _number(total)} for name, (used, total) in usage.items()
            if name != "object_store_memory"}


def node_entry(n: dict) -> dict:
    alive = bool(n.get("alive"))
    return {
        "node_id": n["node_id"], "alive": alive, "state": "ALIVE" if alive else "DEAD",
        "death_reason": None if alive else (n.get("death_reason") or "reason unknown"),
        "is_head": bool(n.get("is_head")), "ip": n.get("ip", "127.0.0.1"), "hostname": n.get("hostname"),
        "address": n.get("address"), "pid": n.get("pid"), "start_time": n.get("start_time"),
        "end_time": n.get("end_time"), "resources": node_resources(n), "gpu_ids": list(n.get("gpu_ids") or []),
        "object_store": node_store(n),
    }


def nodes_payload(nodes: list[dict]) -> dict:
    ordered = sorted(nodes, key=lambda n: (not n.get("alive"), not n.get("is_head"), n.get("start_time") or 0))
    return {"nodes": [node_entry(n) for n in ordered]}


# ============================================================================ tasks
def task_entry(rec: list, dead_jobs: Any = frozenset()) -> dict:
    row = schema.task_row(rec, dead_jobs)
    state = row["state"]
    end = rec[te.T_END] if rec[te.T_END] is not None else rec[te.T_RUN_END]
    return {
        "task_id": row["task_id"], "name": row["name"], "func_or_class_name": row["func_or_class_name"],
        "state": state, "type": row["type"], "job_id": row["job_id"], "actor_id": row["actor_id"],
        "node_id": row["node_id"], "worker_id": row["worker_id"], "worker_pid": row["worker_pid"],
        "attempt_number": row["attempt_number"], "creation_time": rec[te.T_CREATED],
        "start_time": rec[te.T_START], "end_time": end if state in (te.FINISHED, te.FAILED) else None,
        "error_type": row["error_type"], "error_message": row["error_message"],
    }


def tasks_payload(summary: dict, dead_jobs: Any = frozenset()) -> dict:
    """From the GCS's ``task_summary`` answer (runtime/gcs/task_summary.py)."""
    by_function = [{"name": name, "by_state": dict(counts), "total": sum(counts.values())}
                   for name, counts in (summary.get("by_function") or {}).items()]
    by_function.sort(key=lambda f: (-f["total"], f["name"]))
    return {
        "by_state": dict(summary.get("by_state") or {}), "by_function": by_function,
        "finished_total": int(summary.get("finished_total") or 0),
        "failed_total": int(summary.get("failed_total") or 0),
        "running": [task_entry(r, dead_jobs) for r in summary.get("running") or []],
        "failed": [task_entry(r, dead_jobs) for r in summary.get("failed") or []],
        # attempts the GCS's bounded table dropped before they could be counted (see task_events_max)
        "num_dropped": int(summary.get("num_dropped") or 0),
    }


# ============================================================================ actors
def actor_entry(a: dict) -> dict:
    return {
        "actor_id": schema.hex_or_none(a["actor_id"]), "class_name": a.get("class_name"), "name": a.get("name") or "",
        "namespace": a.get("namespace"), "state": a.get("state"), "num_restarts": a.get("num_restarts", 0),
        "max_restarts": a.get("max_restarts", 0), "node_id": a.get("node_id"), "pid": a.get("pid"),
        "job_id": schema.job_hex(a.get("job_id")), "is_detached": bool(a.get("detached")),
        "death_cause": a.get("death_cause") or None, "required_resources": dict(a.get("resources") or {}),
    }


def actors_payload(actors: list[dict]) -> dict:
    return {"actors": [actor_entry(a) for a in actors]}


# ============================================================================ placement groups, jobs, workers
def placement_group_entry(pg: dict) -> dict:
    bundles = pg.get("bundles") or {}
    if isinstance(bundles, dict):
        bundles = [bundles[k] for k in sorted(bundles)]
    where = pg.get("bundles_to_node_id") or {}
    return {
        "placement_group_id": schema.hex_or_none(pg.get("placement_group_id")), "name": pg.get("name") or "",
        "strategy": pg.get("strategy") or "PACK", "state": pg.get("state") or "PENDING",
        "is_detached": bool(pg.get("is_detached")),
        "bundles": [{"index": i, "resources": {k: _number(v) for k, v in dict(b).items()}, "node_id": where.get(i)}
                    for i, b in enumerate(bundles)],
    }


def placement_groups_payload(table: list[dict] | None) -> dict:
    return {"placement_groups": [placement_group_entry(pg) for pg in table or []]}


def job_entry(j: dict) -> dict:
    return {"job_id": schema.job_hex(j["job_id"]), "status": "SUCCEEDED" if j.get("is_dead") else "RUNNING",
            "entrypoint": j.get("entrypoint") or "", "pid": j.get("pid"), "namespace": j.get("namespace"),
            "start_time": j.get("start_time"), "end_time": j.get("end_time")}


def jobs_payload(jobs: list[dict]) -> dict:
    return {"jobs": [job_entry(j) for j in jobs]}


def library_runs_payload(runs: list[dict]) -> dict:
    """juno.util.progress runs, newest first, as the GCS gives them without their chart points
    (``series_last`` holds each series' last value; the points stay in list_library_runs(detail=True))."""
    return {"runs": list(reversed(runs))}


def worker_entry(w: dict) -> dict:
    return {"worker_id": schema.hex_or_none(w.get("worker_id")), "pid": w.get("pid"), "node_id": w.get("node_id"),
            "is_alive": bool(w.get("is_alive")), "worker_type": w.get("worker_type", "WORKER"),
            "actor_id": schema.hex_or_none(w.get("actor_id")), "job_id": schema.job_hex(w.get("job_id")),
            "start_time": w.get("start_time"), "end_time": w.get("end_time")}


# ============================================================================ objects
def objects_payload(rows: list[dict], limit: int) -> dict:
    """Object rows (one per object and process referencing it) from the state client; the summary
    counts each object once."""
    sizes: dict[str, int] = {}
    storage: dict[str, str] = {}
    for r in rows:
        sizes[r["object_id"]] = max(sizes.get(r["object_id"], 0), r.get("object_size") or 0)
        storage.setdefault(r["object_id"], r.get("storage") or "PENDING")
    shown = [{"object_id": r["object_id"], "object_size": r.get("object_size"),
              "reference_type": r.get("reference_type"), "storage": r.get("storage"), "node_id": r.get("node_id"),
              "pid": r.get("pid"), "call_site": r.get("call_site"), "task_status": r.get("task_status")}
             for r in rows[:limit]]
    return {"summary": {"count": len(sizes), "total_bytes": sum(sizes.values()),
                        "by_storage": _count(storage.values())},
            "objects": shown, "truncated": len(rows) > limit}


# ============================================================================ summary
def summary_payload(address: str, version: str, nodes: list[dict], tasks: dict, actors: list[dict],
                    placement_groups: list[dict] | None, jobs: list[dict], now: float | None = None) -> dict:
    alive = [n for n in nodes if n.get("alive")]
    ordered = {name: {"used": _number(used), "total": _number(total)}
               for name, (used, total) in cluster_usage(alive).items() if name != "object_store_memory"}
    store = {k: 0 for k in STORE_KEYS}
    for n in alive:
        for k, v in node_store(n).items():
            store[k] += v
    running_jobs = sum(1 for j in jobs if not j.get("is_dead"))
    return {
        "address": address, "time": time.time() if now is None else now, "version": version,
        "nodes": {"alive": len(alive), "dead": len(nodes) - len(alive)},
        "resources": ordered, "object_store": store,
        "tasks": {"by_state": dict(tasks.get("by_state") or {}),
                  "finished_total": int(tasks.get("finished_total") or 0),
                  "failed_total": int(tasks.get("failed_total") or 0)},
        "actors": {"by_state": _count(a.get("state") or "UNKNOWN" for a in actors)},
        "placement_groups": {"by_state": _count(pg.get("state") or "PENDING" for pg in placement_groups or [])},
        "jobs": {"running": running_jobs, "finished": len(jobs) - running_jobs},
    }
