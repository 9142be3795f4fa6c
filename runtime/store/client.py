"""A process's window on its node's object store.

Writes: ask the node manager for room, copy the serialized object straight into
the arena (one memcpy, into pages the store keeps warm), seal. Reads: pin the
object, map just its pages read-only, and unpin when the last view of them is
garbage-collected, so zero-copy numpy arrays keep their memory valid for as long
as they live. Unpins and deletes are batched.

The create, pin and seal messages go over the calling thread's own connection to
the node manager (``call_direct``), not through the IO thread: a put or get of a
large value waits on them, and each hand-off between threads costs as much as the
node's answer. The unpins and deletes queued meanwhile ride in the same message.
The last object a process wrote or read stays mapped and pinned for a moment
(KEEP_WARM_S, or until it touches another object), so a get right after a put, or
of the same object again, needs no message at all.

The seal of a process's own put is queued too (first in the queue, so it reaches the
node before any unpin or delete of the object): a put is then one message, the create.
Only another process can be kept waiting by an unsealed object (its pin waits for the
seal), and another process learns of an object only from a ref this process pickles or
passes to a task: both send the queued seals first (``send_seals``).
"""
from __future__ import annotations

import mmap
import os
import threading
import time
import weakref

from typing import TYPE_CHECKING

from juno import exceptions as exc
from juno.owner import serialization
from juno.store import format as fmt
from juno.store.object_store import ARENA_FILE

if TYPE_CHECKING:
    import numpy as np

    from juno.owner.core_worker import CoreWorker

# How long the last object written or read stays pinned after its last view is gone.
KEEP_WARM_S = 0.2
# How long queued unpins and deletes wait for this process's next create or pin to carry them
# (in order, on its own connection) before the IO thread sends them: sent apart, a delete could
# reach the node after the create that needs the room it frees.
FLUSH_DELAY_S = 0.005
# A create refused for room is tried again this many times, waiting 10, 20, 40 ... ms: frees already
# on their way (this process's deletes the IO thread flushed on its own connection, other processes'
# releases) land meanwhile. A store that stays full still raises, about 0.6 s later.
FULL_RETRIES = 6
FULL_FIRST_WAIT_S = 0.01


