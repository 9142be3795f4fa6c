"""Out-of-memory prevention on a real cluster: the node manager's memory monitor kills
a task or actor over its memory= request, or the most recent task when the node is
over its threshold; owners retry per max_retries / max_restarts and finally raise
OutOfMemoryError / ActorDiedError saying so.

Allocations stay modest (a few hundred MiB at a time, freed by each kill); the node
threshold test gives the node a small budget of its own (node_memory_limit_bytes)
instead of filling the machine."""
from __future__ import annotations

import glob
import os
import time

import psutil
import pytest

import juno
from juno.exceptions import ActorDiedError, OutOfMemoryError, WorkerCrashedError
from helpers import wait_for_condition, wait_for_file

MiB = 1 << 20
GiB = 1 << 30

JUNO_SHARED_INIT = {"num_cpus": 2}


# Remote code allocates with np.ones in 32 MiB chunks (ones are written, so resident), then
# holds them for a bounded while the memory monitor comes. It is spelled out in each
# function: helpers defined in this module can't be imported by workers.
CHUNK = 4 << 20  # float64s: 32 MiB
HOLD_S = 60


def node_log(ctx) -> str:
    text = ""
    for path in glob.glob(os.path.join(ctx["session_dir"], "logs", "node-*.log")):
        with open(path, errors="replace") as f:
            text += f.read()
    return text


@juno.remote(memory=200 * MiB, max_retries=2)
def greedy(attempts_dir: str) -> None:
    import numpy as np

    open(os.path.join(attempts_dir, str(os.getpid())), "w").close()
    chunks = [np.ones(CHUNK) for _ in range(600 // 32)]
    time.sleep(HOLD_S)
    del chunks


@juno.remote(memory=200 * MiB, max_retries=1)
def greedy_first_time(attempts_dir: str) -> str:
    import numpy as np

    first = not os.listdir(attempts_dir)
    open(os.path.join(attempts_dir, str(os.getpid())), "w").close()
    chunks = [np.ones(CHUNK) for _ in range(600 // 32 if first else 1)]
    if first:
        time.sleep(HOLD_S)
    return f"fit the second time in {len(chunks) * 32} MiB"


def test_task_over_its_request_is_retried_then_raises_out_of_memory(juno_shared, tmp_path, capfd):
    with pytest.raises(OutOfMemoryError) as info:
        juno.get(greedy.remote(str(tmp_path)), timeout=45)
    assert not isinstance(info.value, WorkerCrashedError)
    assert len(os.listdir(tmp_path)) == 3, "max_retries=2: three attempts, each killed"
    text = str(info.value)
    assert "greedy" in text and "max_retries" in text
    assert "memory= request of 200 MiB" in text and ".options(memory=" in text
    err = capfd.readouterr().err
    assert err.count("Task greedy was killed due to memory use") >= 2  # one warning per retried kill


def test_task_that_fits_on_retry_succeeds(juno_shared, tmp_path):
    assert juno.get(greedy_first_time.remote(str(tmp_path)), timeout=45) == "fit the second time in 32 MiB"
    assert len(os.listdir(tmp_path)) == 2


@juno.remote(memory=200 * MiB, max_restarts=1)
class Greedy:
    def pid(self) -> int:
        return os.getpid()

    def grow(self) -> None:
        import numpy as np

        self.chunks = [np.ones(CHUNK) for _ in range(600 // 32)]
        time.sleep(HOLD_S)


def test_actor_over_its_request_restarts_then_dies(juno_shared, capfd):
    actor = Greedy.remote()
    first = juno.get(actor.pid.remote(), timeout=30)
    with pytest.raises(ActorDiedError) as info:
        juno.get(actor.grow.remote(), timeout=45)
    assert "killed due to memory use" in str(info.value)
    assert "restarting" in str(info.value)
    second = juno.get(actor.pid.remote(), timeout=30)
    assert second != first, "the actor came back in a new process"
    with pytest.raises(ActorDiedError) as info:
        juno.get(actor.grow.remote(), timeout=45)
    with pytest.raises(ActorDiedError) as info:
        juno.get(actor.pid.remote(), timeout=30)
    text = str(info.value)
    assert "killed due to memory use" in text and "memory= request of 200 MiB" in text
    assert "max_restarts=1" in text
    err = capfd.readouterr().err
    assert "Actor Greedy was killed due to memory use" in err and "Restarting it (restart 1 of 1)" in err
    assert "It will not restart (max_restarts exhausted)" in err


def _private_rss(proc: psutil.Process) -> int:
    mi = proc.memory_info()
    return mi.rss - getattr(mi, "shared", 0)


@juno.remote(num_cpus=0.5)
def modest(marker: str, release: str) -> int:
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")  # one line per attempt
    wait_for_file(release)
    return os.getpid()


@juno.remote(num_cpus=1, max_retries=1)
def big(attempts_dir: str, n_bytes: int) -> None:
    import numpy as np

    open(os.path.join(attempts_dir, str(os.getpid())), "w").close()
    chunks = [np.ones(CHUNK) for _ in range(n_bytes // (32 * MiB))]
    time.sleep(HOLD_S)
    del chunks


def test_node_over_its_threshold_kills_the_most_recent_task(shutdown_only, tmp_path):
    # The node's budget: what this driver holds now plus 1 GiB for the node manager, four
    # idle workers and the tasks; the big task alone can exceed it, the small ones can't.
    limit = _private_rss(psutil.Process()) + GiB
    ctx = juno.init(num_cpus=4, _system_config={"node_memory_limit_bytes": limit})
    markers = [str(tmp_path / f"modest-{i}") for i in range(2)]
    release = str(tmp_path / "release")
    attempts = tmp_path / "big"
    attempts.mkdir()
    small = [modest.remote(m, release) for m in markers]
    wait_for_condition(lambda: all(os.path.exists(m) for m in markers), timeout=30)

    with pytest.raises(OutOfMemoryError) as info:
        juno.get(big.remote(str(attempts), min(limit, 2 * GiB)), timeout=45)
    text = str(info.value)
    assert "node was running low on memory" in text and "most recently started retriable task" in text
    assert "memory_usage_threshold" in text and "node_memory_limit_bytes" in text
    assert len(os.listdir(attempts)) == 2, "max_retries=1: killed twice"

    open(release, "w").close()
    pids = juno.get(small, timeout=30)
    for marker, pid in zip(markers, pids):
        with open(marker) as f:
            assert f.read().split() == [str(pid)], "the older, smaller tasks ran once, never killed"
    assert juno.get(modest.remote(str(tmp_path / "again"), release), timeout=30) > 0  # the driver lives on
    log = node_log(ctx)
    assert "out of memory (node_threshold)" in log and "task big" in log
