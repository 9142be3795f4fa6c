"""Actors on a real cluster: state, ordering, handles, methods, threaded actors,
concurrency groups, generators, GPUs, output, and the API's misuse errors."""
from __future__ import annotations

import os
import threading

import pytest

import juno
from helpers import record_from_another_caller, value_once_file_exists, wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 4}


@juno.remote
class Counter:
    def __init__(self, start=0, *, step=1):
        self.n = start
        self.step = step

    def incr(self, k=None):
        self.n += self.step if k is None else k
        return self.n

    def get(self):
        return self.n

    def pid(self):
        return os.getpid()


@juno.remote
class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, x):
        self.seen.append(x)

    def log(self):
        return list(self.seen)


@juno.remote
class Signal:
    """Classic Ray test helper: an async actor whose wait() returns once send() ran."""

    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        return True

    async def send(self):
        self.event.set()


# ------------------------------------------------------------------ state and ordering

def test_state_persists_across_calls(juno_shared):
    c = Counter.remote(10, step=5)
    assert juno.get(c.incr.remote()) == 15
    assert juno.get(c.incr.remote(k=2)) == 17
    assert juno.get(c.get.remote()) == 17
    # Two actors of the same class keep separate state in separate processes.
    d = Counter.remote()
    assert juno.get(d.incr.remote()) == 1
    assert juno.get(c.get.remote()) == 17
    assert juno.get(c.pid.remote()) != juno.get(d.pid.remote())


def test_constructor_takes_object_refs(juno_shared):
    start = juno.put(100)
    c = Counter.remote(start, step=juno.put(3))
    # Top-level refs are resolved to their values, also as keyword arguments.
    assert juno.get(c.incr.remote()) == 103


def test_calls_from_one_caller_run_in_submission_order(juno_shared):
    r = Recorder.remote()
    refs = [r.record.remote(i) for i in range(200)]
    assert juno.get(r.log.remote()) == list(range(200))
    assert juno.get(refs) == [None] * 200


def test_order_kept_when_an_earlier_call_waits_for_its_argument(juno_shared):
    @juno.remote(num_cpus=0)
    def later(signal, value):
        juno.get(signal.wait.remote())
        return value

    signal = Signal.remote()
    r = Recorder.remote()
    not_ready = later.remote(signal, "first")
    r.record.remote(not_ready)
    r.record.remote("second")
    log_ref = r.log.remote()
    assert juno.wait([log_ref], timeout=0.2)[0] == []
    signal.send.remote()
    assert juno.get(log_ref, timeout=30) == ["first", "second"]


_released_by = juno.remote(num_cpus=0)(value_once_file_exists)
_record_from_a_task = juno.remote(num_cpus=0)(record_from_another_caller)


def test_a_callers_pending_argument_does_not_hold_another_callers_calls(juno_shared, gate):
    # Ray orders a plain actor's calls per caller: the driver's call waits for its
    # argument, a task's call (another caller) runs meanwhile.
    r = Recorder.remote()
    driver_call = r.record.remote(_released_by.remote(str(gate), "driver"))
    assert juno.get(_record_from_a_task.remote(r, "task"), timeout=60) == ["task"]
    driver_later = r.record.remote("driver, later")  # the same caller: behind its waiting call
    assert juno.wait([driver_later], timeout=0.5)[0] == []
    gate.touch()
    juno.get([driver_call, driver_later], timeout=60)
    assert juno.get(r.log.remote(), timeout=60) == ["task", "driver", "driver, later"]


def test_cancelling_a_call_that_waits_for_its_argument_lets_the_next_one_run(juno_shared, gate):
    r = Recorder.remote()
    waiting = r.record.remote(_released_by.remote(str(gate), "never"))
    after = r.record.remote("after")
    juno.cancel(waiting)
    with pytest.raises(juno.exceptions.TaskCancelledError):
        juno.get(waiting, timeout=60)
    juno.get(after, timeout=60)
    assert juno.get(r.log.remote(), timeout=60) == ["after"]


def test_method_error_raises_to_caller_and_actor_survives(juno_shared):
    @juno.remote
    class Fragile:
        def __init__(self):
            self.calls = 0

        def fail(self):
            self.calls += 1
            raise KeyError("bad key")

        def count(self):
            return self.calls

    a = Fragile.remote()
    with pytest.raises(KeyError, match="bad key") as info:
        juno.get(a.fail.remote())
    assert isinstance(info.value, juno.exceptions.RayTaskError)
    assert "Fragile.fail" in str(info.value)
    assert juno.get(a.count.remote()) == 1


