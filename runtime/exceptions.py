"""Exceptions raised by Juno, named and arranged like Ray's ``ray.exceptions``.

User code written against Ray catches these by name (``except RayTaskError``,
``except GetTimeoutError``), so the names and the class hierarchy follow Ray's.
Every exception survives a pickle round trip with its attributes, because
errors are created in worker processes and re-raised in the driver.
"""

from __future__ import annotations

import os
import pickle
import threading
import traceback
import types
from typing import Any

__all__ = [
    "RayError", "RayTaskError", "RayActorError", "ActorDiedError",
    "ActorUnavailableError", "ActorUnschedulableError", "TaskUnschedulableError",
    "TaskCancelledError", "GetTimeoutError", "WorkerCrashedError", "NodeDiedError",
    "LocalRayletDiedError", "RaySystemError", "ObjectLostError", "OwnerDiedError",
    "ObjectFetchTimedOutError", "ObjectReconstructionFailedError",
    "ObjectReconstructionFailedMaxAttemptsExceededError",
    "ObjectReconstructionFailedLineageEvictedError",
    "ReferenceCountingAssertionError", "ObjectStoreFullError", "OutOfDiskError",
    "OutOfMemoryError", "RuntimeEnvSetupError", "PendingCallsLimitExceeded",
    "AsyncioActorExit", "CrossLanguageError", "PlasmaObjectNotAvailable",
    "JunoError", "JunoTaskError", "JunoActorError", "format_remote_traceback",
    "JunoWarning", "NotAnObjectRefWarning", "ClusterAuthError", "VersionMismatchError",
]

# Directory of the juno package: frames from files in here are the runtime's own.
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_PKG_DIR_REAL = os.path.realpath(_PKG_DIR)


# --- Traceback formatting --------------------------------------------------

