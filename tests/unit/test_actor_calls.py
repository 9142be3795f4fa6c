"""The decisions about a caller's actor calls (runtime/owner/actor_calls.py), without processes:
per-caller order (also across a restart), calls queued while the actor is being created,
max_task_retries, a dead actor's cause, cancel, and max_pending_calls."""
from __future__ import annotations

import pytest

from juno import exceptions as exc
from juno.owner import task_spec as ts
from juno.owner.actor_calls import (ALIVE, DEAD, PENDING, RESTARTING, ActorCalls, CancelRemote, Fail,
                                    PendingCallLimits, Retry, Send, Subscribe)
from juno.owner.task_spec import TaskEntry

ACTOR = b"A" * 16


def call(n: int, retries: int = 0, actor: bytes = ACTOR) -> TaskEntry:
    task_id = n.to_bytes(4, "big") + b"t" * 20  # task ids sort in submission order, as the owner's do
    spec = ts.make_spec(task_id=task_id, kind=ts.KIND_ACTOR_CALL, name=f"C.m{n}", actor_id=actor)
    return TaskEntry(task_id, spec, [task_id + b"\x01\x00\x00\x00"], [], retries, actor_id=actor)


def alive(address: str = "addr-1", restarts: int = 0) -> dict:
    return {"state": ALIVE, "address": address, "num_restarts": restarts}


def sent(actions: list) -> list[tuple[str, list[str]]]:
    return [(a.address, [c.name for c in a.calls]) for a in actions if type(a) is Send]


def failed(actions: list) -> list[tuple[str, type]]:
    return [(a.call.name, type(a.error)) for a in actions if type(a) is Fail]


def submit_all(calls: ActorCalls, entries: list[TaskEntry]) -> list:
    """The IO thread's way: each call handed over, then submitted."""
    actions = []
    for entry in entries:
        calls.hand_over(entry.actor_id)
    for entry in entries:
        actions += calls.submit(entry, handed_over=True)
    return actions


def test_calls_wait_for_creation_then_leave_in_order():
    calls = ActorCalls()
    actions = submit_all(calls, [call(1), call(2), call(3)])
    assert actions == [Subscribe(ACTOR)]  # one subscription; nothing sent while pending creation
    assert calls.state_of(ACTOR) == PENDING
    assert calls.send_direct(call(4)) is None  # not ALIVE: the caller may not send by itself
    actions = calls.actor_update(ACTOR, alive())
    assert sent(actions) == [("addr-1", ["C.m1", "C.m2", "C.m3"])]
    assert all(c.pushed for a in actions for c in a.calls)


def test_direct_send_only_when_nothing_is_queued_or_handed_over():
    calls = ActorCalls()
    calls.submit(call(1))
    calls.actor_update(ACTOR, alive())
    first = call(2)
    assert calls.send_direct(first) == "addr-1"
    calls.hand_over(ACTOR)  # a call on its way to the IO thread: the next one must follow it
    assert calls.send_direct(call(3)) is None
    assert sent(calls.submit(call(4), handed_over=True)) == [("addr-1", ["C.m4"])]
    assert calls.send_direct(call(5)) == "addr-1"
    late = call(6)
    assert calls.send_direct(late) == "addr-1"
    calls.not_sent(late)  # the send failed: no longer in flight
    assert not late.pushed
    assert late.task_id not in calls.actors[ACTOR].in_flight


def test_restart_resends_lost_calls_first_in_submission_order():
    calls = ActorCalls()
    calls.actor_update(ACTOR, alive())
    a, b, c = call(1, retries=1), call(2, retries=1), call(3, retries=1)
    for entry in (b, a, c):  # the order they are in flight in does not matter: submission order does
        calls.submit(entry)
    actions = calls.actor_update(ACTOR, {"state": RESTARTING, "last_death": "it was killed"})
    assert [(type(x), x.call.name) for x in actions] == [(Retry, "C.m1"), (Retry, "C.m2"), (Retry, "C.m3")]
    assert actions[0].reason == "ACTOR_DIED" and actions[0].message == "it was killed"
    d = call(4, retries=1)
    assert calls.submit(d) == []  # queued behind the lost calls while restarting
    assert calls.send_direct(call(5)) is None
    actions = calls.actor_update(ACTOR, alive("addr-2", restarts=1))
    assert sent(actions) == [("addr-2", ["C.m1", "C.m2", "C.m3", "C.m4"])]
    assert [x.retries_left for x in (a, b, c, d)] == [0, 0, 0, 1]


