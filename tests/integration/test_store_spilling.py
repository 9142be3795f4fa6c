"""The node's shared-memory store: zero copies, bounded memory, spilling, full store."""
import gc
import os
import sys

import cloudpickle
import numpy as np
import psutil
import pytest

import juno
from juno import internal_api
from juno.exceptions import ObjectStoreFullError
from helpers import wait_for_condition

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 1 << 20


def private_bytes() -> int:
    """Memory this process owns alone (shared mappings of the store don't count)."""
    return psutil.Process().memory_full_info().uss


@juno.remote
def private_growth_while_reading(arr) -> tuple[int, float]:
    before = private_bytes()
    total = float(arr.sum())  # touches every page of the argument
    return private_bytes() - before, total


def test_a_task_reads_a_large_argument_without_copying_it(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=1024 * MiB)
    arr = np.ones(256 * MiB // 8)
    ref = juno.put(arr)
    growth, total = juno.get(private_growth_while_reading.remote(ref))
    assert total == arr.size
    assert growth < 32 * MiB, f"the task copied the argument: its private memory grew {growth / MiB:.0f} MiB"


def test_putting_and_dropping_large_arrays_stays_bounded(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=512 * MiB)
    arr = np.ones(100 * MiB // 8)
    rss_before = psutil.Process().memory_info().rss
    for _ in range(30):
        ref = juno.put(arr)
        del ref
    gc.collect()
    wait_for_condition(lambda: internal_api.store_stats()["num_objects"] == 0, timeout=10)
    stats = internal_api.store_stats()
    assert stats["num_spilled"] == 0, "dropped objects must be freed, not spilled"
    assert stats["used"] == 0
    assert psutil.Process().memory_info().rss - rss_before < 200 * MiB


def test_full_store_spills_to_disk_and_restores_intact(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=64 * MiB)
    arrays = [np.full(20 * MiB // 8, i, dtype=np.float64) for i in range(6)]  # 120 MiB > 64 MiB
    refs = [juno.put(a) for a in arrays]
    stats = internal_api.store_stats()
    assert stats["num_spilled"] >= 3 and stats["disk_bytes"] > 0
    for i, ref in enumerate(refs):
        got = juno.get(ref)
        assert got.shape == arrays[i].shape and float(got[0]) == i and float(got[-1]) == i
        del got
    assert internal_api.store_stats()["num_restored"] >= 3
    # Tasks read spilled arguments too.
    assert juno.get(total.remote(refs[0])) == 0.0
    assert juno.get(total.remote(refs[5])) == 5.0 * arrays[5].size


@juno.remote
def total(arr):
    return float(arr.sum())


@juno.remote
class Holder:
    """Keeps a zero-copy view of an object, as a running task's argument would be."""

    def hold(self, arrays):
        self.arr = juno.get(arrays[0])  # a borrowed ref, read zero-copy
        return float(self.arr[0])

    def first(self):
        return float(self.arr[0])


def test_objects_put_and_read_are_unpinned_soon_after_their_last_view_goes(shutdown_only):
    # The last object a process wrote or read stays pinned for a moment (a get right after a put
    # needs no message), but not for longer: then it can be spilled like any other.
    juno.init(num_cpus=1, object_store_memory=256 * MiB)
    ref = juno.put(np.ones(8 * MiB // 8))
    assert juno.get(ref).sum() == MiB
    other = juno.put(np.ones(8 * MiB // 8))
    gc.collect()
    wait_for_condition(lambda: internal_api.store_stats()["num_pinned"] == 0, timeout=10)
    assert juno.get(ref).sum() == MiB and juno.get(other).sum() == MiB


def test_objects_in_use_are_never_spilled(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=64 * MiB)
    held = juno.put(np.full(20 * MiB // 8, 7.0))
    h = Holder.remote()
    assert juno.get(h.hold.remote([held])) == 7.0
    others = [juno.put(np.zeros(20 * MiB // 8)) for _ in range(5)]  # forces spilling
    assert internal_api.store_stats()["num_spilled"] >= 2
    info = internal_api.object_info(held)
    assert info["where"] == "shared_memory" and info["pinned_by"] >= 1
    assert juno.get(h.first.remote()) == 7.0
    del others


def test_put_raises_object_store_full_only_when_disk_is_full_too(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=32 * MiB,
              _system_config={"object_spilling_limit_bytes": 40 * MiB})
    keep = [juno.put(np.zeros(15 * MiB // 8)) for _ in range(4)]  # 2 in memory, 2 spilled
    with pytest.raises(ObjectStoreFullError, match="object_store_memory"):
        keep.append(juno.put(np.zeros(15 * MiB // 8)))
    # Nothing was lost: everything put before is intact.
    for ref in keep:
        assert float(juno.get(ref).sum()) == 0.0
    # Freeing makes room again.
    del keep
    gc.collect()
    ref = juno.put(np.ones(15 * MiB // 8))
    assert float(juno.get(ref)[0]) == 1.0


def test_store_capacity_is_reported_as_a_resource(shutdown_only):
    juno.init(num_cpus=1, object_store_memory=96 * MiB)
    assert juno.cluster_resources()["object_store_memory"] == 96 * MiB
    assert internal_api.store_stats()["capacity"] == 96 * MiB


def test_no_store_files_are_left_after_shutdown(shutdown_only):
    ctx = juno.init(num_cpus=1, object_store_memory=64 * MiB)
    juno.get(juno.put(np.ones(MiB)))
    session = ctx["session_dir"]
    juno.shutdown()
    assert not any(os.path.basename(session) in d for d in os.listdir("/dev/shm"))


@juno.remote
def private_growth_reading_table(table) -> tuple[int, int]:
    before = private_bytes()
    column = table.column("x").to_numpy()  # zero-copy view of the Arrow buffer
    total = int(column.sum())
    return private_bytes() - before, total


@juno.remote
def private_growth_reading_tensor(t) -> tuple[int, float]:
    before = private_bytes()
    total = float(t.sum())
    growth = private_bytes() - before
    t[0] = 5.0  # torch has no read-only tensors: a write stays private to this process
    return growth, total


def test_arrow_tables_and_torch_tensors_are_read_without_copies(shutdown_only):
    import pyarrow as pa
    import torch

    juno.init(num_cpus=1, object_store_memory=512 * MiB)
    table = pa.table({"x": np.arange(16 * MiB, dtype=np.int64)})  # 128 MiB
    growth, total = juno.get(private_growth_reading_table.remote(juno.put(table)))
    assert total == int(np.arange(16 * MiB, dtype=np.int64).sum())
    assert growth < 32 * MiB, f"the Arrow table was copied ({growth / MiB:.0f} MiB)"

    tensor = torch.ones(8 * MiB, dtype=torch.float32)  # 32 MiB
    ref = juno.put(tensor)
    growth, total = juno.get(private_growth_reading_tensor.remote(ref))
    assert total == tensor.numel()
    assert growth < 16 * MiB, f"the tensor was copied ({growth / MiB:.0f} MiB)"
    back = juno.get(ref)
    assert isinstance(back, torch.Tensor) and torch.equal(back, tensor), "the stored object is unchanged"
    # Tensors that must keep autograd state travel by value, intact.
    grad = torch.ones(3, requires_grad=True)
    assert juno.get(juno.put(grad)).requires_grad
