"""Pure logic of the state API: Ray's record shapes, filters, summaries, the timeline, output formats.

Nothing here talks to a cluster; runtime/observability/state_client.py gathers the raw data and
``juno.util.state`` (the public API) and runtime/cli/state.py (``juno list ...``) use
these functions on it, so they are unit-tested without processes.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable, Iterable

from juno import ids
from juno.observability import task_events as te

DEFAULT_LIMIT = 100

TASK_STATES = ("NIL", "PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING",
               "FINISHED", "FAILED")
ACTOR_STATES = ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD")
REFERENCE_TYPES = ("LOCAL_REFERENCE", "USED_BY_PENDING_TASK", "CAPTURED_IN_OBJECT", "PINNED_IN_MEMORY",
                   "ACTOR_HANDLE", "UNKNOWN_STATUS")


class StateApiException(Exception):
    """A state query failed, or (raise_on_missing_output=True) some of its sources did not answer."""


RayStateApiException = StateApiException


# ============================================================================ records
class StateRecord(dict):
    """A row of the state API: a dict (``t["state"]``) whose keys are also attributes (``t.state``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def asdict(self) -> dict:
        return dict(self)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.items())
        return f"{type(self).__name__}({inner})"


class TaskState(StateRecord):
    BASE = ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
            "parent_task_id", "node_id", "worker_id", "worker_pid", "error_type")


class ActorState(StateRecord):
    BASE = ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace")


class ObjectState(StateRecord):
    BASE = ("object_id", "object_size", "task_status", "attempt_number", "reference_type", "call_site", "type",
            "pid", "ip", "owner_pid", "storage")


class NodeState(StateRecord):
    BASE = ("node_id", "node_ip", "is_head_node", "state", "state_message", "node_name", "resources_total",
            "labels")


class WorkerState(StateRecord):
    BASE = ("worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid")


class JobState(StateRecord):
    BASE = ("job_id", "submission_id", "type", "status", "entrypoint", "start_time", "end_time", "driver_info")


class PlacementGroupState(StateRecord):
    BASE = ("placement_group_id", "name", "creator_job_id", "state")


class LibraryRunState(StateRecord):
    """A juno.util.progress run; ``detail`` adds its table, fields and chart series."""
    BASE = ("run_id", "kind", "title", "state", "done", "failed", "total", "unit", "rate", "elapsed_s",
            "start_time", "end_time", "job_id", "error")


def project(rows: list[dict], cls: type, detail: bool) -> list[StateRecord]:
    """Rows as ``cls`` records: every column with ``detail``, Ray's default columns without."""
    if detail:
        return [cls(r) for r in rows]
    return [cls({k: r.get(k) for k in cls.BASE}) for r in rows]


# ============================================================================ conversions
def hex_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)


def job_hex(job_id: Any) -> str | None:
    if job_id is None:
        return None
    if isinstance(job_id, int):
        return ids.job_hex(job_id)
    return str(job_id)


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def task_state_of(rec: list, dead_jobs: set | frozenset = frozenset()) -> tuple[str, str | None, str | None]:
    """(state, error_type, error_message) of a GCS task record."""
    final = rec[te.FINAL]
    owner_type, worker_type = rec[te.ERROR_TYPE], rec[te.WORKER_ERROR_TYPE]
    if final is not None:
        state = te.FAILED if final == te.FAILED or worker_type else te.FINISHED
    elif rec[te.T_RUN_END] is not None:
        state = te.FAILED if worker_type else te.FINISHED
    elif rec[te.T_START] is not None:
        state = "RUNNING"
    elif rec[te.T_PUSHED] is not None:
        state = "SUBMITTED_TO_WORKER"
    elif rec[te.T_READY] is not None:
        state = "PENDING_NODE_ASSIGNMENT"
    else:
        state = "PENDING_ARGS_AVAIL"
    if state not in (te.FINISHED, te.FAILED) and rec[te.JOB_ID] in dead_jobs and \
            rec[te.TYPE] != te.ACTOR_CREATION_TASK:
        return te.FAILED, "WORKER_DIED", "The job's driver exited before the task finished."
    if state != te.FAILED:
        return state, None, None
    if owner_type and (owner_type != "TASK_EXECUTION_EXCEPTION" or not worker_type):
        return state, owner_type, rec[te.ERROR_MESSAGE]
    if worker_type:
        return state, worker_type, rec[te.WORKER_ERROR_MESSAGE]
    return state, "TASK_EXECUTION_EXCEPTION", rec[te.ERROR_MESSAGE]


