"""Turning values into bytes and back, with ObjectRefs tracked on the way.

Values are pickled with protocol 5 through cloudpickle (so classes and functions
defined in a notebook travel by value) and out-of-band buffers (so large numpy,
Arrow and torch buffers are never copied into the pickle). ObjectRefs found
inside a value are recorded, because the owner must know they escaped.
"""
from __future__ import annotations

import io
import pickle
import sys
import threading
import warnings
from typing import Any, Callable

import cloudpickle

from juno.owner import code_pickling
from juno.store import format as fmt

_local = threading.local()

# Set while this process has objects whose seal is still queued (runtime/store/client.py): called
# before a ref leaves the process, since its receiver may pin the object at once.
before_refs_leave: Callable[[], None] | None = None


class SerializedObject:
    """A pickled value: pickle bytes, out-of-band buffers and the refs it contains."""

    __slots__ = ("data", "buffers", "contained_refs", "flags", "total_bytes")

    def __init__(self, data: bytes, buffers: list, contained_refs: list, flags: int = 0):
        self.data = data
        self.buffers = buffers
        self.contained_refs = contained_refs
        self.flags = flags
        self.total_bytes = len(data) + sum(b.nbytes for b in buffers)

    def to_bytes(self) -> bytes:
        return fmt.pack(self.flags, self.data, self.buffers)


def recording_refs() -> list | None:
    """The list collecting refs for the serialization in progress on this thread, if any."""
    return getattr(_local, "refs", None)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, plus zero-copy torch CPU tensors (torch's own pickling copies their storage),
    and code objects that keep their file name (see code_pickling)."""

    dispatch_table = code_pickling.dispatch_table(cloudpickle.Pickler.dispatch_table, code_pickling.reduce_code)

    def reducer_override(self, obj: Any) -> Any:
        tensor = getattr(sys.modules.get("torch"), "Tensor", None)  # None while torch is being imported
        if tensor is not None and type(obj) is tensor and _zero_copy_tensor(obj):
            return _rebuild_tensor, (obj.detach().numpy(),)
        return super().reducer_override(obj)


def _zero_copy_tensor(t: Any) -> bool:
    return (t.device.type == "cpu" and not t.requires_grad and t.layout is sys.modules["torch"].strided
            and t.dtype not in _TORCH_ONLY_DTYPES() and t.is_contiguous())


def _TORCH_ONLY_DTYPES() -> tuple:
    torch = sys.modules["torch"]
    return tuple(getattr(torch, n) for n in ("bfloat16", "complex32", "float8_e4m3fn", "float8_e5m2")
                 if hasattr(torch, n))


def _rebuild_tensor(array: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        # A read-only view of shared memory, as numpy arrays are; writing to it is an error.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(array)


class _CodePickler(_Pickler):
    """Pickles exported functions and classes: their code carries the source lines it spans."""

    dispatch_table = code_pickling.dispatch_table(cloudpickle.Pickler.dispatch_table,
                                                 code_pickling.reduce_code_with_source)


def _dumps(value: Any, buffer_callback) -> bytes:
    f = io.BytesIO()
    _Pickler(f, protocol=5, buffer_callback=buffer_callback).dump(value)
    return f.getvalue()


# Values that hold no refs, no buffers and no code: the C pickler writes them exactly as
# cloudpickle's would, without building a Pickler (most results of small calls are these).
_PLAIN_TYPES = frozenset({bytes, str, int, float, bool, type(None)})


def serialize(value: Any, *, error: bool = False) -> SerializedObject:
    """Pickle ``value``, recording the refs in it (``contained_refs``)."""
    if type(value) in _PLAIN_TYPES:
        return SerializedObject(pickle.dumps(value, 5), [], [], fmt.FLAG_ERROR if error else 0)
    buffers: list = []
    if _plain_array(value):
        # C pickle: the array's bytes go out of band all the same, and a numeric array holds
        # no refs and no code, so cloudpickle's per-object Python hook has nothing to do.
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        return SerializedObject(data, [b.raw() for b in buffers], [], fmt.FLAG_ERROR if error else 0)
    outer = getattr(_local, "refs", None)
    refs: list = []
    _local.refs = refs
    try:
        data = _dumps(value, buffers.append)
    finally:
        _local.refs = outer
    views = [b.raw() for b in buffers]
    return SerializedObject(data, views, refs, fmt.FLAG_ERROR if error else 0)


def _plain_array(value: Any) -> bool:
    """A numpy array (not a subclass) whose items are numbers, not Python objects."""
    # getattr: another thread may be importing numpy right now (workers import it lazily), and a
    # module still being initialised has no ``ndarray`` yet; no value can be one before it does.
    ndarray = getattr(sys.modules.get("numpy"), "ndarray", None)
    return ndarray is not None and type(value) is ndarray and not value.dtype.hasobject


def dumps_code(obj: Any) -> bytes:
    """Pickle a function or class by value when it lives in __main__ or a notebook."""
    f = io.BytesIO()
    _CodePickler(f, protocol=5).dump(obj)
    return f.getvalue()


def deserialize_view(view: memoryview) -> tuple[Any, bool]:
    """Rebuild a value from the common layout; returns (value, is_error)."""
    flags, data, buffers = fmt.unpack(view)
    value = pickle.loads(data, buffers=buffers)
    return value, bool(flags & fmt.FLAG_ERROR)


def deserialize_bytes(blob: bytes) -> tuple[Any, bool]:
    return deserialize_view(memoryview(blob))


def describe_unpicklable(value: Any, label: str) -> str:
    """Explain why ``value`` can't be pickled, naming the culprit where possible."""
    try:
        cloudpickle.dumps(value, protocol=5)
    except Exception as exc:  # noqa: BLE001
        culprit = _find_unpicklable_member(value)
        where = f" (the problem is {culprit})" if culprit else ""
        return (
            f"Could not serialize {label} of type {type(value).__name__}{where}: "
            f"{type(exc).__name__}: {exc}. Values sent to tasks and actors must be "
            "picklable; create things like locks, sockets, open files and clients "
            "inside the task instead of passing them."
        )
    return ""


def _find_unpicklable_member(value: Any, depth: int = 0) -> str | None:
    if depth > 3:
        return None
    members: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        members = [(f"key {k!r}", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple, set)):
        members = [(f"item {i}", v) for i, v in enumerate(value)]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        members = [(f"attribute {k!r}", v) for k, v in vars(value).items()]
    elif callable(value) and getattr(value, "__closure__", None):
        names = value.__code__.co_freevars
        members = [(f"captured variable {n!r}", c.cell_contents) for n, c in zip(names, value.__closure__)]
    if callable(value) and hasattr(value, "__globals__"):
        for name in value.__code__.co_names:
            if name in value.__globals__:
                members.append((f"global {name!r}", value.__globals__[name]))
    for label, member in members:
        try:
            cloudpickle.dumps(member, protocol=5)
        except Exception:  # noqa: BLE001
            inner = _find_unpicklable_member(member, depth + 1)
            text = f"{label} ({type(member).__name__})"
            return f"{text} -> {inner}" if inner else text
    return None
