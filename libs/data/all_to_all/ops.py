"""The all-to-all operations as the executor runs them: ``fn(bundles, ctx, **params) -> bundles``.

Each is called once on the driver with all of its upstream's blocks (a barrier) and submits the
tasks of a map -> reduce shuffle: map tasks cut each block into one piece per partition
(``num_returns`` = partitions), reduce tasks make one output block each from their partition's
pieces and return it with its metadata (``num_returns=2``), so the driver learns sizes without
fetching blocks. Decisions (how many partitions, where to cut) are the pure functions of
``keys``, ``aggregation`` and ``shuffle``; this module only moves refs.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

import juno
from juno.data.aggregate import AggregateFn
from juno.data.all_to_all import aggregation, keys as keys_mod, shuffle
from juno.data.all_to_all.keys import SortKey
from juno.data.block import BlockMetadata, RefBundle, empty_table, metadata_of
from juno.data.context import DataContext

SAMPLES_PER_PARTITION = 10  # key rows sampled from each block per partition, for the boundaries


# ============================================================================ tasks
def _pieces(tables: list[pa.Table]):
    """A task's return value for ``num_returns=len(tables)``."""
    return tables[0] if len(tables) == 1 else tuple(tables)


def _with_metadata(table: pa.Table, started: float) -> tuple[pa.Table, BlockMetadata]:
    return table, metadata_of(table, exec_s=time.perf_counter() - started)


@juno.remote
def _sample(block: pa.Table, key: SortKey, n: int, seed: int) -> pa.Table:
    return keys_mod.sample_keys(block, key, n, seed)


@juno.remote
def _sort_map(block: pa.Table, key: SortKey, bounds: list[tuple]):
    return _pieces(keys_mod.partition_by_boundaries(block, key, bounds))


@juno.remote(num_returns=2)
def _sort_reduce(key: SortKey, *pieces: pa.Table):
    started = time.perf_counter()
    return _with_metadata(keys_mod.merge_sorted(list(pieces), key), started)  # a take: compact already


@juno.remote
def _aggregate_map(block: pa.Table, keys: tuple[str, ...], aggs: list[AggregateFn], bounds: list[tuple]):
    partial = aggregation.partial_aggregate(block, keys, aggs)
    if not bounds:
        return partial
    return _pieces(keys_mod.partition_by_boundaries(partial, SortKey.of(list(keys)), bounds))


@juno.remote(num_returns=2)
def _aggregate_reduce(keys: tuple[str, ...], aggs: list[AggregateFn], *partials: pa.Table):
    started = time.perf_counter()
    return _with_metadata(aggregation.combine_partials(list(partials), keys, aggs), started)


@juno.remote
def _shuffle_map(block: pa.Table, num_partitions: int, seed: list[int]):
    return _pieces(shuffle.random_split(block, num_partitions, seed))


@juno.remote(num_returns=2)
def _shuffle_reduce(seed: list[int], *pieces: pa.Table):
    started = time.perf_counter()
    return _with_metadata(shuffle.shuffle_rows(list(pieces), seed), started)


@juno.remote(num_returns=2)
def _assemble(pieces: list[tuple[int, int, int]], schema: pa.Schema | None, *blocks: pa.Table):
    started = time.perf_counter()
    return _with_metadata(shuffle.assemble(list(blocks), pieces, schema), started)


# ============================================================================ driver side
def _blocks(bundles: list[RefBundle]) -> list[tuple[Any, BlockMetadata]]:
    return [block for bundle in bundles for block in bundle.blocks]


def _schema(blocks) -> pa.Schema | None:
    """The first block's schema that has columns (an empty dataset's blocks may have none)."""
    for _, meta in blocks:
        if meta.schema is not None and len(meta.schema.names):
            return meta.schema
    return None


def _num_cpus() -> float:
    return juno.cluster_resources().get("CPU", 1)


def _bundles(pairs: list[tuple[Any, Any]]) -> list[RefBundle]:
    """Output bundles (one block each) from reduce tasks' (block ref, metadata ref) pairs."""
    metas = juno.get([meta for _, meta in pairs])
    return [RefBundle(((ref, meta),)) for (ref, _), meta in zip(pairs, metas)]


def _put_table(table: pa.Table) -> list[RefBundle]:
    return [RefBundle(((juno.put(table), metadata_of(table)),))]


def _map_reduce(map_task, reduce_task, blocks, map_args, reduce_args, num_partitions: int) -> list[RefBundle]:
    """Map tasks (one per block, a piece per partition out), then a reduce task per partition."""
    task = map_task.options(num_returns=num_partitions) if num_partitions > 1 else map_task
    pieces = []
    for i, (ref, _) in enumerate(blocks):
        out = task.remote(ref, *map_args(i))
        pieces.append(out if num_partitions > 1 else [out])
    return _bundles([reduce_task.remote(*reduce_args(r), *[p[r] for p in pieces]) for r in range(num_partitions)])