def _is_internal_frame(filename: str) -> bool:
    """True if ``filename`` lives inside the juno package (runtime plumbing)."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    for root in (_PKG_DIR, _PKG_DIR_REAL):
        if path == root or path.startswith(root + os.sep):
            return True
    return False


def _strip_internal(te: traceback.TracebackException, seen: set[int]) -> None:
    """Drop runtime frames from ``te`` and every exception chained to it."""
    if id(te) in seen:
        return
    seen.add(id(te))
    user = [f for f in te.stack if not _is_internal_frame(f.filename)]
    # If every frame is internal the error came from the runtime itself; keep
    # them all so the bug stays diagnosable.
    if user:
        te.stack = traceback.StackSummary.from_list(user)
    for nested in (te.__cause__, te.__context__):
        if nested is not None:
            _strip_internal(nested, seen)
    for sub in getattr(te, "exceptions", None) or ():
        _strip_internal(sub, seen)


def format_remote_traceback(exc: BaseException) -> str:
    """Format ``exc``'s traceback without Juno's own frames.

    Tasks run under several layers of runtime code; users only care about
    the frames of their own function, so those are the ones kept.
    """
    te = traceback.TracebackException.from_exception(exc)
    _strip_internal(te, set())
    return "".join(te.format())


# --- Base class ------------------------------------------------------------

class RayError(Exception):
    """Base of every error raised by the runtime, so ``except RayError`` catches all."""
    _default_message = "An error occurred in the Juno runtime."
    # Constructor parameters, in positional order, rebuilt by ``__reduce__``.
    _fields: tuple[str, ...] = ()

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or (self._default_message,)))

    def __reduce__(self):
        fields = type(self)._fields
        ctor_args = tuple(getattr(self, f, None) for f in fields) if fields else tuple(self.args)
        extra = {k: v for k, v in self.__dict__.items() if k not in fields}
        return (type(self), ctor_args, extra or None)

    def _repr_html_(self) -> str:
        from juno.widgets.reprs import error_html
        return error_html(self)


# --- Task errors -----------------------------------------------------------

_TASK_ERROR_FIELDS = ("function_name", "traceback_str", "cause", "proctitle",
               "pid", "ip", "actor_repr", "actor_id")
# Attributes never copied from a cause onto its dual-class twin.
_NO_COPY = {"__dict__", "__weakref__", "args", "__traceback__", "__context__",
            "__cause__", "__suppress_context__", "__notes__"}

_dual_classes: dict[type, type | None] = {}
_dual_lock = threading.Lock()


def _try_roundtrip(dumps, loads, obj: Any) -> bytes | None:
    """Return ``dumps(obj)`` if it also loads back, else None."""
    try:
        data = dumps(obj)
        loads(data)
        return data
    except Exception:
        return None


def _pack_cause(cause: BaseException | None) -> tuple[str, Any]:
    """Make the cause portable, degrading step by step down to None.

    Exceptions whose ``__init__`` takes required arguments do not unpickle
    with the default protocol, and classes defined in notebooks only pickle
    with cloudpickle, so plain pickle is tried first and then fallbacks.
    """
    if cause is None:
        return ("none", None)
    if _try_roundtrip(pickle.dumps, pickle.loads, cause) is not None:
        return ("plain", cause)
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle is a dependency
        return ("none", None)
    data = _try_roundtrip(cloudpickle.dumps, pickle.loads, cause)
    if data is not None:
        return ("cloudpickle", data)
    for state in (dict(getattr(cause, "__dict__", {})), {}):
        try:  # rebuild without calling __init__, with or without user attributes
            data = cloudpickle.dumps((type(cause), tuple(cause.args), state))
            _rebuild_exception(*pickle.loads(data))
            return ("rebuild", data)
        except Exception:
            pass
    return ("none", None)


def _new_exception(cls: type, args: tuple) -> BaseException:
    """Create an instance of exception ``cls`` without running its ``__init__``."""
    try:
        obj = cls.__new__(cls, *args)
    except Exception:
        obj = cls.__new__(cls)
    obj.args = args
    return obj


def _rebuild_exception(cls: type, args: tuple, state: dict) -> BaseException:
    """Recreate an exception whose constructor cannot be called with its args."""
    obj = _new_exception(cls, args)
    obj.__dict__.update(state)
    return obj


def _unpack_cause(packed: tuple[str, Any]) -> BaseException | None:
    kind, value = packed
    try:
        if kind == "plain":
            return value
        if kind == "cloudpickle":
            return pickle.loads(value)
        if kind == "rebuild":
            return _rebuild_exception(*pickle.loads(value))
    except Exception:
        return None
    return None


def _rebuild_task_error(cls: type, fields: dict[str, Any]) -> "RayTaskError":
    fields = dict(fields)
    fields["cause"] = _unpack_cause(fields["cause"])
    return cls(**fields)


def _rebuild_dual(plain: "RayTaskError", extra: dict | None = None) -> "RayTaskError":
    obj = plain.as_instanceof_cause()
    if extra:
        obj.__dict__.update(extra)
    return obj


def _dual_reduce(self: "RayTaskError"):
    """``__reduce__`` of dual-class instances: rebuild from the plain error."""
    plain = self.to_plain()
    cause_dict = getattr(self.cause, "__dict__", {})
    extra = {k: v for k, v in self.__dict__.items()
             if k not in _TASK_ERROR_FIELDS and k not in cause_dict}
    return (_rebuild_dual, (plain, extra or None))


def _dual_class_for(cause_cls: type) -> type | None:
    """Return (and cache) a class deriving from RayTaskError and ``cause_cls``."""
    with _dual_lock:
        if cause_cls in _dual_classes:
            return _dual_classes[cause_cls]
        name = f"RayTaskError({cause_cls.__name__})"
        try:
            cls = type(name, (RayTaskError, cause_cls), {
                "__module__": __name__,
                "__qualname__": name,
                "__reduce__": _dual_reduce,
                "_is_dual": True,
            })
        except Exception:  # final class, layout conflict, refusing __init_subclass__
            cls = None
        _dual_classes[cause_cls] = cls
        return cls


class RayTaskError(RayError):
    """A task (or actor method) raised; carries the remote traceback and cause.

    ``ray.get`` raises ``as_instanceof_cause()`` so that ``except ValueError``
    in user code still catches a ValueError raised inside a remote function.
    """

    _is_dual = False

    def __init__(self, function_name: str, traceback_str: str,
                 cause: BaseException | None = None, proctitle: str | None = None,
                 pid: int | None = None, ip: str | None = None,
                 actor_repr: str | None = None, actor_id: str | None = None) -> None:
        super().__init__(function_name, traceback_str, cause)
        self.function_name = function_name
        self.traceback_str = traceback_str or ""
        self.cause = cause
        self.proctitle = proctitle or f"juno::{function_name}()"
        self.pid = os.getpid() if pid is None else pid
        self.ip = ip
        self.actor_repr = actor_repr
        self.actor_id = actor_id

    @classmethod
    def from_exception(cls, exc: BaseException, function_name: str, **kwargs: Any
                       ) -> "RayTaskError":
        """Wrap ``exc`` raised by ``function_name``, keeping only user frames."""
        return cls(function_name, format_remote_traceback(exc), exc, **kwargs)

    def __str__(self) -> str:
        where = [f"pid={self.pid}"]
        if self.ip:
            where.append(f"ip={self.ip}")
        if self.actor_id:
            where.append(f"actor_id={self.actor_id}")
        if self.actor_repr:
            where.append(f"repr={self.actor_repr}")
        title = self.proctitle
        if self.function_name and self.function_name not in title:
            title += f" in {self.function_name}()"
        header = f"{title} ({', '.join(where)})"
        body = self.traceback_str.rstrip("\n")
        if not body and self.cause is not None:
            body = f"{type(self.cause).__name__}: {self.cause}"
        return f"{header}\n{body}" if body else header

    def to_plain(self) -> "RayTaskError":
        """A plain RayTaskError with the same fields (drops the dual class)."""
        if not self._is_dual and type(self) is RayTaskError:
            return self
        return RayTaskError(**{f: getattr(self, f, None) for f in _TASK_ERROR_FIELDS})

    def as_instanceof_cause(self) -> "RayTaskError":
        """Return an error that is an instance of RayTaskError and the cause's class.

        Falls back to the plain RayTaskError when the cause is missing or its
        class cannot be subclassed.
        """
        cause = self.cause
        if cause is None or isinstance(self, type(cause)):
            return self
        cause_cls = type(cause)
        while getattr(cause_cls, "_is_dual", False):  # nested task failure
            cause_cls = cause_cls.__bases__[1]
        if isinstance(self, cause_cls):
            return self
        dual_cls = _dual_class_for(cause_cls)
        if dual_cls is None:
            return self
        try:
            obj = _new_exception(dual_cls, tuple(cause.args))
        except Exception:
            return self
        # Builtin-level attributes (OSError.errno, StopIteration.value, slots...).
        for klass in cause_cls.__mro__[:-1]:  # skip object (__class__)
            for attr, desc in vars(klass).items():
                if attr in _NO_COPY or attr.startswith("__") or not isinstance(
                        desc, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                    continue
                try:
                    setattr(obj, attr, getattr(cause, attr))
                except Exception:
                    pass
        obj.__dict__.update(getattr(cause, "__dict__", {}))
        for f in _TASK_ERROR_FIELDS:
            obj.__dict__[f] = getattr(self, f, None)
        return obj

    def __reduce__(self):
        fields = {f: getattr(self, f, None) for f in _TASK_ERROR_FIELDS}
        fields["cause"] = _pack_cause(self.cause)
        return (_rebuild_task_error, (type(self), fields))


# --- Actor errors ----------------------------------------------------------

def _id_text(actor_id: Any) -> str:
    return actor_id.hex() if isinstance(actor_id, (bytes, bytearray)) else str(actor_id)


class RayActorError(RayError):
    """An actor could not run the task: it died or is unreachable."""
    _fields = ("actor_id", "error_msg")

    def __init__(self, actor_id: Any = None, error_msg: str | None = None) -> None:
        self.actor_id = actor_id
        self.error_msg = error_msg
        super().__init__(self._message())

    def _message(self) -> str:
        who = f"The actor {_id_text(self.actor_id)}" if self.actor_id else "The actor"
        if self.error_msg:
            return f"{who} died unexpectedly before finishing this task: {self.error_msg}"
        return f"{who} died unexpectedly before finishing this task."


class ActorDiedError(RayActorError):
    """The actor is dead; says why (creation failed, killed, process exited...)."""
    _fields = ("actor_id", "error_msg", "cause", "preempted")

    def __init__(self, actor_id: Any = None, error_msg: str | None = None,
                 cause: BaseException | None = None, preempted: bool = False) -> None:
        self.cause = cause  # the RayTaskError from the constructor, if it raised
        self.preempted = preempted
        super().__init__(actor_id, error_msg)

    @property
    def actor_init_failed(self) -> bool:
        """True when the actor died because its ``__init__`` raised."""
        return self.cause is not None

    def _message(self) -> str:
        who = f"The actor {_id_text(self.actor_id)}" if self.actor_id else "The actor"
        if self.cause is not None:
            msg = f"{who} died because of an error raised in its creation task:\n{self.cause}"
        elif self.error_msg:
            msg = f"{who} died unexpectedly before finishing this task: {self.error_msg}"
        else:
            msg = (f"{who} died unexpectedly before finishing this task. It may have "
                   "been killed, run out of memory, or its process may have exited.")
        if self.preempted:
            msg += " The actor's node was preempted."
        return msg


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable; the task may or may not have run."""

    def _message(self) -> str:
        who = f"The actor {_id_text(self.actor_id)}" if self.actor_id else "The actor"
        reason = f": {self.error_msg}" if self.error_msg else ""
        return (f"{who} is unavailable{reason}. The task may or may not have been "
                "executed on the actor.")


