"""Turning a call's arguments and options into a task spec, shared by tasks and actors."""
from __future__ import annotations

import hashlib
from typing import Any

import cloudpickle

from juno import ids
from juno.owner import serialization
from juno.owner import task_spec as ts
from juno.object_ref import ObjectRef


def export_code(obj: Any) -> tuple[bytes, bytes]:
    """Pickle a function or class by value; its id is the hash of the bytes (redefinitions differ)."""
    blob = serialization.dumps_code(obj)
    return hashlib.sha1(blob).digest()[:16], blob


def prepare_args(cw, args: tuple, kwargs: dict, name: str) -> tuple[tuple, list, list[bytes]]:
    """Pickle call arguments; top-level ObjectRefs become dependencies resolved before the call.

    Returns (args value, dep entries, ids of the objects the task keeps alive).
    """
    if not args and not kwargs:
        return _NO_ARGS, [], []
    deps: list = []
    dep_ids: list[bytes] = []
    if args:
        args = list(args)
        for i, a in enumerate(args):
            if type(a) is ObjectRef:
                deps.append(("r", a._id, a._owner))
                dep_ids.append(a._id)
                args[i] = ts.DepMarker(len(deps) - 1)
    if kwargs:
        kwargs = dict(kwargs)
        for k, v in kwargs.items():
            if type(v) is ObjectRef:
                deps.append(("r", v._id, v._owner))
                dep_ids.append(v._id)
                kwargs[k] = ts.DepMarker(len(deps) - 1)
    try:
        serialized = serialization.serialize((args, kwargs))
    except Exception as e:  # noqa: BLE001
        raise TypeError(_explain_args(args, kwargs, name) or f"Could not serialize the arguments of {name}: {e}") from e
    if serialized.contained_refs:
        # Refs nested in the arguments stay alive until the task is done; the worker that
        # deserializes them registers as their borrower before it replies.
        dep_ids.extend(r._id for r in serialized.contained_refs)
    if serialized.total_bytes <= cw.config.max_inline_object_bytes:
        value = ("v", serialized.to_bytes())
    else:
        args_id = cw.ids.task_id() + b"\xfe\xff\xff\xff"
        cw.refs.add_owned(args_id)
        cw.shm.write(args_id, serialized.flags, serialized.data, serialized.buffers)
        cw.owned.put(args_id, ("s", cw.node_id))
        dep_ids.append(args_id)
        value = ("s", args_id, cw.node_id)
    if dep_ids:
        cw.refs.add_submitted(dep_ids)
        if serialization.before_refs_leave is not None:  # the task's worker may pin them at once
            serialization.before_refs_leave()
    return value, deps, dep_ids


_NO_ARGS = ("v", serialization.serialize(((), {})).to_bytes())  # a call without arguments: pickled once


def _explain_args(args, kwargs, name: str) -> str:
    for i, a in enumerate(args or ()):
        text = serialization.describe_unpicklable(a, f"argument {i} of {name}")
        if text:
            return text
    for k, v in (kwargs or {}).items():
        text = serialization.describe_unpicklable(v, f"keyword argument {k!r} of {name}")
        if text:
            return text
    return ""


def pickle_retry_exceptions(value: Any) -> Any:
    if value is True or not value:
        return value or None
    return cloudpickle.dumps(tuple(value))


def return_refs(cw, task_id: bytes, num_returns: int) -> list[ObjectRef]:
    refs = []
    add_owned = cw.refs.add_owned
    address = cw.address
    for i in range(num_returns):
        oid = ids.object_id(task_id, i + 1)
        add_owned(oid)
        refs.append(ObjectRef(oid, address))
    if cw.call_sites is not None and refs:
        from juno.observability.task_events import note_call_site

        note_call_site(cw, [r._id for r in refs], "task call")
    return refs
