"""The loop actor's own contract, run in-process: the driver may hand a finished loop's actor the
next loop at once (Tune's ``reuse_actors``), even while the old loop's thread is still exiting."""
from __future__ import annotations

import threading
import time

import pytest

from juno.air import session as air_session
from juno.air.storage import StorageContext
from juno.air.worker import SessionWorker


def _args(tmp_path, trial: str) -> dict:
    return {"storage": StorageContext(str(tmp_path), trial), "sync_reports": False,
            "context": {"trial_id": trial, "world_rank": 0, "world_size": 1, "local_rank": 0,
                        "local_world_size": 1, "node_rank": 0}}


def _report(value):
    def loop(config):
        air_session.get_session().report({"value": value})
    return loop


def _drain(worker: SessionWorker, loop_id: str) -> list[dict]:
    reports: list[dict] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items, done = worker.poll(1.0, 0, False, loop_id)
        reports += items
        if done:
            return reports
    raise AssertionError(f"loop {loop_id} did not end within 10 s")


def test_a_finished_loop_whose_thread_is_still_exiting_makes_room_for_the_next(tmp_path, monkeypatch):
    exiting = threading.Event()
    real_finish = air_session.Session.finish

    def slow_exit(self, error=None):  # the scheduler leaves the old thread waiting after it finished
        real_finish(self, error)
        exiting.set()
        time.sleep(0.5)

    monkeypatch.setattr(air_session.Session, "finish", slow_exit)
    worker = SessionWorker()
    worker.start_loop(_report(1), {}, _args(tmp_path, "a"), "a")
    assert [r["metrics"] for r in _drain(worker, "a")] == [{"value": 1}]
    assert exiting.wait(5) and worker._thread.is_alive()  # the case this test is about

    worker.start_loop(_report(2), {}, _args(tmp_path, "b"), "b")
    assert [r["metrics"] for r in _drain(worker, "b")] == [{"value": 2}]


def test_a_loop_that_still_runs_refuses_a_second_start(tmp_path):
    release = threading.Event()

    def waits(config):
        release.wait(10)

    worker = SessionWorker()
    worker.start_loop(waits, {}, _args(tmp_path, "a"), "a")
    try:
        with pytest.raises(RuntimeError, match="previous loop still runs"):
            worker.start_loop(_report(2), {}, _args(tmp_path, "b"), "b")
    finally:
        release.set()
    assert _drain(worker, "a") == []
