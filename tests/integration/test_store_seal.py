"""A put's seal waits for the process's next store message, but never keeps a reader waiting.

The seal of an object this process put is queued (runtime/store/client.py) and sent with the
next create or pin, or by the IO thread FLUSH_DELAY_S later. Here that delay is made longer
than the tests' timeouts, so a reader in another process is served only if the ref leaving
this process sent the seal first, whichever way it left.
"""
from __future__ import annotations

import sys

import cloudpickle
import numpy as np
import pytest

import juno
from juno.store import client as store_client

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}

N = 256 * 1024  # float64: 2 MiB, in shared memory


@pytest.fixture
def no_timed_flush(cluster, monkeypatch):
    juno.get(total.remote(np.zeros(1)))  # workers started, store connection made
    monkeypatch.setattr(store_client, "FLUSH_DELAY_S", 3600.0)
    yield cluster


@juno.remote
def total(a):
    return float(a.sum())


@juno.remote
def total_nested(items):
    return float(juno.get(items[0]).sum())


@juno.remote
class Reader:
    def total(self, a):
        return float(a.sum())


def test_a_ref_passed_to_a_task_sends_the_seal_first(no_timed_flush):
    ref = juno.put(np.ones(N))
    assert juno.get(total.remote(ref), timeout=20) == N


def test_a_ref_pickled_inside_an_argument_sends_the_seal_first(no_timed_flush):
    ref = juno.put(np.full(N, 2.0))
    assert juno.get(total_nested.remote([ref]), timeout=20) == 2 * N


def test_a_ref_passed_to_an_actor_sends_the_seal_first(no_timed_flush):
    reader = Reader.remote()
    ref = juno.put(np.full(N, 3.0))
    assert juno.get(reader.total.remote(ref), timeout=20) == 3 * N
    juno.kill(reader)


def test_a_large_argument_by_value_is_sealed_before_its_task_runs(no_timed_flush):
    assert juno.get(total.remote(np.full(N, 4.0)), timeout=20) == 4 * N


def test_puts_in_a_row_are_each_sealed_and_read_back(no_timed_flush):
    refs = [juno.put(np.full(N, float(i))) for i in range(5)]
    assert [float(juno.get(r).sum()) for r in refs] == [float(i * N) for i in range(5)]
    assert juno.get([total.remote(r) for r in refs], timeout=20) == [float(i * N) for i in range(5)]
