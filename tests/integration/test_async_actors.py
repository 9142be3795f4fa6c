"""Async actors on a real cluster: coroutine methods run concurrently on the
actor's event loop, with limits, concurrency groups, streaming and cancellation."""
from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import juno
from juno.exceptions import ActorDiedError, RayActorError, TaskCancelledError
from helpers import record_from_another_caller, value_once_file_exists, wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 4}


@juno.remote
class Gate:
    """N callers await an event that another call sets."""

    def __init__(self):
        self.event = asyncio.Event()
        self.waiting = 0
        self.running = 0
        self.peak = 0

    async def wait(self, i):
        self.waiting += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.event.wait()
        finally:
            self.running -= 1
        return i

    async def open(self):
        self.event.set()
        return self.waiting

    async def num_waiting(self):
        return self.waiting

    async def peak_running(self):
        return self.peak


def test_async_calls_run_concurrently(juno_shared):
    g = Gate.remote()
    waiters = [g.wait.remote(i) for i in range(10)]
    # Every waiter is parked on the event at the same time; a sync actor would
    # never run the 2nd call (and never reach open()).
    wait_for_condition(lambda: juno.get(g.num_waiting.remote()) == 10)
    assert juno.wait(waiters, num_returns=10, timeout=0)[0] == []
    assert juno.get(g.open.remote()) == 10
    assert juno.get(waiters, timeout=30) == list(range(10))
    assert juno.get(g.peak_running.remote()) == 10


def test_async_actor_keeps_state_and_raises_errors(juno_shared):
    @juno.remote
    class AsyncCounter:
        def __init__(self):
            self.n = 0

        async def incr(self):
            self.n += 1
            mine = self.n
            await asyncio.sleep(0)
            return mine

        async def fail(self):
            await asyncio.sleep(0)
            raise ValueError("async failure")

        def sync_in_async_actor(self):
            return self.n

    c = AsyncCounter.remote()
    # Async actors interleave calls at await points and, unlike sync actors, don't
    # promise to start them in submission order; the state is shared by all calls.
    assert sorted(juno.get([c.incr.remote() for _ in range(5)])) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="async failure"):
        juno.get(c.fail.remote())
    assert juno.get(c.sync_in_async_actor.remote()) == 5


def test_max_concurrency_limits_async_actor(juno_shared):
    @juno.remote(max_concurrency=2, concurrency_groups={"ctl": 1})
    class Limited:
        def __init__(self):
            self.event = asyncio.Event()
            self.running = 0
            self.peak = 0
            self.finished = 0

        async def wait(self):
            self.running += 1
            self.peak = max(self.peak, self.running)
            await self.event.wait()
            self.running -= 1
            self.finished += 1

        @juno.method(concurrency_group="ctl")
        async def state(self):
            return self.running, self.finished

        @juno.method(concurrency_group="ctl")
        async def open(self):
            running = self.running
            self.event.set()
            return running

    a = Limited.remote()
    waiters = [a.wait.remote() for _ in range(4)]
    wait_for_condition(lambda: juno.get(a.state.remote()) == (2, 0))
    # The "ctl" group has its own limit, so it answers while the default group is full.
    assert juno.get(a.open.remote()) == 2
    juno.get(waiters, timeout=30)
    assert juno.get(a.state.remote()) == (0, 4)
    assert juno.get(a.wait.remote(), timeout=30) is None


_released_by = juno.remote(num_cpus=0)(value_once_file_exists)
_record_from_a_task = juno.remote(num_cpus=0)(record_from_another_caller)


def test_a_call_waiting_for_its_argument_takes_no_concurrency_slot(juno_shared, gate):
    # Ray runs an async actor's calls out of order: a call whose argument is not ready
    # waits outside the actor, so even with max_concurrency=1 other calls run.
    @juno.remote(max_concurrency=1)
    class AsyncRecorder:
        def __init__(self):
            self.seen = []

        async def record(self, x):
            self.seen.append(x)

        async def log(self):
            return list(self.seen)

    r = AsyncRecorder.remote()
    waiting = r.record.remote(_released_by.remote(str(gate), "driver"))
    assert juno.get(_record_from_a_task.remote(r, "task"), timeout=60) == ["task"]
    juno.get(r.record.remote("driver, later"), timeout=60)  # out of order, as Ray's async actors
    gate.touch()
    juno.get(waiting, timeout=60)
    assert juno.get(r.log.remote(), timeout=60) == ["task", "driver, later", "driver"]


def test_async_concurrency_group_limit(juno_shared):
    @juno.remote(concurrency_groups={"serial": 1})
    class Serial:
        def __init__(self):
            self.events = {}
            self.started = []

        @juno.method(concurrency_group="serial")
        async def job(self, name):
            self.started.append(name)
            self.events[name] = asyncio.Event()
            await self.events[name].wait()
            return name

        async def started_jobs(self):
            return list(self.started)

        async def finish(self, name):
            self.events[name].set()

    s = Serial.remote()
    first, second = s.job.remote("a"), s.job.remote("b")
    wait_for_condition(lambda: juno.get(s.started_jobs.remote()) == ["a"])
    assert juno.wait([second], timeout=0.2)[0] == []
    assert juno.get(s.started_jobs.remote()) == ["a"]
    s.finish.remote("a")
    assert juno.get(first, timeout=30) == "a"
    wait_for_condition(lambda: juno.get(s.started_jobs.remote()) == ["a", "b"])
    s.finish.remote("b")
    assert juno.get(second, timeout=30) == "b"


