"""The code that runs in workers: a map task, a map actor, and the small block tasks.

A map task is a streaming generator of (block, ``BlockMetadata``) pairs: its output is cut into
blocks of about the target size, each stored, each followed by its metadata (small, inline), so
the driver plans with sizes and row counts without ever fetching a block. The small tasks
return the same pair as two values.
"""
from __future__ import annotations

import time
from typing import Iterator

import pyarrow as pa

import juno
from juno.data import block as blk
from juno.data.transforms import ReadStage, run_stages


def run_fused(stages: list, task_index: int, target_bytes: int, sources: tuple) -> Iterator:
    """Run the stages and yield their output as blocks of about ``target_bytes``: block, then its
    metadata, for each (a task's output may be several blocks; an empty output with columns is
    kept as one empty block, so the schema survives a filter that drops every row)."""
    start = time.perf_counter()
    is_read = isinstance(stages[0], ReadStage)
    source = sources[0] if is_read else sources
    files = getattr(source, "input_files", ()) if is_read else ()
    builder = blk.BlockBuilder(target_bytes)
    produced, empty = False, None
    for table in run_stages(stages, source, task_index):
        if table.num_rows == 0:
            empty = table if table.num_columns else empty
            continue
        for block in builder.add(table):
            produced = True
            yield block
            yield blk.metadata_of(block, exec_s=time.perf_counter() - start, input_files=files)
            start = time.perf_counter()
    for block in builder.finish():
        produced = True
        yield block
        yield blk.metadata_of(block, exec_s=time.perf_counter() - start, input_files=files)
    if not produced and empty is not None:
        yield empty
        yield blk.metadata_of(empty, exec_s=time.perf_counter() - start, input_files=files)


@juno.remote(num_returns="streaming")
def map_task(stages: list, task_index: int, target_bytes: int, *sources):
    """One unit of a fused operator: a read task, or the blocks of one input bundle."""
    yield from run_fused(stages, task_index, target_bytes, sources)


@juno.remote
class MapWorker:
    """An actor of a pool: builds the stages' callable classes once, then runs unit after unit."""

    def __init__(self, stages: list):
        self.stages = stages
        for stage in stages:
            stage.setup()

    def ready(self) -> bool:
        return True

    def run(self, task_index: int, target_bytes: int, *sources):
        yield from run_fused(self.stages, task_index, target_bytes, sources)


@juno.remote
def slice_block(table: pa.Table, offset: int, length: int):
    piece = blk.compact(table.slice(offset, length))
    return piece, blk.metadata_of(piece)


@juno.remote
def zip_blocks(left: pa.Table, skip: int, *rights: pa.Table):
    """``left`` beside the next ``left.num_rows`` rows of the right side, which start ``skip``
    rows into the first of ``rights``; a column name on both sides gets a "_1" suffix (as Ray)."""
    right = blk.compact(blk.concat(list(rights)).slice(skip, left.num_rows))
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
