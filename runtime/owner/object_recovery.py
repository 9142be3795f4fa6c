"""Lineage reconstruction: an owner rebuilds objects whose only copy was on a dead node.

A task's results that live in a node's shared-memory store are lost when that node
dies (small results travel inline to the owner and never are). So when a normal task
finishes with such a result, its owner keeps the task's spec (its *lineage*) while
refs to any of its results live, and keeps the task's arguments alive with it, as
Ray's lineage references do: re-running the task needs them. When the owner hears
that a node died (or a read finds an object lost), every object it owns that lived
there is rebuilt by submitting its task again, which costs one of the task's
retries; a lost argument is rebuilt first, the same way (so chains rebuild
recursively). Where that is impossible, ``get`` raises the error that says why:

* ``ObjectLostError``: the object was made by ``put()`` (there is no task to re-run);
* ``ObjectReconstructionFailedError``: it was made by an actor task;
* ``ObjectReconstructionFailedMaxAttemptsExceededError``: the task's retries are used up
  (``max_retries=0`` included);
* ``ObjectReconstructionFailedLineageEvictedError``: its lineage was dropped to stay
  within ``lineage_max_bytes``;
* ``OwnerDiedError`` (on borrowers): the owner died; only the owner can rebuild.

LineageTable is the bookkeeping (no sockets, unit-tested); ObjectRecovery acts for a
core worker, on its IO thread.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

from juno import exceptions as exc
from juno import ids
from juno.owner import serialization
from juno.owner import task_spec as ts
from juno.owner.task_spec import TaskEntry

logger = logging.getLogger(__name__)

KIND_TASK, KIND_ACTOR, KIND_NO_RETRY = "task", "actor", "no_retry"
_ENTRY_OVERHEAD = 256  # bytes counted per entry beyond its inline arguments
_MAX_REBUILDS_PER_GET = 10


class LineageEntry:
    __slots__ = ("task_id", "spec", "key", "return_ids", "live", "retries_left", "pinned", "size", "kind")

    def __init__(self, task_id: bytes, spec: tuple | None, key: Any, return_ids: list[bytes], live: set[bytes],
                 retries_left: int, pinned: list[bytes], size: int, kind: str):
        self.task_id = task_id
        self.spec = spec            # None for markers (actor tasks, tasks that cannot retry)
        self.key = key              # the submitter's scheduling key (resources, env, strategy)
        self.return_ids = return_ids
        self.live = live            # results still owned: the entry goes when none is
        self.retries_left = retries_left
        self.pinned = pinned        # argument objects kept alive for a re-run
        self.size = size
        self.kind = kind


class LineageTable:
    """Specs of finished tasks whose results may need rebuilding, within a byte budget.

    ``unpin(object_ids)`` is called with an entry's pinned arguments when it goes.
    """

    def __init__(self, max_bytes: int, unpin: Callable[[list[bytes]], None], max_evicted: int = 10000):
        self.max_bytes = max_bytes
        self.unpin = unpin
        self.entries: collections.OrderedDict[bytes, LineageEntry] = collections.OrderedDict()
        self.bytes = 0
        self._evicted: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._max_evicted = max_evicted
        self.num_evicted = 0

    def record(self, task_id: bytes, spec: tuple | None, key: Any, return_ids: list[bytes], live: set[bytes],
               retries_left: int, pinned: list[bytes], kind: str = KIND_TASK) -> bool:
        """Remember a finished task. False if it is known already (a re-run finished): then only
        its retries are updated and ``pinned`` was not taken (the caller keeps no extra pins)."""
        old = self.entries.get(task_id)
        if old is not None:
            old.retries_left = retries_left
            old.live |= live
            return False
        if not live:
            return False
        size = _ENTRY_OVERHEAD + (_spec_bytes(spec) if spec is not None else 0)
        self.entries[task_id] = LineageEntry(task_id, spec, key, return_ids, set(live), retries_left,
                                             list(pinned), size, kind)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, victim = next(iter(self.entries.items()))
            self._drop(victim, evicted=True)
        return True

    def get(self, task_id: bytes) -> LineageEntry | None:
        return self.entries.get(task_id)

    def was_evicted(self, task_id: bytes) -> bool:
        return task_id in self._evicted

    def object_freed(self, object_id: bytes) -> None:
        """An owned object was freed (no refs left): drop its task's entry once none is left."""
        entry = self.entries.get(ids.task_of(object_id))
        if entry is None:
            return
        entry.live.discard(object_id)
        if not entry.live:
            self._drop(entry)

    def _drop(self, entry: LineageEntry, evicted: bool = False) -> None:
        if self.entries.pop(entry.task_id, None) is None:
            return
        self.bytes -= entry.size
        if evicted:
            self.num_evicted += 1
            self._evicted[entry.task_id] = None
            while len(self._evicted) > self._max_evicted:
                self._evicted.popitem(last=False)
        if entry.pinned:
            self.unpin(entry.pinned)

    def __len__(self) -> int:
        return len(self.entries)


