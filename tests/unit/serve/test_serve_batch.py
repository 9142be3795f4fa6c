"""@serve.batch with asyncio alone: batch sizes and timeouts, methods and plain functions, sync and
async functions and generators, errors, run-time settings and argument checks."""
import asyncio
import threading
import time

import pytest

from juno.serve.batching import batch


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class Model:
    def __init__(self):
        self.batches = []

    @batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def double(self, xs):
        self.batches.append(list(xs))
        return [2 * x for x in xs]

    @batch
    async def bare(self, xs):
        self.batches.append(list(xs))
        return xs


def test_full_batches_go_at_once_and_each_caller_gets_its_result():
    model = Model()

    async def main():
        return await asyncio.gather(*(model.double(i) for i in range(8)))

    assert run(main()) == [2 * i for i in range(8)]
    assert model.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_partial_batch_goes_after_the_wait_timeout():
    model = Model()

    async def main():
        start = time.monotonic()
        results = await asyncio.gather(*(model.double(i) for i in range(3)))
        return results, time.monotonic() - start

    results, took = run(main())
    assert results == [0, 2, 4] and model.batches == [[0, 1, 2]]
    assert 0.04 <= took < 1.0


def test_bare_decorator_uses_ray_defaults():
    model = Model()
    assert Model.bare._get_curr_max_batch_size() == 10
    assert Model.bare._get_curr_batch_wait_timeout_s() == 0.01

    async def main():
        return await asyncio.gather(*(model.bare(i) for i in range(25)))

    assert run(main()) == list(range(25))
    assert [len(b) for b in model.batches] == [10, 10, 5]


def test_instances_have_queues_of_their_own():
    a, b = Model(), Model()

    async def main():
        return await asyncio.gather(a.double(1), b.double(2), a.double(3))

    assert run(main()) == [2, 4, 6]
    assert a.batches == [[1, 3]] and b.batches == [[2]]


def test_plain_function_with_several_arguments():
    seen = []

    @batch(max_batch_size=3, batch_wait_timeout_s=0.01)
    async def add(xs, ys, scale):
        seen.append((xs, ys, scale))
        return [(x + y) * s for x, y, s in zip(xs, ys, scale)]

    async def main():
        return await asyncio.gather(*(add(i, 10 * i, scale=2) for i in range(3)))

    assert run(main()) == [0, 22, 44]
    assert seen == [([0, 1, 2], [0, 10, 20], [2, 2, 2])]


def test_sync_function_runs_off_the_loop():
    loop_threads = []

    @batch(max_batch_size=2, batch_wait_timeout_s=0.01)
    def square(xs):
        loop_threads.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.05)
        return [x * x for x in xs]

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        t = asyncio.ensure_future(ticker())
        out = await asyncio.gather(*(square(i) for i in range(4)))
        t.cancel()
        return out, ticks

    out, ticks = run(main())
    assert out == [0, 1, 4, 9]
    assert loop_threads == [False, False]
    assert ticks >= 5  # the loop kept running while the batches slept


def test_async_generator_streams_one_item_per_caller():
    @batch(max_batch_size=3, batch_wait_timeout_s=0.01)
    async def count(limits):
        for step in range(max(limits)):
            yield [step if step < limit else StopIteration for limit in limits]

    async def collect(limit):
        return [x async for x in count(limit)]

    async def main():
        return await asyncio.gather(collect(1), collect(3), collect(2))

    assert run(main()) == [[0], [0, 1, 2], [0, 1]]


def test_sync_generator():
    @batch(max_batch_size=2, batch_wait_timeout_s=0.01)
    def letters(words):
        for i in range(2):
            yield [w[i] for w in words]

    async def main():
        async def collect(word):
            return [c async for c in letters(word)]
        return await asyncio.gather(collect("ab"), collect("cd"))

    assert run(main()) == [["a", "b"], ["c", "d"]]