class _MessageError(RayError):
    """Helper base: one optional ``error_message`` joined to a fixed prefix."""
    _prefix = ""
    _fields = ("error_message",)

    def __init__(self, error_message: str | None = None) -> None:
        self.error_message = error_message
        text = f"{self._prefix}: {error_message}" if error_message else self._default_message
        super().__init__(text)


class ActorUnschedulableError(_MessageError):
    """The actor can never be scheduled (e.g. its placement group was removed)."""
    _prefix = "The actor is not schedulable"
    _default_message = ("The actor is not schedulable: no node can satisfy its "
                        "resource or scheduling requirements.")


class TaskUnschedulableError(_MessageError):
    """The task can never be scheduled (e.g. its node or placement group is gone)."""
    _prefix = "The task is not schedulable"
    _default_message = ("The task is not schedulable: no node can satisfy its "
                        "resource or scheduling requirements.")


class TaskCancelledError(RayError):
    """The task was cancelled (``cancel()``) before or while it ran."""
    _fields = ("task_id", "error_message")

    def __init__(self, task_id: Any = None, error_message: str | None = None) -> None:
        self.task_id = task_id
        self.error_message = error_message
        if error_message:
            text = error_message
        elif task_id is not None:
            text = f"Task {_id_text(task_id)} was cancelled."
        else:
            text = "This task or one of its dependencies was cancelled."
        super().__init__(text)


