"""A node's object store: one shared-memory arena, pins, LRU spilling to disk.

The node manager owns this table. Writers ask it for space (``create``), fill
it and ``seal``; readers ``pin`` an object to learn where it is and keep it from
moving or being freed while they map it; owners ``delete`` objects nobody
references. When the arena is full, sealed objects nobody has pinned are
spilled to disk, least recently used first, and restored on the next pin. An
object that fits nowhere in the arena goes to a file on disk (fallback); only
when the disk budget is exhausted too does creation fail with
ObjectStoreFullError. Pins are counted per process, so a process that dies
releases everything it held.

Secondary copies (objects pulled from another node, runtime/store/transfer.py)
are evicted (dropped, not spilled: the primary still has them) before any
primary is spilled; ``on_free`` tells the transfer layer when an object goes.
"""
from __future__ import annotations

import collections
import logging
import mmap
import os
import shutil
from typing import Callable

from juno import exceptions as exc
from juno.store.allocator import Allocator, round_up

logger = logging.getLogger(__name__)

CREATED, SEALED, SPILLED = "CREATED", "SEALED", "SPILLED"
ARENA_FILE = "arena"


class _Entry:
    __slots__ = ("object_id", "size", "offset", "alloc", "state", "pins", "deleted", "path", "creator",
                 "owner", "waiters", "secondary")

    def __init__(self, object_id: bytes, size: int, creator: str, owner: str, secondary: bool = False):
        self.object_id = object_id
        self.size = size            # bytes of the object
        self.offset: int | None = None  # in the arena, when there
        self.alloc = 0              # bytes reserved in the arena
        self.state = CREATED
        self.pins: dict[str, int] = {}
        self.deleted = False
        self.path: str | None = None  # spill or fallback file
        self.creator = creator
        self.owner = owner          # the process whose reference count decides the object's life
        self.waiters: list[Callable] = []
        self.secondary = secondary  # a copy pulled from the node that holds the primary


