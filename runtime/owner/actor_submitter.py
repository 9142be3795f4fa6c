"""Caller-side actor calls: straight to the actor's worker, in order, per caller.

The caller learns an actor's address from the GCS (one subscription per actor)
and sends calls directly on one socket, which keeps them ordered. When the GCS
reports a restart, calls in flight are resent where ``max_task_retries`` allows
and failed with ActorDiedError otherwise; a dead actor fails everything queued.

A call to an actor that is ALIVE, with nothing of this process queued for it, is sent
by the calling thread itself, on the IO thread's connection to the actor
(``EventLoop.send_threadsafe``): no hand-off to the IO thread on the way out. Any
other call goes through the IO thread (``_submit``), and until it has been handled
there (``handoffs``) later calls follow it, so calls leave in submission order. The
actors' states are shared by the IO thread and the calling threads under ``_state_lock``.
Runs on the IO thread, except ``submit`` and ``register_owned``.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Any

from juno import exceptions as exc
from juno.comm import messages
from juno.owner.task_spec import TaskEntry

logger = logging.getLogger(__name__)

PENDING, ALIVE, RESTARTING, DEAD = "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"


class ActorCreation:
    """What submit hooks see when an actor is created (a TaskEntry for calls)."""

    __slots__ = ("actor_id",)
    task_id = None

    def __init__(self, actor_id: bytes):
        self.actor_id = actor_id


class _ActorState:
    __slots__ = ("actor_id", "state", "address", "queue", "in_flight", "death", "subscribed", "num_restarts",
                 "handoffs")

    def __init__(self, actor_id: bytes):
        self.actor_id = actor_id
        self.state = PENDING
        self.address: str | None = None
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.in_flight: dict[bytes, TaskEntry] = {}
        self.death: str = ""
        self.subscribed = False
        self.num_restarts = 0
        self.handoffs = 0  # calls handed to the IO thread's _submit and not handled there yet


class ActorSubmitter:
    def __init__(self, cw):
        self.cw = cw
        self.actors: dict[bytes, _ActorState] = {}
        self._limited: dict[bytes, set[bytes]] = {}  # actor_id -> unfinished calls (max_pending_calls)
        self._creation_args: dict[bytes, list[bytes]] = {}  # actor_id -> ids its constructor was given
        self._lock = threading.Lock()
        # Held by whatever reads or changes the actors' states: the IO thread, and a calling
        # thread sending a call itself. Reentrant: completing a call runs callbacks that may call.
        self._state_lock = threading.RLock()

    # ------------------------------------------------------------------ lifetime
    def register_owned(self, actor_id: bytes, detached: bool, creation_args: list[bytes]) -> None:
        """The creating thread, once the GCS registered an actor this worker created. Unless it
        is detached, its handles are counted here from now on (ActorHandle in runtime/actor.py).
        The refs and handles its constructor was given stay held until it is dead (a restart
        needs them again): we follow its state to learn when."""
        if not detached:
            self.cw.refs.add_owned(actor_id)
        if creation_args:
            self._creation_args[actor_id] = creation_args
            self.cw.loop.call_soon(self._follow, actor_id)
        self.cw.note_submit(ActorCreation(actor_id))

    def _follow(self, actor_id: bytes) -> None:
        with self._state_lock:
            self._state(actor_id)

    def out_of_scope(self, actor_id: bytes) -> None:
        """No handle to an actor we own is left anywhere: not here, not in a borrower, a pending
        call or a stored object. As in Ray, it stops: the GCS asks it to exit gracefully (its
        exit handlers run) and it becomes DEAD, saying it went out of scope. Any thread."""
        if not self.cw.shutting_down:  # a driver that leaves ends its job, and the job its actors
            self.cw.loop.call_soon(self.cw.gcs.call, "actor_out_of_scope", actor_id)

    # ------------------------------------------------------------------ max_pending_calls
    def reserve_call(self, actor_id: bytes, task_id: bytes, limit: int) -> bool:
        """Count a call against the actor's max_pending_calls; False when it is full. Any thread."""
        with self._lock:
            pending = self._limited.setdefault(actor_id, set())
            if len(pending) >= limit:
                return False
            pending.add(task_id)
            return True

    def release_call(self, actor_id: bytes, task_id: bytes) -> None:
        if actor_id not in self._limited:
            return
        with self._lock:
            pending = self._limited.get(actor_id)
            if pending is not None:
                pending.discard(task_id)
                if not pending:
                    del self._limited[actor_id]

    def _finished(self, entry: TaskEntry) -> None:
        self.release_call(entry.actor_id, entry.task_id)

    def _fail(self, entry: TaskEntry, error: BaseException) -> None:
        self._finished(entry)
        self.cw.tasks.fail(entry, error)

    # ------------------------------------------------------------------ submission
    def submit(self, entry: TaskEntry) -> None:
        """Any thread: send the call now if the actor is ALIVE and nothing of ours is queued for
        it, else hand it to the IO thread."""
        self.cw.note_submit(entry)
        direct = not self.cw.loop.in_loop_thread()
        with self._state_lock:
            state = self.actors.get(entry.actor_id)
            if state is None:  # the IO thread subscribes to it (_state) when it handles the call
                state = self.actors[entry.actor_id] = _ActorState(entry.actor_id)
            elif direct and state.state == ALIVE and not state.queue and not state.handoffs \
                    and self._send_from_caller(state, entry):
                return
            state.handoffs += 1
        self.cw.loop.call_soon(self._submit, entry, True)

    def _send_from_caller(self, state: _ActorState, entry: TaskEntry) -> bool:
        """Send a call from the calling thread (the state lock held); False if it cannot be."""
        cw = self.cw
        cw.tasks.entries[entry.task_id] = entry
        ev = cw.task_events
        if ev is not None:
            ev.pushed_by_caller(entry)
        entry.pushed = True
        state.in_flight[entry.task_id] = entry
        try:
            sent = cw.loop.send_threadsafe(state.address, messages.push_task(cw.tasks._inline_deps(entry), None))
        except Exception:  # noqa: BLE001 - the IO thread meets the same error, where it always did
            sent = False
        if not sent:
            del state.in_flight[entry.task_id]
            entry.pushed = False
            if entry.ev is not None:
                entry.ev[2] = None
        return sent

    def _state(self, actor_id: bytes) -> _ActorState:
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = _ActorState(actor_id)
        if not state.subscribed:
            state.subscribed = True
            self.cw.gcs.call("subscribe_actor", actor_id, self.cw.address,
                             callback=lambda ok, info: self._on_subscribed(actor_id, ok, info))
        return state

    def _on_subscribed(self, actor_id: bytes, ok: bool, info: Any) -> None:
        if ok:
            self.on_actor_update(actor_id, info)
            return
        with self._state_lock:
            state = self.actors.get(actor_id)  # the GCS stayed unreachable (GcsUnavailableError)
            if state is not None and state.state != DEAD:
                state.subscribed = False  # the next call asks again
                error = info if isinstance(info, BaseException) else exc.RaySystemError(str(info))
                for entry in list(state.queue):
                    self._fail(entry, error)
                state.queue.clear()

    def _submit(self, entry: TaskEntry, handoff: bool = False) -> None:
        """IO thread: send, queue or fail a call (``handoff``: one that submit handed over)."""
        with self._state_lock:
            state = self._state(entry.actor_id)
            if handoff:
                state.handoffs -= 1
            self.cw.tasks.entries[entry.task_id] = entry
            ev = self.cw.task_events
            if ev is not None and entry.ev is None:
                ev.created(entry)
            if state.state == ALIVE and not state.queue:
                self._send(state, entry)
            elif state.state == DEAD:
                self._fail_dead(state, entry)
            else:
                state.queue.append(entry)

    def _send(self, state: _ActorState, entry: TaskEntry) -> None:
        spec = self.cw.tasks._inline_deps(entry)
        entry.pushed = True
        state.in_flight[entry.task_id] = entry
        if self.cw.task_events is not None:
            self.cw.task_events.pushed(entry)
        self.cw.loop.send(state.address, messages.push_task(spec, None))

    def _fail_dead(self, state: _ActorState, entry: TaskEntry) -> None:
        self._fail(entry, exc.ActorDiedError(state.actor_id.hex(), state.death))

    # ------------------------------------------------------------------ updates from the GCS
    def on_actor_update(self, actor_id: bytes, info: dict | None) -> None:
        if info is None:
            return
        with self._state_lock:
            self._update(actor_id, info)

    def _update(self, actor_id: bytes, info: dict) -> None:
        state = self._state(actor_id)
        new = info["state"]
        state.num_restarts = info.get("num_restarts", 0)
        if new == ALIVE:
            moved = state.address is not None and state.address != info["address"]
            state.address = info["address"]
            state.state = ALIVE
            if moved:
                self._handle_lost_calls(state)
            while state.queue and state.state == ALIVE:
                self._send(state, state.queue.popleft())
        elif new == RESTARTING:
            state.state = RESTARTING
            state.death = info.get("last_death") or ""  # why the last incarnation died, for lost calls
            self._handle_lost_calls(state)
        elif new == DEAD:
            state.state = DEAD
            state.death = info.get("death_cause") or "the actor died"
            for entry in list(state.in_flight.values()) + list(state.queue):
                self._fail_dead(state, entry)
            state.in_flight.clear()
            state.queue.clear()
            creation_args = self._creation_args.pop(actor_id, None)
            if creation_args:
                self.cw.refs.remove_submitted(creation_args)

    def _handle_lost_calls(self, state: _ActorState) -> None:
        """Calls sent to a previous incarnation: resend if retries allow, else fail."""
        lost = sorted(state.in_flight.values(), key=lambda e: e.task_id)
        state.in_flight.clear()
        retry = []
        for entry in lost:
            if entry.cancelled:
                self._fail(entry, exc.TaskCancelledError(entry.task_id.hex()))
            elif entry.retries_left != 0:
                entry.retries_left -= 1
                if self.cw.task_events is not None:
                    self.cw.task_events.retry(entry, "ACTOR_DIED", state.death or "the actor died")
                retry.append(entry)
            else:
                cause = f" It died because {state.death}." if state.death else ""
                self._fail(entry, exc.ActorDiedError(
                    state.actor_id.hex(),
                    f"The actor died while running {entry.name} and the call was not retried "
                    f"(max_task_retries=0); the actor is restarting.{cause}"))
        state.queue.extendleft(reversed(retry))

    # ------------------------------------------------------------------ results
    def on_task_result(self, entry: TaskEntry, results: list, retryable: bool) -> None:
        with self._state_lock:
            self._on_result(entry, results, retryable)

    def _on_result(self, entry: TaskEntry, results: list, retryable: bool) -> None:
        state = self.actors.get(entry.actor_id)
        if state is not None:
            state.in_flight.pop(entry.task_id, None)
        if retryable and entry.retries_left != 0 and state is not None and not entry.cancelled:
            entry.retries_left -= 1
            if self.cw.task_events is not None:
                self.cw.task_events.retry(entry, "TASK_EXECUTION_EXCEPTION",
                                          "the call raised an exception it is retried for")
            self._submit(entry)
            return
        self._finished(entry)
        self.cw.tasks.complete(entry, results)

    def cancel(self, entry: TaskEntry, force: bool) -> None:
        with self._state_lock:
            state = self.actors.get(entry.actor_id)
            entry.cancelled = True
            if state is None:
                return
            if entry in state.queue:
                state.queue.remove(entry)
                self._fail(entry, exc.TaskCancelledError(entry.task_id.hex()))
            elif entry.task_id in state.in_flight and state.address:
                self.cw.loop.send(state.address, messages.cancel_task(entry.task_id, False, False))

    def state_of(self, actor_id: bytes) -> Any:
        state = self.actors.get(actor_id)
        return state.state if state else None