class GetTimeoutError(RayError, TimeoutError):
    """``get()`` timed out; also a builtin TimeoutError for generic handlers."""
    _default_message = "Get timed out: the object was not ready before the timeout."


class WorkerCrashedError(RayError):
    """The worker process died while running the task."""
    _default_message = ("The worker died unexpectedly while executing this task. "
                        "Check the worker logs for more information.")


class NodeDiedError(RayError):
    """The node running the task or holding the object died."""
    _default_message = "The node running this task or holding this object died."


class LocalRayletDiedError(RayError):
    """The node manager of this process' node died."""
    _default_message = ("The task's local node manager died. Check the node logs "
                        "for more information.")


class RaySystemError(RayError):
    """An internal runtime failure, not caused by user code."""
    _fields = ("client_exc", "traceback_str")

    def __init__(self, client_exc: Any = None, traceback_str: str | None = None) -> None:
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        text = f"System error: {client_exc}" if client_exc is not None else \
            "System error: an internal error occurred in the Juno runtime."
        if traceback_str:
            text += f"\ntraceback: {traceback_str}"
        super().__init__(text)


# --- Object errors ---------------------------------------------------------

class ObjectLostError(RayError):
    """An object's value is no longer available anywhere in the cluster."""
    _fields = ("object_ref_hex", "owner_address", "call_site", "reason")
    _reason = ("All copies of the object have been lost, for example because the "
               "node holding it died.")

    def __init__(self, object_ref_hex: str | None = None, owner_address: Any = None,
                 call_site: str | None = None, reason: str | None = None) -> None:
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        self.reason = reason  # what happened to this object in particular (e.g. its node died)
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"Failed to retrieve object {self.object_ref_hex or '<unknown>'}."
        if self.call_site:
            where = f"The ObjectRef was created at: {self.call_site}"
        else:
            where = "Where the ObjectRef was created was not recorded."
        owner = f" Owner address: {self.owner_address}." if self.owner_address else ""
        detail = f"\n\nWhat happened: {self.reason}" if self.reason else ""
        return f"{head} {where}\n\n{self._reason}{owner}{detail}"


