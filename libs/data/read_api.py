"""Datasets from Python values and generated ranges: ``range``, ``from_items``, ``from_pandas`` ...

(Files are read by libs/data/datasource/.) Generated data (range) is a read: its tasks make the
blocks in workers, fused with the steps after them. Values the driver already holds are put in
the object store once, split into blocks.
"""
from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
import pyarrow as pa

import juno
from juno.data import block as blk
from juno.data.block import RefBundle
from juno.data.context import DataContext
from juno.data.dataset import Dataset, MaterializedDataset
from juno.data.read_task import Read, ReadTask


def _check_count(name: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name}(n=...) must be a non-negative int, got {n!r}")
    return int(n)


def _default_blocks(rows: int, row_bytes: int, override: int | None) -> int:
    """Ray's rule of thumb: enough blocks to keep every CPU busy, blocks not under the minimum
    block size, at most ``read_op_min_num_blocks`` unless asked; never more blocks than rows."""
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ValueError(f"override_num_blocks must be a positive int, got {override!r}")
        return max(1, min(override, rows)) if rows else 1
    ctx = DataContext.get_current()
    by_size = math.ceil(rows * row_bytes / ctx.target_min_block_size)
    cpus = int(juno.cluster_resources().get("CPU", 1)) if juno.is_initialized() else 2
    return max(1, min(rows, max(min(by_size, ctx.read_op_min_num_blocks), 2 * cpus))) if rows else 1


