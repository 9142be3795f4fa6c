"""Tasks on a real local cluster: submission, arguments, get/wait, nesting, num_returns."""
from __future__ import annotations

import asyncio
import os
import sys
import time

import cloudpickle
import pytest

from helpers import wait_for_file, wait_for_condition

import juno
from juno.exceptions import GetTimeoutError, RayTaskError

# Helpers below are used inside tasks; workers can't import this test module, so
# its functions travel by value (as a notebook's or a script's would).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}





@juno.remote
def square(x):
    return x * x


@juno.remote
def add(a, b=0):
    return a + b


@juno.remote
def gated(path, value=None):
    wait_for_file(path)
    return value


@juno.remote
def barrier(directory, me, parties):
    """Returns only once all ``parties`` tasks run at the same time."""
    open(os.path.join(directory, str(me)), "w").close()
    deadline = time.monotonic() + 30
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError("the tasks did not run in parallel")
        time.sleep(0.005)
    return me


@juno.remote
def describe(x, *, kw=None):
    def kind(v):
        if isinstance(v, juno.ObjectRef):
            return ("ref", juno.get(v))
        if isinstance(v, (list, tuple)):
            return [kind(i) for i in v]
        if isinstance(v, dict):
            return {k: kind(i) for k, i in v.items()}
        return ("value", v)

    return kind(x), kind(kw)


# ---------------------------------------------------------------------------- basics

def test_tasks_return_results_in_submission_order(cluster):
    refs = [square.remote(i) for i in range(20)]
    assert all(isinstance(r, juno.ObjectRef) for r in refs)
    assert juno.get(refs) == [i * i for i in range(20)]
    assert juno.get(tuple(refs[:3])) == [0, 1, 4]
    assert juno.get(refs[7]) == 49


def test_tasks_run_in_parallel(cluster, tmp_path):
    for round_ in range(3):
        directory = tmp_path / str(round_)
        directory.mkdir()
        assert juno.get([barrier.remote(str(directory), i, 2) for i in range(2)], timeout=60) == [0, 1]


def test_tasks_right_after_a_burst_still_run_in_parallel(cluster, tmp_path):
    # A burst leaves lease requests being cancelled; tasks pipelined behind a busy worker
    # meanwhile must still get a worker of their own once those cancellations come back.
    for round_ in range(3):
        assert juno.get([square.remote(i) for i in range(10)], timeout=60) == [i * i for i in range(10)]
        directory = tmp_path / str(round_)
        directory.mkdir()
        assert juno.get([barrier.remote(str(directory), i, 2) for i in range(2)], timeout=60) == [0, 1]


def test_kwargs_and_defaults(cluster):
    assert juno.get(add.remote(1)) == 1
    assert juno.get(add.remote(1, b=2)) == 3
    assert juno.get(add.remote(a="x", b="y")) == "xy"


def test_redefined_function_runs_new_code(cluster):
    @juno.remote
    def version():
        return 1

    assert juno.get(version.remote()) == 1

    @juno.remote  # noqa: F811 - redefinition is the point
    def version():
        return 2

    assert juno.get(version.remote()) == 2
    assert juno.get([version.remote() for _ in range(4)]) == [2] * 4


# ---------------------------------------------------------------------------- get timeouts

