"""Ray's state API (``ray.util.state``) for Juno: list, get and summarize what a cluster runs.

    from juno.util.state import list_tasks, list_actors, summarize_tasks
    list_tasks(filters=[("state", "=", "FAILED")])
    list_actors(filters=[("class_name", "=", "Counter")], detail=True)
    summarize_tasks()

Every function takes ``address`` (None: the cluster this process is connected to, else
$JUNO_ADDRESS or the one ``juno start --head`` recorded; "auto" or "host:port" also work)
and ``timeout`` (seconds). List functions also take ``filters`` (tuples of key, "=" or
"!=", value; strings compare case-insensitively), ``limit`` (default 100; more matches
print a warning), ``detail`` (every column instead of Ray's default ones) and
``raise_on_missing_output`` (raise StateApiException when a source did not answer,
instead of warning and returning what did). Rows are dicts whose keys are also
attributes (``task.state`` or ``task["state"]``).

Tasks and actors come from the GCS's event tables (the GCS keeps the last
``task_events_max`` task attempts), objects from every process's reference table.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, Callable

from juno.observability import state_schema as schema
from juno.observability import task_events as te
from juno.observability.state_client import StateClient
from juno.observability.state_schema import (ActorState, JobState, LibraryRunState, NodeState, ObjectState,
                                            PlacementGroupState, RayStateApiException, StateApiException,
                                            TaskState, WorkerState)

DEFAULT_LIMIT = schema.DEFAULT_LIMIT
DEFAULT_RPC_TIMEOUT = 30

__all__ = [
    "ActorState", "JobState", "LibraryRunState", "NodeState", "ObjectState", "PlacementGroupState", "RayStateApiException",
    "StateApiException", "TaskState", "WorkerState", "get_actor", "get_node", "get_objects", "get_task",
    "get_worker", "list_actors", "list_jobs", "list_nodes", "list_objects", "list_placement_groups",
    "list_library_runs", "list_tasks", "list_workers", "summarize_actors", "summarize_objects", "summarize_tasks", "timeline",
]


def _columns(cls: type) -> list[str]:
    samples = {
        TaskState: lambda: schema.task_row([None] * te.NUM_FIELDS),
        ActorState: lambda: schema.actor_row({"actor_id": b""}),
        NodeState: lambda: schema.node_row({"node_id": ""}),
        WorkerState: lambda: schema.worker_row({}),
        JobState: lambda: schema.job_row({"job_id": 0}),
        ObjectState: lambda: schema.object_rows(
            [{"refs": [(b"", None, None, None, None, None, None, None, 0)], "type": "", "pid": 0, "ip": "",
              "node_id": ""}], {}, {})[0],
        PlacementGroupState: _placement_group_sample,
        LibraryRunState: _library_run_sample,
    }
    return list(samples[cls]())


def _placement_group_sample() -> dict:
    from juno.util.placement_group import state_row

    return state_row({"placement_group_id": "", "bundles": {}})


def _library_run_sample() -> dict:
    from juno.util.progress import RunSnapshot

    return RunSnapshot(run_id="", kind="", title="").to_dict()


def _finish(client: StateClient, raise_on_missing_output: bool, what: str) -> None:
    if not client.missing:
        return
    text = (f"Some {what} could not be retrieved because these sources did not answer: "
            f"{'; '.join(client.missing)}.")
    if raise_on_missing_output:
        raise StateApiException(text + " To return what did answer, pass raise_on_missing_output=False.")
    warnings.warn(text, stacklevel=3)


def _list(what: str, cls: type, fetch: Callable[[StateClient], list[dict]], address, filters, limit, timeout,
          detail, raise_on_missing_output) -> list:
    checked = schema.check_filters(filters, _columns(cls))
    with StateClient(address, timeout) as client:
        rows = fetch(client)
        _finish(client, raise_on_missing_output, what)
    rows = schema.apply_filters(rows, checked)
    rows = schema.limited(rows, limit, what)
    return schema.project(rows, cls, detail)


def _task_rows(client: StateClient) -> list[dict]:
    rows, snap = client.tasks()
    if snap.get("num_dropped"):
        warnings.warn(f"{snap['num_dropped']} task attempt(s) were dropped from the GCS, which keeps the last "
                      f"{snap.get('max_tasks')} (the task_events_max setting); older tasks are not listed.",
                      stacklevel=4)
    return rows


# ============================================================================ list
def list_tasks(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[TaskState]:
    """Task attempts in the cluster (one row per attempt), oldest first."""
    return _list("tasks", TaskState, _task_rows, address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_actors(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[ActorState]:
    """Actors in the cluster, dead ones included."""
    return _list("actors", ActorState, lambda c: c.actors(), address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_objects(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[ObjectState]:
    """Object references held in the cluster: one row per (object, process that references it)."""
    return _list("objects", ObjectState, lambda c: c.objects()[0], address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_nodes(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
               timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
               _explain: bool = False) -> list[NodeState]:
    return _list("nodes", NodeState, lambda c: [schema.node_row(n) for n in c.nodes()], address, filters, limit,
                 timeout, detail, raise_on_missing_output)


def list_workers(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                 timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
                 _explain: bool = False) -> list[WorkerState]:
    """Worker processes and drivers of every node (recently exited ones too)."""
    return _list("workers", WorkerState, lambda c: c.workers(), address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_jobs(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
              timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False, raise_on_missing_output: bool = True,
              _explain: bool = False) -> list[JobState]:
    """Jobs (one per driver that connected)."""
    return _list("jobs", JobState, lambda c: [schema.job_row(j) for j in c.jobs()], address, filters, limit,
                 timeout, detail, raise_on_missing_output)


def list_placement_groups(address: str | None = None, filters: list | None = None, limit: int = DEFAULT_LIMIT,
                          timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                          raise_on_missing_output: bool = True, _explain: bool = False) -> list:
    """Placement groups (the GCS's table, as ``juno.util.placement_group_table``), removed ones included."""
    from juno.util.placement_group import state_row

    return _list("placement groups", PlacementGroupState,
                 lambda c: [state_row(r) for r in c.gcs("placement_group", "table")], address, filters, limit,
                 timeout, detail, raise_on_missing_output)


def list_library_runs(kind: str | None = None, address: str | None = None, filters: list | None = None,
                      limit: int = DEFAULT_LIMIT, timeout: int = DEFAULT_RPC_TIMEOUT, detail: bool = False,
                      raise_on_missing_output: bool = True) -> list[LibraryRunState]:
    """The runs libraries reported through ``juno.util.progress`` (Data pipelines, Train runs ...),
    oldest first: every running one and the last 100 that ended. ``kind`` keeps one library's
    ("data", "train" ...); ``detail`` adds each run's table, fields and chart series. Juno only."""
    if kind is not None and not isinstance(kind, str):
        raise TypeError(f"kind must be a library name such as 'data', or None; got {kind!r}")
    return _list("library runs", LibraryRunState, lambda c: c.gcs("library_runs", kind), address, filters,
                 limit, timeout, detail, raise_on_missing_output)


# ============================================================================ get
def _id_of(id: Any) -> str:
    if hasattr(id, "task_id") and hasattr(id, "binary"):  # an ObjectRef: the task that makes it
        return id.task_id().hex()
    if isinstance(id, (bytes, bytearray)):
        return id.hex()
    return str(id).lower()


def get_task(id: Any, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> TaskState | None:
    """The latest attempt of a task, by task id (hex) or by an ObjectRef it returns; None if unknown."""
    wanted = _id_of(id)
    with StateClient(address, timeout) as client:
        rows = [r for r in client.tasks()[0] if r["task_id"] == wanted]
    if not rows:
        return None
    return TaskState(max(rows, key=lambda r: r["attempt_number"]))


def get_actor(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
              _explain: bool = False) -> ActorState | None:
    """An actor by id (hex), with every column; None if unknown."""
    wanted = _id_of(id)
    with StateClient(address, timeout) as client:
        rows = [r for r in client.actors() if r["actor_id"] == wanted]
    return ActorState(rows[0]) if rows else None


def get_node(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
             _explain: bool = False) -> NodeState | None:
    with StateClient(address, timeout) as client:
        rows = [schema.node_row(n) for n in client.nodes() if n["node_id"] == id]
    return NodeState(rows[0]) if rows else None


def get_worker(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
               _explain: bool = False) -> WorkerState | None:
    with StateClient(address, timeout) as client:
        rows = [r for r in client.workers() if r["worker_id"] == _id_of(id)]
    return WorkerState(rows[0]) if rows else None


def get_objects(id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                _explain: bool = False) -> list[ObjectState]:
    """Every reference to one object (one per process holding it)."""
    wanted = id.hex() if hasattr(id, "hex") and not isinstance(id, str) else str(id).lower()
    with StateClient(address, timeout) as client:
        rows = [r for r in client.objects()[0] if r["object_id"] == wanted]
    return [ObjectState(r) for r in rows]


# ============================================================================ summarize
def summarize_tasks(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                    raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """Task attempts per function (or actor method) and state."""
    with StateClient(address, timeout) as client:
        rows = _task_rows(client)
        _finish(client, raise_on_missing_output, "tasks")
    return schema.summarize_task_rows(rows)


def summarize_actors(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                     raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """Actors per class and state."""
    with StateClient(address, timeout) as client:
        rows = client.actors()
    return schema.summarize_actor_rows(rows)


def summarize_objects(address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT,
                      raise_on_missing_output: bool = True, _explain: bool = False) -> dict:
    """Objects per call site (record_ref_creation_sites must be on for call sites; else one group)."""
    with StateClient(address, timeout) as client:
        rows, sites = client.objects()
        _finish(client, raise_on_missing_output, "objects")
    return schema.summarize_object_rows(rows, sites)


# ============================================================================ timeline
def timeline(filename: str | None = None, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT):
    """Chrome-trace events of the task runs the GCS knows (open in chrome://tracing or Perfetto).

    Returns the list of events, or writes them as JSON to ``filename`` (and returns None).
    """
    with StateClient(address, timeout) as client:
        records, _ = client.task_records()
        names = {n["node_id"]: f"Node {n['node_id'][:12]} ({n.get('ip', '')})" for n in client.nodes()}
    events = schema.timeline_events(records, names)
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None
