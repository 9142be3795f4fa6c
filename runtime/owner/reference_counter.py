"""Reference counts kept by each process for the objects it owns or borrows.

The owner of an object (the process that put it or submitted the task making
it) frees it when nothing can reach it any more:

* local refs: ObjectRef instances alive in the owner;
* submitted: tasks the owner submitted that still need it (as an argument, or
  nested inside one);
* borrowers: other processes that deserialized a ref to it and still hold one;
* in transit: refs serialized into a task result on their way to the result's
  owner, which has not registered as a borrower yet (it does when the result
  arrives, before anyone reads it: ``adopt_contents``);
* captured: live objects this process owns whose value contains a ref to it.

Actor handles are counted here too, under the actor's id (runtime/actor.py); the
arguments of an actor's constructor count as submitted until the actor is dead.

A borrower keeps its own local/submitted/captured counts for refs it holds and
tells the owner when it starts and stops borrowing. Those messages queue here,
per owner and in the order the counts changed, until the core worker takes
them (``take_borrow_updates``): one message per owner for every ref a get
deserialized or a dropped list released, however many. Hot paths work on whole
batches under one lock: the refs one get unpickles (``add_borrowed_refs``), the
borrowed refs dropped together (``remove_local_later``), an owner's updates
from one borrower (``update_borrowers``). Everything here is plain logic,
unit-tested without processes.
"""
from __future__ import annotations

import collections
import itertools
import threading
from typing import Callable

Callback = Callable[[bytes], None]
UNBORROW = -1  # in a batch of borrow updates: the borrower stopped borrowing the object
Updates = dict[str, tuple[list[bytes], list[int]]]  # owner -> (object ids, claims or UNBORROW)


class _Deferred(threading.local):
    updates: Updates | None = None  # this thread's borrow updates, between defer and undefer