class ObjectStore:
    def __init__(self, directory: str, capacity: int, spill_dir: str, spill_limit_bytes: int = 0):
        self.directory = directory
        self.spill_dir = spill_dir
        self.spill_limit = spill_limit_bytes
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.arena_path = os.path.join(directory, ARENA_FILE)
        self.allocator = Allocator(capacity)
        fd = os.open(self.arena_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, self.allocator.capacity)
            self._arena = mmap.mmap(fd, self.allocator.capacity) if self.allocator.capacity else None
        finally:
            os.close(fd)
        self._view = memoryview(self._arena) if self._arena is not None else None
        self.entries: dict[bytes, _Entry] = {}
        self._lru: collections.OrderedDict[bytes, None] = collections.OrderedDict()  # sealed, unpinned, in arena
        self._lru_secondary: collections.OrderedDict[bytes, None] = collections.OrderedDict()  # same, copies
        self.num_copies_evicted = 0
        self.on_free: Callable[[bytes], None] | None = None  # called with the id of every object freed
        self.disk_bytes = 0
        self.num_spilled = 0
        self.num_restored = 0

    @property
    def capacity(self) -> int:
        return self.allocator.capacity

    # ------------------------------------------------------------------ create / seal
    def create(self, object_id: bytes, size: int, creator: str, owner: str | None = None,
               secondary: bool = False) -> tuple:
        """Reserve room for a new object: ("arena", offset, size) or ("file", path, size)."""
        old = self.entries.get(object_id)
        if old is not None and old.secondary and not old.pins:
            self._free(old)  # a stale copy of an object written here again (rebuilt from lineage)
        elif old is not None:
            raise ValueError(f"object {object_id.hex()} already exists in this store")
        entry = _Entry(object_id, size, creator, owner or creator, secondary)
        offset = self._allocate(size)
        if offset is not None:
            entry.offset, entry.alloc = offset, round_up(size)
        else:
            entry.path = self._disk_path(object_id, "fallback")
            self._reserve_disk(size, what=f"a {size}-byte object")
            with open(entry.path, "wb") as f:
                f.truncate(size)
        entry.pins[creator] = 1  # the writer holds it until sealed
        self.entries[object_id] = entry
        return self._location(entry)

    def seal(self, object_id: bytes, pin_for: tuple | list = ()) -> tuple | None:
        """Mark a written object readable, pinned at once for ``pin_for`` (readers waiting for a
        pull); returns its location, or None if it was freed meanwhile."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state != CREATED:
            return None
        entry.state = SEALED
        for holder in pin_for:
            entry.pins[holder] = entry.pins.get(holder, 0) + 1
        self._unpin(entry, entry.creator)
        waiters, entry.waiters = entry.waiters, []
        for cb in waiters:
            cb()
        return self._location(entry) if self.entries.get(object_id) is entry else None

    def abort(self, object_id: bytes) -> None:
        """Drop an object that is still being written (a pull that failed)."""
        entry = self.entries.get(object_id)
        if entry is not None and entry.state == CREATED:
            entry.deleted = True
            entry.pins.clear()
            self._free(entry)

    # ------------------------------------------------------------------ pins
    def pin(self, object_id: bytes, holder: str, on_sealed: Callable[[], None] | None = None) -> tuple | None:
        """Pin for ``holder`` and return the object's location; None if unknown.

        An object still being written returns "pending" and calls ``on_sealed`` later.
        """
        entry = self.entries.get(object_id)
        if entry is None or entry.deleted:
            return None
        if entry.state == CREATED:
            if on_sealed is not None:
                entry.waiters.append(on_sealed)
            return ("pending",)
        if entry.state == SPILLED:
            self._restore(entry)
        entry.pins[holder] = entry.pins.get(holder, 0) + 1
        self._lru.pop(object_id, None)
        self._lru_secondary.pop(object_id, None)
        return self._location(entry)

    def unpin(self, object_id: bytes, holder: str) -> None:
        entry = self.entries.get(object_id)
        if entry is not None:
            self._unpin(entry, holder)

    def _unpin(self, entry: _Entry, holder: str) -> None:
        n = entry.pins.get(holder, 0) - 1
        if n > 0:
            entry.pins[holder] = n
        else:
            entry.pins.pop(holder, None)
        if entry.pins:
            return
        if entry.deleted:
            self._free(entry)
        elif entry.state == SEALED and entry.offset is not None:
            lru = self._lru_secondary if entry.secondary else self._lru
            lru[entry.object_id] = None
            lru.move_to_end(entry.object_id)

    def release_holder(self, holder: str) -> None:
        """A process died: drop its pins, its unfinished writes, and the objects it owned."""
        for entry in list(self.entries.values()):
            if entry.owner == holder:
                entry.deleted = True
                entry.pins.pop(holder, None)
                if not entry.pins or entry.state == CREATED:
                    entry.pins.clear()
                    self._free(entry)
            elif entry.state == CREATED and entry.creator == holder:
                entry.deleted = True
                entry.pins.clear()
                self._free(entry)
            elif holder in entry.pins:
                entry.pins[holder] = 1
                self._unpin(entry, holder)

    # ------------------------------------------------------------------ delete
    def delete(self, object_id: bytes) -> None:
        entry = self.entries.get(object_id)
        if entry is None:
            return
        entry.deleted = True
        if not entry.pins:
            self._free(entry)

    def _free(self, entry: _Entry) -> None:
        self.entries.pop(entry.object_id, None)
        self._lru.pop(entry.object_id, None)
        self._lru_secondary.pop(entry.object_id, None)
        if entry.offset is not None:
            self.allocator.free(entry.offset, entry.alloc)
            entry.offset = None
        if entry.path is not None:
            _unlink(entry.path)
            self.disk_bytes -= entry.size
            entry.path = None
        if self.on_free is not None:
            self.on_free(entry.object_id)

    # ------------------------------------------------------------------ spilling
    def _allocate(self, size: int) -> int | None:
        if round_up(size) > self.allocator.capacity:
            return None
        offset = self.allocator.allocate(size)
        while offset is None and self._lru_secondary:
            # Copies of other nodes' objects go first, and are dropped rather than spilled.
            self.num_copies_evicted += 1
            self._free(self.entries[next(iter(self._lru_secondary))])
            offset = self.allocator.allocate(size)
        while offset is None and self._lru:
            victim = self.entries[next(iter(self._lru))]
            try:
                self._spill(victim)
            except exc.ObjectStoreFullError:
                return None
            offset = self.allocator.allocate(size)
        return offset

    def _spill(self, entry: _Entry) -> None:
        path = self._disk_path(entry.object_id, "spilled")
        self._reserve_disk(entry.size, what="spilling")
        with open(path, "wb") as f:
            f.write(self._view[entry.offset: entry.offset + entry.size])
        self._lru.pop(entry.object_id, None)
        self.allocator.free(entry.offset, entry.alloc)
        entry.offset, entry.alloc, entry.path, entry.state = None, 0, path, SPILLED
        self.num_spilled += 1
        logger.debug("spilled %s (%d bytes)", entry.object_id.hex(), entry.size)

    def _restore(self, entry: _Entry) -> None:
        offset = self._allocate(entry.size)
        if offset is None:
            # No room even after spilling: serve it from its file on disk.
            entry.state = SEALED
            return
        with open(entry.path, "rb") as f:
            f.readinto(self._view[offset: offset + entry.size])
        _unlink(entry.path)
        self.disk_bytes -= entry.size
        entry.offset, entry.alloc, entry.path, entry.state = offset, round_up(entry.size), None, SEALED
        self.num_restored += 1

    def _reserve_disk(self, size: int, what: str) -> None:
        os.makedirs(self.spill_dir, exist_ok=True)
        free = shutil.disk_usage(self.spill_dir).free
        over_limit = self.spill_limit and self.disk_bytes + size > self.spill_limit
        if over_limit or size > free:
            raise exc.ObjectStoreFullError(
                f"The object store is full: {self.allocator.used} of {self.capacity} bytes of shared memory "
                f"are in use by objects that are still referenced or being read, and there is no disk "
                f"room for {what} ({self.disk_bytes} bytes already on disk"
                + (f", limit {self.spill_limit}" if self.spill_limit else f", {free} bytes free") + "). "
                "Free references to objects you no longer need, or start the cluster with a larger "
                "object_store_memory.")
        self.disk_bytes += size

    def _disk_path(self, object_id: bytes, kind: str) -> str:
        return os.path.join(self.spill_dir, f"{object_id.hex()}.{kind}")

    # ------------------------------------------------------------------ transfer between nodes
    def chunk(self, object_id: bytes, offset: int, length: int) -> memoryview | bytes | None:
        """Bytes [offset, offset+length) of a pinned object: a view of the arena (zero-copy) or,
        for an object kept on disk, a copy read from its file. None if the object is gone."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state == CREATED or offset + length > entry.size:
            return None
        if entry.offset is not None:
            return self._view[entry.offset + offset: entry.offset + offset + length]
        if entry.path is None:
            return None
        fd = os.open(entry.path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def write_chunk(self, object_id: bytes, offset: int, data) -> bool:
        """Copy ``data`` into a created (unsealed) object at ``offset``; False if it is gone."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state != CREATED:
            return False
        view = memoryview(data).cast("B")
        if offset + view.nbytes > entry.size:
            raise ValueError(f"chunk [{offset}, {offset + view.nbytes}) past the end of a {entry.size}-byte object")
        if entry.offset is not None:
            start = entry.offset + offset
            self._view[start: start + view.nbytes] = view
        else:
            fd = os.open(entry.path, os.O_WRONLY)
            try:
                os.pwrite(fd, view, offset)
            finally:
                os.close(fd)
        return True

    def region(self, object_id: bytes, offset: int, length: int) -> memoryview | None:
        """A writable view of bytes [offset, offset+length) of a created object in the arena (a pull
        copies into it); None if the object is gone, sealed, or kept in a file."""
        entry = self.entries.get(object_id)
        if entry is None or entry.state != CREATED or entry.offset is None or offset + length > entry.size:
            return None
        start = entry.offset + offset
        return self._view[start: start + length]

    def _location(self, entry: _Entry) -> tuple:
        if entry.offset is not None:
            return ("arena", entry.offset, entry.size)
        return ("file", entry.path, entry.size)

    # ------------------------------------------------------------------ introspection
    def info(self, object_id: bytes) -> dict | None:
        entry = self.entries.get(object_id)
        if entry is None:
            return None
        return {"object_id": object_id.hex(), "state": entry.state, "size": entry.size,
                "pinned_by": len(entry.pins), "deleted": entry.deleted, "owner": entry.owner,
                "where": "shared_memory" if entry.offset is not None else "disk",
                "secondary": entry.secondary}

    def stats(self) -> dict:
        return {
            "capacity": self.capacity, "used": self.allocator.used, "num_objects": len(self.entries),
            "disk_bytes": self.disk_bytes, "num_spilled": self.num_spilled, "num_restored": self.num_restored,
            "num_pinned": sum(1 for e in self.entries.values() if e.pins),
            "num_secondary_copies": sum(1 for e in self.entries.values() if e.secondary),
            "num_copies_evicted": self.num_copies_evicted,
        }

    def close(self) -> None:
        try:
            if self._view is not None:
                self._view.release()
            if self._arena is not None:
                self._arena.close()
        except BufferError:  # a chunk still queued for sending to another node holds a view
            pass
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
