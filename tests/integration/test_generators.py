"""Streaming generator tasks on a real cluster: items arrive as they are yielded."""
from __future__ import annotations

import asyncio
import os
import signal
import sys

import cloudpickle
import numpy as np
import pytest

import juno
from helpers import wait_for_file
from juno.exceptions import GetTimeoutError, TaskCancelledError, WorkerCrashedError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}



@pytest.fixture
def gates(tmp_path):
    """Directory of gate files ``0``, ``1``, ... that generator tasks wait for; all
    opened at teardown so a failing test leaves no task blocked."""
    yield tmp_path
    for i in range(10):
        (tmp_path / str(i)).touch()



@juno.remote
def count_to(n):
    for i in range(n):
        yield i


@juno.remote
def stepwise(directory, n):
    """Yields i, then waits for gate file i before going on."""
    for i in range(n):
        yield i
        wait_for_file(os.path.join(directory, str(i)))


def test_generator_task_returns_refs_in_order(cluster):
    gen = count_to.remote(5)
    assert isinstance(gen, juno.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, juno.ObjectRef) for r in refs)
    assert juno.get(refs) == [0, 1, 2, 3, 4]
    assert list(count_to.remote(0)) == []


def test_items_arrive_while_the_task_still_runs(cluster, gates):
    gen = stepwise.remote(str(gates), 3)
    for i in range(3):
        ref = next(gen)
        # The task is blocked until we open gate i, so the item came as it was yielded.
        assert juno.get(ref, timeout=30) == i
        ref_next = None
        with pytest.raises(GetTimeoutError):
            ref_next = gen._next_sync(timeout_s=0.2)
        assert ref_next is None
        (gates / str(i)).touch()
    with pytest.raises(StopIteration):
        next(gen)


def test_error_mid_stream_surfaces_at_the_failing_item(cluster):
    @juno.remote
    def fails_after(n):
        for i in range(n):
            yield i
        raise ValueError(f"broke after {n}")

    gen = fails_after.remote(2)
    assert juno.get(next(gen)) == 0
    assert juno.get(next(gen)) == 1
    bad = next(gen)
    with pytest.raises(ValueError, match="broke after 2"):
        juno.get(bad)
    with pytest.raises(StopIteration):
        next(gen)


def test_worker_crash_mid_stream_surfaces_at_the_failing_item(cluster, gates):
    @juno.remote(max_retries=0)
    def dies_after(directory, n):
        for i in range(n):
            yield i
        wait_for_file(os.path.join(directory, "delivered"))
        os.kill(os.getpid(), signal.SIGKILL)

    gen = dies_after.remote(str(gates), 2)
    assert juno.get(next(gen), timeout=30) == 0
    assert juno.get(next(gen), timeout=30) == 1
    (gates / "delivered").touch()  # both items reached us: now the worker dies
    with pytest.raises(WorkerCrashedError):
        juno.get(next(gen), timeout=30)
    with pytest.raises(StopIteration):
        next(gen)


def test_streaming_option_and_large_items(cluster):
    @juno.remote
    def arrays(n):
        for i in range(n):
            yield np.full(40_000, i, dtype=np.float64)  # 320 KB each: shared memory

    gen = arrays.options(num_returns="streaming").remote(3)
    for i, ref in enumerate(gen):
        a = juno.get(ref)
        assert a.shape == (40_000,) and a[0] == i and a[-1] == i
        assert not a.flags.writeable


def test_generator_with_fixed_num_returns(cluster):
    @juno.remote(num_returns=3)
    def three():
        yield "a"
        yield "b"
        yield "c"

    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert juno.get(refs) == ["a", "b", "c"]


def test_async_iteration(cluster):
    async def consume():
        out = []
        async for ref in count_to.remote(4):
            out.append(await ref)
        return out

    assert asyncio.run(consume()) == [0, 1, 2, 3]


def test_async_generator_function(cluster):
    @juno.remote
    async def native_async_gen(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i + 100

    assert juno.get(list(native_async_gen.remote(3))) == [100, 101, 102]


def test_generator_refs_passed_to_tasks(cluster):
    @juno.remote
    def double(x):
        return 2 * x

    assert juno.get([double.remote(ref) for ref in count_to.remote(4)]) == [0, 2, 4, 6]


def test_cancel_generator(cluster, gates):
    gen = stepwise.remote(str(gates), 5)
    assert juno.get(next(gen), timeout=30) == 0
    juno.cancel(gen)
    with pytest.raises(TaskCancelledError):
        for _ in range(6):  # bounded: the stream must end in a cancellation error
            juno.get(next(gen), timeout=30)


def test_get_of_generator_is_a_type_error(cluster):
    gen = count_to.remote(1)
    with pytest.raises(TypeError):
        juno.get(gen)
    with pytest.raises(TypeError):  # in a list too: get() returns other values, not a generator of refs
        juno.get([gen])
    assert juno.get(next(gen)) == 0


def test_a_generator_collected_while_its_owner_holds_the_generator_lock_does_not_deadlock(cluster):
    """The garbage collector may finalize a dropped ObjectRefGenerator on a thread that is inside
    the owner's generator bookkeeping (an allocation there triggers a collection): its release must
    not wait for a lock that thread holds. Seen in CI as a hang of juno.data's executor."""
    import gc
    import threading

    from juno.owner.core_worker import global_worker

    @juno.remote(num_returns="streaming")
    def two():
        yield 1
        yield 2

    gen = two.remote()
    assert [juno.get(r) for r in gen] == [1, 2]
    cycle = [gen]
    cycle.append(cycle)  # only the collector frees it now
    del gen, cycle
    cw = global_worker()
    done = threading.Event()

    def collect_inside_the_lock():
        with cw._gen_lock:
            gc.collect()  # finalizes the generator here, as an allocation under the lock would
        done.set()

    threading.Thread(target=collect_inside_the_lock, daemon=True).start()
    assert done.wait(10), "releasing a generator from the collector deadlocked on the owner's generator lock"
