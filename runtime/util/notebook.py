"""What Juno's notebook layer needs from the runtime where Ray has no public API.

``juno.widgets`` follows futures, actors and the cluster; ``juno.kernel_ext`` routes worker
output to the cell that launched the work and cancels an interrupted cell's tasks. Both use
these functions instead of the core worker's internals, so the runtime can change behind them
(``tests/unit/test_import_boundaries.py`` holds them to the public API). Nothing here blocks on
the cluster except ``cluster_snapshot``.

Functions that act on a connection take ``connection`` (what ``connection()`` returned, or what
the runtime handed ``juno.kernel_ext``'s ``attach``): an opaque token, compared by identity;
None means this process's current one.
"""
from __future__ import annotations

import concurrent.futures
from typing import Any, Callable

from juno.api import current_context
from juno.observability.cluster_status import node_usage
from juno.observability.state_schema import human_bytes as format_bytes
from juno.owner.core_worker import global_worker
from juno.store import format as store_format

__all__ = [
    "actor_identity", "add_submit_hook", "call_later", "cancel_unfinished", "cluster_snapshot", "connection", "current_context",
    "format_bytes", "known_actor_state", "on_completed", "output_router", "ref_status", "set_output_router",
]


def connection() -> Any:
    """This process's connection to the cluster (opaque), or None before ``juno.init()``/after shutdown."""
    return global_worker()


# ------------------------------------------------------------------ futures (juno.widgets.progress)
def on_completed(ref: Any, callback: Callable[[bool], None]) -> Callable[[], None]:
    """Call ``callback(failed)`` once ``ref``'s task has finished (now, if it has): ``failed`` is
    whether the value is an error, read from its header (the value is not unpickled). A borrowed
    ref's value is asked of its owner. The callback runs on Juno's IO thread: keep it quick.
    Returns a function that drops the callback if it has not run yet. Like Ray's
    ``ObjectRef._on_completed``, without reading the value."""
    cw = global_worker()
    if cw is None:
        raise RuntimeError("Juno is not running: call juno.init() before tracking futures.")
    object_id = ref.binary()

    def ready(_object_id: bytes, value: tuple) -> None:
        callback(_value_failed(value))

    cw.on_value_ready(ref, ready)

    def cancel() -> None:
        w = global_worker()
        if w is not None:
            w.owned.remove_waiter(object_id, ready)

    return cancel


def _value_failed(value: tuple) -> bool:
    """Whether an owned value is an error, read from its header only (no unpickling)."""
    kind = value[0]
    if kind == "e":
        return True
    if kind == "v":
        try:
            flags, _, _ = store_format.unpack(memoryview(value[1]))
        except Exception:  # noqa: BLE001 - unreadable: get() will say why
            return True
        return bool(flags & store_format.FLAG_ERROR)
    return False  # in shared memory: errors are always stored inline


# ------------------------------------------------------------------ reprs (juno.widgets.reprs)
def ref_status(ref: Any) -> str | None:
    """``ready``, ``pending`` (owned here, not computed yet) or ``not fetched`` (borrowed, not
    here) as this process knows it; None when not connected."""
    cw = global_worker()
    if cw is None:
        return None
    if cw.owned.contains(ref.binary()):
        return "ready"
    return "pending" if ref.owner_address == cw.address else "not fetched"


def known_actor_state(handle: Any) -> str | None:
    """The actor's state as this process last heard it (no request is sent); None if this
    process has not called it or is not connected."""
    cw = global_worker()
    if cw is None:
        return None
    state = cw.actors.state_of(handle._actor_id)
    return str(state) if state is not None else None


def actor_identity(handle: Any) -> tuple[str, str]:
    """The actor's class name and hex id, as its repr shows them."""
    return handle._class_name, handle._actor_id_hex()


