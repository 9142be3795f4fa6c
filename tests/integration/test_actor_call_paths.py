"""Actor calls sent by the calling thread and results sent by the thread that ran them
(runtime/owner/actor_submitter.py, EventLoop.send_threadsafe): per-caller order across threads
and restarts, and what must reach the caller before a result (printed lines, borrows)."""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading

import cloudpickle
import numpy as np
import pytest

import juno

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}


@juno.remote(num_cpus=0)
class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, x):
        self.seen.append(x)
        return os.getpid()

    def log(self):
        return list(self.seen)


def _run_threads(target, n: int) -> None:
    errors = []

    def run(t):
        try:
            target(t)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "a calling thread hangs"
    assert not errors, errors


def test_each_threads_calls_run_in_its_order(juno_shared):
    # The threads start while the actor is still being created (their first calls wait in
    # the IO thread's queue), then mix calls they wait for one by one (sent by the thread
    # itself) with bursts; every thread's calls must run in the order it made them.
    r = Recorder.remote()

    def calls(t):
        for i in range(0, 120, 12):
            for j in range(i, i + 6):
                juno.get(r.record.remote((t, j)), timeout=60)
            juno.get([r.record.remote((t, j)) for j in range(i + 6, i + 12)], timeout=60)

    _run_threads(calls, 4)
    log = juno.get(r.log.remote())
    for t in range(4):
        assert [j for (tt, j) in log if tt == t] == list(range(120))


def test_calls_racing_a_restart_all_return_and_never_go_back(juno_shared):
    a = Recorder.options(max_restarts=1, max_task_retries=-1).remote()
    first = juno.get(a.record.remote("warm-up"))
    pids: dict[int, list] = {}
    started = threading.Barrier(4)

    def calls(t):
        started.wait(30)
        pids[t] = [juno.get(a.record.remote((t, i)), timeout=60) for i in range(150)]

    killer = threading.Thread(target=lambda: (started.wait(30), os.kill(first, signal.SIGKILL)))
    killer.start()
    _run_threads(calls, 3)
    killer.join(30)
    restarted = {pid for seq in pids.values() for pid in seq} - {first}
    assert len(restarted) <= 1
    for seq in pids.values():  # once a thread reached the new process, it never sees the old one
        if first in seq and restarted:
            assert seq.index(next(iter(restarted))) > max(i for i, pid in enumerate(seq) if pid == first)


@pytest.mark.parametrize("kind", ["sync", "threaded", "async"])
def test_printed_lines_reach_the_driver_before_the_result(juno_shared, capsys, kind):
    if kind == "async":
        @juno.remote(num_cpus=0)
        class Talker:
            async def say(self, text):
                print(text)
                return os.getpid()
    else:
        @juno.remote(num_cpus=0)
        class Talker:
            def say(self, text):
                print(text)
                return os.getpid()

    t = Talker.options(max_concurrency=4).remote() if kind == "threaded" else Talker.remote()
    for i in range(20):
        pid = juno.get(t.say.remote(f"line {i} of {kind}"))
        assert f"(Talker pid={pid}) line {i} of {kind}" in capsys.readouterr().out


@juno.remote(num_cpus=0)
class AsyncKeeper:
    async def keep(self, refs):
        self.refs = refs  # a borrowed ref held past the call
        return len(refs)

    async def read(self):
        return float((await self.refs[0])[0])


def test_an_async_actor_borrows_a_nested_ref_before_it_answers(juno_shared):
    k = AsyncKeeper.remote()
    for i in range(10):
        ref = juno.put(np.full(20_000, float(i)))
        assert juno.get(k.keep.remote([ref])) == 1
        del ref  # the caller's last ref: the actor's borrow must already be registered
        gc.collect()
        assert juno.get(k.read.remote(), timeout=60) == float(i)