def test_object_ref_arguments_are_resolved(juno_shared):
    c = Counter.remote()
    assert juno.get(c.incr.remote(juno.put(41))) == 41
    # Nested refs arrive as refs.
    @juno.remote
    class Holder:
        def take(self, refs):
            return juno.get(refs[0]) * 2

    h = Holder.remote()
    assert juno.get(h.take.remote([juno.put(21)])) == 42


# ------------------------------------------------------------------ handles

def test_handle_passed_to_task(juno_shared):
    c = Counter.remote()

    @juno.remote(num_cpus=0)
    def bump(counter, times):
        return juno.get([counter.incr.remote() for _ in range(times)])[-1]

    assert juno.get(bump.remote(c, 3)) == 3
    assert juno.get(bump.remote(c, 2)) == 5
    assert juno.get(c.get.remote()) == 5


def test_handle_passed_to_actor_and_nested(juno_shared):
    c = Counter.remote()

    @juno.remote
    class Caller:
        def __init__(self, counter):
            self.counter = counter

        def use(self, n):
            for _ in range(n):
                self.counter.incr.remote()
            return juno.get(self.counter.get.remote())

        def use_list(self, handles):
            return juno.get(handles[0].incr.remote(100))

    caller = Caller.remote(c)
    assert juno.get(caller.use.remote(4)) == 4
    assert juno.get(caller.use_list.remote([c])) == 104
    assert juno.get(c.get.remote()) == 104


def test_handle_returned_from_actor(juno_shared):
    @juno.remote
    class Factory:
        def make(self):
            self.child = Counter.remote(7)
            return self.child

    f = Factory.remote()
    child = juno.get(f.make.remote())
    assert isinstance(child, juno.actor.ActorHandle)
    assert juno.get(child.incr.remote()) == 8


def test_a_method_called_on_a_handle_nobody_kept(juno_shared):
    # The handle lives only in the expression; the call keeps it (and the actor) until it is done.
    assert juno.get(Counter.remote(5).incr.remote()) == 6
    method = Counter.remote(1).incr
    assert juno.get(method.remote()) == 2

    @juno.remote(num_cpus=0)
    def call(m):
        return juno.get(m.remote())

    counter = Counter.remote(10)
    assert juno.get(counter.incr.remote()) == 11
    assert juno.get(call.remote(counter.incr)) == 12  # a cached method, passed to a task


def test_current_actor_handle_inside_actor(juno_shared):
    @juno.remote
    class Selfish:
        def me(self):
            return juno.get_runtime_context().current_actor

        def value(self):
            return "self"

    a = Selfish.remote()
    me = juno.get(a.me.remote())
    assert me == a
    assert juno.get(me.value.remote()) == "self"


# ------------------------------------------------------------------ methods

def test_num_returns_via_method_decorator_and_options(juno_shared):
    @juno.remote
    class Multi:
        @juno.method(num_returns=2)
        def pair(self, x):
            return x, x + 1

        def triple(self):
            return "a", "b", "c"

        @juno.method(num_returns=0)
        def nothing(self):
            return None

    m = Multi.remote()
    refs = m.pair.remote(1)
    assert isinstance(refs, list) and len(refs) == 2
    assert juno.get(refs) == [1, 2]
    three = m.triple.options(num_returns=3).remote()
    assert juno.get(three) == ["a", "b", "c"]
    assert m.nothing.remote() is None
    # The declared count is checked when the method returns.
    with pytest.raises(ValueError, match="num_returns"):
        juno.get(m.pair.options(num_returns=3).remote(1)[0])


def test_sync_generator_method_streams(juno_shared):
    @juno.remote(max_concurrency=2)
    class Gen:
        def __init__(self):
            self.go_on = threading.Event()

        def count(self, n):
            for i in range(n):
                yield i * i

        def gated(self):
            yield "first"
            self.go_on.wait(30)
            yield "second"

        def release(self):
            self.go_on.set()

    g = Gen.remote()
    gen = g.count.remote(5)
    assert isinstance(gen, juno.ObjectRefGenerator)
    assert [juno.get(ref) for ref in gen] == [0, 1, 4, 9, 16]
    # Items reach the caller while the method is still running.
    gated = g.gated.remote()
    assert juno.get(next(gated), timeout=30) == "first"
    g.release.remote()
    assert juno.get(next(gated), timeout=30) == "second"
    with pytest.raises(StopIteration):
        next(gated)


