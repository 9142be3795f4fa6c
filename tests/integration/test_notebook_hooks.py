"""juno.util.notebook and ObjectRef._on_completed on a real local cluster: what the widgets and the
kernel extension use instead of the core worker's internals."""
from __future__ import annotations

import sys
import threading

import cloudpickle
import pytest
from helpers import wait_for_condition

import juno
from juno.util import notebook

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}


@juno.remote
def square(x):
    return x * x


@juno.remote
def fail():
    raise ValueError("boom")


@juno.remote
def wait_for(path, timeout_s=30.0):
    import os
    import time

    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@juno.remote
def make_ref():
    return [juno.put("borrowed")]


@juno.remote
class Counter:
    def incr(self):
        return 1


class Calls:
    """Records a callback's calls, thread-safely (callbacks run on Juno's IO thread)."""

    def __init__(self):
        self.calls: list = []
        self.event = threading.Event()

    def __call__(self, *args):
        self.calls.append(args)
        self.event.set()


def test_on_completed_tells_done_from_failed_without_reading(juno_shared):
    ok, bad, put = Calls(), Calls(), Calls()
    ref_ok, ref_bad = square.remote(3), fail.remote()
    notebook.on_completed(ref_ok, ok)
    notebook.on_completed(ref_bad, bad)
    assert ok.event.wait(30) and bad.event.wait(30)
    assert ok.calls == [(False,)] and bad.calls == [(True,)]
    notebook.on_completed(juno.put(1), put)  # ready already: called at once, on this thread
    assert put.calls == [(False,)]


def test_on_completed_asks_a_borrowed_refs_owner(juno_shared):
    [borrowed] = juno.get(make_ref.remote(), timeout=30)
    calls = Calls()
    notebook.on_completed(borrowed, calls)
    assert calls.event.wait(30) and calls.calls == [(False,)]
    assert notebook.ref_status(borrowed) == "ready"


def test_a_cancelled_callback_never_runs(juno_shared, tmp_path):
    release = tmp_path / "release"
    ref = wait_for.remote(str(release))
    calls = Calls()
    cancel = notebook.on_completed(ref, calls)
    assert notebook.ref_status(ref) == "pending"
    cancel()
    release.touch()
    assert juno.get(ref, timeout=30) == "released"
    later = Calls()  # registered after the first: runs, so the first had its chance too
    notebook.on_completed(ref, later)
    assert later.event.wait(10)
    assert calls.calls == []


def test_ray_on_completed_gives_the_value_or_the_error(juno_shared):
    results: list = []
    done = threading.Event()

    def record(result):
        results.append(result)
        if len(results) == 2:
            done.set()

    square.remote(4)._on_completed(record)
    fail.remote()._on_completed(record)
    assert done.wait(30)
    values = [r for r in results if not isinstance(r, Exception)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert values == [16] and len(errors) == 1 and isinstance(errors[0], ValueError)


def test_what_this_process_knows_of_actors_and_the_session(juno_shared):
    counter = Counter.remote()
    assert notebook.actor_identity(counter) == ("Counter", repr(counter).split(", ")[1].rstrip(")"))
    assert juno.get(counter.incr.remote(), timeout=30) == 1
    wait_for_condition(lambda: notebook.known_actor_state(counter) == "ALIVE", timeout=10)
    assert notebook.current_context() is not None
    assert notebook.current_context().address_info["address"]
    snapshot = notebook.cluster_snapshot()
    assert snapshot["connected"] and snapshot["nodes"] and snapshot["nodes"][0]["alive"]
    assert snapshot["actors"].get("ALIVE", 0) >= 1


def test_cancel_unfinished_cancels_only_what_is_still_running(juno_shared, tmp_path):
    finished = square.remote(5)
    assert juno.get(finished, timeout=30) == 25
    running = wait_for.remote(str(tmp_path / "never"), 60.0)
    assert notebook.cancel_unfinished([finished.task_id(), running.task_id()]) == 1
    with pytest.raises(juno.exceptions.TaskCancelledError):
        juno.get(running, timeout=30)


def test_without_a_connection_nothing_is_known(shutdown_only):
    ref = juno.ObjectRef(b"\0" * 20, "nowhere", _count=False)
    assert notebook.connection() is None and notebook.ref_status(ref) is None
    assert notebook.cluster_snapshot() == {"connected": False}
    assert notebook.cancel_unfinished([b"\0" * 16]) == 0
    with pytest.raises(RuntimeError, match="juno.init"):
        notebook.on_completed(ref, print)