def range(n: int, *, override_num_blocks: int | None = None, parallelism: int = -1,  # noqa: A001 - Ray's name
          concurrency: int | None = None) -> Dataset:
    """Rows ``{"id": 0}`` ... ``{"id": n - 1}``, made in workers."""
    n = _check_count("range", n)
    if override_num_blocks is None and parallelism not in (-1, None):
        override_num_blocks = parallelism
    blocks = _default_blocks(n, 8, override_num_blocks)
    tasks = [_range_task(i * n // blocks, (i + 1) * n // blocks, None) for i in builtins.range(blocks)]
    return Dataset.from_read(Read("ReadRange", tasks, pa.schema([("id", pa.int64())])), concurrency=concurrency)


def range_tensor(n: int, *, shape: tuple = (1,), override_num_blocks: int | None = None, parallelism: int = -1,
                 concurrency: int | None = None) -> Dataset:
    """Rows whose "data" column is an array of ``shape`` filled with the row's index."""
    n = _check_count("range_tensor", n)
    shape = tuple(shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"range_tensor(shape=...) must be a tuple of positive ints, got {shape!r}")
    if override_num_blocks is None and parallelism not in (-1, None):
        override_num_blocks = parallelism
    blocks = _default_blocks(n, 8 * int(np.prod(shape)), override_num_blocks)
    tasks = [_range_task(i * n // blocks, (i + 1) * n // blocks, shape) for i in builtins.range(blocks)]
    return Dataset.from_read(Read("ReadRangeTensor", tasks), concurrency=concurrency)


def _range_task(start: int, end: int, shape: tuple | None) -> ReadTask:
    def read():
        ids = np.arange(start, end, dtype=np.int64)
        if shape is None:
            yield pa.table({"id": ids})
        else:
            data = np.broadcast_to(ids.reshape((-1,) + (1,) * len(shape)), (len(ids),) + shape)
            yield pa.table({"data": blk.to_arrow_column(np.ascontiguousarray(data), "data")})

    return ReadTask(read, end - start, (end - start) * 8 * (int(np.prod(shape)) if shape else 1))


def _put_tables(tables: list[pa.Table], name: str) -> MaterializedDataset:
    bundles = [RefBundle(((juno.put(t), blk.metadata_of(t)),)) for t in tables]
    return Dataset.from_bundles(bundles, name)


def _split_table(table: pa.Table, override: int | None) -> list[pa.Table]:
    n = table.num_rows
    blocks = _default_blocks(n, max(1, table.nbytes // max(1, n)), override) if n else 1
    return [blk.compact(table.slice(i * n // blocks, (i + 1) * n // blocks - i * n // blocks))
            for i in builtins.range(blocks)]


def from_items(items: list, *, override_num_blocks: int | None = None, parallelism: int = -1) -> MaterializedDataset:
    """Rows from a list: dicts are rows; other values become the "item" column."""
    if not isinstance(items, (list, tuple)):
        try:
            items = list(items)
        except TypeError:
            raise TypeError(f"from_items() takes a list, got {type(items).__name__}") from None
    if override_num_blocks is None and parallelism not in (-1, None):
        override_num_blocks = parallelism
    n = len(items)
    blocks = (min(n, override_num_blocks) if override_num_blocks else min(n, max(1, min(200, n // 1000 + 1)))) or 1
    chunks = [items[i * n // blocks:(i + 1) * n // blocks] for i in builtins.range(blocks)]
    return _put_tables([blk.items_to_table(list(c)) for c in chunks], "FromItems")


def from_numpy(ndarrays: Any) -> MaterializedDataset:
    """One block per array; the rows are the arrays' first axis, in the "data" column."""
    arrays = ndarrays if isinstance(ndarrays, list) else [ndarrays]
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"from_numpy() takes an ndarray or a list of them, got {type(a).__name__}")
    return _put_tables([pa.table({"data": blk.to_arrow_column(a, "data")}) for a in arrays], "FromNumpy")


def from_pandas(dfs: Any, *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """One block per DataFrame (or ``override_num_blocks`` blocks from one)."""
    frames = dfs if isinstance(dfs, list) else [dfs]
    tables = []
    for df in frames:
        if type(df).__name__ != "DataFrame":
            raise TypeError(f"from_pandas() takes a pandas.DataFrame or a list of them, got {type(df).__name__}")
        tables.append(blk.from_batch(df, what="from_pandas"))
    if override_num_blocks is not None and len(tables) == 1:
        tables = _split_table(tables[0], override_num_blocks)
    return _put_tables(tables, "FromPandas")


def from_arrow(tables: Any, *, override_num_blocks: int | None = None) -> MaterializedDataset:
    """One block per pyarrow Table (or ``override_num_blocks`` blocks from one)."""
    tables = tables if isinstance(tables, list) else [tables]
    for t in tables:
        if not isinstance(t, pa.Table):
            raise TypeError(f"from_arrow() takes a pyarrow.Table or a list of them, got {type(t).__name__}")
    if override_num_blocks is not None and len(tables) == 1:
        tables = _split_table(tables[0], override_num_blocks)
    return _put_tables(tables, "FromArrow")


def _from_refs(refs: Any, name: str) -> MaterializedDataset:
    from juno.data.execution.remote import as_block

    refs = refs if isinstance(refs, list) else [refs]
    for r in refs:
        if not isinstance(r, juno.ObjectRef):
            raise TypeError(f"{name}() takes ObjectRefs (or a list of them), got {type(r).__name__}")
    pairs = [as_block.remote(r) for r in refs]
    metas = juno.get([m for _, m in pairs])
    return Dataset.from_bundles([RefBundle(((b, m),)) for (b, _), m in zip(pairs, metas)], name)


def from_arrow_refs(refs: Any) -> MaterializedDataset:
    return _from_refs(refs, "from_arrow_refs")


def from_pandas_refs(refs: Any) -> MaterializedDataset:
    return _from_refs(refs, "from_pandas_refs")


def from_numpy_refs(refs: Any) -> MaterializedDataset:
    """Refs to ndarrays (the "data" column) or to dicts of arrays."""
    from juno.data.execution.remote import numpy_to_block

    refs = refs if isinstance(refs, list) else [refs]
    return _from_refs([numpy_to_block.remote(r) for r in refs], "from_numpy_refs")


def from_torch(dataset: Any) -> MaterializedDataset:
    """The items of a torch ``Dataset`` (map-style or iterable), in the "item" column."""
    try:
        items = list(dataset)
    except TypeError:
        raise TypeError(f"from_torch() takes a torch Dataset, got {type(dataset).__name__}") from None
    return from_items([_plain(i) for i in items])


def _plain(value: Any) -> Any:
    """Tensors as ndarrays (Arrow stores those; scalars as numbers), recursively through tuples,
    lists and dicts."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        array = value.detach().cpu().numpy()
        return array.item() if array.ndim == 0 else array  # a scalar tensor is a plain value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