def test_generator_method_error_after_items(juno_shared):
    @juno.remote
    class Gen:
        def broken(self):
            yield 1
            raise RuntimeError("generator broke")

        def alive(self):
            return True

    g = Gen.remote()
    gen = g.broken.remote()
    assert juno.get(next(gen)) == 1
    with pytest.raises(RuntimeError, match="generator broke"):
        juno.get(next(gen))
    assert juno.get(g.alive.remote())


# ------------------------------------------------------------------ threaded actors and groups

def test_threaded_actor_runs_calls_concurrently(juno_shared):
    @juno.remote(max_concurrency=3)
    class Threaded:
        def __init__(self):
            self.barrier = threading.Barrier(3)

        def meet(self):
            # Only returns if three calls are inside this method at once.
            self.barrier.wait(timeout=30)
            return threading.get_ident()

    t = Threaded.remote()
    idents = juno.get([t.meet.remote() for _ in range(3)], timeout=60)
    assert len(set(idents)) == 3


def test_default_actor_runs_one_call_at_a_time(juno_shared):
    @juno.remote
    class Single:
        def __init__(self):
            self.active = 0
            self.max_active = 0

        def work(self):
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            total = sum(range(20000))
            self.active -= 1
            return total

        def peak(self):
            return self.max_active

    s = Single.remote()
    juno.get([s.work.remote() for _ in range(20)])
    assert juno.get(s.peak.remote()) == 1


def test_concurrency_groups(juno_shared):
    @juno.remote(concurrency_groups={"io": 2, "compute": 1})
    class Grouped:
        def __init__(self):
            self.io_barrier = threading.Barrier(2)
            self.unblock = threading.Event()

        @juno.method(concurrency_group="io")
        def io(self):
            self.io_barrier.wait(timeout=30)
            return threading.current_thread().name

        @juno.method(concurrency_group="compute")
        def compute(self):
            return threading.current_thread().name

        def block_default(self):
            # Holds the default group's only thread until released.
            return self.unblock.wait(timeout=60)

        @juno.method(concurrency_group="io")
        def release(self):
            self.unblock.set()

        def plain(self):
            return threading.current_thread().name

    g = Grouped.remote()
    blocker = g.block_default.remote()
    # The default group (max_concurrency=1) is busy, but other groups still run,
    # and "io" runs two calls at once (the barrier needs both inside).
    io_threads = juno.get([g.io.remote(), g.io.remote()], timeout=60)
    assert len(set(io_threads)) == 2
    juno.get(g.compute.remote(), timeout=60)
    # method.options(concurrency_group=...) moves a default-group method out of
    # the busy default group...
    juno.get(g.plain.options(concurrency_group="compute").remote(), timeout=60)
    # ...while without it, the call waits for the default group.
    queued_plain = g.plain.remote()
    assert juno.wait([queued_plain], timeout=0.2)[0] == []
    juno.get(g.release.remote(), timeout=60)
    assert juno.get(blocker, timeout=60) is True
    juno.get(queued_plain, timeout=60)


# ------------------------------------------------------------------ runtime context, resources

def test_runtime_context_inside_actor(juno_shared):
    @juno.remote
    class Ctx:
        def info(self):
            ctx = juno.get_runtime_context()
            return ctx.get_actor_id(), ctx.was_current_actor_reconstructed, ctx.get_job_id(), ctx.get_node_id()

    a = Ctx.remote()
    actor_id, reconstructed, job_id, node_id = juno.get(a.info.remote())
    assert actor_id == a._actor_id.hex()
    assert reconstructed is False
    driver = juno.get_runtime_context()
    assert job_id == driver.get_job_id()
    assert node_id == driver.get_node_id()
    assert driver.get_actor_id() is None


def test_actor_holds_its_cpus_while_alive(juno_shared):
    total = juno.cluster_resources()["CPU"]
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == total)
    a = Counter.options(num_cpus=2).remote()
    juno.get(a.get.remote())
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == total - 2)
    juno.kill(a)
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == total)


def test_actor_output_reaches_driver_with_prefix(juno_shared, capsys):
    @juno.remote
    class Talker:
        def __init__(self):
            print("talker constructed")

        def say(self, text):
            print(text)
            return os.getpid()

    t = Talker.remote()
    pid = juno.get(t.say.remote("hello from the actor"))
    out = []

    def seen():
        out.append(capsys.readouterr().out)
        text = "".join(out)
        return f"(Talker pid={pid}) hello from the actor" in text and \
            f"(Talker pid={pid}) talker constructed" in text

    wait_for_condition(seen)


