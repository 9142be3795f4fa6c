"""Caller-side actor calls: straight to the actor's worker, in order, per caller.

The caller learns an actor's address from the GCS (one subscription per actor)
and sends calls directly on one socket, which keeps them ordered. When the GCS
reports a restart, calls in flight are resent where ``max_task_retries`` allows
and failed with ActorDiedError otherwise; a dead actor fails everything queued.
Those decisions are ActorCalls' (runtime/owner/actor_calls.py, no sockets, unit-tested);
this class is the shell that feeds it events and carries out its actions.

A call to an actor that is ALIVE, with nothing of this process queued for it, is sent
by the calling thread itself, on the IO thread's connection to the actor
(``EventLoop.send_threadsafe``): no hand-off to the IO thread on the way out. Any
other call goes through the IO thread (``_submit``), and until it has been handled
there (``ActorCalls.hand_over``) later calls follow it, so calls leave in submission
order. The actors' states are shared by the IO thread and the calling threads under
``_state_lock``. Runs on the IO thread, except ``submit``, ``register_owned`` and the
``max_pending_calls`` reservations.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from juno import exceptions as exc
from juno.comm import messages
from juno.owner.actor_calls import DEAD, ActorCalls, CancelRemote, Fail, PendingCallLimits, Retry, Send
from juno.owner.task_spec import TaskEntry

logger = logging.getLogger(__name__)


class ActorCreation:
    """What submit hooks see when an actor is created (a TaskEntry for calls)."""

    __slots__ = ("actor_id",)
    task_id = None

    def __init__(self, actor_id: bytes):
        self.actor_id = actor_id


class ActorSubmitter:
    def __init__(self, cw):
        self.cw = cw
        self.calls = ActorCalls()  # the decisions; read and changed under _state_lock
        self._limits = PendingCallLimits()  # max_pending_calls, under _lock
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
            self._apply(self.calls.follow(actor_id))

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
            return self._limits.reserve(actor_id, task_id, limit)

    def release_call(self, actor_id: bytes, task_id: bytes) -> None:
        if not self._limits.counts(actor_id):
            return
        with self._lock:
            self._limits.release(actor_id, task_id)

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
            if direct:
                address = self.calls.send_direct(entry)
                if address is not None and self._send_from_caller(address, entry):
                    return
            self.calls.hand_over(entry.actor_id)  # the IO thread subscribes to it when it handles the call
        self.cw.loop.call_soon(self._submit, entry, True)

    def _send_from_caller(self, address: str, entry: TaskEntry) -> bool:
        """Send a call from the calling thread (the state lock held); False if it cannot be."""
        cw = self.cw
        cw.tasks.entries[entry.task_id] = entry
        ev = cw.task_events
        if ev is not None:
            ev.pushed_by_caller(entry)
        try:
            sent = cw.loop.send_threadsafe(address, messages.push_task(cw.tasks.inline_deps(entry), None))
        except Exception:  # noqa: BLE001 - the IO thread meets the same error, where it always did
            sent = False
        if not sent:
            self.calls.not_sent(entry)
            if entry.ev is not None:
                entry.ev[2] = None
        return sent

    def _submit(self, entry: TaskEntry, handoff: bool = False) -> None:
        """IO thread: send, queue or fail a call (``handoff``: one that submit handed over)."""
        with self._state_lock:
            self.cw.tasks.entries[entry.task_id] = entry
            ev = self.cw.task_events
            if ev is not None and entry.ev is None:
                ev.created(entry)
            self._apply(self.calls.submit(entry, handoff))

    def _apply(self, actions: list) -> None:
        """Carry out ActorCalls' actions, in order (IO thread, the state lock held)."""
        for action in actions:
            kind = type(action)
            if kind is Send:
                self._send(action.address, action.calls)
            elif kind is Fail:
                self._fail(action.call, action.error)
            elif kind is Retry:
                if self.cw.task_events is not None:
                    self.cw.task_events.retry(action.call, action.reason, action.message)
            elif kind is CancelRemote:
                self.cw.loop.send(action.address, messages.cancel_task(action.task_id, False, False))
            else:  # Subscribe
                self._subscribe(action.actor_id)

    def _send(self, address: str, calls: list[TaskEntry]) -> None:
        cw = self.cw
        for entry in calls:
            spec = cw.tasks.inline_deps(entry)
            if cw.task_events is not None:
                cw.task_events.pushed(entry)
            cw.loop.send(address, messages.push_task(spec, None))

    def _subscribe(self, actor_id: bytes) -> None:
        self.cw.gcs.call("subscribe_actor", actor_id, self.cw.address,
                         callback=lambda ok, info: self._on_subscribed(actor_id, ok, info))

    def _on_subscribed(self, actor_id: bytes, ok: bool, info: Any) -> None:
        if ok:
            self.on_actor_update(actor_id, info)
            return
        # The GCS stayed unreachable (GcsUnavailableError): queued calls fail, the next call asks again.
        error = info if isinstance(info, BaseException) else exc.RaySystemError(str(info))
        with self._state_lock:
            self._apply(self.calls.subscription_failed(actor_id, error))

    # ------------------------------------------------------------------ updates from the GCS
    def on_actor_update(self, actor_id: bytes, info: dict | None) -> None:
        if info is None:
            return
        with self._state_lock:
            self._apply(self.calls.actor_update(actor_id, info))
            if info["state"] == DEAD:
                creation_args = self._creation_args.pop(actor_id, None)
                if creation_args:
                    self.cw.refs.remove_submitted(creation_args)

    # ------------------------------------------------------------------ results
    def on_call_result(self, entry: TaskEntry, results: list, retryable: bool, worker_id: bytes,
                       run: tuple | None = None) -> None:
        """IO thread: the result of one of our calls (the core worker routes it here)."""
        if run is not None and entry.ev is not None:  # task events: the run, from the actor's worker
            ev = entry.ev
            ev[7], ev[8] = run
            ev[9] = worker_id
        with self._state_lock:
            actions = self.calls.call_result(entry, retryable)
            if actions is not None:
                self._apply(actions)
                return
            self._finished(entry)
            self.cw.tasks.complete(entry, results)

    def cancel(self, entry: TaskEntry, force: bool) -> None:
        with self._state_lock:
            self._apply(self.calls.cancel(entry))

    def state_of(self, actor_id: bytes) -> str | None:
        """The actor's state as this caller last heard it from the GCS; None if it never called it."""
        return self.calls.state_of(actor_id)