def task_events_of(rec: list, state: str, error_type: str | None) -> list[dict]:
    """The state transitions of one attempt, in order, as Ray's ``events`` column."""
    out = []
    for name, index in (("PENDING_ARGS_AVAIL", te.T_CREATED), ("PENDING_NODE_ASSIGNMENT", te.T_READY),
                        ("SUBMITTED_TO_WORKER", te.T_PUSHED), ("RUNNING", te.T_START)):
        if rec[index] is not None:
            out.append({"state": name, "created_ms": _ms(rec[index])})
    if state in (te.FINISHED, te.FAILED):
        end = rec[te.T_END] or rec[te.T_RUN_END]
        event = {"state": state, "created_ms": _ms(end)}
        if error_type:
            event["error_type"] = error_type
        out.append(event)
    return out


def unnamed_runs(records: list[list]) -> list[list]:
    """Task records whose run came back with its result: they name their worker only by id."""
    return [r for r in records if r[te.NODE_ID] is None and r[te.WORKER_ID] is not None]


def name_runs(records: list[list], where: dict) -> None:
    """Fill in node and pid of runs named only by worker, from ``where``: worker id -> (node, pid)."""
    for rec in records:
        found = where.get(rec[te.WORKER_ID])
        if found is not None:
            rec[te.NODE_ID], rec[te.WORKER_PID] = found


def task_row(rec: list, dead_jobs: set | frozenset = frozenset()) -> dict:
    state, error_type, error_message = task_state_of(rec, dead_jobs)
    resources = rec[te.RESOURCES]
    end = rec[te.T_END] if rec[te.T_END] is not None else rec[te.T_RUN_END]
    return {
        "task_id": hex_or_none(rec[te.TASK_ID]), "attempt_number": rec[te.ATTEMPT], "name": rec[te.NAME] or "",
        "state": state, "job_id": job_hex(rec[te.JOB_ID]), "actor_id": hex_or_none(rec[te.ACTOR_ID]),
        "type": rec[te.TYPE] or te.NORMAL_TASK, "func_or_class_name": rec[te.FUNC_NAME] or rec[te.NAME] or "",
        "parent_task_id": hex_or_none(rec[te.PARENT_TASK_ID]), "node_id": rec[te.NODE_ID],
        "worker_id": hex_or_none(rec[te.WORKER_ID]), "worker_pid": rec[te.WORKER_PID], "error_type": error_type,
        "language": "PYTHON", "required_resources": dict(resources) if resources else {},
        "runtime_env_info": None, "placement_group_id": None,
        "events": task_events_of(rec, state, error_type),
        "creation_time_ms": _ms(rec[te.T_CREATED]), "start_time_ms": _ms(rec[te.T_START]),
        "end_time_ms": _ms(end) if state in (te.FINISHED, te.FAILED) else None,
        "task_log_info": None, "error_message": error_message, "is_debugger_paused": None,
        "call_site": rec[te.CALL_SITE],
    }


def actor_row(a: dict) -> dict:
    death = a.get("death_cause") or None
    return {
        "actor_id": hex_or_none(a["actor_id"]), "class_name": a.get("class_name"), "state": a.get("state"),
        "job_id": job_hex(a.get("job_id")), "name": a.get("name") or "", "node_id": a.get("node_id"),
        "pid": a.get("pid"), "ray_namespace": a.get("namespace"),
        "serialized_runtime_env": json.dumps(a["runtime_env"]) if a.get("runtime_env") else "{}",
        "required_resources": dict(a.get("resources") or {}),
        "death_cause": {"error_message": death} if death else None, "is_detached": bool(a.get("detached")),
        "placement_group_id": None, "repr_name": "", "num_restarts": a.get("num_restarts", 0),
        "call_site": None, "events": a.get("events") or [],
    }


