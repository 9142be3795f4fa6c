"""The wire form of a task and the owner's bookkeeping for one.

A spec is a :class:`TaskSpec`: a tuple with named fields, built in one place
(:func:`build_spec`, which every call site uses) and read by attribute. It stays a
tuple so that it travels as a plain tuple, with no per-field work either way (see the class).
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any

try:  # the C accessor namedtuple uses: reading a field costs what ``spec[i]`` costs
    from _collections import _tuplegetter as _field
except ImportError:  # pragma: no cover - other Pythons
    def _field(index: int, doc: str) -> property:
        return property(itemgetter(index), doc=doc)

# Spec tuple layout (index reads ``spec[ts.ARGS]`` still work; new code reads ``spec.args``).
TASK_ID = 0
KIND = 1
FUNCTION = 2        # function id (normal task, actor creation) or method name (actor call)
NAME = 3            # display name for logs and errors
ARGS = 4            # ("v", blob) inline, or ("s", object_id, node_id) in shared memory
DEPS = 5            # top-level ObjectRef arguments, each a dep entry (see below)
NUM_RETURNS = 6     # int, or STREAMING
OWNER = 7           # address results go to
LOG_TO = 8          # driver address for stdout/stderr lines, or None
JOB_ID = 9
RETRY_EXC = 10      # None, True, or cloudpickled tuple of exception classes
RUNTIME_ENV = 11
ACTOR_ID = 12
EXTRA = 13          # dict of rarely used fields (concurrency_group, ...)
SPEC_LEN = 14

FIELDS = ("task_id", "kind", "function", "name", "args", "deps", "num_returns", "owner", "log_to", "job_id",
          "retry_exc", "runtime_env", "actor_id", "extra")

KIND_TASK = 0
KIND_ACTOR_CALL = 1
KIND_ACTOR_CREATE = 2

STREAMING = -1

# Dependency entries: ("v", blob) value inline; ("s", object_id, node_id) in a node's
# store; ("r", object_id, owner) to be fetched from its owner by the executing worker.


class TaskSpec(tuple):
    """One task, actor creation or actor call, as its worker receives it.

    A tuple subclass with C field accessors, not a ``typing.NamedTuple`` or a dataclass: it
    is built from a tuple in C (``TaskSpec(a_tuple)``, about 0.15 us), where a NamedTuple's
    ``__new__`` is a Python function and a frozen slotted dataclass sets and pickles field by
    field. On the wire (``push_task``) it travels as the plain tuple and the worker wraps it
    again: a pickled class reference costs more than the rest of the spec (measured per
    message, CPU time: 2.7 us more to pickle, 1 us more to unpickle; a NamedTuple 3 us and
    2.4 us). ``TaskSpec(a_tuple)`` also turns a spec that an older GCS persisted as a plain
    tuple into one. Build new specs with :func:`build_spec`.
    """

    __slots__ = ()
    _fields = FIELDS

    task_id = _field(TASK_ID, "the task's id (its return objects' ids derive from it)")
    kind = _field(KIND, "KIND_TASK, KIND_ACTOR_CALL or KIND_ACTOR_CREATE")
    function = _field(FUNCTION, "function id (task, actor creation) or method name (actor call)")
    name = _field(NAME, "display name for logs and errors")
    args = _field(ARGS, '("v", blob) inline, or ("s", object_id, node_id) in shared memory')
    deps = _field(DEPS, "top-level ObjectRef arguments, each a dep entry")
    num_returns = _field(NUM_RETURNS, "int, or STREAMING")
    owner = _field(OWNER, "address the results go to")
    log_to = _field(LOG_TO, "driver address for stdout/stderr lines, or None")
    job_id = _field(JOB_ID, "the submitting job")
    retry_exc = _field(RETRY_EXC, "None, True, or a cloudpickled tuple of exception classes")
    runtime_env = _field(RUNTIME_ENV, "the task's runtime_env (None for actor calls)")
    actor_id = _field(ACTOR_ID, "the actor (creation and calls), else None")
    extra = _field(EXTRA, "dict of rarely used fields (namespace, concurrency_group, pg, attempt ...), or None")

    def replace(self, **changes: Any) -> TaskSpec:
        """A copy with some fields changed (a retry's attempt number, inlined dependencies)."""
        spec = list(self)
        for name, value in changes.items():
            index = _INDEX.get(name)
            if index is None:
                raise TypeError(f"TaskSpec has no field {name!r}; its fields are {', '.join(FIELDS)}")
            spec[index] = value
        return TaskSpec(spec)

    def __repr__(self) -> str:
        if len(self) != SPEC_LEN:
            return f"TaskSpec({tuple.__repr__(self)})"
        return "TaskSpec(" + ", ".join(f"{f}={v!r}" for f, v in zip(FIELDS, self)) + ")"


def build_spec(*, task_id: bytes, kind: int, function: Any, name: str, args: tuple, deps: list,
               num_returns: int, owner: str, log_to: str | None, job_id: Any, retry_exc: Any,
               runtime_env: Any, actor_id: bytes | None, extra: dict | None) -> TaskSpec:
    """The one constructor of a spec: every field by name, none left out, none unknown."""
    return TaskSpec((task_id, kind, function, name, args, deps, num_returns, owner, log_to, job_id, retry_exc,
                     runtime_env, actor_id, extra))


def make_spec(**fields: Any) -> TaskSpec:
    """A spec for tests and tools: the fields not given are None (unknown names fail)."""
    return build_spec(**{**_ALL_NONE, **fields})


_ALL_NONE = dict.fromkeys(FIELDS)
_INDEX = {name: i for i, name in enumerate(FIELDS)}


class DepMarker:
    """Stands in for a top-level ObjectRef argument inside the pickled arguments."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return DepMarker, (self.index,)


class TaskEntry:
    """What an owner remembers about a task until it has finished for good."""

    __slots__ = (
        "task_id", "spec", "return_ids", "dep_ids", "retries_left", "key", "actor_id",
        "cancelled", "lease_id", "streaming", "name", "pushed", "force_cancelled",
        "children", "parent", "attempt", "ev", "ev_info_sent", "actor_handle",
    )

    def __init__(self, task_id: bytes, spec: TaskSpec, return_ids: list[bytes], dep_ids: list[bytes],
                 retries_left: int, key: Any = None, actor_id: bytes | None = None,
                 streaming: bool = False):
        self.task_id = task_id
        self.spec = spec
        self.return_ids = return_ids
        self.dep_ids = dep_ids
        self.retries_left = retries_left
        self.key = key
        self.actor_id = actor_id
        self.cancelled = False
        self.force_cancelled = False
        self.lease_id = None
        self.streaming = streaming
        self.name = spec.name
        self.pushed = False
        self.children: list[bytes] = []
        self.parent: bytes | None = None  # the task that submitted this one (None: the driver)
        self.attempt = 0
        self.ev: list | None = None  # state timestamps for the GCS (juno.observability.task_events), when enabled
        self.ev_info_sent = False
        self.actor_handle = None  # an actor call's handle: the actor lives while the call is pending
