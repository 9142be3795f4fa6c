"""Holding an actor's calls until their ObjectRef arguments are here, per caller.

Ray orders a plain actor's calls per caller: a call whose argument is not ready
holds the later calls of the same caller, never another caller's. An actor's worker
therefore waits for a call's arguments before it queues the call to run (instead
of blocking the actor's only thread on them), and keeps a queue per caller only
while that caller has a call waiting. Async and threaded actors run calls out of
order, as Ray's do: there each call waits for its own arguments only.

Plain logic, no I/O: the executor supplies ``wait_for(deps, done)``, which calls
``done(pins)`` once every dependency is local, and ``release(spec)``, which queues
the call. Runs on the worker's IO thread.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

from juno.owner.task_spec import TaskSpec


class _Held:
    __slots__ = ("spec", "ready", "pins", "cancelled")

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.ready = False
        self.pins: Any = None  # what keeps the fetched values local until the call runs
        self.cancelled = False


class ArgumentGate:
    def __init__(self, wait_for: Callable[[list, Callable[[Any], None]], None],
                 release: Callable[[TaskSpec, Any], None]):
        self._wait_for = wait_for
        self._release = release
        self.ordered = True  # calls from one caller run in the order they were sent
        self._queues: dict[str, collections.deque[_Held]] = {}  # caller -> its held calls (ordered)
        self._held: dict[bytes, _Held] = {}  # task id -> held call

    def submit(self, spec: TaskSpec) -> None:
        """Queue ``spec`` to run now, or hold it until its arguments (and, ordered, its
        caller's earlier calls) are ready."""
        queue = self._queues.get(spec.owner) if self.ordered and self._queues else None
        deps = spec.deps
        missing = [d for d in deps if d[0] == "r"] if deps else None  # values still with their owners
        if not missing and queue is None:
            self._release(spec, None)
            return
        held = _Held(spec)
        self._held[spec.task_id] = held
        if self.ordered:
            if queue is None:
                queue = self._queues[spec.owner] = collections.deque()
            queue.append(held)
        if missing:
            self._wait_for(missing, lambda pins: self._on_ready(held, pins))
        else:
            self._on_ready(held, None)

    def cancel(self, task_id: bytes) -> TaskSpec | None:
        """Drop a held call (it never runs); its spec, or None when it isn't held."""
        held = self._held.pop(task_id, None)
        if held is None:
            return None
        held.cancelled = True
        if self.ordered:
            queue = self._queues[held.spec.owner]
            queue.remove(held)
            self._drain(held.spec.owner, queue)
        return held.spec

    def _on_ready(self, held: _Held, pins: Any) -> None:
        if held.cancelled:
            return
        held.ready = True
        held.pins = pins
        if not self.ordered:
            del self._held[held.spec.task_id]
            self._release(held.spec, pins)
            return
        caller = held.spec.owner
        self._drain(caller, self._queues[caller])

    def _drain(self, caller: str, queue: collections.deque) -> None:
        while queue and queue[0].ready:
            held = queue.popleft()
            del self._held[held.spec.task_id]
            self._release(held.spec, held.pins)
        if not queue:
            del self._queues[caller]