class StoreClient:
    def __init__(self, cw: "CoreWorker", directory: str):
        self.cw = cw
        self.directory = directory
        # Both re-entrant: a freed ObjectRef (ObjectRef.__del__, possibly from the garbage collector on
        # a thread inside these locks) deletes its stored object through them.
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._rw: memoryview | None = None   # the whole arena, for writing
        self._ro: mmap.mmap | None = None    # the whole arena, read-only, for zero-copy reads
        self._holders: weakref.WeakValueDictionary[bytes, np.ndarray] = weakref.WeakValueDictionary()
        self._pending: dict[str, list[bytes]] = _empty_queue()
        self._flush_scheduled = False
        self._queue_lock = threading.RLock()
        self._warm: np.ndarray | None = None  # the holder of the last object written or read
        self._warm_id: bytes | None = None
        self._cool_scheduled = False

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(os.path.join(self.directory, ARENA_FILE), os.O_RDWR)
        return self._fd

    def _arena_rw(self) -> memoryview:
        """One mapping of the whole arena for the process's lifetime: no map/unmap or page
        faults per object once the store's pages are warm."""
        if self._rw is None:
            with self._lock:
                if self._rw is None:
                    fd = self._open()
                    self._rw = memoryview(mmap.mmap(fd, os.fstat(fd).st_size))
        return self._rw

    def _arena_ro(self) -> mmap.mmap:
        """The arena mapped copy-on-write: values are handed out as read-only views, and a
        library that writes anyway (torch has no read-only tensors) gets private pages
        instead of corrupting the shared object or crashing on a read-only mapping."""
        if self._ro is None:
            with self._lock:
                if self._ro is None:
                    fd = self._open()
                    self._ro = _private_map(fd, os.fstat(fd).st_size)
        return self._ro

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ writing
    def write(self, object_id: bytes, flags: int, data: bytes, buffers: list, owner: str | None = None) -> None:
        """Store a serialized object under ``object_id`` (any thread but the IO thread)."""
        pieces, total = fmt.to_iovecs(flags, data, buffers)
        self._cool()  # its room may be needed: its unpin goes before the create
        location = self._create(object_id, total, owner or self.cw.address)
        if location[0] == "arena":
            _, offset, size = location
            arena = self._arena_rw()
            pos = offset
            for piece in pieces:
                view = memoryview(piece).cast("B")
                arena[pos: pos + view.nbytes] = view
                pos += view.nbytes
        else:
            _, path, _ = location
            fd = os.open(path, os.O_WRONLY)
            try:
                for i in range(0, len(pieces), 512):
                    _write_all(fd, pieces[i: i + 512])
            finally:
                os.close(fd)
        if location[0] == "arena" and owner is None:  # our own put: keep it pinned and mapped for a get
            self._map(object_id, location)
            self._enqueue("seal_object", object_id)  # with the next message (see the module's docstring)
        else:
            self.cw.notify_direct(self.cw.node_manager, "seal_object", object_id)

    def _create(self, object_id: bytes, total: int, owner: str) -> tuple:
        """Room for the object in the node's store; a full store is asked again while frees land."""
        wait = FULL_FIRST_WAIT_S
        for _ in range(FULL_RETRIES):
            try:
                return self._node_call("create_object", object_id, total, self.cw.address, owner)
            except exc.ObjectStoreFullError:
                time.sleep(wait)
                wait *= 2
        return self._node_call("create_object", object_id, total, self.cw.address, owner)

    # ------------------------------------------------------------------ reading
    def read(self, object_id: bytes, node_id: str | None = None) -> memoryview:
        """A read-only view of the object, pinned until every view derived from it is gone.

        ``node_id``: the node holding the object; when it is another node, this node's
        manager pulls a copy first (runtime/store/transfer.py). Raises ObjectLostError."""
        holder = self._holders.get(object_id)
        if holder is not None:
            return memoryview(holder).toreadonly()
        self._cool()
        if node_id is None or node_id == self.cw.node_id:
            location = self._node_call("pin_object", object_id, self.cw.address)
        else:
            location = self._pull(object_id, node_id)
        if location is None:
            raise exc.ObjectLostError(object_id.hex(), self.cw.address, "",
                                      "it is no longer in this node's object store (freed or lost)")
        return memoryview(self._map(object_id, location)).toreadonly()

    def _node_call(self, method: str, *args) -> tuple | None:
        """A direct call, carrying the unpins and deletes queued so far in the same message: the node
        frees the room they release before it looks for room for a new object."""
        calls = self._take_pending(flushing=False) if not self.cw.loop.in_loop_thread() else []
        if calls:
            method, args = "store_calls", ([(op, tuple(rest)) for op, *rest in calls] + [(method, args)],)
        return self.cw.call_direct(self.cw.node_manager, method, *args, timeout=self.cw.config.rpc_timeout_s,
                                   what="the node manager")

    def _map(self, object_id: bytes, location: tuple) -> np.ndarray:
        """The holder of a pinned object's bytes; its collection unpins the object."""
        # numpy is imported on the first read, not at import: a worker that never reads the store
        # starts without it, and a worker's fork server must not load it (OpenBLAS starts threads).
        import numpy as np

        if location[0] == "arena":
            _, offset, size = location
            # A numpy array over the object's bytes: weak-referenceable, so the pin
            # is released when the last array or buffer derived from it is collected.
            holder = np.frombuffer(self._arena_ro(), dtype=np.uint8, count=size, offset=offset)
        else:
            _, path, size = location
            fd = os.open(path, os.O_RDONLY)
            try:
                holder = np.frombuffer(_private_map(fd, size), dtype=np.uint8)
            finally:
                os.close(fd)
        weakref.finalize(holder, self._unpin_later, object_id)
        self._holders[object_id] = holder
        self._keep_warm(object_id, holder)
        return holder

    def _keep_warm(self, object_id: bytes, holder: np.ndarray) -> None:
        with self._lock:
            old, self._warm, self._warm_id = self._warm, holder, object_id
            schedule, self._cool_scheduled = not self._cool_scheduled, True
        del old  # unpinned once its last view is gone
        if schedule:
            self._call(self.cw.loop.call_later, KEEP_WARM_S, self._cool_off)

    def _cool_off(self) -> None:
        """IO thread, KEEP_WARM_S after an object was kept warm: let it go."""
        with self._lock:
            self._cool_scheduled = False
        self._cool()

    def _cool(self, object_id: bytes | None = None) -> None:
        """Stop keeping the warm object (only ``object_id``, when given) pinned."""
        with self._lock:
            if self._warm is None or (object_id is not None and object_id != self._warm_id):
                return
            old, self._warm, self._warm_id = self._warm, None, None
        del old

    def pull_many(self, items: list) -> list:
        """Pull several objects held by other nodes at once (``[(object_id, node_id), ...]``, a get
        of many refs), so their transfers overlap instead of running one after another. Returns
        holders that keep them pinned while the caller reads them; failures are left for read()."""
        futures = [(oid, self.cw.call_future(self.cw.node_manager, "pull_object", oid, node, self.cw.address))
                   for oid, node in dict.fromkeys(items) if oid not in self._holders]
        config = self.cw.config
        deadline = time.monotonic() + config.object_pull_timeout_s + config.object_transfer_timeout_s
        keep = []
        for oid, fut in futures:
            try:
                location = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - read() asks again and reports it
                fut.add_done_callback(lambda f, oid=oid: self._release_late(oid, f))
                continue
            if location is not None:
                keep.append(self._map(oid, location))
        return keep

    def _release_late(self, object_id: bytes, fut) -> None:
        if not fut.cancelled() and fut.exception() is None and fut.result() is not None:
            self._unpin_later(object_id)  # pinned for us after we stopped waiting

    def _pull(self, object_id: bytes, node_id: str) -> tuple | None:
        """Ask this node's manager for a local copy of an object held by ``node_id``; it answers
        once the copy is here (pinned for us), or fails with ObjectLostError."""
        config = self.cw.config
        wait = config.object_pull_timeout_s + config.object_transfer_timeout_s + config.rpc_timeout_s
        try:
            return self.cw.call_sync(self.cw.node_manager, "pull_object", object_id, node_id, self.cw.address,
                                     timeout=wait, what="the node manager")
        except TimeoutError as e:
            raise exc.ObjectFetchTimedOutError(object_id.hex(), None, None, str(e)) from None

    def _unpin_later(self, object_id: bytes) -> None:
        self._enqueue("unpin_objects", object_id)

    # ------------------------------------------------------------------ deleting
    def delete(self, object_id: bytes, node_id: str | None = None) -> None:
        """The owner freed the object: tell the store (batched); ``node_id``: the node holding
        it, when not this one (this node's manager forwards the delete)."""
        if node_id is not None and node_id != self.cw.node_id:
            self._call(self.cw.notify, self.cw.node_manager, "delete_objects", [object_id], node_id)
            return
        self._cool(object_id)
        self._enqueue("delete_objects", object_id)

    def _enqueue(self, method: str, object_id: bytes) -> None:
        with self._queue_lock:
            self._pending[method].append(object_id)
            if method == "seal_object":
                serialization.before_refs_leave = self.send_seals
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._call(self.cw.loop.call_later, FLUSH_DELAY_S, self._flush)

    def send_seals(self) -> None:
        """Send what is queued now, seals first, if a seal is: a ref is about to leave this process
        (pickled, or passed to a task), and whoever gets it may pin its object at once."""
        if not self._pending["seal_object"]:
            return
        if self.cw.loop.in_loop_thread():
            self._flush_now()
            return
        calls = self._take_pending(flushing=False)
        if calls:
            self.cw.notify_direct(self.cw.node_manager, "store_calls", [(op, tuple(rest)) for op, *rest in calls])

    def _flush(self) -> None:
        """IO thread: one message per kind for everything queued since the last flush."""
        for op, *args in self._take_pending():
            self.cw.notify(self.cw.node_manager, op, *args)

    def _flush_now(self) -> None:
        """IO thread, before its scheduled flush: send the queue now, leaving that flush scheduled."""
        for op, *args in self._take_pending(flushing=False):
            self.cw.notify(self.cw.node_manager, op, *args)

    def _take_pending(self, flushing: bool = True) -> list[tuple]:
        """The messages for what is queued (seals, unpins, deletes), emptying the queue; ``flushing``: the
        IO thread's scheduled flush (a caller that takes them on its way leaves that scheduled)."""
        with self._queue_lock:
            pending = self._pending
            self._pending = _empty_queue()
            serialization.before_refs_leave = None
            if flushing:
                self._flush_scheduled = False
        if self.cw.shutting_down:
            return []
        out = [("seal_object", object_id, [self.cw.address]) for object_id in pending["seal_object"]]
        if pending["unpin_objects"]:
            out.append(("unpin_objects", pending["unpin_objects"], self.cw.address))
        if pending["delete_objects"]:
            out.append(("delete_objects", pending["delete_objects"]))
        return out

    def _call(self, fn, *args) -> None:
        loop = self.cw.loop
        if loop.in_loop_thread():
            fn(*args)
        else:
            loop.call_soon(fn, *args)


def _empty_queue() -> dict[str, list[bytes]]:
    """Queued store messages by kind, in the order they are sent: seals before the unpins and
    deletes that may name the same objects."""
    return {"seal_object": [], "unpin_objects": [], "delete_objects": []}


def _private_map(fd: int, size: int) -> mmap.mmap:
    return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)


def _write_all(fd: int, pieces: list) -> None:
    views = [memoryview(p).cast("B") for p in pieces]
    while views:
        n = os.writev(fd, views)
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
