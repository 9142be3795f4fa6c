"""A process's window on its node's object store.

Writes: ask the node manager for room, copy the serialized object straight into
the arena (one memcpy, into pages the store keeps warm), seal. Reads: pin the
object, map just its pages read-only, and unpin when the last view of them is
garbage-collected, so zero-copy numpy arrays keep their memory valid for as long
as they live. Deletes are batched.
"""
from __future__ import annotations

import mmap
import os
import threading
import weakref

import numpy as np
from typing import TYPE_CHECKING

from juno import exceptions as exc
from juno.store import format as fmt
from juno.store.object_store import ARENA_FILE

if TYPE_CHECKING:
    from juno.core_worker import CoreWorker


class StoreClient:
    def __init__(self, cw: "CoreWorker", directory: str):
        self.cw = cw
        self.directory = directory
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._rw: memoryview | None = None   # the whole arena, for writing
        self._ro: mmap.mmap | None = None    # the whole arena, read-only, for zero-copy reads
        self._holders: weakref.WeakValueDictionary[bytes, np.ndarray] = weakref.WeakValueDictionary()
        self._pending: dict[str, list[bytes]] = {"unpin_objects": [], "delete_objects": []}
        self._flush_scheduled = False
        self._queue_lock = threading.Lock()

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
        location = self.cw.node_call("create_object", object_id, total, self.cw.address, owner or self.cw.address)
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
        self._call(self.cw.notify, self.cw.node_manager, "seal_object", object_id)

    # ------------------------------------------------------------------ reading
    def read(self, object_id: bytes) -> memoryview:
        """A read-only view of the object, pinned until every view derived from it is gone."""
        holder = self._holders.get(object_id)
        if holder is not None:
            return memoryview(holder).toreadonly()
        location = self.cw.node_call("pin_object", object_id, self.cw.address)
        if location is None:
            raise exc.ObjectLostError(object_id.hex(), self.cw.address, "")
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
        return memoryview(holder).toreadonly()

    def _unpin_later(self, object_id: bytes) -> None:
        self._enqueue("unpin_objects", object_id)

    # ------------------------------------------------------------------ deleting
    def delete(self, object_id: bytes) -> None:
        """The owner freed the object: tell the store (batched)."""
        self._enqueue("delete_objects", object_id)

    def _enqueue(self, method: str, object_id: bytes) -> None:
        with self._queue_lock:
            self._pending[method].append(object_id)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._call(self._flush)

    def _flush(self) -> None:
        """One message per kind for everything queued since the last flush (unpins first)."""
        with self._queue_lock:
            pending = self._pending
            self._pending = {"unpin_objects": [], "delete_objects": []}
            self._flush_scheduled = False
        if self.cw.shutting_down:
            return
        if pending["unpin_objects"]:
            self.cw.notify(self.cw.node_manager, "unpin_objects", pending["unpin_objects"], self.cw.address)
        if pending["delete_objects"]:
            self.cw.notify(self.cw.node_manager, "delete_objects", pending["delete_objects"])

    def _call(self, fn, *args) -> None:
        loop = self.cw.loop
        if loop.in_loop_thread():
            fn(*args)
        else:
            loop.call_soon(fn, *args)


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