def test_redefined_class_runs_new_code(juno_shared):
    @juno.remote
    class Versioned:
        def version(self):
            return 1

    old = Versioned.remote()

    @juno.remote  # noqa: F811 - redefinition is the point
    class Versioned:
        def version(self):
            return 2

        def extra(self):
            return "new method"

    new = Versioned.remote()
    assert juno.get(new.version.remote()) == 2
    assert juno.get(new.extra.remote()) == "new method"
    assert juno.get(old.version.remote()) == 1


# ------------------------------------------------------------------ misuse

def test_calling_actor_method_directly_is_type_error(juno_shared):
    c = Counter.remote()
    with pytest.raises(TypeError, match=r"incr\.remote\(\)"):
        c.incr()


def test_instantiating_actor_class_directly_is_type_error(juno_shared):
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()


def test_unknown_method_is_attribute_error(juno_shared):
    c = Counter.remote()
    with pytest.raises(AttributeError, match="no_such_method"):
        c.no_such_method.remote()


@pytest.mark.parametrize("options, name", [
    ({"max_restarts": -2}, "max_restarts"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"lifetime": "forever"}, "lifetime"),
    ({"max_task_retries": -5}, "max_task_retries"),
    ({"num_cpus": -1}, "num_cpus"),
    ({"max_restart": 1}, "max_restart"),
    ({"num_returns": 2}, "num_returns"),
    ({"get_if_exists": True}, "get_if_exists"),
])
def test_invalid_actor_options_raise_value_error(options, name):
    with pytest.raises(ValueError, match=name):
        Counter.options(**options)


def test_invalid_options_in_decorators():
    with pytest.raises(ValueError, match="max_concurrency"):
        @juno.remote(max_concurrency=0)
        class Bad:
            pass
    with pytest.raises(ValueError, match="num_returns"):
        @juno.method(num_returns=-1)
        def f(self):
            pass
    with pytest.raises(ValueError, match="concurrency_groups"):
        Counter.options(concurrency_groups={"io": 1})


def test_exit_actor_outside_actor_is_type_error(juno_shared):
    with pytest.raises(TypeError):
        juno.actor.exit_actor()


# ------------------------------------------------------------------ more semantics

def test_actor_name_in_runtime_context(juno_shared):
    @juno.remote
    class Named:
        def name(self):
            return juno.get_runtime_context().get_actor_name()

    a = Named.options(name="ctx-named-actor").remote()
    assert juno.get(a.name.remote()) == "ctx-named-actor"
    assert juno.get_runtime_context().get_actor_name() is None


def test_large_arguments_and_results(juno_shared):
    import numpy as np

    @juno.remote
    class Store:
        def __init__(self, init):
            self.data = init

        def add(self, arr):
            self.data = self.data + arr
            return self.data

    base = np.arange(500_000, dtype=np.int64)  # ~4 MB: travels through shared memory
    s = Store.remote(base)
    out = juno.get(s.add.remote(np.ones_like(base)))
    assert out.shape == base.shape and int(out[0]) == 1 and int(out[-1]) == 500_000
    out = juno.get(s.add.remote(juno.put(np.ones_like(base))))
    assert int(out[-1]) == 500_001


def test_calls_from_many_callers_all_apply(juno_shared):
    c = Counter.remote()

    @juno.remote(num_cpus=0)
    def hammer(counter, n):
        juno.get([counter.incr.remote() for _ in range(n)])

    tasks = [hammer.remote(c, 25) for _ in range(4)]
    mine = [c.incr.remote() for _ in range(25)]
    juno.get(tasks + mine, timeout=60)
    assert juno.get(c.get.remote()) == 125


def test_actor_outlives_owner_handle_while_a_task_uses_it(juno_shared):
    @juno.remote(num_cpus=0)
    def use_later(counter, signal):
        juno.get(signal.wait.remote())
        return juno.get(counter.incr.remote())

    c = Counter.remote(10)
    signal = Signal.remote()
    ref = use_later.remote(c, signal)
    del c
    import gc

    gc.collect()
    signal.send.remote()
    assert juno.get(ref, timeout=30) == 11


def test_get_timeout_on_actor_call(juno_shared):
    signal = Signal.remote()
    with pytest.raises(juno.exceptions.GetTimeoutError):
        juno.get(signal.wait.remote(), timeout=0.1)
    signal.send.remote()


def test_threaded_actor_context_and_errors(juno_shared):
    @juno.remote(max_concurrency=4)
    class Pool:
        def who(self):
            return juno.get_runtime_context().get_actor_id()

        def fail(self):
            raise IndexError("threaded failure")

    p = Pool.remote()
    assert set(juno.get([p.who.remote() for _ in range(8)])) == {p._actor_id.hex()}
    with pytest.raises(IndexError, match="threaded failure"):
        juno.get(p.fail.remote())