def test_an_exception_fails_its_batch_only():
    calls = []

    @batch(max_batch_size=2, batch_wait_timeout_s=0.01)
    async def fragile(xs):
        calls.append(xs)
        if 0 in xs:
            raise ValueError("zero is not allowed")
        return xs

    async def main():
        first = await asyncio.gather(fragile(0), fragile(1), return_exceptions=True)
        second = await asyncio.gather(fragile(2), fragile(3))
        return first, second

    first, second = run(main())
    assert all(isinstance(e, ValueError) for e in first)
    assert second == [2, 3]


def test_wrong_result_length_names_both_lengths():
    @batch(max_batch_size=3, batch_wait_timeout_s=0.01)
    async def lossy(xs):
        return xs[:1]

    async def main():
        return await asyncio.gather(*(lossy(i) for i in range(3)), return_exceptions=True)

    errors = run(main())
    assert all(isinstance(e, ValueError) and "3 inputs" in str(e) and "1 results" in str(e) for e in errors)


def test_settings_change_at_run_time():
    model = Model()
    model.double.set_max_batch_size(2)
    model.double.set_batch_wait_timeout_s(0.0)
    try:
        async def main():
            return await asyncio.gather(*(model.double(i) for i in range(4)))

        assert run(main()) == [0, 2, 4, 6]
        assert all(len(b) <= 2 for b in model.batches)
        with pytest.raises(ValueError, match="max_batch_size"):
            model.double.set_max_batch_size(0)
        with pytest.raises(ValueError, match="batch_wait_timeout_s"):
            model.double.set_batch_wait_timeout_s(-1)
    finally:
        Model.double.set_max_batch_size(4)
        Model.double.set_batch_wait_timeout_s(0.05)


def test_max_concurrent_batches_lets_batches_overlap():
    running = []
    peak = []

    @batch(max_batch_size=1, batch_wait_timeout_s=0, max_concurrent_batches=3)
    async def slow(xs):
        running.append(1)
        peak.append(len(running))
        await asyncio.sleep(0.05)
        running.pop()
        return xs

    async def main():
        return await asyncio.gather(*(slow(i) for i in range(6)))

    assert run(main()) == list(range(6))
    assert max(peak) == 3


def test_one_batch_at_a_time_by_default_and_waiting_items_batch_up():
    sizes = []
    release = None

    @batch(max_batch_size=10, batch_wait_timeout_s=0)
    async def work(xs):
        sizes.append(len(xs))
        await release.wait()  # the first batch holds the only slot until the rest are queued
        return xs

    async def main():
        nonlocal release
        release = asyncio.Event()
        first = asyncio.ensure_future(work(0))
        while not sizes:
            await asyncio.sleep(0)
        rest = [asyncio.ensure_future(work(i)) for i in range(1, 6)]
        for _ in range(5):  # each caller queues its item in its first step
            await asyncio.sleep(0)
        assert sizes == [1]
        release.set()
        return [await first, *[await r for r in rest]]

    assert run(main()) == list(range(6))
    assert sizes == [1, 5]


def test_a_cancelled_caller_is_left_out():
    seen = []

    @batch(max_batch_size=10, batch_wait_timeout_s=0.05)
    async def f(xs):
        seen.append(xs)
        return xs

    async def main():
        gone = asyncio.ensure_future(f("gone"))
        kept = asyncio.ensure_future(f("kept"))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert run(main()) == "kept"
    assert seen == [["kept"]]


def test_works_in_a_new_loop_each_time():
    model = Model()
    assert run(model.double(1)) == 2
    assert run(model.double(2)) == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"max_batch_size": 0}, "max_batch_size"),
    ({"max_batch_size": 2.5}, "max_batch_size"),
    ({"batch_wait_timeout_s": -0.1}, "batch_wait_timeout_s"),
    ({"batch_wait_timeout_s": "1"}, "batch_wait_timeout_s"),
    ({"max_concurrent_batches": 0}, "max_concurrent_batches"),
])
def test_bad_arguments_say_what_is_allowed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch(**kwargs)


def test_positional_settings_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="by name"):
        batch(4)