# ------------------------------------------------------------------ the cluster (juno.widgets.cluster)
def cluster_snapshot(connection: Any = None) -> dict:
    """What the cluster widget shows, gathered now from the GCS (nodes with their heartbeat
    figures, actors) and each live node's manager (its running tasks)."""
    cw = connection or global_worker()
    if cw is None:
        return {"connected": False}
    nodes_out, running_tasks, errors = [], 0, []
    for n in cw.gcs_call("get_nodes"):
        row = {"node_id": n["node_id"], "address": n.get("address", ""), "ip": n.get("ip", ""),
               "alive": bool(n.get("alive")), "usage": {}}
        if row["alive"]:
            try:
                workers = cw.node_call("list_workers", address=n["address"])
                running_tasks += sum(1 for w in workers if w.get("is_alive") and w.get("leased")
                                     and not w.get("actor_id"))
            except Exception as e:  # noqa: BLE001 - one slow node must not blank the widget
                errors.append(f"node {n['node_id'][:12]}: {e}")
            row["usage"] = node_usage(n, n.get("object_store"))  # store use as the node's heartbeats carry it
        nodes_out.append(row)
    actors: dict[str, int] = {}
    for a in cw.gcs_call("list_actors"):
        state = str(a.get("state"))
        actors[state] = actors.get(state, 0) + 1
    return {"connected": True, "address": str(getattr(cw.gcs, "address", "")).replace("tcp://", ""),
            "nodes": nodes_out, "running_tasks": running_tasks, "actors": actors, "errors": errors}


# ------------------------------------------------------------------ the kernel extension (juno.kernel_ext)
def add_submit_hook(hook: Callable[[Any], None], connection: Any = None) -> None:
    """Call ``hook(entry)`` on the submitting thread as each task, actor call or actor creation
    is submitted (once, however often added). ``entry.task_id`` is the task's id (None for an
    actor creation) and ``entry.actor_id`` the actor's (None for a plain task)."""
    cw = connection or global_worker()
    if hook not in cw.submit_hooks:
        cw.submit_hooks.append(hook)


def claim_actor_output(handle: Any, connection: Any = None) -> None:
    """The output of ``handle``'s actor belongs with the cell running now, as if this process had
    created it: for actors a library starts elsewhere on this driver's behalf (Serve's replicas are
    created by its controller), so their prints land under the cell that asked for them."""
    cw = connection or global_worker()
    if cw is None or not cw.submit_hooks:
        return
    from juno.owner.actor_submitter import ActorCreation

    cw.note_submit(ActorCreation(handle._actor_id))


def set_output_router(route: Callable[[list], None] | None, connection: Any = None) -> None:
    """Give the driver's worker output to ``route(entries)`` on Juno's IO thread instead of
    printing it; None prints it again. Each entry is ``(prefix, is_err, line, task_id, actor_id)``
    (the ids may be missing)."""
    (connection or global_worker()).log_router = route


def output_router(connection: Any = None) -> Callable[[list], None] | None:
    """The ``route`` that ``set_output_router`` installed, or None."""
    return (connection or global_worker()).log_router


def call_later(delay_s: float, fn: Callable[[], None], connection: Any = None) -> None:
    """Run ``fn()`` on Juno's IO thread in ``delay_s`` seconds."""
    (connection or global_worker()).loop.call_later(delay_s, fn)


def cancel_unfinished(task_ids: list[bytes], connection: Any = None, timeout_s: float = 5.0) -> int:
    """Cancel, as ``juno.cancel(ref)`` does (no force, recursive), each of these tasks or actor
    calls that has not finished, in the order given; how many. Decided on Juno's IO thread,
    after every submission made before this call, so a task submitted a moment ago counts."""
    cw = connection or global_worker()
    if cw is None:
        return 0
    if cw.loop.in_loop_thread():
        return _cancel_unfinished_here(cw, task_ids)
    done: concurrent.futures.Future = concurrent.futures.Future()

    def on_loop() -> None:
        try:
            done.set_result(_cancel_unfinished_here(cw, task_ids))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            done.set_exception(e)

    cw.loop.call_soon(on_loop)
    try:
        return done.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:  # the IO thread is stuck: the cancels still run when it frees
        return sum(1 for task_id in task_ids if task_id in cw.tasks.entries)


def _cancel_unfinished_here(cw: Any, task_ids: list[bytes]) -> int:
    cancelled = 0
    for task_id in task_ids:
        if task_id not in cw.tasks.entries:
            continue  # finished already
        cw.tasks.cancel(task_id, False, True)
        cancelled += 1
    return cancelled