def test_get_timeout_raises_get_timeout_error(cluster, gate):
    ref = gated.remote(str(gate), "done")
    start = time.monotonic()
    with pytest.raises(GetTimeoutError) as info:
        juno.get(ref, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5
    assert isinstance(info.value, TimeoutError)  # Ray's GetTimeoutError is also a TimeoutError
    with pytest.raises(TimeoutError):
        juno.get([square.remote(2), ref], timeout=0)
    gate.touch()
    assert juno.get(ref, timeout=30) == "done"


def test_get_rejects_negative_timeout(cluster):
    with pytest.raises(ValueError):
        juno.get(square.remote(1), timeout=-1)


# ---------------------------------------------------------------------------- wait

def _is_subsequence(sub, seq):
    it = iter(seq)
    return all(any(x is y for y in it) for x in sub)


def test_wait_splits_ready_and_pending_in_input_order(cluster, gate):
    slow = gated.remote(str(gate), "slow")
    fast = square.remote(3)
    put_ref = juno.put("stored")
    juno.get(fast)
    refs = [fast, slow, put_ref]

    ready, not_ready = juno.wait(refs, num_returns=2)
    assert ready == [fast, put_ref]
    assert not_ready == [slow]

    ready, not_ready = juno.wait(refs)  # num_returns defaults to 1
    assert len(ready) == 1 and ready[0] in (fast, put_ref)
    assert len(not_ready) == 2
    assert _is_subsequence(not_ready, refs)

    # Ready items keep the input order, not their completion order.
    ready, _ = juno.wait([put_ref, fast], num_returns=2)
    assert ready == [put_ref, fast]

    start = time.monotonic()
    ready, not_ready = juno.wait(refs, num_returns=3, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5
    assert ready == [fast, put_ref] and not_ready == [slow]

    ready, not_ready = juno.wait(refs, num_returns=3, timeout=0)
    assert ready == [fast, put_ref] and not_ready == [slow]

    gate.touch()
    ready, not_ready = juno.wait(refs, num_returns=3, timeout=30)
    assert ready == refs and not_ready == []
    assert juno.get(slow) == "slow"


def test_wait_fetch_local_false(cluster):
    refs = [square.remote(i) for i in range(3)]
    ready, not_ready = juno.wait(refs, num_returns=3, fetch_local=False, timeout=30)
    assert ready == refs and not_ready == []
    assert juno.get(ready) == [0, 1, 4]


def test_wait_returns_as_soon_as_enough_are_ready(cluster, gate):
    # One CPU runs the blocked task; the tasks submitted after it use the other.
    slow = gated.remote(str(gate), "slow")
    fast = [square.remote(i) for i in range(4)]
    start = time.monotonic()
    ready, not_ready = juno.wait([slow] + fast, num_returns=4, timeout=30)
    assert time.monotonic() - start < 10
    assert ready == fast and not_ready == [slow]
    gate.touch()
    assert juno.get(slow) == "slow"


def test_wait_of_no_refs_returns_two_empty_lists(cluster):
    assert juno.wait([]) == ([], [])  # as Ray's does, whatever num_returns says
    assert juno.wait([], num_returns=2, timeout=0) == ([], [])


def test_wait_argument_errors(cluster):
    a, b = juno.put(1), juno.put(2)
    with pytest.raises(ValueError):
        juno.wait([a, b], num_returns=3)
    with pytest.raises(ValueError):
        juno.wait([a, a])
    with pytest.raises(TypeError):
        juno.wait(a)
    with pytest.raises(TypeError):
        juno.wait([a, 5])
    with pytest.raises(ValueError):
        juno.wait([a], num_returns=0)


# ---------------------------------------------------------------------------- arguments

def test_top_level_refs_are_resolved_nested_refs_are_passed(cluster):
    ref = juno.put(5)
    task_ref = square.remote(4)
    assert juno.get(describe.remote(ref)) == (("value", 5), ("value", None))
    top, kw = juno.get(describe.remote(ref, kw=task_ref))
    assert top == ("value", 5)
    assert kw == ("value", 16)
    nested, kw = juno.get(describe.remote([ref, task_ref], kw={"r": ref}))
    assert nested == [("ref", 5), ("ref", 16)]
    assert kw == {"r": ("ref", 5)}


def test_task_waits_for_its_dependencies(cluster, gate):
    upstream = gated.remote(str(gate), 10)
    downstream = add.remote(upstream, b=1)
    ready, _ = juno.wait([downstream], timeout=0.3)
    assert ready == []
    gate.touch()
    assert juno.get(downstream, timeout=30) == 11


def test_chained_tasks(cluster):
    ref = juno.put(1)
    for _ in range(10):
        ref = add.remote(ref, b=ref)
    assert juno.get(ref) == 1024


def test_task_returning_refs(cluster):
    @juno.remote
    def make_put():
        return juno.put("inner value")

    @juno.remote
    def make_child():
        return square.remote(7)

    @juno.remote
    def make_list():
        return [juno.put(i) for i in range(3)]

    inner = juno.get(make_put.remote())
    assert isinstance(inner, juno.ObjectRef)
    assert juno.get(inner) == "inner value"
    child = juno.get(make_child.remote())
    assert isinstance(child, juno.ObjectRef)
    assert juno.get(child) == 49
    refs = juno.get(make_list.remote())
    assert juno.get(refs) == [0, 1, 2]
    # A borrowed ref can be passed on to another task.
    assert juno.get(add.remote(inner, b="!")) == "inner value!"


def test_await_object_ref(cluster):
    @juno.remote
    def fail():
        raise KeyError("missing")

    async def main():
        one = await square.remote(6)
        many = await asyncio.gather(*[square.remote(i) for i in range(5)])
        from_put = await juno.put("x")
        with pytest.raises(KeyError):
            await fail.remote()
        fut = square.remote(9).future()
        return one, many, from_put, fut.result(timeout=30)

    assert asyncio.run(main()) == (36, [0, 1, 4, 9, 16], "x", 81)


def test_tasks_submitting_tasks(cluster):
    @juno.remote
    def fan_out(n):
        return sum(juno.get([square.remote(i) for i in range(n)]))

    @juno.remote
    def depth(n):
        # Each level blocks in get(); with 2 CPUs this only finishes if blocked
        # workers lend their CPU to the tasks they wait for.
        return 0 if n == 0 else 1 + juno.get(depth.remote(n - 1))

    assert juno.get(fan_out.remote(5), timeout=60) == 30
    assert juno.get([fan_out.remote(3), fan_out.remote(4)], timeout=60) == [5, 14]
    assert juno.get(depth.remote(4), timeout=60) == 4


# ---------------------------------------------------------------------------- num_returns

def test_num_returns(cluster):
    @juno.remote(num_returns=3)
    def three():
        return "a", "b", "c"

    @juno.remote
    def pair():
        return 1, 2

    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert juno.get(refs) == ["a", "b", "c"]
    assert juno.get(refs[2]) == "c"

    one = pair.remote()
    assert isinstance(one, juno.ObjectRef)
    assert juno.get(one) == (1, 2)
    two = pair.options(num_returns=2).remote()
    assert juno.get(two) == [1, 2]
    single = pair.options(num_returns=1).remote()
    assert juno.get(single) == (1, 2)


def test_num_returns_zero(cluster, tmp_path):
    @juno.remote(num_returns=0)
    def side_effect(path):
        with open(path, "w") as f:
            f.write("ran")

    marker = tmp_path / "ran"
    assert side_effect.remote(str(marker)) is None
    wait_for_condition(lambda: marker.exists() and marker.read_text() == "ran", timeout=30)


def test_num_returns_mismatch_is_an_error(cluster):
    @juno.remote(num_returns=2)
    def wrong():
        return 1, 2, 3

    refs = wrong.remote()
    with pytest.raises(RayTaskError) as info:
        juno.get(refs[0])
    assert "num_returns=2" in str(info.value)


def test_code_capturing_a_huge_value_is_refused_at_the_call_and_a_big_one_warned(cluster):
    # Ray's limits: a warning past 10 MB of pickled code, an error past 100 MB.
    huge = b"h" * (101 * 10 ** 6)
    big = b"b" * (11 * 10 ** 6)

    @juno.remote
    def uses_huge():
        return len(huge)

    @juno.remote
    def uses_big():
        return len(big)

    with pytest.raises(ValueError, match=r"uses_huge is too large to export .* huge \(96\.3 MiB\).*juno\.put"):
        uses_huge.remote()
    with pytest.warns(UserWarning, match=r"uses_big is very large .* big \(10\.5 MiB\)") as record:
        ref = uses_big.remote()
    assert record[0].filename == __file__  # points at the call, so each call site warns
    assert juno.get(ref) == len(big)
