"""A pipeline over several times more data than the object store holds completes: the
executor's memory budget holds reads back while downstream steps drain (libs/data/execution)."""
import numpy as np

STORE_BYTES = 64 * 1024 * 1024


def test_a_pipeline_over_three_times_the_store_completes(shutdown_only):
    import juno
    import juno.data as rd

    juno.init(num_cpus=2, object_store_memory=STORE_BYTES)
    rows, width = 24_000, 1024  # 8 KiB a row: about 190 MiB through the store
    ds = (rd.range_tensor(rows, shape=(width,), override_num_blocks=96)
          .map_batches(lambda b: {"data": b["data"] + 1}, num_cpus=0.5)  # not fused: its blocks go through the store
          .map_batches(lambda b: {"s": b["data"].sum(axis=1)}, num_cpus=1))
    total = 0
    for bundle in ds.iter_internal_ref_bundles():
        for table in juno.get(bundle.refs):
            total += int(np.asarray(table.column("s")).sum())
    assert total == sum((i + 1) * width for i in range(rows))
    assert "Held back by the memory budget" in ds.stats()