def node_row(n: dict) -> dict:
    alive = bool(n.get("alive"))
    return {
        "node_id": n["node_id"], "node_ip": n.get("ip", "127.0.0.1"), "is_head_node": bool(n.get("is_head")),
        "state": "ALIVE" if alive else "DEAD", "state_message": None if alive else "the node manager stopped",
        "node_name": n.get("hostname") or n.get("ip", ""), "resources_total": dict(n.get("resources") or {}),
        "labels": {"juno.io/node_id": n["node_id"]}, "start_time_ms": _ms(n.get("start_time")),
        "end_time_ms": _ms(n.get("end_time")), "resources_available": dict(n.get("available") or {}),
        "pid": n.get("pid"),
    }


def worker_row(w: dict) -> dict:
    return {
        "worker_id": hex_or_none(w.get("worker_id")), "is_alive": bool(w.get("is_alive")),
        "worker_type": w.get("worker_type", "WORKER"), "exit_type": w.get("exit_type"),
        "node_id": w.get("node_id"), "ip": w.get("ip"), "pid": w.get("pid"), "exit_detail": w.get("exit_detail"),
        "worker_launch_time_ms": None, "worker_launched_time_ms": None,
        "start_time_ms": _ms(w.get("start_time")), "end_time_ms": _ms(w.get("end_time")),
        "actor_id": hex_or_none(w.get("actor_id")), "job_id": job_hex(w.get("job_id")),
    }


def job_row(j: dict) -> dict:
    dead = bool(j.get("is_dead"))
    return {
        "job_id": job_hex(j["job_id"]), "submission_id": None, "type": "DRIVER",
        "status": "SUCCEEDED" if dead else "RUNNING", "entrypoint": j.get("entrypoint", ""),
        "message": None, "error_type": None, "start_time": _ms(j.get("start_time")),
        "end_time": _ms(j.get("end_time")), "metadata": j.get("metadata") or {},
        "runtime_env": j.get("runtime_env") or {},
        "driver_info": {"id": job_hex(j["job_id"]), "node_ip_address": "127.0.0.1", "pid": str(j.get("pid"))},
        "namespace": j.get("namespace"),
    }


def object_rows(tables: list[dict], sizes: dict[bytes, int], owner_pids: dict[str, int]) -> list[dict]:
    """One row per (object, process referencing it), from every core worker's reference table."""
    out = []
    for table in tables:
        for oid, ref_type, storage, _where, size, owner, site, status, attempt in table["refs"]:
            if size is None:
                size = sizes.get(oid)
            out.append({
                "object_id": oid.hex(), "object_size": size, "task_status": status, "attempt_number": attempt,
                "reference_type": ref_type, "call_site": site, "type": table["type"], "pid": table["pid"],
                "ip": table["ip"], "owner_pid": owner_pids.get(owner) if owner else None,
                "storage": storage or "PENDING", "node_id": table["node_id"],
                "worker_id": hex_or_none(table.get("worker_id")), "owner_address": owner,
            })
    return out


# ============================================================================ filters
PREDICATES = ("=", "!=")


def parse_filter(text: str) -> tuple[str, str, str]:
    """``"state=FAILED"`` or ``"name!=f"`` -> (key, predicate, value)."""
    for pred in ("!=", "="):
        if pred in text:
            key, _, value = text.partition(pred)
            key, value = key.strip(), value.strip()
            if not key:
                break
            return key, pred, value
    raise ValueError(f"Invalid filter {text!r}: write key=value or key!=value, e.g. state=FAILED.")


def _matches(actual: Any, expected: Any) -> bool:
    if actual is None:
        return str(expected).strip().lower() in ("none", "null", "")
    if isinstance(actual, bool):
        if isinstance(expected, bool):
            return actual == expected
        return str(expected).strip().lower() == str(actual).lower()
    if isinstance(actual, (int, float)) and not isinstance(expected, bool):
        try:
            return math.isclose(float(actual), float(expected))
        except (TypeError, ValueError):
            return False
    return str(actual).lower() == str(expected).lower()


