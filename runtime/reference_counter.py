"""Reference counts kept by each process for the objects it owns or borrows.

An owned object stays alive while this process holds ObjectRefs to it, while a
task it submitted still needs it as an argument, or once a ref to it escaped
into another process (sent nested in a value). When none of those holds, the
owner frees every copy. Escaped refs stay pinned for the owner's lifetime until
borrower tracking lands (see the object-store issue); nothing is freed early.
"""
from __future__ import annotations

import threading
from typing import Callable


class ReferenceCounter:
    def __init__(self, my_address: str, on_owned_freed: Callable[[bytes], None],
                 on_borrowed_released: Callable[[bytes], None]):
        self.my_address = my_address
        self._on_owned_freed = on_owned_freed
        self._on_borrowed_released = on_borrowed_released
        self._local: dict[bytes, int] = {}
        self._submitted: dict[bytes, int] = {}
        self._owned: set[bytes] = set()
        self._escaped: set[bytes] = set()
        self._borrowed: dict[bytes, str] = {}
        self._lock = threading.RLock()

    # ---- ownership ----
    def add_owned(self, object_id: bytes) -> None:
        with self._lock:
            self._owned.add(object_id)

    def owns(self, object_id: bytes) -> bool:
        return object_id in self._owned

    def note_borrowed(self, object_id: bytes, owner: str) -> None:
        if owner != self.my_address:
            with self._lock:
                self._borrowed.setdefault(object_id, owner)

    # ---- counts ----
    def add_local(self, object_id: bytes, owner: str) -> None:
        with self._lock:
            self._local[object_id] = self._local.get(object_id, 0) + 1

    def remove_local(self, object_id: bytes) -> None:
        with self._lock:
            n = self._local.get(object_id, 0) - 1
            if n > 0:
                self._local[object_id] = n
                return
            self._local.pop(object_id, None)
            self._maybe_release(object_id)

    def add_submitted(self, object_ids: list[bytes]) -> None:
        with self._lock:
            for oid in object_ids:
                self._submitted[oid] = self._submitted.get(oid, 0) + 1

    def remove_submitted(self, object_ids: list[bytes]) -> None:
        with self._lock:
            for oid in object_ids:
                n = self._submitted.get(oid, 0) - 1
                if n > 0:
                    self._submitted[oid] = n
                else:
                    self._submitted.pop(oid, None)
                    if oid not in self._local:
                        self._maybe_release(oid)

    def mark_escaped(self, object_ids: list[bytes]) -> None:
        with self._lock:
            for oid in object_ids:
                if oid in self._owned:
                    self._escaped.add(oid)

    def _maybe_release(self, object_id: bytes) -> None:
        if object_id in self._submitted or object_id in self._local:
            return
        if object_id in self._owned:
            if object_id in self._escaped:
                return
            self._owned.discard(object_id)
            self._on_owned_freed(object_id)
        elif object_id in self._borrowed:
            del self._borrowed[object_id]
            self._on_borrowed_released(object_id)

    def release_if_unreferenced(self, object_id: bytes) -> None:
        """Free an owned object nobody ever took a ref to (e.g. an unread generator item)."""
        with self._lock:
            if object_id in self._owned and object_id not in self._local:
                self._maybe_release(object_id)

    # ---- introspection ----
    def local_count(self, object_id: bytes) -> int:
        return self._local.get(object_id, 0)

    def num_owned(self) -> int:
        return len(self._owned)

    def owned_ids(self) -> list[bytes]:
        with self._lock:
            return list(self._owned)
