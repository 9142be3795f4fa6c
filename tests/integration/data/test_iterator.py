"""DataIterator on a real cluster: batches across blocks, prefetching that stops, torch batches, pickling."""
import sys
import threading
import time

import cloudpickle
import numpy as np
import pyarrow as pa
import pytest

from helpers import wait_for_condition

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 2}


class Bundles:
    """The bundle stream a dataset's execution would give: blocks put in the store, in order."""

    def __init__(self, juno, sizes, tensor=False):
        from juno.data.block import RefBundle, metadata_of

        self.bundles, start = [], 0
        for n in sizes:
            table = pa.table({"id": np.arange(start, start + n)})
            if tensor:
                table = table.append_column(
                    "img", pa.FixedShapeTensorArray.from_numpy_ndarray(np.ones((n, 2, 3), dtype=np.uint8)))
            self.bundles.append(RefBundle(((juno.put(table), metadata_of(table)),)))
            start += n

    def __call__(self):
        return iter(self.bundles)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("juno-data-prefetch")]


def test_batches_cross_block_edges_in_every_format(cluster):
    from juno.data.iterator import DataIterator

    it = DataIterator(Bundles(cluster, [5, 0, 7, 3]), name="numbers")
    batches = list(it.iter_batches(batch_size=4))
    assert [len(b["id"]) for b in batches] == [4, 4, 4, 3]
    assert "4 batches, 15 rows, 3 blocks" in it.stats()
    assert np.concatenate([b["id"] for b in batches]).tolist() == list(range(15))
    assert [len(b) for b in it.iter_batches(batch_size=4, drop_last=True, batch_format="pandas")] == [4, 4, 4]
    assert [b.num_rows for b in it.iter_batches(batch_size=None, batch_format="pyarrow")] == [5, 7, 3]
    assert [r["id"] for r in it.iter_rows()] == list(range(15))
    shuffled = [i for b in it.iter_batches(batch_size=3, local_shuffle_buffer_size=6, local_shuffle_seed=0)
                for i in b["id"].tolist()]
    assert sorted(shuffled) == list(range(15))


def test_prefetch_runs_ahead_and_stops_when_the_loop_breaks(cluster):
    from juno.data.iterator import DataIterator

    it = DataIterator(Bundles(cluster, [4] * 20))
    for _ in it.iter_batches(batch_size=4, prefetch_batches=2):
        # While the user works on the first batch, the thread fetches the next blocks (not all 20).
        wait_for_condition(lambda: it._stats.blocks >= 3, timeout=10)
        time.sleep(0.2)
        assert it._stats.blocks <= 5
        assert prefetch_threads()
        break
    wait_for_condition(lambda: not prefetch_threads(), timeout=10)


def test_prefetch_thread_stops_when_the_loop_raises(cluster):
    from juno.data.iterator import DataIterator

    it = DataIterator(Bundles(cluster, [2] * 10))
    with pytest.raises(KeyError):
        for _ in it.iter_batches(batch_size=2):
            raise KeyError("user code failed")
    wait_for_condition(lambda: not prefetch_threads(), timeout=10)


def test_an_error_in_the_stream_reaches_the_consumer(cluster):
    from juno.data.block import BlockMetadata, RefBundle
    from juno.data.iterator import DataIterator

    @cluster.remote
    def broken():
        raise ValueError("this block could not be made")

    good = Bundles(cluster, [3]).bundles
    bad = RefBundle(((broken.remote(), BlockMetadata(num_rows=3, size_bytes=24)),))
    it = DataIterator(lambda: iter(good + [bad]))
    seen = []
    with pytest.raises(ValueError, match="could not be made"):
        for batch in it.iter_batches(batch_size=3):
            seen.append(batch)
    assert len(seen) == 1
    wait_for_condition(lambda: not prefetch_threads(), timeout=10)


def test_torch_batches_with_dtypes_keep_tensor_shapes(cluster):
    import torch

    from juno.data.iterator import DataIterator

    it = DataIterator(Bundles(cluster, [3, 3], tensor=True))
    batches = list(it.iter_torch_batches(batch_size=4, dtypes={"img": torch.float32}, device="cpu"))
    assert [b["img"].shape for b in batches] == [(4, 2, 3), (2, 2, 3)]
    assert batches[0]["img"].dtype == torch.float32 and batches[0]["id"].dtype == torch.int64
    first = next(iter(it.iter_torch_batches(batch_size=3)))  # one whole block: a view of the store, copied
    first["img"] += 1
    assert next(iter(it.iter_torch_batches(batch_size=3)))["img"].max().item() == 1
    pairs = list(it.iter_torch_batches(batch_size=6, collate_fn=lambda b: (torch.tensor(b["id"]), len(b["id"]))))
    assert pairs[0][1] == 6 and pairs[0][0].tolist() == list(range(6))


def test_an_iterator_pickles_into_a_task(cluster):
    from juno.data.iterator import DataIterator

    it = DataIterator(Bundles(cluster, [3, 4]), name="shipped")

    @cluster.remote
    def consume(iterator):
        return [len(b["id"]) for b in iterator.iter_batches(batch_size=2)]

    assert cluster.get(consume.remote(it), timeout=60) == [2, 2, 2, 1]


def test_a_dataset_streams_through_its_iterator(cluster):
    import juno.data as rd
    from juno.data.iterator import dataset_iterator

    ds = rd.range(1000, override_num_blocks=10).map_batches(lambda b: {"id": b["id"] * 2})
    it = dataset_iterator(ds)
    sizes = [len(b["id"]) for b in it.iter_batches(batch_size=64, prefetch_batches=2)]
    assert sizes == [64] * 15 + [40]
    assert it.schema().names == ["id"]
    for _ in it.iter_batches(batch_size=10):
        break  # the execution is closed with the loop: its thread leaves, its tasks are cancelled
    wait_for_condition(lambda: not prefetch_threads(), timeout=10)
    tensors = dataset_iterator(rd.range_tensor(8, shape=(2, 2), override_num_blocks=2))
    assert [tuple(b["data"].shape) for b in tensors.iter_torch_batches(batch_size=5)] == [(5, 2, 2), (3, 2, 2)]
