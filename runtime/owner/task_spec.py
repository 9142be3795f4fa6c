"""The wire form of a task and the owner's bookkeeping for one.

A spec is a plain tuple (cheap to pickle, no class lookup on the far side);
the named indices below are the only place its layout is spelled out.
"""
from __future__ import annotations

from typing import Any

# Spec tuple layout.
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

KIND_TASK = 0
KIND_ACTOR_CALL = 1
KIND_ACTOR_CREATE = 2

STREAMING = -1

# Dependency entries: ("v", blob) value inline; ("s", object_id, node_id) in a node's
# store; ("r", object_id, owner) to be fetched from its owner by the executing worker.


class DepMarker:
    """Stands in for a top-level ObjectRef argument inside the pickled arguments."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return DepMarker, (self.index,)


def make_spec(**fields: Any) -> tuple:
    spec: list[Any] = [None] * SPEC_LEN
    for name, value in fields.items():
        spec[globals()[name.upper()]] = value
    return tuple(spec)


class TaskEntry:
    """What an owner remembers about a task until it has finished for good."""

    __slots__ = (
        "task_id", "spec", "return_ids", "dep_ids", "retries_left", "key", "actor_id",
        "cancelled", "lease_id", "streaming", "name", "pushed", "force_cancelled",
        "children", "parent", "attempt", "ev", "ev_info_sent", "actor_handle",
    )

    def __init__(self, task_id: bytes, spec: tuple, return_ids: list[bytes], dep_ids: list[bytes],
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
        self.name = spec[NAME]
        self.pushed = False
        self.children: list[bytes] = []
        self.parent: bytes | None = None  # the task that submitted this one (None: the driver)
        self.attempt = 0
        self.ev: list | None = None  # state timestamps for the GCS (juno.observability.task_events), when enabled
        self.ev_info_sent = False
        self.actor_handle = None  # an actor call's handle: the actor lives while the call is pending