def check_filters(filters: Iterable | None, columns: Iterable[str]) -> list[tuple[str, str, Any]]:
    out = []
    columns = list(columns)
    for f in filters or []:
        if isinstance(f, str):
            f = parse_filter(f)
        try:
            key, pred, value = f
        except (TypeError, ValueError):
            raise ValueError(f"A filter is (key, predicate, value), e.g. ('state', '=', 'FAILED'); got {f!r}.") \
                from None
        if pred not in PREDICATES:
            raise ValueError(f"Unsupported filter predicate {pred!r}; use one of {', '.join(PREDICATES)}.")
        if key not in columns:
            raise ValueError(f"Unknown filter key {key!r}; the columns are: {', '.join(columns)}.")
        out.append((key, pred, value))
    return out


def apply_filters(rows: list[dict], filters: list[tuple[str, str, Any]]) -> list[dict]:
    if not filters:
        return rows
    out = []
    for row in rows:
        for key, pred, value in filters:
            if _matches(row.get(key), value) != (pred == "="):
                break
        else:
            out.append(row)
    return out


def limited(rows: list, limit: int | None, what: str, warn: Callable[[str], None] | None = None) -> list:
    if limit is None or len(rows) <= limit:
        return rows
    (warn or _warn)(f"{len(rows)} {what} match; showing {limit} (raise limit, or --limit on the command line, "
                    "to see more).")
    return rows[:limit]


def _warn(text: str) -> None:
    warnings.warn(text, stacklevel=4)


# ============================================================================ summaries
def summarize_task_rows(rows: list[dict]) -> dict:
    summary: dict[str, dict] = {}
    totals = {"total_tasks": 0, "total_actor_tasks": 0, "total_actor_scheduled": 0}
    for r in rows:
        key = r["func_or_class_name"]
        group = summary.setdefault(key, {"func_or_class_name": key, "type": r["type"], "state_counts": {}})
        group["state_counts"][r["state"]] = group["state_counts"].get(r["state"], 0) + 1
        if r["type"] == te.ACTOR_TASK:
            totals["total_actor_tasks"] += 1
        elif r["type"] == te.ACTOR_CREATION_TASK:
            totals["total_actor_scheduled"] += 1
        else:
            totals["total_tasks"] += 1
    return {"cluster": {"summary": summary, **totals, "summary_by": "func_name"}}


def summarize_actor_rows(rows: list[dict]) -> dict:
    summary: dict[str, dict] = {}
    for r in rows:
        key = r["class_name"]
        group = summary.setdefault(key, {"class_name": key, "state_counts": {}})
        group["state_counts"][r["state"]] = group["state_counts"].get(r["state"], 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(rows), "summary_by": "class"}}


def summarize_object_rows(rows: list[dict], call_sites_enabled: bool) -> dict:
    summary: dict[str, dict] = {}
    workers: dict[str, set] = {}
    nodes: dict[str, set] = {}
    seen_sizes: dict[str, dict] = {}
    for r in rows:
        key = r["call_site"] or "disabled"
        group = summary.setdefault(key, {"total_objects": 0, "total_size_mb": 0.0, "total_num_workers": 0,
                                         "total_num_nodes": 0, "task_state_counts": {}, "ref_type_counts": {}})
        sizes = seen_sizes.setdefault(key, {})
        if r["object_id"] not in sizes:
            sizes[r["object_id"]] = r["object_size"] or 0
            group["task_state_counts"][r["task_status"]] = group["task_state_counts"].get(r["task_status"], 0) + 1
        group["ref_type_counts"][r["reference_type"]] = group["ref_type_counts"].get(r["reference_type"], 0) + 1
        workers.setdefault(key, set()).add(r["pid"])
        nodes.setdefault(key, set()).add(r["node_id"])
    total_objects, total_bytes = 0, 0
    for key, group in summary.items():
        group["total_objects"] = len(seen_sizes[key])
        group["total_size_mb"] = sum(seen_sizes[key].values()) / 2**20
        group["total_num_workers"] = len(workers[key])
        group["total_num_nodes"] = len(nodes[key])
        total_objects += group["total_objects"]
        total_bytes += sum(seen_sizes[key].values())
    return {"cluster": {"summary": summary, "total_objects": total_objects, "total_size_mb": total_bytes / 2**20,
                        "callsite_enabled": call_sites_enabled, "summary_by": "callsite"}}


