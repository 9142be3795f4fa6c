"""The code that runs in workers: a map task, a map actor, and the small block tasks.

Each returns two values, the block (stored) and its ``BlockMetadata`` (small, inline), so the
driver plans with sizes and row counts without ever fetching a block.
"""
from __future__ import annotations

import time

import pyarrow as pa

import juno
from juno.data import block as blk
from juno.data.transforms import ReadStage, run_stages


def run_fused(stages: list, sources: tuple) -> tuple[pa.Table, blk.BlockMetadata]:
    start = time.perf_counter()
    is_read = isinstance(stages[0], ReadStage)
    source = sources[0] if is_read else sources
    tables = list(run_stages(stages, source))
    table = blk.concat(tables) if tables else pa.table({})
    files = getattr(source, "input_files", ()) if is_read else ()
    return table, blk.metadata_of(table, exec_s=time.perf_counter() - start, input_files=files)


@juno.remote
def map_task(stages: list, *sources):
    """One unit of a fused operator: a read task, or the blocks of one input bundle."""
    return run_fused(stages, sources)


@juno.remote
class MapWorker:
    """An actor of a pool: builds the stages' callable classes once, then runs unit after unit."""

    def __init__(self, stages: list):
        self.stages = stages
        for stage in stages:
            stage.setup()
            stage._ready = True

    def ready(self) -> bool:
        return True

    def run(self, *sources):
        return run_fused(self.stages, sources)


@juno.remote
def slice_block(table: pa.Table, offset: int, length: int):
    piece = table.slice(offset, length)
    return piece, blk.metadata_of(piece)


@juno.remote
def zip_blocks(left: pa.Table, skip: int, *rights: pa.Table):
    """``left`` beside the next ``left.num_rows`` rows of the right side, which start ``skip``
    rows into the first of ``rights``; a column name on both sides gets a "_1" suffix (as Ray)."""
    right = blk.concat(list(rights)).slice(skip, left.num_rows)
    table = left
    for name in right.column_names:
        out_name = name
        while out_name in table.column_names:
            out_name += "_1"
        table = table.append_column(out_name, right.column(name))
    return table, blk.metadata_of(table)


@juno.remote(num_returns=2)
def as_block(value):
    """A block (and its metadata) from what a user put in the store themselves: a pyarrow Table, a
    pandas DataFrame or a dict of arrays (from_arrow_refs, from_pandas_refs, from_numpy_refs)."""
    table = value if isinstance(value, pa.Table) else blk.from_batch(value, what="the object behind the ref")
    return table, blk.metadata_of(table)


@juno.remote
def to_numpy_block(table: pa.Table, column: str | None):
    """``to_numpy_refs``: a block as a dict of arrays, or one column's array."""
    if column is not None:
        if column not in table.column_names:
            raise KeyError(f"to_numpy_refs(column={column!r}): no such column; the columns are {table.column_names}")
        return blk.column_to_numpy(table.column(column))
    return blk.to_batch(table, "numpy")


@juno.remote
def to_pandas_block(table: pa.Table):
    return blk.to_pandas(table)


@juno.remote
def numpy_to_block(value):
    """``from_numpy_refs``: an ndarray is the "data" column; a dict of arrays is columns."""
    return value if isinstance(value, dict) else {"data": value}
