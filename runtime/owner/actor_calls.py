"""The decisions about this process's calls to actors, with no sockets, threads or clocks.

For each actor it calls, a process knows what the GCS last said of it (pending creation,
alive at an address, restarting, dead and why), the calls queued for it and the calls sent
to its current incarnation. :class:`ActorCalls` takes the events (a call submitted, an
actor update, a call's result, a cancel, a failed subscription) and returns the actions
that carry them out: send these calls to this address in this order, fail this call with
this error, record a retry, ask the actor to cancel a call, subscribe to an actor. Calls
to one actor leave in submission order, a restart resends the calls it lost while
``max_task_retries`` allows, and a dead actor fails every call with its cause.

:class:`ActorSubmitter` (runtime/owner/actor_submitter.py) is the shell: it feeds the
events in under its lock and applies the actions (sockets, task events, results). The
calls are the owner's TaskEntry records; the decisions read and update only their
bookkeeping (``retries_left``, ``pushed``, ``cancelled``).
"""
from __future__ import annotations

import collections
from typing import NamedTuple

from juno import exceptions as exc
from juno.owner.task_spec import TaskEntry

PENDING, ALIVE, RESTARTING, DEAD = "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"


# ---------------------------------------------------------------------- actions
class Send(NamedTuple):
    """Send ``calls`` to the actor at ``address``, in this order (they are in flight now)."""
    address: str
    calls: list


class Fail(NamedTuple):
    """The call is over: store ``error`` as its result."""
    call: TaskEntry
    error: BaseException


class Retry(NamedTuple):
    """The call is tried again (a retry counted against ``max_task_retries``): a task event."""
    call: TaskEntry
    reason: str   # the task event's error type: ACTOR_DIED or TASK_EXECUTION_EXCEPTION
    message: str


class CancelRemote(NamedTuple):
    """Ask the actor at ``address`` to cancel a call it is running or holds."""
    address: str
    task_id: bytes


class Subscribe(NamedTuple):
    """Ask the GCS for the actor's updates (its answer is the first one)."""
    actor_id: bytes


class ActorState:
    """What this process knows of one actor and of its calls to it."""

    __slots__ = ("actor_id", "state", "address", "queue", "in_flight", "death", "subscribed", "num_restarts",
                 "handoffs")

    def __init__(self, actor_id: bytes):
        self.actor_id = actor_id
        self.state = PENDING
        self.address: str | None = None
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.in_flight: dict[bytes, TaskEntry] = {}  # sent to the current incarnation, no result yet
        self.death: str = ""
        self.subscribed = False
        self.num_restarts = 0
        self.handoffs = 0  # calls handed to the shell's IO thread and not submitted there yet