# ============================================================================ timeline
def timeline_events(records: Iterable[list], node_names: dict[str, str] | None = None) -> list[dict]:
    """Chrome trace events (Trace Event Format) for task runs: one complete ("X") event per finished
    run, ts/dur in microseconds, pid = node, tid = worker pid; plus names for nodes and workers."""
    events: list[dict] = []
    named_nodes: set = set()
    named_workers: set = set()
    for rec in records:
        start, end = rec[te.T_START], rec[te.T_RUN_END]
        if start is None or end is None:
            continue
        node = rec[te.NODE_ID] or "unknown"
        pid = f"Node {node}"
        tid = rec[te.WORKER_PID] or 0
        if node not in named_nodes:
            named_nodes.add(node)
            label = (node_names or {}).get(node) or pid
            events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": label}})
        if (node, tid) not in named_workers:
            named_workers.add((node, tid))
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": f"Worker pid {tid}"}})
        state, error_type, _ = task_state_of(rec)
        events.append({
            "cat": (rec[te.TYPE] or te.NORMAL_TASK).lower(), "name": rec[te.NAME] or "task", "ph": "X",
            "ts": start * 1e6, "dur": max((end - start) * 1e6, 0.001), "pid": pid, "tid": tid,
            "args": {"task_id": hex_or_none(rec[te.TASK_ID]), "attempt_number": rec[te.ATTEMPT],
                     "job_id": job_hex(rec[te.JOB_ID]), "actor_id": hex_or_none(rec[te.ACTOR_ID]),
                     "func_or_class_name": rec[te.FUNC_NAME], "state": state, "error_type": error_type,
                     "node_id": node, "worker_id": hex_or_none(rec[te.WORKER_ID])},
        })
    return events


# ============================================================================ output formats
def to_plain(value: Any) -> Any:
    """JSON-safe copy: bytes as hex, tuples as lists, records as dicts."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return value


def format_json(value: Any) -> str:
    return json.dumps(to_plain(value), indent=2, default=str)


def format_yaml(value: Any) -> str:
    """A small YAML emitter for the state API's plain data (dicts, lists, scalars)."""
    lines: list[str] = []
    _yaml(to_plain(value), 0, lines)
    return "\n".join(lines)


def _yaml_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    text = str(v)
    if text == "" or "\n" in text or text.strip() != text or text[0] in "-?:,[]{}#&*!|>'\"%@`" or \
            ": " in text or " #" in text or text.lower() in ("null", "true", "false", "yes", "no", "~"):
        return json.dumps(text)
    try:
        float(text)
        return json.dumps(text)
    except ValueError:
        return text


def _yaml_inline(v: Any) -> str:
    """A value that fits on its key's line: a scalar, or an empty collection."""
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _yaml_scalar(v)


def _yaml(v: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            lines.append(pad + "{}")
        for k, item in v.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{_yaml_scalar(k)}:")
                _yaml(item, indent + 2, lines)
            else:
                lines.append(f"{pad}{_yaml_scalar(k)}: {_yaml_inline(item)}")
    elif isinstance(v, list):
        if not v:
            lines.append(pad + "[]")
        for item in v:
            if isinstance(item, (dict, list)) and item:
                sub: list[str] = []
                _yaml(item, indent + 2, sub)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_yaml_inline(item)}")
    else:
        lines.append(pad + _yaml_scalar(v))


def _cell(v: Any, width: int = 60) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        text = json.dumps(to_plain(v), separators=(",", ":"), default=str)
    else:
        text = str(v)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    headers = [c.upper() for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in cells:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int | float | None) -> str:
    """``512 B``, ``3.0 GiB``: the one byte formatter of the CLI, the widgets and the docs."""
    if n is None:
        return "?"
    n = float(n)
    for unit in _BYTE_UNITS[:-1]:
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} {_BYTE_UNITS[-1]}"
