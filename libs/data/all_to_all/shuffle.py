"""Random shuffles, repartitioning and how many partitions a shuffle uses: pure block-level logic.

A random shuffle deals each block's rows, in a random order, to the partitions (equal shares),
then each partition permutes what it got; seeds are derived per block and per partition from
one seed, so a seeded shuffle of the same blocks is the same every time.
"""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from juno.data.all_to_all.keys import compact
from juno.data.block import concat

MiB = 1024 * 1024
# A sort or groupby partition smaller than this is not worth a task of its own: one merge task
# sorts a few tens of MiB faster than a sampling round, more tasks and their messages.
MIN_PARTITION_BYTES = 32 * MiB
SHUFFLE_KEEP_BLOCKS = 32  # a random shuffle of up to this many blocks keeps the count (M x M pieces)


def num_partitions(total_bytes: int, num_blocks: int, num_cpus: float) -> int:
    """How many reduce tasks a sort or groupby uses: about one per CPU for large data, fewer
    (down to one) for small data, never more than there are non-empty blocks' worth of data."""
    by_size = math.ceil(total_bytes / MIN_PARTITION_BYTES)
    return max(1, min(int(num_cpus), by_size, max(num_blocks, 1) * 4))


def shuffle_partitions(total_bytes: int, num_blocks: int, num_cpus: float, target_block_bytes: int) -> int:
    """Output blocks of ``random_shuffle()`` without ``num_blocks``: as many as the input had (as in
    Ray) up to ``SHUFFLE_KEEP_BLOCKS``; past that, only as many as keep blocks near the target size
    (at least one per CPU), since every input block sends a piece to every output block."""
    if num_blocks <= SHUFFLE_KEEP_BLOCKS:
        return max(num_blocks, 1)
    return max(int(num_cpus), min(num_blocks, math.ceil(total_bytes / max(target_block_bytes, 1))))


def seed_of(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) for p in parts])


def random_split(table: pa.Table, num_partitions: int, seed: list[int]) -> list[pa.Table]:
    """``table``'s rows in random order, dealt into ``num_partitions`` compact pieces of equal size
    (give or take one row)."""
    order = seed_of(*seed).permutation(table.num_rows)
    return [table.take(pa.array(part)) for part in np.array_split(order, num_partitions)]


def shuffle_rows(pieces: list[pa.Table], seed: list[int]) -> pa.Table:
    """The pieces of one partition as one block, its rows in random order."""
    table = concat(pieces)
    if table.num_rows <= 1:
        return table
    return table.take(pa.array(seed_of(*seed).permutation(table.num_rows)))


def split_plan(row_counts: list[int], num_blocks: int) -> list[list[tuple[int, int, int]]]:
    """``repartition(num_blocks)`` without a shuffle: output block i is rows [i*N/k, (i+1)*N/k) of
    the dataset in order, as (input block, first row, rows) pieces."""
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"repartition(num_blocks=...) must be a positive int, got {num_blocks!r}")
    total = sum(row_counts)
    starts = np.concatenate([[0], np.cumsum(row_counts)])
    plan = []
    for i in range(num_blocks):
        lo, hi = total * i // num_blocks, total * (i + 1) // num_blocks
        pieces = []
        for b, count in enumerate(row_counts):
            first, last = max(lo, starts[b]), min(hi, starts[b] + count)
            if last > first:
                pieces.append((b, int(first - starts[b]), int(last - first)))
        plan.append(pieces)
    return plan


def assemble(blocks: list[pa.Table], pieces: list[tuple[int, int, int]], schema: pa.Schema | None) -> pa.Table:
    """One output block of a ``split_plan``: ``blocks`` are the inputs the pieces name, in order of
    first use (a compact copy: slices would pickle their whole buffers)."""
    if not pieces:
        return schema.empty_table() if schema is not None else pa.table({})
    index = {b: i for i, b in enumerate(dict.fromkeys(b for b, _, _ in pieces))}
    parts = [blocks[index[b]].slice(first, rows) for b, first, rows in pieces]
    return compact(concat(parts))
