"""Identifiers: compact bytes, shown as hex.

A task id is a per-process random prefix plus a counter (no syscall per task);
a return object's id is its task id plus the return index, so an object names
the task that makes it, which lineage reconstruction relies on.
"""
from __future__ import annotations

import itertools
import os
import struct

TASK_ID_LEN = 16
OBJECT_ID_LEN = 20
# An actor's id; its owner also counts the actor's handles as references to this id, which
# its length tells apart from object ids (runtime/actor.py, CoreWorker._free_owned).
ACTOR_ID_LEN = 16
_INDEX = struct.Struct("<I")


class IdGenerator:
    """Unique ids for one process without a system call each."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = itertools.count(1)

    def task_id(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(8, "little")


def object_id(task_id: bytes, index: int) -> bytes:
    return task_id + _INDEX.pack(index)


def task_of(object_id_: bytes) -> bytes:
    return object_id_[:TASK_ID_LEN]


def index_of(object_id_: bytes) -> int:
    return _INDEX.unpack_from(object_id_, TASK_ID_LEN)[0]


def random_id(n: int = 16) -> bytes:
    return os.urandom(n)


def job_hex(job_id: int) -> str:
    """A job id as Ray shows it: the 4-byte little-endian number in hex (job 1 is ``01000000``)."""
    return job_id.to_bytes(4, "little").hex()