class ActorCalls:
    """Per-actor call ordering and lifecycle. Not thread-safe: the shell calls it under one lock.

    A call goes one of two ways. The fast one (``send_direct``): the actor is ALIVE and
    nothing of this process is queued for it or handed over, so the calling thread may send
    it at once. Otherwise the shell notes the hand-over (``hand_over``) and later submits it
    (``submit``, with ``handed_over=True``): until then, later calls take the same way, so
    calls leave in submission order.
    """

    def __init__(self) -> None:
        self.actors: dict[bytes, ActorState] = {}

    def state_of(self, actor_id: bytes) -> str | None:
        state = self.actors.get(actor_id)
        return state.state if state else None

    # ------------------------------------------------------------------ submission
    def send_direct(self, call: TaskEntry) -> str | None:
        """The address to send ``call`` to right now, from the calling thread (it is in flight
        from here on); None when it must be handed over instead."""
        state = self.actors.get(call.actor_id)
        if state is None or state.state != ALIVE or state.queue or state.handoffs:
            return None
        call.pushed = True
        state.in_flight[call.task_id] = call
        return state.address

    def not_sent(self, call: TaskEntry) -> None:
        """A ``send_direct`` send failed: the call is handed over instead."""
        self.actors[call.actor_id].in_flight.pop(call.task_id, None)
        call.pushed = False

    def hand_over(self, actor_id: bytes) -> None:
        """A call is on its way to ``submit``: later calls must not overtake it."""
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = ActorState(actor_id)
        state.handoffs += 1

    def follow(self, actor_id: bytes) -> list:
        """Learn the actor's state (an actor we created, whose death releases its arguments)."""
        actions: list = []
        self._state(actor_id, actions)
        return actions

    def submit(self, call: TaskEntry, handed_over: bool = False) -> list:
        """Send, queue or fail a call: sent when the actor is ALIVE and nothing is queued before it."""
        actions: list = []
        state = self._state(call.actor_id, actions)
        if handed_over:
            state.handoffs -= 1
        self._place(state, call, actions)
        return actions

    def _place(self, state: ActorState, call: TaskEntry, actions: list) -> None:
        if state.state == ALIVE and not state.queue:
            call.pushed = True
            state.in_flight[call.task_id] = call
            actions.append(Send(state.address, [call]))
        elif state.state == DEAD:
            actions.append(Fail(call, exc.ActorDiedError(state.actor_id.hex(), state.death)))
        else:
            state.queue.append(call)

    def _state(self, actor_id: bytes, actions: list) -> ActorState:
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = ActorState(actor_id)
        if not state.subscribed:
            state.subscribed = True
            actions.append(Subscribe(actor_id))
        return state

    def subscription_failed(self, actor_id: bytes, error: BaseException) -> list:
        """The GCS could not be asked for the actor's state: queued calls fail with ``error``, and
        the next call asks again."""
        state = self.actors.get(actor_id)
        if state is None or state.state == DEAD:
            return []
        state.subscribed = False
        actions = [Fail(call, error) for call in state.queue]
        state.queue.clear()
        return actions

    # ------------------------------------------------------------------ updates from the GCS
    def actor_update(self, actor_id: bytes, info: dict) -> list:
        """The GCS's news of the actor: ``info["state"]`` ALIVE (with ``address``), RESTARTING
        (``last_death``) or DEAD (``death_cause``)."""
        actions: list = []
        state = self._state(actor_id, actions)
        new = info["state"]
        state.num_restarts = info.get("num_restarts", 0)
        if new == ALIVE:
            moved = state.address is not None and state.address != info["address"]
            state.address = info["address"]
            state.state = ALIVE
            if moved:
                self._lost_calls(state, actions)
            if state.queue:
                calls = list(state.queue)
                state.queue.clear()
                for call in calls:
                    call.pushed = True
                    state.in_flight[call.task_id] = call
                actions.append(Send(state.address, calls))
        elif new == RESTARTING:
            state.state = RESTARTING
            state.death = info.get("last_death") or ""  # why the last incarnation died, for lost calls
            self._lost_calls(state, actions)
        elif new == DEAD:
            state.state = DEAD
            state.death = info.get("death_cause") or "the actor died"
            for call in list(state.in_flight.values()) + list(state.queue):
                actions.append(Fail(call, exc.ActorDiedError(actor_id.hex(), state.death)))
            state.in_flight.clear()
            state.queue.clear()
        return actions

    def _lost_calls(self, state: ActorState, actions: list) -> None:
        """Calls sent to a previous incarnation: queued again, ahead of the rest, while retries
        allow (in submission order), else failed."""
        lost = sorted(state.in_flight.values(), key=lambda call: call.task_id)
        state.in_flight.clear()
        retry = []
        for call in lost:
            if call.cancelled:
                actions.append(Fail(call, exc.TaskCancelledError(call.task_id.hex())))
            elif call.retries_left != 0:
                call.retries_left -= 1
                actions.append(Retry(call, "ACTOR_DIED", state.death or "the actor died"))
                retry.append(call)
            else:
                cause = f" It died because {state.death}." if state.death else ""
                actions.append(Fail(call, exc.ActorDiedError(
                    state.actor_id.hex(),
                    f"The actor died while running {call.name} and the call was not retried "
                    f"(max_task_retries=0); the actor is restarting.{cause}")))
        state.queue.extendleft(reversed(retry))

    # ------------------------------------------------------------------ results and cancel
    def call_result(self, call: TaskEntry, retryable: bool) -> list | None:
        """A call's result arrived (``retryable``: it raised an exception its retry_exceptions
        name). None: the call is over, complete it with the result. Else the actions that retry it."""
        state = self.actors.get(call.actor_id)
        if state is None:
            return None
        state.in_flight.pop(call.task_id, None)
        if not retryable or call.retries_left == 0 or call.cancelled:
            return None
        call.retries_left -= 1
        actions: list = [Retry(call, "TASK_EXECUTION_EXCEPTION", "the call raised an exception it is retried for")]
        self._place(self._state(call.actor_id, actions), call, actions)
        return actions

    def cancel(self, call: TaskEntry) -> list:
        """Cancel a call: one still queued here fails now; one in flight is asked to stop."""
        call.cancelled = True
        state = self.actors.get(call.actor_id)
        if state is None:
            return []
        if call in state.queue:
            state.queue.remove(call)
            return [Fail(call, exc.TaskCancelledError(call.task_id.hex()))]
        if call.task_id in state.in_flight and state.address:
            return [CancelRemote(state.address, call.task_id)]
        return []


class PendingCallLimits:
    """Each actor's unfinished calls from this process, for ``max_pending_calls``. Not
    thread-safe: the shell holds a lock (calls are reserved on the calling threads)."""

    def __init__(self) -> None:
        self.pending: dict[bytes, set[bytes]] = {}  # actor_id -> unfinished calls counted

    def reserve(self, actor_id: bytes, task_id: bytes, limit: int) -> bool:
        """Count a call; False (and not counted) when ``limit`` calls are unfinished already."""
        calls = self.pending.setdefault(actor_id, set())
        if len(calls) >= limit:
            return False
        calls.add(task_id)
        return True

    def release(self, actor_id: bytes, task_id: bytes) -> None:
        calls = self.pending.get(actor_id)
        if calls is not None:
            calls.discard(task_id)
            if not calls:
                del self.pending[actor_id]

    def counts(self, actor_id: bytes) -> bool:
        """Whether any call to the actor is counted (cheap, for the common case of none)."""
        return actor_id in self.pending