def _spec_bytes(spec: tuple) -> int:
    args = spec[ts.ARGS]
    return len(args[1]) if args and args[0] == "v" else 0


def is_put_object(object_id: bytes) -> bool:
    """Objects made by put() (and large task arguments) have no task that can re-make them."""
    return object_id[ids.TASK_ID_LEN:] in (b"\xff\xff\xff\xff", b"\xfe\xff\xff\xff")


class ObjectRecovery:
    """A core worker's lost-object handling: lineage kept at task completion, objects rebuilt
    or failed when their node dies, cached copies of borrowed objects dropped."""

    def __init__(self, cw):
        self.cw = cw
        self.table = LineageTable(cw.config.lineage_max_bytes, self._unpin)
        self.dead_nodes: set[str] = set()
        self.num_rebuilt = 0  # task re-runs started to rebuild lost objects
        self._lock = threading.Lock()

    def _unpin(self, object_ids: list[bytes]) -> None:
        self.cw.refs.remove_submitted(object_ids)

    # ------------------------------------------------------------------ hooks (IO thread)
    def task_finished(self, entry: TaskEntry, results: list) -> None:
        """Called by TaskSubmitter.complete before the task's arguments are released."""
        if entry.streaming or not any(v and v[0] == "s" for v in results):
            return  # nothing it made can be lost: inline values live in the owner
        refs = self.cw.refs
        live = {oid for oid, v in zip(entry.return_ids, results) if v and v[0] == "s" and refs.owns(oid)}
        if not live:
            return
        if entry.actor_id is not None or entry.retries_left == 0:
            with refs.lock:
                self.table.record(entry.task_id, None, None, entry.return_ids, live, 0, [],
                                  KIND_ACTOR if entry.actor_id is not None else KIND_NO_RETRY)
            return
        pinned = list(entry.dep_ids)
        with refs.lock:  # frees (and so the table) also happen on user threads, under this lock
            if self.table.record(entry.task_id, entry.spec, entry.key, entry.return_ids, live,
                                 entry.retries_left, pinned) and pinned:
                refs.add_submitted(pinned)  # released by the table when the entry goes

    def object_freed(self, object_id: bytes) -> None:
        if self.table.entries:
            self.table.object_freed(object_id)

    # ------------------------------------------------------------------ node deaths
    def on_node_died(self, node_id: str, reason: str) -> None:
        """Objects stored on ``node_id``: owned ones are rebuilt (or failed), cached values of
        borrowed ones dropped so the next get asks their owner again."""
        cw = self.cw
        self.dead_nodes.add(node_id)
        lost = [oid for oid, v in cw.owned.items() if v[0] == "s" and v[1] == node_id]
        if not lost:
            return
        owned = []
        for oid in lost:
            cw.owned.delete(oid)
            if cw.refs.owns(oid):
                owned.append(oid)
            else:
                cw.forget_fetched(oid)
        why = f"its only copy was on node {node_id[:12]}, which died ({reason})"
        for oid in owned:
            self.recover(oid, why)
        if owned:
            logger.info("node %s died: rebuilding or failing %d lost object(s)", node_id[:12], len(owned))

    def recover(self, object_id: bytes, why: str) -> None:
        """Rebuild an owned object whose value is gone (its value is not in the store), or store
        the error that says why it cannot be."""
        with self.cw.refs.lock:
            self._recover(object_id, why)

    def _recover(self, object_id: bytes, why: str) -> None:
        cw = self.cw
        if cw.owned.contains(object_id):
            return
        task_id = ids.task_of(object_id)
        if task_id in cw.tasks.entries:
            return  # its task is running or queued (a rebuild already started)
        if is_put_object(object_id):
            self._fail(object_id, exc.ObjectLostError, f"{why}; objects made by put() cannot be rebuilt "
                       "(keep a copy elsewhere, or make it with a task so it has a lineage)")
            return
        entry = self.table.get(task_id)
        if entry is None:
            if self.table.was_evicted(task_id):
                self._fail(object_id, exc.ObjectReconstructionFailedLineageEvictedError,
                           f"{why}; its lineage was dropped to stay within lineage_max_bytes "
                           f"({cw.config.lineage_max_bytes} bytes)")
            else:
                self._fail(object_id, exc.ObjectReconstructionFailedError,
                           f"{why}; no lineage is kept for it (its refs were released, or it was made "
                           "by a task that is not tracked)")
            return
        if entry.kind == KIND_ACTOR:
            self._fail(object_id, exc.ObjectReconstructionFailedError,
                       f"{why}; it was made by an actor task, which is not re-run to rebuild objects")
            return
        if entry.retries_left == 0 or entry.spec is None:
            self._fail(object_id, exc.ObjectReconstructionFailedMaxAttemptsExceededError,
                       f"{why}; the task that made it ({_name(entry)}) has no retries left "
                       "(max_retries was reached, or is 0)")
            return
        if entry.key not in cw.tasks.keys:
            self._fail(object_id, exc.ObjectReconstructionFailedError, f"{why}; its task's settings are gone")
            return
        # Its other results go too (a re-run makes them again), and lost arguments are rebuilt first.
        for oid in entry.return_ids:
            value = cw.owned.delete(oid) if oid != object_id else None
            if value is not None and value[0] == "s" and value[1] not in self.dead_nodes:
                cw.shm.delete(oid, value[1])
        for dep in entry.spec[ts.DEPS]:
            if dep[0] == "r" and dep[2] == cw.address:
                value = cw.owned.get(dep[1])
                if value is not None and value[0] == "s" and value[1] in self.dead_nodes:
                    cw.owned.delete(dep[1])
                    value = None
                if value is None and cw.refs.owns(dep[1]):
                    self._recover(dep[1], f"it is an argument of {_name(entry)}, whose result is being rebuilt, "
                                         f"and {why}")
        if entry.retries_left > 0:
            entry.retries_left -= 1
        # Results nobody holds any more are not kept when it completes (complete() frees them).
        rerun = TaskEntry(task_id, entry.spec, entry.return_ids, list(entry.pinned), entry.retries_left)
        if rerun.dep_ids:
            cw.refs.add_submitted(rerun.dep_ids)  # released when the re-run completes
        self.num_rebuilt += 1
        logger.info("rebuilding %s by re-running %s (%s)", object_id.hex()[:16], _name(entry), why)
        cw.tasks.resubmit(rerun, entry.key)

    def _fail(self, object_id: bytes, error_type: type, reason: str) -> None:
        cw = self.cw
        error = error_type(object_id.hex(), cw.address, None, reason=reason)
        cw.owned.put(object_id, ("v", serialization.serialize(error, error=True).to_bytes()))

    # ------------------------------------------------------------------ reads that found an object lost
    def rebuild_on_read(self, object_id: bytes, value: tuple, error: BaseException) -> bool:
        """Any thread: a read of an object we own found it lost (its node is gone) before the node's
        death reached us. Start rebuilding it; True if the caller should wait for the value again."""
        cw = self.cw
        if type(error) is not exc.ObjectLostError or value[0] != "s" or not cw.refs.owns(object_id):
            return False
        if value[1] not in self.dead_nodes:
            try:  # is its node dead (and so are the other objects there)? Its death may not have reached us
                if not any(n["node_id"] == value[1] and n["alive"] for n in cw.gcs_call("get_nodes", timeout=5.0)):
                    self.dead_nodes.add(value[1])
            except Exception:  # noqa: BLE001 - rebuild it anyway
                logger.debug("could not look up node %s", value[1], exc_info=True)
        self._drop_value(object_id, value)
        reason = getattr(error, "reason", None) or "a read found it lost"
        cw.loop.call_soon(self.recover, object_id, f"its copy on node {value[1][:12]} could not be read ({reason})")
        return True

    def _drop_value(self, object_id: bytes, value: tuple) -> None:
        with self._lock:
            if self.cw.owned.get(object_id) is value:
                self.cw.owned.delete(object_id)

    def refetch_borrowed(self, object_id: bytes, value: tuple, error: BaseException) -> bool:
        """Any thread: a read of a borrowed object found its copy lost. Its owner rebuilds it once it
        hears of the node's death; drop the stale location so the next wait asks the owner again."""
        cw = self.cw
        if type(error) is not exc.ObjectLostError or value[0] != "s" or cw.refs.owns(object_id):
            return False
        self._drop_value(object_id, value)
        cw.forget_fetched(object_id)
        return True

    def get_rebuilt(self, ref, value: tuple, obj: Any, timeout: float | None) -> tuple[Any, bool]:
        """User thread (CoreWorker.get_objects): a lost object is rebuilt (ours) or asked for again
        from its owner (borrowed), and waited for."""
        cw = self.cw
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(_MAX_REBUILDS_PER_GET):
            if self.rebuild_on_read(ref.binary(), value, obj):
                pass
            elif self.refetch_borrowed(ref.binary(), value, obj):
                # The owner may not know yet that the node died: give it a moment before asking.
                pause = min(1.0, 0.1 * (attempt + 1))
                if deadline is not None and time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
            else:
                break
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = cw.wait_values([ref], left)[0]
            obj, is_error = cw.decode_value(ref.binary(), value)
            if not is_error:
                return obj, False
        return obj, True


def _name(entry: LineageEntry) -> str:
    return entry.spec[ts.NAME] if entry.spec is not None else entry.task_id.hex()[:16]
