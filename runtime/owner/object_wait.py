"""Waiting for objects: the pieces of wait() that decide without I/O (which refs are
ready, in input order), and the blocking wait for values that get() makes.

A wait() loop over n refs (wait, take one, wait on the rest) calls wait() n times,
so each call must not cost n Python steps per ref: ids are scanned with set
operations at C speed, one watch covers all the refs, and the split stops at the
last ref chosen.
"""
from __future__ import annotations

import threading
from typing import Callable

from juno import exceptions as exc


class ReadyCounter:
    """A watch() callback for wait(): sets ``event`` once ``expect(n)``'s n more refs are stored.

    Counts distinct ids: a value stored again (an object rebuilt from its lineage) is one ref."""

    __slots__ = ("event", "_lock", "_stored", "_needed")

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._stored: set[bytes] = set()
        self._needed: int | None = None  # unknown until watch() says how many were ready

    def expect(self, needed: int) -> None:
        with self._lock:
            self._needed = needed
            if len(self._stored) >= needed:
                self.event.set()

    def __call__(self, object_id: bytes, _value: tuple) -> None:
        with self._lock:
            self._stored.add(object_id)
            if self._needed is not None and len(self._stored) >= self._needed:
                self.event.set()


def split_ready(refs: list, ready: set[bytes], num_returns: int) -> tuple[list, list]:
    """(the first ``num_returns`` refs whose id is in ``ready``, the others), both in input order.

    The scan stops at the last one chosen and the rest is sliced, so a loop of
    wait(num_returns=1) over refs that finish in order stays linear.
    """
    chosen: list[int] = []
    if ready:
        for i, ref in enumerate(refs):
            if ref._id in ready:
                chosen.append(i)
                if len(chosen) == num_returns:
                    break
    not_ready: list = []
    start = 0
    for i in chosen:
        not_ready += refs[start:i]
        start = i + 1
    not_ready += refs[start:]
    return [refs[i] for i in chosen], not_ready


def wait_values(owned, refs: list, timeout: float | None, fetch: Callable, blocked: Callable[[bool], None]) -> list:
    """The values of ``refs`` stored in ``owned`` (an OwnedValues), waiting for those not there yet:
    ``fetch(ref)`` asks for one nobody will store unasked (a borrowed object), ``blocked(True)`` and
    ``blocked(False)`` bracket the wait. GetTimeoutError after ``timeout`` seconds."""
    values: list[tuple | None] = [owned.get(r.binary()) for r in refs]
    missing = [i for i, v in enumerate(values) if v is None]
    if not missing:
        return values
    # A bare lock, held until the last value is here: its release wakes this thread in one
    # step (an Event's Condition makes the woken thread take the setter's lock again).
    done = threading.Lock()
    done.acquire()
    remaining = [len({refs[i].binary() for i in missing})]
    lock = threading.Lock()
    seen: set[bytes] = set()

    def ready(object_id: bytes, _value: tuple) -> None:
        with lock:
            if object_id in seen:
                return
            seen.add(object_id)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.release()

    registered = []
    for i in missing:
        oid = refs[i].binary()
        if oid in seen:
            continue
        registered.append(oid)
        if not owned.on_ready(oid, ready):
            fetch(refs[i])
    if done.locked():
        blocked(True)
        try:
            if not done.acquire(True, -1 if timeout is None else max(0.0, timeout)):
                for oid in registered:
                    owned.remove_waiter(oid, ready)
                raise exc.GetTimeoutError(
                    f"Get timed out: {remaining[0]} of {len(refs)} object(s) not ready "
                    f"after {timeout} s."
                )
        finally:
            blocked(False)
    return [owned.get(r.binary()) for r in refs]
