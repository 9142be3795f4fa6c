"""The control messages that cross roles, each defined once, as a builder.

A message on the wire stays a plain tuple ``(op, *fields)``: the transport dispatches only
exact tuples (runtime/comm/transport.py), and a plain tuple pickles fastest. What this module
adds is the one place that spells out each message's fields and their order; every sender
builds the message here, and the receiver's handler for ``op`` takes the fields, in the
same order, as its parameters (tests/unit/test_messages.py holds the two together).
"""
from __future__ import annotations

# ---- owner -> worker (handled by juno.worker.executor.TaskExecutor)


def push_task(spec: tuple, lease_info: tuple | None) -> tuple:
    """Run ``spec``, a TaskSpec sent as the plain tuple (a class reference would cost more to
    pickle than the rest of it; the worker wraps it again). ``lease_info`` is (lease id, gpu
    ids, resources) for a task on a leased worker, None for an actor call."""
    return ("push_task", tuple(spec), lease_info)


def cancel_task(task_id: bytes, force: bool, recursive: bool) -> tuple:
    """Cancel a queued or running task; ``force`` kills a running one's worker, ``recursive``
    cancels the tasks it submitted too."""
    return ("cancel_task", task_id, force, recursive)


# ---- worker -> owner (handled by juno.owner.task_submitter.TaskSubmitter)


def task_result(task_id: bytes, results: list, retryable: bool, worker_id: bytes, worker_exiting: bool,
                run: tuple | None) -> tuple:
    """A task's (or actor call's) return values, each ("v", blob) inline or a store location;
    ``retryable`` when its exception may be retried, ``worker_exiting`` when the worker exits after it
    (max_calls), ``run`` its (start, end) when task events are on."""
    return ("task_result", task_id, results, retryable, worker_id, worker_exiting, run)


def gen_item(task_id: bytes, index: int | None, value: tuple) -> tuple:
    """Item ``index`` of a streaming task; index None: the error that ended it after the items sent."""
    return ("gen_item", task_id, index, value)


# ---- node manager, GCS -> owner (handled by juno.owner.core_worker and the actor submitter)


def warning(text: str) -> tuple:
    """A warning for the driver to print (an infeasible task, an actor that cannot be placed)."""
    return ("warning", text)


def actor_update(actor_id: bytes, info: dict) -> tuple:
    """An actor's new state (state, address, death cause ...) for its owner and subscribers."""
    return ("actor_update", actor_id, info)