def test_async_generator_streams_items_as_produced(juno_shared):
    @juno.remote
    class Streamer:
        def __init__(self):
            self.more = asyncio.Event()

        async def numbers(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        async def gated(self):
            yield "first"
            await self.more.wait()
            yield "second"

        async def release(self):
            self.more.set()

    s = Streamer.remote()
    assert [juno.get(r) for r in s.numbers.remote(5)] == [0, 1, 2, 3, 4]
    gen = s.gated.remote()
    assert juno.get(next(gen), timeout=30) == "first"
    s.release.remote()
    assert juno.get(next(gen), timeout=30) == "second"
    with pytest.raises(StopIteration):
        next(gen)


def test_async_method_awaits_other_actors(juno_shared):
    @juno.remote
    class Leaf:
        async def double(self, x):
            return 2 * x

    @juno.remote
    class Root:
        def __init__(self, leaf):
            self.leaf = leaf

        async def fan_out(self, n):
            return sum(await asyncio.gather(*[self.leaf.double.remote(i) for i in range(n)]))

    root = Root.remote(Leaf.remote())
    assert juno.get(root.fan_out.remote(10), timeout=30) == 90


def test_cancel_async_call(juno_shared):
    @juno.remote
    class Sleeper:
        def __init__(self):
            self.started = asyncio.Event()
            self.cancelled = False

        async def forever(self):
            self.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise

        async def has_started(self):
            await self.started.wait()
            return True

        async def saw_cancel(self):
            return self.cancelled

    s = Sleeper.remote()
    ref = s.forever.remote()
    assert juno.get(s.has_started.remote(), timeout=30)
    juno.cancel(ref)
    with pytest.raises(TaskCancelledError):
        juno.get(ref, timeout=30)
    # The coroutine was cancelled (it saw CancelledError), and the actor lives on.
    assert juno.get(s.saw_cancel.remote()) is True


def test_async_actor_runtime_context_and_exit(juno_shared):
    @juno.remote(max_restarts=1)
    class Leaving:
        async def actor_id(self):
            return juno.get_runtime_context().get_actor_id()

        async def pid(self):
            return os.getpid()

        async def leave(self):
            juno.exit_actor()

    a = Leaving.remote()
    assert juno.get(a.actor_id.remote()) == a._actor_id.hex()
    pid = juno.get(a.pid.remote())
    with pytest.raises(RayActorError):
        juno.get(a.leave.remote(), timeout=30)
    with pytest.raises(ActorDiedError, match="exit_actor"):
        juno.get(a.pid.remote(), timeout=30)

    def process_gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        import psutil

        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    wait_for_condition(process_gone)


def test_calls_queued_behind_exit_actor_fail_instead_of_running(juno_shared):
    """Calls that reached the actor before it left must not run on an actor that is gone."""

    @juno.remote
    class AsyncLeaving:
        async def leave(self):
            await asyncio.sleep(0.3)  # the next calls wait on the concurrency limit meanwhile
            juno.exit_actor()

        async def ping(self):
            return "ran"

    class SyncLeaving:
        def leave(self):
            time.sleep(0.3)
            juno.exit_actor()

        def ping(self):
            return "ran"

    for actor in (AsyncLeaving.options(max_concurrency=1).remote(),
                  juno.remote(SyncLeaving).remote(),  # one call at a time, on the main thread
                  juno.remote(concurrency_groups={"spare": 1})(SyncLeaving).remote()):  # a pool of one
        juno.get(actor.ping.remote())  # created and ready
        leave = actor.leave.remote()
        pings = [actor.ping.remote() for _ in range(3)]
        with pytest.raises(ActorDiedError, match="exit_actor"):
            juno.get(leave, timeout=30)
        for ref in pings:
            with pytest.raises(ActorDiedError, match="exit_actor"):
                juno.get(ref, timeout=30)


def test_async_actor_runs_calls_on_one_event_loop_thread(juno_shared):
    @juno.remote
    class Where:
        async def thread(self):
            return threading.get_ident()

    w = Where.remote()
    assert len(set(juno.get([w.thread.remote() for _ in range(10)]))) == 1


def test_async_actor_output_is_prefixed(juno_shared, capsys):
    @juno.remote
    class AsyncTalker:
        async def say(self, text):
            await asyncio.sleep(0)
            print(text)
            return os.getpid()

    t = AsyncTalker.remote()
    pid = juno.get(t.say.remote("async hello"))
    out = []

    def seen():
        out.append(capsys.readouterr().out)
        return f"(AsyncTalker pid={pid}) async hello" in "".join(out)

    wait_for_condition(seen)