class ReferenceCounter:
    def __init__(self, my_address: str, on_owned_freed: Callback, on_pending: Callable[[], None] | None = None):
        """``on_pending``: borrow updates or dropped refs wait (called with the lock held, so it
        must only schedule a call of ``apply_drops`` and ``take_borrow_updates``); without it,
        dropped refs are applied at once. What a borrower owes its owners is read with
        ``take_borrow_updates``, and the borrowed values it may drop with ``take_released``."""
        self.my_address = my_address
        self._on_owned_freed = on_owned_freed
        self._on_pending = on_pending
        self._local: dict[bytes, int] = {}
        self._submitted: dict[bytes, int] = {}
        self._owned: set[bytes] = set()
        self._borrowed: dict[bytes, str] = {}          # borrower side: object -> owner
        self._borrowers: dict[bytes, set[str]] = {}    # owner side: object -> borrowing processes
        self._in_transit: dict[bytes, int] = {}
        self._captured: dict[bytes, int] = {}
        self._contains: dict[bytes, list[bytes]] = {}  # owned outer object -> refs inside its value
        self._lock = threading.RLock()
        # Borrower side, waiting for take_borrow_updates: updates per owner (a thread between
        # defer_borrow_updates and undefer_borrow_updates keeps its own), and released objects.
        self._updates: Updates = {}
        self._deferred = _Deferred()
        self._updates_pending = False
        self._released: list[bytes] = []
        # remove_local_later: dropped borrowed refs, applied in order by apply_drops.
        self._drops: collections.deque[bytes] = collections.deque()
        self._drops_pending = False

    @property
    def lock(self) -> threading.RLock:
        """Held by every change of the counts: holding it keeps them (and the updates) still."""
        return self._lock

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
        with self._lock:
            self._note_borrowed(object_id, owner, claims)

    def add_borrowed_refs(self, refs: list, claims: list[int] | None = None) -> None:
        """ObjectRefs unpickled together (by one get): for each, ``add_local`` and
        ``note_borrowed`` with its claims (none by default), in one pass under one lock."""
        me = self.my_address
        if claims is None:
            claims = itertools.repeat(0)
        with self._lock:
            local, borrowed = self._local, self._borrowed
            updates = owner = entry = None
            for ref, n in zip(refs, claims):
                object_id = ref._id
                local[object_id] = local.get(object_id, 0) + 1
                if object_id in borrowed and not n:
                    continue  # the common case of a ref held already: nothing to tell
                if ref._owner != owner:
                    owner = ref._owner
                    if updates is None:
                        updates = self._updates_for_thread()
                    entry = None if owner == me else self._entry(updates, owner)
                if entry is None:
                    self._note_borrowed(object_id, owner, n)
                    continue
                if object_id not in borrowed:
                    borrowed[object_id] = owner
                entry[0].append(object_id)
                entry[1].append(n)

    def _note_borrowed(self, object_id: bytes, owner: str, claims: int) -> None:
        if owner == self.my_address:
            if claims:
                self.update_borrowers([object_id], [claims], owner)
            return
        first = object_id not in self._borrowed
        if first:
            self._borrowed[object_id] = owner
        if first or claims:
            entry = self._entry(self._updates_for_thread(), owner)
            entry[0].append(object_id)
            entry[1].append(claims)

    def owner_of(self, object_id: bytes) -> str | None:
        return self._borrowed.get(object_id)

    # ---- owner side: borrowers, in-transit holds ----
    def add_borrower(self, object_id: bytes, borrower: str, claims: int = 0) -> None:
        self.update_borrowers([object_id], [claims], borrower)

    def remove_borrower(self, object_id: bytes, borrower: str) -> None:
        self.update_borrowers([object_id], [UNBORROW], borrower)

    def update_borrowers(self, object_ids: list[bytes], claims: list[int], borrower: str) -> None:
        """A borrower's registrations (``claims[i] >= 0``: it borrows ``object_ids[i]`` and redeems
        that many in-transit holds) and releases (``UNBORROW``), applied in the order it made them."""
        mine = borrower == self.my_address
        owned, borrowers, in_transit = self._owned, self._borrowers, self._in_transit
        with self._lock:
            for object_id, n in zip(object_ids, claims):
                if n == UNBORROW:
                    held = borrowers.get(object_id)
                    if held is None:
                        continue
                    held.discard(borrower)
                    if not held:
                        del borrowers[object_id]
                        self._maybe_release(object_id)
                    continue
                if object_id not in owned:
                    continue  # already freed: the borrower's get will report it lost
                if not mine:
                    held = borrowers.get(object_id)
                    if held is None:
                        borrowers[object_id] = {borrower}
                    else:
                        held.add(borrower)
                if n:
                    left = in_transit.get(object_id, 0) - n
                    if left > 0:
                        in_transit[object_id] = left
                    else:
                        in_transit.pop(object_id, None)
                    if mine:
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
            self._remove_local(object_id)

    def _remove_local(self, object_id: bytes) -> None:
        local = self._local
        n = local.get(object_id, 0) - 1
        if n > 0:
            local[object_id] = n
            return
        local.pop(object_id, None)
        self._maybe_release(object_id)

    def remove_local_later(self, object_id: bytes) -> None:
        """``remove_local`` for a dropped ref to a borrowed object, applied by ``apply_drops``
        (``on_pending`` schedules it): when a list of refs goes, its refs go in one pass under
        one lock, not one lock each. A late decrement only delays the release message, which
        goes out asynchronously anyway; increments are never queued, so a count is never low.
        Lock-free: it runs in ObjectRef.__del__, on whatever thread drops the ref."""
        self._drops.append(object_id)
        if not self._drops_pending:
            self._drops_pending = True
            if self._on_pending is None:
                self.apply_drops()
            else:
                self._on_pending()

    def apply_drops(self) -> None:
        """Apply the queued ``remove_local_later`` calls, in order (any thread)."""
        self._drops_pending = False  # before draining: a drop queued after this schedules again
        drops = self._drops
        with self._lock:
            local, borrowed, pop = self._local, self._borrowed, drops.popleft
            gone = []  # borrowed objects no longer referenced (only decrements follow: they stay so)
            while drops:
                object_id = pop()
                n = local.get(object_id, 0) - 1
                if n > 0:
                    local[object_id] = n
                    continue
                local.pop(object_id, None)
                if object_id in borrowed and not self._referenced(object_id):
                    gone.append(object_id)
                else:
                    self._maybe_release(object_id)
            if gone:
                self._release_borrowed(gone)

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
        """``outer``'s value holds refs ``inner``: they live at least as long as it does. A value
        stored again (a task re-run) replaces the refs of the one before, which are released."""
        with self._lock:
            captured = self._captured
            for oid in inner:
                captured[oid] = captured.get(oid, 0) + 1
            if outer in self._contains:
                self._release_contents(outer)
            self._contains[outer] = list(inner)

    def adopt_contents(self, outer: bytes, object_ids: list[bytes], owners: list[str], keep: bool = True) -> None:
        """A task result for ``outer`` arrived holding refs ``object_ids`` (owned by ``owners``),
        each held in transit for this process by its owner: redeem each hold once, however often
        (if ever) the value is read, and keep the refs while ``outer`` lives; this process
        borrows those owned elsewhere. For an ``outer`` no longer referenced, the refs not held
        otherwise are released at once (their owners hear it in the same message), as they are
        when not ``keep`` (a value discarded)."""
        with self._lock:
            keep = keep and outer in self._owned
            if keep:  # counted before the holds go, so none of our own is freed in between
                self.add_captured(outer, object_ids)
            for object_id, owner in zip(object_ids, owners):
                self._note_borrowed(object_id, owner, 1)
            if not keep:
                for object_id in object_ids:
                    self._maybe_release(object_id)

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
            if object_id in self._contains:
                self._release_contents(object_id)
            self._on_owned_freed(object_id)
        elif object_id in self._borrowed:
            self._release_borrowed((object_id,))

    def _release_borrowed(self, object_ids) -> None:
        """Borrowed objects nothing here references any more: forget them, tell their owners."""
        borrowed, contains = self._borrowed, self._contains
        updates = owner = entry = None
        for object_id in object_ids:
            was = borrowed.pop(object_id)  # (each id once: only those in ``borrowed`` come here)
            if object_id in contains:
                self._release_contents(object_id)
            if was != owner:
                owner = was
                if updates is None:
                    updates = self._updates_for_thread()
                entry = self._entry(updates, owner)
            entry[0].append(object_id)
            entry[1].append(UNBORROW)
        self._released.extend(object_ids)

    def _release_contents(self, outer: bytes) -> None:
        for oid in self._contains.pop(outer, ()):
            n = self._captured.get(oid, 0) - 1
            if n > 0:
                self._captured[oid] = n
            else:
                self._captured.pop(oid, None)
                self._maybe_release(oid)

    # ---- borrower side: the updates owed to owners ----
    def _updates_for_thread(self) -> Updates:
        deferred = self._deferred.updates
        if deferred is not None:
            return deferred
        if not self._updates_pending and self._on_pending is not None:
            self._updates_pending = True  # the caller appends one: a flush is due
            self._on_pending()
        return self._updates

    @staticmethod
    def _entry(updates: Updates, owner: str) -> tuple[list[bytes], list[int]]:
        entry = updates.get(owner)
        if entry is None:
            entry = updates[owner] = ([], [])
        return entry

    def take_borrow_updates(self, keep_owner: str | None = None) -> Updates:
        """The updates owed to each owner (``update_borrowers``'s arguments), in order, dropped
        refs applied first; ``keep_owner``'s stay queued (the caller schedules their flush)."""
        self.apply_drops()
        with self._lock:
            out, self._updates = self._updates, {}
            kept = out.pop(keep_owner, None) if keep_owner is not None else None
            self._updates_pending = False
            if kept is not None:
                self._updates_for_thread()[keep_owner] = kept  # and their flush is scheduled
            return out

    def take_released(self) -> list[bytes]:
        """Borrowed objects this process stopped referencing since the last call and has not
        borrowed again: their cached values can go (hold ``lock`` until they have)."""
        with self._lock:
            out, self._released = self._released, []
            borrowed = self._borrowed
            return [object_id for object_id in out if object_id not in borrowed]

    def defer_borrow_updates(self) -> Updates | None:
        """This thread's updates queue apart until ``undefer_borrow_updates``, where no flush on
        another thread can take them (a task's arguments register before the task replies).
        Returns what to pass to ``undefer_borrow_updates``."""
        outer = self._deferred.updates
        self._deferred.updates = {}
        return outer

    def undefer_borrow_updates(self, outer: Updates | None) -> bool:
        """Queue this thread's updates since ``defer_borrow_updates`` after those queued already;
        whether there were any."""
        with self._lock:
            mine = self._deferred.updates
            self._deferred.updates = outer
            if not mine:
                return False
            target = self._updates_for_thread()
            for owner, (object_ids, claims) in mine.items():
                entry = target.get(owner)
                if entry is None:
                    target[owner] = (object_ids, claims)
                else:
                    entry[0].extend(object_ids)
                    entry[1].extend(claims)
            return True

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
        self.apply_drops()
        with self._lock:
            ids = set(self._local) | set(self._submitted) | self._owned | set(self._borrowed)
            return {oid: (self._local.get(oid, 0), self._submitted.get(oid, 0), oid in self._owned,
                          oid in self._captured or oid in self._borrowers
                          or oid in self._in_transit,
                          self._borrowed.get(oid)) for oid in ids}