class OwnerDiedError(ObjectLostError):
    """The worker that owns the object (created it) exited."""
    _reason = ("The object's owner has exited. The owner is the worker that first "
               "created the ObjectRef via .remote() or put().")


class ObjectFetchTimedOutError(ObjectLostError):
    """No location for the object was found before the fetch timeout."""
    _reason = ("Fetching the object timed out: the node holding it did not send it "
               "in time (it may be overloaded, unreachable or hung).")


class ObjectReconstructionFailedError(ObjectLostError):
    """The lost object could not be recomputed from its lineage."""
    _reason = ("The object cannot be reconstructed because it was created by an "
               "actor, by put(), or its ObjectRef was created by another worker.")


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectLostError):
    """Recomputing the object exhausted the creating task's retries."""
    _reason = ("The object cannot be reconstructed because the maximum number of "
               "task retries has been exceeded. Set @remote(max_retries=N) "
               "(default 3) to allow more.")


class ObjectReconstructionFailedLineageEvictedError(ObjectLostError):
    """The lineage needed to recompute the object was evicted."""
    _reason = ("The object cannot be reconstructed because its lineage has been "
               "evicted to reduce memory pressure.")


class ReferenceCountingAssertionError(ObjectLostError):
    """The object was already freed by reference counting (a runtime bug)."""
    _reason = ("The object has already been deleted by the reference counting "
               "protocol. This should not happen.")


class ObjectStoreFullError(RayError):
    """The object store has no room for a new object even after spilling."""
    _default_message = ("The object store is full and no more objects can be put. "
                        "Free references to objects you no longer need, or increase "
                        "object_store_memory.")


class OutOfDiskError(RayError):
    """The node's disk is full, so objects cannot be spilled or created."""
    _default_message = ("The local disk is full, so the object could not be created "
                        "or spilled. Free some disk space and retry.")


class OutOfMemoryError(RayError):
    """The task or actor was killed because the node ran low on memory."""
    _default_message = ("The task or actor was killed because the node was running "
                        "low on memory. Reduce its memory use, or set the 'memory' "
                        "option so fewer run at once.")


class RuntimeEnvSetupError(_MessageError):
    """The task's or actor's runtime_env could not be set up."""
    _prefix = "Failed to set up runtime environment"
    _default_message = "Failed to set up the runtime environment."


class PendingCallsLimitExceeded(RayError):
    """An actor handle already has ``max_pending_calls`` calls in flight."""
    _default_message = ("The actor has too many pending calls; the limit is set by "
                        "its max_pending_calls option.")


class AsyncioActorExit(RayError):
    """Raised inside an async actor to make it exit gracefully."""
    _default_message = "The asyncio actor is exiting."


class CrossLanguageError(RayError):
    """An error raised by code in another language; Juno is Python-only."""
    _default_message = "An error was raised by a task written in another language."


class PlasmaObjectNotAvailable(Exception):
    """An object was not available in the local store within the timeout."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or ("The object was not available within the timeout.",)))


# --- Warnings --------------------------------------------------------------

class JunoWarning(UserWarning):
    """Juno accepted something Ray would refuse, or that means less here than in Ray."""


class NotAnObjectRefWarning(JunoWarning):
    """``get()`` was given a value that is not an ObjectRef and returned it unchanged (Ray raises)."""


# Juno-named aliases: same classes, so either name catches the same errors.
JunoError = RayError
JunoTaskError = RayTaskError
JunoActorError = RayActorError


# ---------------------------------------------------------------------------- connecting to a cluster
class ClusterAuthError(ConnectionError):
    """The cluster token is missing, malformed, or not the cluster's."""


class VersionMismatchError(ConnectionError):
    """A peer refused this process at the handshake: it runs another Juno (or protocol) version."""
