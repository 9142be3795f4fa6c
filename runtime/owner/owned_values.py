"""The owner-side table of object values and of who is waiting for them.

A value is a small tuple: ``("v", blob)`` inline bytes in the common layout, or
``("s", node_id)`` when the object lives in a node's shared-memory store.
Callbacks fire on the thread that stores the value (usually the IO thread), so
they must be quick: set an event, resolve a future, enqueue work.
"""
from __future__ import annotations

import threading
from typing import Callable


class OwnedValues:
    def __init__(self) -> None:
        self._values: dict[bytes, tuple] = {}
        self._waiters: dict[bytes, list[Callable[[bytes, tuple], None]]] = {}
        # (ids, callback) pairs from watch(); a tuple replaced on change, so put() reads it unlocked.
        self._watchers: tuple[tuple[set[bytes], Callable[[bytes, tuple], None]], ...] = ()
        # Re-entrant: ObjectRef.__del__ frees owned values, and the garbage collector may run it on a
        # thread that holds this lock already (any allocation under it can start a collection).
        self._lock = threading.RLock()

    def put(self, object_id: bytes, value: tuple) -> None:
        with self._lock:
            self._values[object_id] = value
            waiters = self._waiters.pop(object_id, None)
            watchers = self._watchers
        if waiters:
            for cb in waiters:
                cb(object_id, value)
        for ids, cb in watchers:
            if object_id in ids:
                cb(object_id, value)

    def get(self, object_id: bytes) -> tuple | None:
        return self._values.get(object_id)

    def contains(self, object_id: bytes) -> bool:
        return object_id in self._values

    def on_ready(self, object_id: bytes, callback: Callable[[bytes, tuple], None]) -> bool:
        """Call ``callback`` when the value exists; True if it already did (and was called)."""
        with self._lock:
            value = self._values.get(object_id)
            if value is None:
                self._waiters.setdefault(object_id, []).append(callback)
                return False
        callback(object_id, value)
        return True

    def remove_waiter(self, object_id: bytes, callback: Callable) -> None:
        with self._lock:
            waiters = self._waiters.get(object_id)
            if waiters and callback in waiters:
                waiters.remove(callback)
                if not waiters:
                    del self._waiters[object_id]

    def ready_among(self, object_ids) -> set[bytes]:
        """The ids (of an iterable) whose value exists, checked in one C-level pass."""
        return self._values.keys() & object_ids

    def watch(self, object_ids: set[bytes], callback: Callable[[bytes, tuple], None]) -> set[bytes]:
        """Call ``callback`` for each of ``object_ids`` stored from now on, until unwatch().

        Returns the ids already stored. Each id is either returned or called back, never both,
        since both sides hold the lock: one registration serves a wait() on many refs, where
        a waiter per id would cost a lock and a list per ref and per call.
        """
        with self._lock:
            self._watchers = self._watchers + ((object_ids, callback),)
            return self._values.keys() & object_ids

    def unwatch(self, callback: Callable[[bytes, tuple], None]) -> None:
        """Stop a watch(); a put() already under way may still call ``callback`` once more."""
        with self._lock:
            self._watchers = tuple(w for w in self._watchers if w[1] is not callback)

    def delete(self, object_id: bytes) -> tuple | None:
        with self._lock:
            return self._values.pop(object_id, None)

    def delete_many(self, object_ids: list[bytes]) -> None:
        with self._lock:
            pop = self._values.pop
            for object_id in object_ids:
                pop(object_id, None)

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> list[tuple[bytes, tuple]]:
        with self._lock:
            return list(self._values.items())