def _boundaries(blocks, key: SortKey, partitions: int) -> list[tuple]:
    per_block = SAMPLES_PER_PARTITION * partitions
    samples = juno.get([_sample.remote(ref, key, per_block, i) for i, (ref, _) in enumerate(blocks)])
    return keys_mod.boundaries(samples, key, partitions)


def sort(bundles: list[RefBundle], ctx: DataContext, *, key: SortKey) -> list[RefBundle]:
    """Sample the key columns, cut every block at the boundaries, merge each partition."""
    blocks = _blocks(bundles)
    schema = _schema(blocks)
    key.validate(schema)
    blocks = [(ref, meta) for ref, meta in blocks if meta.num_rows]
    if not blocks:
        return _put_table(empty_table(schema))
    partitions = shuffle.num_partitions(sum(m.size_bytes for _, m in blocks), len(blocks), _num_cpus())
    if partitions == 1:
        return _bundles([_sort_reduce.remote(key, *[ref for ref, _ in blocks])])
    bounds = _boundaries(blocks, key, partitions)
    return _map_reduce(_sort_map, _sort_reduce, blocks, lambda i: (key, bounds), lambda r: (key,), len(bounds) + 1)


def aggregate(bundles: list[RefBundle], ctx: DataContext, *, keys: Sequence[str],
              aggs: Sequence[AggregateFn] | Callable[[pa.Schema | None], Sequence[AggregateFn]]) -> list[RefBundle]:
    """Partial aggregation in each block's task (cut by key range when there are several
    partitions), then one combining task per key range; the output is sorted by the keys."""
    keys = tuple(keys)
    blocks = _blocks(bundles)
    schema = _schema(blocks)
    aggs = list(aggs(schema) if callable(aggs) else aggs)  # a function: "every column", once the schema is known
    blocks = [(ref, meta) for ref, meta in blocks if meta.num_rows]
    if not blocks and not aggs:
        return _put_table(pa.table({}))
    aggregation.validate(keys, aggs, schema)
    if not blocks:
        empty = empty_table(schema)
        return _put_table(aggregation.combine_partials([aggregation.partial_aggregate(empty, keys, aggs)], keys, aggs))
    partitions = 1
    if keys:
        partitions = shuffle.num_partitions(sum(m.size_bytes for _, m in blocks), len(blocks), _num_cpus())
    bounds = _boundaries(blocks, SortKey.of(list(keys)), partitions) if partitions > 1 else []
    aggs_ref = juno.put(aggs)  # shipped once, not pickled into every task's message
    return _map_reduce(_aggregate_map, _aggregate_reduce, blocks, lambda i: (keys, aggs_ref, bounds),
                       lambda r: (keys, aggs_ref), len(bounds) + 1)


def random_shuffle(bundles: list[RefBundle], ctx: DataContext, *, seed: int | None = None,
                   num_blocks: int | None = None) -> list[RefBundle]:
    """Deal every block's rows at random to the output blocks, then permute each output block."""
    blocks = _blocks(bundles)
    schema = _schema(blocks)
    blocks = [(ref, meta) for ref, meta in blocks if meta.num_rows]
    if not blocks:
        return _put_table(empty_table(schema))
    if num_blocks is None:
        num_blocks = shuffle.shuffle_partitions(sum(m.size_bytes for _, m in blocks), len(blocks), _num_cpus(),
                                                ctx.target_max_block_size)
    seed = int(np.random.SeedSequence().entropy) if seed is None else seed
    return _map_reduce(_shuffle_map, _shuffle_reduce, blocks, lambda i: (num_blocks, [seed, 0, i]),
                       lambda r: ([seed, 1, r],), num_blocks)


def repartition(bundles: list[RefBundle], ctx: DataContext, *, num_blocks: int,
                shuffle_rows: bool = False) -> list[RefBundle]:
    """Exactly ``num_blocks`` blocks: a random shuffle, or (the default) the rows in order, cut into
    blocks of equal row counts, each a task over just the input blocks it needs."""
    if shuffle_rows:
        return random_shuffle(bundles, ctx, num_blocks=num_blocks)
    blocks = _blocks(bundles)
    schema = _schema(blocks)
    plan = shuffle.split_plan([meta.num_rows for _, meta in blocks], num_blocks)
    return _bundles([_assemble.remote(pieces, schema, *[blocks[b][0] for b in dict.fromkeys(b for b, _, _ in pieces)])
                     for pieces in plan])


def randomize_block_order(bundles: list[RefBundle], ctx: DataContext, *, seed: int | None = None) -> list[RefBundle]:
    """The same blocks in a random order (no task, no copy)."""
    singles = [RefBundle((block,), owned=bundle.owned) for bundle in bundles for block in bundle.blocks]
    order = np.random.default_rng(seed).permutation(len(singles))
    return [singles[i] for i in order]
