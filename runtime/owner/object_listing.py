"""One process's object references, as the state API lists them (list_objects, `juno memory`).

Runs on the core worker's IO thread when the ``object_refs`` request arrives; costs
nothing until then. Each object this process references gets one row with Ray's
reference type, chosen in Ray's order of precedence:

* LOCAL_REFERENCE: this process holds ObjectRefs to it;
* USED_BY_PENDING_TASK: a task it submitted still needs it as an argument;
* CAPTURED_IN_OBJECT: its ref travelled inside another value or to another process;
* PINNED_IN_MEMORY: the owner keeps the value with nothing else holding it (a task
  result nobody took a ref to yet, a generator item not consumed).

Sizes of values inline in memory are known here; for values in a node's shared-memory
store the state API asks that node (object_info).
"""
from __future__ import annotations

from juno import ids
from juno.observability import task_events as te

PUT_SUFFIX = b"\xff\xff\xff\xff"


def entry_state(entry) -> str:
    """What the owner knows of a pending task's state (RUNNING is the executing worker's news)."""
    ev = entry.ev
    if ev is None:
        return "PENDING_ARGS_AVAIL"
    if ev[4] is not None:
        return ev[4]
    if ev[2] is not None:
        return "SUBMITTED_TO_WORKER"
    if ev[1] is not None:
        return "PENDING_NODE_ASSIGNMENT"
    return "PENDING_ARGS_AVAIL"


def reference_table(cw) -> dict:
    refs = cw.refs.snapshot()
    values = cw.owned
    entries = cw.tasks.entries
    sites = cw.call_sites
    rows = []
    for oid, (local, submitted, owned, escaped, borrowed_from) in refs.items():
        if len(oid) == ids.ACTOR_ID_LEN:
            continue  # an actor's handles, counted like refs; not an object
        value = values.get(oid)
        if local:
            ref_type = "LOCAL_REFERENCE"
        elif submitted:
            ref_type = "USED_BY_PENDING_TASK"
        elif escaped:
            ref_type = "CAPTURED_IN_OBJECT"
        elif owned and value is not None:
            ref_type = "PINNED_IN_MEMORY"
        else:
            continue  # owned, not made yet and nobody waits for it: nothing to show
        storage, size, where = None, None, None
        if value is not None:
            kind = value[0]
            if kind == "v":
                storage, size = "INLINE", len(value[1])
            elif kind == "s":
                storage, where = "SHARED_MEMORY", value[1]
            else:
                storage = "INLINE"
        entry = entries.get(oid[:16])
        attempt = 0
        if oid.endswith(PUT_SUFFIX):
            status = "NIL"
        elif entry is not None:
            status, attempt = entry_state(entry), entry.attempt
        elif value is not None:
            status = te.FAILED if te._is_error_value(value) else te.FINISHED
        else:
            status = "NIL"
        site = sites.get(oid, "") if sites is not None else "disabled"
        rows.append((oid, ref_type, storage, where, size, cw.address if owned else borrowed_from, site, status,
                     attempt))
    return {
        "address": cw.address, "pid": cw.pid, "worker_id": cw.worker_id, "node_id": cw.node_id,
        "ip": cw.node.get("ip", "127.0.0.1"), "type": "DRIVER" if cw.mode == "driver" else "WORKER",
        "job_id": cw.job_id, "call_sites": sites is not None, "refs": rows,
    }
