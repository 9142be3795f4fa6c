"""Reference counts kept by each process for the objects it owns or borrows.

The owner of an object (the process that put it or submitted the task making
it) frees it when nothing can reach it any more:

* local refs: ObjectRef instances alive in the owner;
* submitted: tasks the owner submitted that still need it (as an argument, or
  nested inside one);
* borrowers: other processes that deserialized a ref to it and still hold one;
* in transit: refs serialized into a task result on their way to a process that
  has not registered as a borrower yet;
* captured: live objects this process owns whose value contains a ref to it.

Actor handles are counted here too, under the actor's id (runtime/actor.py); the
arguments of an actor's constructor count as submitted until the actor is dead.

A borrower keeps its own local/submitted/captured counts for refs it holds and
tells the owner when it starts and stops borrowing; those messages go out
through the ``on_borrow``/``on_unborrow`` callbacks, which the core worker
batches. Everything here is plain logic, unit-tested without processes.
"""
from __future__ import annotations

import threading
from typing import Callable

Callback = Callable[[bytes], None]


class ReferenceCounter:
    def __init__(self, my_address: str, on_owned_freed: Callback, on_borrowed_released: Callback,
                 on_borrow: Callable[[str, bytes, int, bool], None] | None = None,
                 on_unborrow: Callable[[str, bytes], None] | None = None):
        self.my_address = my_address
        self._on_owned_freed = on_owned_freed
        self._on_borrowed_released = on_borrowed_released
        self._on_borrow = on_borrow or (lambda owner, oid, claims, first: None)
        self._on_unborrow = on_unborrow or (lambda owner, oid: None)
        self._local: dict[bytes, int] = {}
        self._submitted: dict[bytes, int] = {}
        self._owned: set[bytes] = set()
        self._borrowed: dict[bytes, str] = {}          # borrower side: object -> owner
        self._borrowers: dict[bytes, set[str]] = {}    # owner side: object -> borrowing processes
        self._in_transit: dict[bytes, int] = {}
        self._captured: dict[bytes, int] = {}
        self._contains: dict[bytes, list[bytes]] = {}  # owned outer object -> refs inside its value
        self._lock = threading.RLock()

    # ---- ownership and borrowing ----
    def add_owned(self, object_id: bytes) -> None:
        with self._lock:
            self._owned.add(object_id)

    def owns(self, object_id: bytes) -> bool:
        return object_id in self._owned

    def owns_all(self, object_ids: set[bytes]) -> bool:
        """Whether this process owns every one of ``object_ids`` (one C-level pass, for wait())."""
        return object_ids <= self._owned

    def note_borrowed(self, object_id: bytes, owner: str, claims: int = 0) -> None:
        """A ref owned elsewhere was deserialized here; ``claims`` in-transit holds it redeems."""
        if owner == self.my_address:
            if claims:
                self.add_borrower(object_id, owner, claims)
            return
        with self._lock:
            first = object_id not in self._borrowed
            if first:
                self._borrowed[object_id] = owner
        if first or claims:
            self._on_borrow(owner, object_id, claims, first)

    def owner_of(self, object_id: bytes) -> str | None:
        return self._borrowed.get(object_id)

    # ---- owner side: borrowers, in-transit holds ----
    def add_borrower(self, object_id: bytes, borrower: str, claims: int = 0) -> None:
        with self._lock:
            if object_id not in self._owned:
                return  # already freed: the borrower's get will report it lost
            if borrower != self.my_address:
                self._borrowers.setdefault(object_id, set()).add(borrower)
            if claims:
                left = self._in_transit.get(object_id, 0) - claims
                if left > 0:
                    self._in_transit[object_id] = left
                else:
                    self._in_transit.pop(object_id, None)
            self._maybe_release(object_id)

    def add_borrowers(self, entries: list[tuple[bytes, int]], borrower: str) -> None:
        with self._lock:
            for object_id, claims in entries:
                self.add_borrower(object_id, borrower, claims)

    def remove_borrower(self, object_id: bytes, borrower: str) -> None:
        with self._lock:
            borrowers = self._borrowers.get(object_id)
            if borrowers is None:
                return
            borrowers.discard(borrower)
            if not borrowers:
                del self._borrowers[object_id]
            self._maybe_release(object_id)

    def remove_process(self, address: str) -> list[bytes]:
        """A process died: forget it as a borrower. Returns the borrowed ids it owned."""
        with self._lock:
            for oid in [o for o, b in self._borrowers.items() if address in b]:
                self.remove_borrower(oid, address)
            return [oid for oid, owner in self._borrowed.items() if owner == address]

    def add_in_transit(self, object_ids: list[bytes]) -> None:
        with self._lock:
            for oid in object_ids:
                if oid in self._owned:
                    self._in_transit[oid] = self._in_transit.get(oid, 0) + 1

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
                    self._maybe_release(oid)

    def add_captured(self, outer: bytes, inner: list[bytes]) -> None:
        """``outer``'s value holds refs ``inner``: they live at least as long as it does."""
        with self._lock:
            self._contains[outer] = list(inner)
            for oid in inner:
                self._captured[oid] = self._captured.get(oid, 0) + 1

    def release_if_unreferenced(self, object_id: bytes) -> None:
        """Free an owned object nobody ever took a ref to (e.g. an unread generator item)."""
        with self._lock:
            if object_id in self._owned:
                self._maybe_release(object_id)

    def _referenced(self, object_id: bytes) -> bool:
        return (object_id in self._local or object_id in self._submitted or object_id in self._captured
                or object_id in self._borrowers or object_id in self._in_transit)

    def _maybe_release(self, object_id: bytes) -> None:
        if self._referenced(object_id):
            return
        if object_id in self._owned:
            self._owned.discard(object_id)
            self._release_contents(object_id)
            self._on_owned_freed(object_id)
        elif object_id in self._borrowed:
            owner = self._borrowed.pop(object_id)
            self._release_contents(object_id)
            self._on_borrowed_released(object_id)
            self._on_unborrow(owner, object_id)

    def _release_contents(self, outer: bytes) -> None:
        for oid in self._contains.pop(outer, ()):
            n = self._captured.get(oid, 0) - 1
            if n > 0:
                self._captured[oid] = n
            else:
                self._captured.pop(oid, None)
                self._maybe_release(oid)

    # ---- introspection ----
    def local_count(self, object_id: bytes) -> int:
        return self._local.get(object_id, 0)

    def num_owned(self) -> int:
        return len(self._owned)

    def owned_ids(self) -> list[bytes]:
        with self._lock:
            return list(self._owned)

    def borrowers_of(self, object_id: bytes) -> set[str]:
        return set(self._borrowers.get(object_id, ()))

    def snapshot(self) -> dict[bytes, tuple]:
        """Every object this process references or owns: id -> (local refs, refs held by pending
        tasks, owned, pinned (captured, borrowed by others or in transit), owner address
        if borrowed)."""
        with self._lock:
            ids = set(self._local) | set(self._submitted) | self._owned | set(self._borrowed)
            return {oid: (self._local.get(oid, 0), self._submitted.get(oid, 0), oid in self._owned,
                          oid in self._captured or oid in self._borrowers
                          or oid in self._in_transit,
                          self._borrowed.get(oid)) for oid in ids}