def test_an_actor_alive_at_a_new_address_loses_the_calls_sent_to_the_old_one():
    calls = ActorCalls()
    calls.actor_update(ACTOR, alive("addr-1"))
    kept, lost = call(1, retries=-1), call(2)
    calls.submit(kept)
    calls.submit(lost)
    actions = calls.actor_update(ACTOR, alive("addr-2"))  # the restart was not seen: only its result
    assert [type(x) for x in actions] == [Retry, Fail, Send]
    assert failed(actions) == [("C.m2", exc.ActorDiedError)]
    assert sent(actions) == [("addr-2", ["C.m1"])]
    assert kept.retries_left < 0  # infinite retries stay infinite


def test_retry_budget_then_failure_with_the_cause():
    calls = ActorCalls()
    calls.actor_update(ACTOR, alive())
    entry = call(1, retries=1)
    calls.submit(entry)
    calls.actor_update(ACTOR, {"state": RESTARTING, "last_death": "OOM"})
    calls.actor_update(ACTOR, alive("addr-2"))
    actions = calls.actor_update(ACTOR, {"state": RESTARTING, "last_death": "OOM again"})
    assert failed(actions) == [("C.m1", exc.ActorDiedError)]
    message = str(actions[0].error)
    assert "max_task_retries=0" in message and "OOM again" in message


def test_retryable_exception_resends_while_retries_last():
    calls = ActorCalls()
    calls.actor_update(ACTOR, alive())
    entry = call(1, retries=1)
    calls.submit(entry)
    actions = calls.call_result(entry, retryable=True)
    assert [type(x) for x in actions] == [Retry, Send]
    assert actions[0].reason == "TASK_EXECUTION_EXCEPTION"
    assert calls.call_result(entry, retryable=True) is None  # no retries left: complete it
    assert calls.actors[ACTOR].in_flight == {}
    other = call(2, retries=3)
    calls.submit(other)
    assert calls.call_result(other, retryable=False) is None


def test_dead_actor_fails_in_flight_queued_and_new_calls_with_its_cause():
    calls = ActorCalls()
    calls.actor_update(ACTOR, alive())
    calls.submit(call(1, retries=5))
    calls.actor_update(ACTOR, {"state": RESTARTING})
    calls.submit(call(2))
    actions = calls.actor_update(ACTOR, {"state": DEAD, "death_cause": "ray.kill() was called"})
    assert failed(actions) == [("C.m1", exc.ActorDiedError), ("C.m2", exc.ActorDiedError)]
    assert all("ray.kill() was called" in str(x.error) for x in actions)
    actions = calls.submit(call(3))
    assert failed(actions) == [("C.m3", exc.ActorDiedError)]
    assert "ray.kill() was called" in str(actions[0].error)
    assert calls.send_direct(call(4)) is None
    assert calls.subscription_failed(ACTOR, exc.RaySystemError("x")) == []  # dead stays dead


def test_failed_subscription_fails_queued_calls_and_asks_again_next_time():
    calls = ActorCalls()
    calls.submit(call(1))
    error = exc.RaySystemError("the GCS stayed unreachable")
    actions = calls.subscription_failed(ACTOR, error)
    assert [(x.call.name, x.error) for x in actions] == [("C.m1", error)]
    assert calls.submit(call(2)) == [Subscribe(ACTOR)]


def test_cancel_of_a_queued_call_fails_it_and_of_a_sent_one_asks_the_actor():
    calls = ActorCalls()
    queued = call(1)
    calls.submit(queued)
    assert failed(calls.cancel(queued)) == [("C.m1", exc.TaskCancelledError)]
    calls.actor_update(ACTOR, alive())
    running = call(2, retries=3)
    calls.submit(running)
    assert calls.cancel(running) == [CancelRemote("addr-1", running.task_id)]
    actions = calls.actor_update(ACTOR, {"state": RESTARTING})  # a cancelled call is not retried
    assert failed(actions) == [("C.m2", exc.TaskCancelledError)]
    assert calls.call_result(running, retryable=True) is None
    assert ActorCalls().cancel(call(3)) == []  # an actor never called: nothing to do


def test_max_pending_calls():
    limits = PendingCallLimits()
    assert limits.reserve(ACTOR, b"t1", 2) and limits.reserve(ACTOR, b"t2", 2)
    assert not limits.reserve(ACTOR, b"t3", 2)
    assert limits.reserve(b"B" * 16, b"t3", 2)  # per actor
    limits.release(ACTOR, b"t1")
    assert limits.reserve(ACTOR, b"t3", 2)
    limits.release(ACTOR, b"t2")
    limits.release(ACTOR, b"t3")
    assert not limits.counts(ACTOR)
    limits.release(ACTOR, b"t9")  # releasing what is not counted is harmless


@pytest.mark.parametrize("state", [RESTARTING, DEAD])
def test_updates_for_an_actor_never_called_subscribe_and_keep_its_state(state):
    calls = ActorCalls()
    actions = calls.actor_update(ACTOR, {"state": state})
    assert actions == [Subscribe(ACTOR)]
    assert calls.state_of(ACTOR) == state
    assert calls.follow(ACTOR) == []  # subscribed already
