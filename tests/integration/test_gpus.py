"""Logical GPUs: assignment of ids, CUDA_VISIBLE_DEVICES, fractional packing, resource views."""
from __future__ import annotations

import os
import sys
import time

import cloudpickle
import pytest
from helpers import wait_for_condition

import juno
from juno.exceptions import GetTimeoutError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 4, "num_gpus": 2}



def barrier(directory: str, parties: int, timeout: float = 30.0) -> None:
    """Runs in tasks: return only once ``parties`` tasks are inside at the same time."""
    open(os.path.join(directory, str(os.getpid()) + "-" + os.urandom(4).hex()), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(directory))} of {parties} tasks ran together")
        time.sleep(0.005)


@juno.remote
def gpu_view(directory=None, parties=0):
    if directory:
        barrier(directory, parties)
    return juno.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_cluster_and_available_resources(cluster):
    total = juno.cluster_resources()
    assert total["CPU"] == 4 and total["GPU"] == 2
    wait_for_condition(lambda: juno.available_resources().get("GPU") == 2
                       and juno.available_resources().get("CPU") == 4, timeout=10)


def test_driver_has_no_gpus(cluster):
    assert juno.get_gpu_ids() == []


def test_whole_gpu_tasks_get_distinct_ids(cluster, tmp_path):
    views = juno.get([gpu_view.options(num_gpus=1).remote(str(tmp_path), 2) for _ in range(2)], timeout=60)
    ids = [v[0] for v in views]
    assert sorted(i for gpu_ids in ids for i in gpu_ids) == [0, 1], "concurrent tasks share no GPU"
    for gpu_ids, visible in views:
        assert len(gpu_ids) == 1
        assert visible == str(gpu_ids[0])


def test_two_gpu_task_sees_both(cluster):
    gpu_ids, visible = juno.get(gpu_view.options(num_gpus=2).remote(), timeout=60)
    assert sorted(gpu_ids) == [0, 1]
    assert sorted(visible.split(",")) == ["0", "1"]


def test_fractional_gpu_tasks_pack_onto_one_gpu(cluster, tmp_path):
    views = juno.get([gpu_view.options(num_gpus=0.5).remote(str(tmp_path), 2) for _ in range(2)], timeout=60)
    (a, va), (b, vb) = views
    assert len(a) == 1 and a == b, "two half-GPU tasks running together share one GPU"
    assert va == vb == str(a[0])


def test_four_half_gpu_tasks_fill_both_gpus(cluster, tmp_path):
    views = juno.get([gpu_view.options(num_gpus=0.5).remote(str(tmp_path), 4) for _ in range(4)], timeout=60)
    used = sorted(v[0][0] for v in views)
    assert used == [0, 0, 1, 1]


def test_cpu_task_gets_no_gpu(cluster):
    gpu_ids, visible = juno.get(gpu_view.remote(), timeout=30)
    assert gpu_ids == []
    # A worker reused after a GPU task must not keep that task's GPUs visible.
    juno.get([gpu_view.options(num_gpus=1).remote() for _ in range(2)], timeout=60)
    for gpu_ids, visible in juno.get([gpu_view.remote() for _ in range(4)], timeout=60):
        assert gpu_ids == [] and visible in (None, "")


def test_available_gpus_drop_while_a_gpu_task_runs(cluster, tmp_path):
    gate = tmp_path / "gate"

    @juno.remote(num_gpus=1)
    def hold(path):
        while not os.path.exists(path):
            time.sleep(0.005)
        return juno.get_gpu_ids()

    ref = hold.remote(str(gate))
    try:
        wait_for_condition(lambda: juno.available_resources().get("GPU", 0) == 1, timeout=10)
    finally:
        gate.touch()
    assert len(juno.get(ref, timeout=30)) == 1
    wait_for_condition(lambda: juno.available_resources().get("GPU", 0) == 2, timeout=10)


def test_more_gpus_than_the_cluster_has_stays_pending(cluster, capfd):
    ref = gpu_view.options(num_gpus=3).remote()
    err = []
    wait_for_condition(lambda: err.append(capfd.readouterr().err) or "GPU" in "".join(err), timeout=10)
    with pytest.raises(GetTimeoutError):
        juno.get(ref, timeout=0.5)
    juno.cancel(ref)
