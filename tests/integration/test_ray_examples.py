"""Ray's introductory examples (docs.ray.io "Ray Core" walkthrough), run unchanged under
``import juno as ray``."""
from __future__ import annotations

import sys
import time

import cloudpickle
import numpy as np
import pytest
from helpers import wait_for_condition

import juno as ray

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 4}



# ---------------------------------------------------------------------------- tasks

@ray.remote
def f(x):
    return x * x


def test_square_tasks(cluster):
    futures = [f.remote(i) for i in range(4)]
    assert ray.get(futures) == [0, 1, 4, 9]


def test_passing_object_refs_between_tasks(cluster):
    @ray.remote
    def my_function():
        return 1

    @ray.remote
    def function_with_an_argument(value):
        return value + 1

    obj_ref1 = my_function.remote()
    assert ray.get(obj_ref1) == 1
    obj_ref2 = function_with_an_argument.remote(obj_ref1)
    assert ray.get(obj_ref2) == 2


def test_specifying_resources_and_waiting(cluster):
    @ray.remote
    def slow_function():
        time.sleep(0.2)
        return 1

    object_refs = [slow_function.options(num_cpus=2).remote() for _ in range(2)]
    ready_refs, remaining_refs = ray.wait(object_refs, num_returns=1, timeout=None)
    assert len(ready_refs) == 1 and len(remaining_refs) == 1
    assert ray.get(ready_refs + remaining_refs) == [1, 1]


def test_nested_tasks(cluster):
    @ray.remote
    def one():
        return 1

    @ray.remote
    def g():
        return [one.remote() for _ in range(4)]

    @ray.remote
    def h():
        return ray.get([one.remote() for _ in range(4)])

    refs = ray.get(g.remote())
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [1, 1, 1, 1]
    assert ray.get(h.remote()) == [1, 1, 1, 1]


def test_generator_example(cluster):
    @ray.remote
    def task():
        for i in range(5):
            yield i

    gen = task.remote()
    assert ray.get(next(gen)) == 0
    assert [ray.get(ref) for ref in gen] == [1, 2, 3, 4]


def test_cancel_example(cluster):
    @ray.remote
    def blocking_operation():
        time.sleep(10e6)

    obj_ref = blocking_operation.remote()
    ray.cancel(obj_ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(obj_ref, timeout=30)


def test_user_exception_example(cluster):
    class MyException(Exception):
        pass

    @ray.remote
    def raises_my_exc():
        raise MyException("a user exception")

    with pytest.raises(MyException) as info:
        ray.get(raises_my_exc.remote())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "a user exception" in str(info.value)


def test_get_timeout_example(cluster):
    @ray.remote
    def long_running_function():
        time.sleep(8)

    obj_ref = long_running_function.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(obj_ref, timeout=0.2)
    ray.cancel(obj_ref)


# ---------------------------------------------------------------------------- actors

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def increment(self):
        self.n += 1

    def read(self):
        return self.n


def test_counter_actors(cluster):
    counters = [Counter.remote() for _ in range(4)]
    [c.increment.remote() for c in counters]
    futures = [c.read.remote() for c in counters]
    assert ray.get(futures) == [1, 1, 1, 1]
    for _ in range(3):
        counters[0].increment.remote()
    assert ray.get(counters[0].read.remote()) == 4


def test_actor_handle_passed_to_tasks(cluster):
    @ray.remote
    def bump(counter):
        for _ in range(10):
            counter.increment.remote()

    counter = Counter.remote()
    ray.get([bump.remote(counter) for _ in range(3)])

    def read():
        return ray.get(counter.read.remote())

    wait_for_condition(lambda: read() == 30, timeout=30)


# ---------------------------------------------------------------------------- objects

def test_numpy_matrix_put_and_passed_to_task(cluster):
    @ray.remote
    def sum_matrix(matrix):
        return np.sum(matrix)

    assert ray.get(sum_matrix.remote(np.ones((100, 100)))) == 10000.0
    matrix_ref = ray.put(np.ones((1000, 1000)))
    assert ray.get(sum_matrix.remote(matrix_ref)) == 1000000.0
    matrix = ray.get(matrix_ref)
    assert matrix.shape == (1000, 1000) and not matrix.flags.writeable
    np.testing.assert_array_equal(matrix, np.ones((1000, 1000)))


def test_put_get_and_nested_refs(cluster):
    y = 1
    object_ref = ray.put(y)
    assert ray.get(object_ref) == 1
    assert ray.get([ray.put(i) for i in range(3)]) == [0, 1, 2]

    @ray.remote
    def echo_and_get(refs):
        return ray.get(refs[0]) + 1

    assert ray.get(echo_and_get.remote([object_ref])) == 2