def test_max_pending_calls(juno_shared):
    signal = Signal.remote()

    @juno.remote(max_pending_calls=2)
    class Slow:
        def wait(self, signal):
            juno.get(signal.wait.remote())

    s = Slow.remote()
    # A call that fails to submit (unpicklable argument) does not use up a slot.
    with pytest.raises(TypeError):
        s.wait.remote(threading.Lock())
    first, second = s.wait.remote(signal), s.wait.remote(signal)
    with pytest.raises(juno.exceptions.PendingCallsLimitExceeded):
        s.wait.remote(signal)
    signal.send.remote()
    juno.get([first, second], timeout=30)
    # Room again once the pending calls finished.
    juno.get(s.wait.remote(signal), timeout=30)


def test_results_of_one_actor_feed_another(juno_shared):
    a, b = Counter.remote(100), Counter.remote()
    # b's call waits for a's result, passed by reference.
    assert juno.get(b.incr.remote(a.incr.remote(5))) == 105


def test_handle_captured_in_a_task_closure(juno_shared):
    c = Counter.remote()

    @juno.remote(num_cpus=0)
    def bump():
        return juno.get(c.incr.remote())

    assert juno.get([bump.remote() for _ in range(3)]) and juno.get(c.get.remote()) == 3


def test_inherited_methods(juno_shared):
    class Base:
        def __init__(self, x):
            self.x = x

        def base_value(self):
            return self.x

        def overridden(self):
            return "base"

    @juno.remote
    class Child(Base):
        def __init__(self, x, y):
            super().__init__(x)
            self.y = y

        def overridden(self):
            return "child"

        def both(self):
            return self.x + self.y

    c = Child.remote(1, 2)
    assert juno.get([c.base_value.remote(), c.overridden.remote(), c.both.remote()]) == [1, "child", 3]


def test_default_actors_hold_no_cpu(juno_shared):
    # Actors that ask for nothing take no CPU while they live, so more of them
    # than there are CPUs run side by side (as in Ray).
    num_cpus = int(juno.cluster_resources()["CPU"])
    actors = [Counter.remote() for _ in range(num_cpus + 2)]
    assert juno.get([a.incr.remote() for a in actors], timeout=60) == [1] * len(actors)
    assert len({juno.get(a.pid.remote()) for a in actors}) == len(actors)


def test_underscore_methods_are_callable(juno_shared):
    @juno.remote
    class Private:
        def _helper(self):
            return "private"

        def __call__(self, x):
            return x + 1

    p = Private.remote()
    assert juno.get(p._helper.remote()) == "private"
    assert juno.get(p.__call__.remote(1)) == 2
    with pytest.raises(AttributeError):
        p.__not_a_method__


# ------------------------------------------------------------------ GPUs (own cluster)

def test_gpu_actors_see_their_gpus(juno_start_gpus):
    # juno.init(num_cpus=4, num_gpus=2): logical GPUs, no device needed.

    @juno.remote(num_gpus=1)
    class GpuUser:
        def gpus(self):
            return juno.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    @juno.remote
    class NoGpu:
        def gpus(self):
            return juno.get_gpu_ids()

    a, b = GpuUser.remote(), GpuUser.remote()
    (ids_a, env_a), (ids_b, env_b) = juno.get([a.gpus.remote(), b.gpus.remote()], timeout=60)
    assert len(ids_a) == 1 and len(ids_b) == 1
    assert {str(ids_a[0]), str(ids_b[0])} == {"0", "1"}
    assert env_a == str(ids_a[0]) and env_b == str(ids_b[0])
    assert juno.get(NoGpu.remote().gpus.remote()) == []
    # Both GPUs are taken: a third GPU actor waits until one is freed.
    c = GpuUser.remote()
    pending = c.gpus.remote()
    assert juno.wait([pending], timeout=0.5)[0] == []
    juno.kill(a)
    ids_c, env_c = juno.get(pending, timeout=60)
    assert ids_c == ids_a and env_c == env_a
    juno.kill(b)
    juno.kill(c)

    # Fractional GPUs: two half-GPU actors share one device.
    halves = [GpuUser.options(num_gpus=0.5).remote() for _ in range(2)]
    (ids_1, env_1), (ids_2, env_2) = juno.get([h.gpus.remote() for h in halves], timeout=60)
    assert ids_1 == ids_2 and len(ids_1) == 1 and env_1 == env_2 == str(ids_1[0])
