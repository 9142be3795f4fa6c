"""Objects on a real local cluster: put/get, large values in shared memory, reference counting."""
from __future__ import annotations

import gc
import os
import sys
import warnings

import cloudpickle
import numpy as np
import pytest
from helpers import wait_for_condition

import juno
from juno import internal_api

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}

LARGE = 200 * 1024  # bytes; well above the 100 KiB inline limit




def stored(ref):
    """The object store's record of ``ref``'s value on this machine, or None."""
    return internal_api.object_info(ref)


def freed(ref_id: bytes) -> bool:
    return internal_api.object_info(juno.ObjectRef(ref_id, "", _count=False)) is None


def big_array(seed: int = 0) -> np.ndarray:
    return np.arange(LARGE // 8, dtype=np.float64) + seed


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


@juno.remote
def echo(x):
    return x


@juno.remote
def array_info(a):
    try:
        a[0] = -1
        writeable = True
    except ValueError:
        writeable = False
    return float(a.sum()), a.shape, a.dtype.str, writeable


@juno.remote
def make_array(n_bytes, seed):
    return np.arange(n_bytes // 8, dtype=np.float64) + seed


@juno.remote
def gated_sum(path, a):
    import time

    while not os.path.exists(path):
        time.sleep(0.005)
    return float(a.sum())


# ---------------------------------------------------------------------------- put / get

@pytest.mark.parametrize("value", [
    0, -7, 3.5, "text", b"\x00bytes", None, True, [1, [2, 3]], (1, "a"), {"k": [1, 2], 3: None},
    {1, 2, 3}, Point(1, 2), np.arange(10), np.float32(2.5),
], ids=lambda v: type(v).__name__)
def test_put_get_round_trip(cluster, value):
    ref = juno.put(value)
    assert isinstance(ref, juno.ObjectRef)
    got = juno.get(ref)
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(got, value)
    else:
        assert got == value and type(got) is type(value)
    # The same value reaches a task, and comes back from it.
    back = juno.get(echo.remote(ref))
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
    else:
        assert back == value


def test_get_same_ref_twice_and_duplicates_in_list(cluster):
    ref = juno.put({"a": 1})
    assert juno.get(ref) == juno.get(ref) == {"a": 1}
    assert juno.get([ref, ref, juno.put(2), ref]) == [{"a": 1}, {"a": 1}, 2, {"a": 1}]


def test_get_of_values_returns_them_and_warns_once_per_call_site(cluster):
    from juno.exceptions import NotAnObjectRefWarning

    first, second = juno.put(1), juno.put(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # once per call site is get()'s own doing, whatever the filters
        for _ in range(3):
            assert juno.get(5) == 5
        line_of_value = sys._getframe().f_lineno - 1
        assert juno.get([first, "two", second]) == [1, "two", 3]
        assert juno.get([first, second]) == [1, 3]  # refs only: no warning
        assert juno.get(first) == 1
    assert [(w.category, w.filename, w.lineno) for w in caught] == [
        (NotAnObjectRefWarning, __file__, line_of_value),
        (NotAnObjectRefWarning, __file__, line_of_value + 2)]
    assert "type int" in str(caught[0].message) and "item 1 is a value of type str" in str(caught[1].message)


def test_a_task_may_get_an_argument_the_runtime_already_resolved(cluster):
    @juno.remote
    def total(values):
        return int(juno.get(values).sum())  # Ray tutorials do this; the array came resolved

    assert juno.get(total.remote(juno.put(np.arange(5)))) == 10


def test_put_of_an_object_ref_is_rejected(cluster):
    ref = juno.put(1)
    with pytest.raises(TypeError):
        juno.put(ref)
    # Wrapping it is the documented way to store a ref inside an object.
    outer = juno.put([ref])
    (inner,) = juno.get(outer)
    assert isinstance(inner, juno.ObjectRef)
    assert inner == ref
    assert juno.get(inner) == 1


def test_put_unpicklable_value_is_a_type_error(cluster):
    import threading

    with pytest.raises(TypeError) as info:
        juno.put({"lock": threading.Lock()})
    assert "lock" in str(info.value)


# ---------------------------------------------------------------------------- large values

def test_large_put_is_shared_read_only_and_equal(cluster):
    arr = big_array(1)
    ref = juno.put(arr)
    info = stored(ref)
    assert info is not None and info["where"] == "shared_memory", "a large object lives in the node's store"
    assert info["size"] >= arr.nbytes
    got = juno.get(ref)
    np.testing.assert_array_equal(got, arr)
    assert not got.flags.writeable
    with pytest.raises(ValueError):
        got[0] = 5
    total, shape, dtype, writeable = juno.get(array_info.remote(ref))
    assert total == float(arr.sum()) and shape == arr.shape and dtype == arr.dtype.str
    assert writeable is False, "tasks see large arguments read-only, as in Ray"


def test_large_task_result_comes_back_read_only(cluster):
    ref = make_array.remote(LARGE, 3)
    got = juno.get(ref)
    expected = big_array(3)
    np.testing.assert_array_equal(got, expected)
    assert not got.flags.writeable
    # Passing the result on to another task reads it from shared memory.
    assert juno.get(array_info.remote(ref))[0] == float(expected.sum())
    several = juno.get([make_array.remote(LARGE, s) for s in range(3)])
    for s, a in enumerate(several):
        np.testing.assert_array_equal(a, big_array(s))


def test_large_argument_by_value(cluster):
    arr = big_array(5)
    total, shape, _, writeable = juno.get(array_info.remote(arr))
    assert total == float(arr.sum()) and shape == arr.shape
    blob = os.urandom(LARGE)
    assert juno.get(echo.remote(blob)) == blob


def test_large_bytes_and_nested_structures(cluster):
    value = {"arrays": [big_array(i) for i in range(2)], "blob": b"x" * LARGE, "n": 1}
    got = juno.get(juno.put(value))
    assert got["blob"] == value["blob"] and got["n"] == 1
    for a, b in zip(got["arrays"], value["arrays"]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- reference counting

def test_dropping_last_ref_frees_shared_memory(cluster):
    ref = juno.put(big_array())
    oid = ref.binary()
    value = juno.get(ref)
    copy = ref  # a second local reference keeps it alive
    del ref
    gc.collect()
    assert stored(copy) is not None
    del copy
    gc.collect()
    # The value read from it is a zero-copy view: it keeps the memory valid (pinned).
    wait_for_condition(lambda: internal_api.object_info(juno.ObjectRef(oid, "", _count=False))["deleted"])
    assert value[10] == 10.0
    del value
    gc.collect()
    wait_for_condition(lambda: freed(oid), timeout=10)


def test_dropping_task_result_frees_shared_memory(cluster):
    ref = make_array.remote(LARGE, 0)
    juno.get(ref)
    gc.collect()
    oid = ref.binary()
    assert stored(ref) is not None
    del ref
    wait_for_condition(lambda: freed(oid), timeout=10)


def test_pending_task_keeps_its_argument_alive(cluster, gate):
    ref = juno.put(big_array(2))
    oid = ref.binary()
    result = gated_sum.remote(str(gate), ref)
    del ref
    gc.collect()
    assert not freed(oid), "an argument of a pending task must not be freed"
    gate.touch()
    assert juno.get(result, timeout=30) == float(big_array(2).sum())
    wait_for_condition(lambda: freed(oid), timeout=10)


def test_no_shared_memory_left_after_tasks_with_large_values(cluster):
    gc.collect()
    wait_for_condition(lambda: internal_api.store_stats()["num_objects"] == 0, timeout=10)
    results = [array_info.remote(big_array(i)) for i in range(3)]  # large args by value
    results += [array_info.remote(make_array.remote(LARGE, i)) for i in range(3)]  # large intermediates
    assert len(juno.get(results)) == 6
    del results
    wait_for_condition(lambda: internal_api.store_stats()["num_objects"] == 0, timeout=10)
    assert internal_api.store_stats()["used"] == 0
