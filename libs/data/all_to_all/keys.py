"""Sort keys and range partitioning: the pure block-level half of sort (and of groupby's shuffle).

A sort is sample -> partition -> merge: samples of every block's key columns give R-1 boundary
rows; each block is sorted and cut at the boundaries (a binary search per boundary, so only
log2(rows) rows are ever looked at in Python); each partition's pieces are merged with one
``sort_indices``. Rows that compare equal to a boundary all land in the partition it opens,
so a group never straddles two partitions. Nulls sort last whatever the direction (pyarrow's
and pandas' default), NaN just before them.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from juno.data.block import concat


@dataclass(frozen=True)
class SortKey:
    """Key columns with a direction each (Ray's ``sort(key, descending)`` arguments, checked)."""

    columns: tuple[str, ...]
    descending: tuple[bool, ...]

    @staticmethod
    def of(key: str | Sequence[str] | None, descending: bool | Sequence[bool] = False) -> "SortKey":
        if isinstance(key, str):
            columns = (key,)
        elif isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key):
            columns = tuple(key)
        else:
            raise ValueError(f"the sort key must be a column name or a non-empty list of column names, got {key!r}")
        if len(set(columns)) != len(columns):
            raise ValueError(f"the sort key names a column twice: {list(columns)}")
        if isinstance(descending, bool):
            directions = (descending,) * len(columns)
        elif isinstance(descending, (list, tuple)) and all(isinstance(d, bool) for d in descending):
            if len(descending) != len(columns):
                raise ValueError(f"descending has {len(descending)} entries for {len(columns)} key columns "
                                 f"({list(columns)}); give one bool per key column, or a single bool")
            directions = tuple(descending)
        else:
            raise ValueError(f"descending must be a bool or a list of bools, got {descending!r}")
        return SortKey(columns, directions)

    def sort_keys(self) -> list[tuple[str, str]]:
        """pyarrow's ``sort_keys`` (nulls at the end is its default in every direction)."""
        return [(c, "descending" if d else "ascending") for c, d in zip(self.columns, self.descending)]

    def validate(self, schema: pa.Schema | None, what: str = "sort key") -> None:
        check_columns(self.columns, schema, what)


def check_columns(columns: Sequence[str], schema: pa.Schema | None, what: str) -> None:
    """An unknown column is an error naming the columns there are (a schema of no columns is an
    empty dataset's: nothing to check)."""
    if schema is None or not len(schema.names):
        return
    for column in columns:
        if column not in schema.names:
            raise ValueError(f"{what} {column!r} is not a column of this dataset; its columns are: "
                             f"{', '.join(schema.names)}")


def compact(table: pa.Table) -> pa.Table:
    """A copy of ``table`` that owns just its rows: a slice of a table pickles the whole buffers
    it points into, so what a task returns must not be one."""
    return table.take(pa.array(np.arange(table.num_rows, dtype=np.int64)))


def sort_indices(table: pa.Table, key: SortKey) -> pa.Array:
    """The row order that sorts ``table``. One numeric key without nulls or NaN is sorted by numpy
    (several times faster than Arrow's sort of doubles); anything else by ``pc.sort_indices``."""
    if len(key.columns) == 1:
        column = table.column(key.columns[0])
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        if numeric and column.null_count == 0:
            values = column.to_numpy()
            if not (pa.types.is_floating(column.type) and np.isnan(values).any()):
                order = np.argsort(values)
                return pa.array(order[::-1] if key.descending[0] else order)
    return pc.sort_indices(table, sort_keys=key.sort_keys())


def sort_table(table: pa.Table, key: SortKey) -> pa.Table:
    """``table`` sorted (always a fresh, compact table: even one row of a slice is copied)."""
    return table.take(sort_indices(table, key))


# ============================================================================ row comparison
class _Reversed:
    """Wraps a value so that it compares the other way round (a descending key column)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __lt__(self, other: "_Reversed") -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value


def _rank(value: Any, descending: bool) -> tuple:
    if value is None:
        return (2,)
    if isinstance(value, float) and math.isnan(value):
        return (1,)
    return (0, _Reversed(value) if descending else value)


def row_rank(values: Sequence[Any], key: SortKey) -> tuple:
    """A tuple that orders rows (their key values) the way ``sort_indices`` does."""
    return tuple(_rank(v, d) for v, d in zip(values, key.descending))


def key_row(table: pa.Table, i: int, key: SortKey) -> tuple:
    return tuple(table.column(c)[i].as_py() for c in key.columns)


# ============================================================================ sample, partition, merge
def sample_keys(table: pa.Table, key: SortKey, n: int, seed: int = 0) -> pa.Table:
    """Up to ``n`` random rows of the key columns (a block's contribution to the boundaries)."""
    keys = table.select(list(key.columns))
    if keys.num_rows <= n:
        return compact(keys)
    rows = np.sort(np.random.default_rng(seed).choice(keys.num_rows, n, replace=False))
    return keys.take(pa.array(rows))


def boundaries(samples: list[pa.Table], key: SortKey, num_partitions: int) -> list[tuple]:
    """``num_partitions - 1`` (at most: equal ones collapse) boundary rows from the blocks' samples."""
    table = concat([s for s in samples if s.num_rows])
    if num_partitions <= 1 or table.num_rows == 0:
        return []
    table = sort_table(table, key)
    picked: list[tuple] = []
    last = row_rank(key_row(table, 0, key), key)  # a boundary at the smallest key would open an empty partition
    for i in range(1, num_partitions):
        row = key_row(table, min(table.num_rows - 1, i * table.num_rows // num_partitions), key)
        if row_rank(row, key) != last:
            picked.append(row)
            last = row_rank(row, key)
    return picked


def cut_points(sorted_table: pa.Table, key: SortKey, bounds: list[tuple]) -> list[int]:
    """Row indices where each partition of a sorted table starts (after the first)."""
    def rank_of(i: int) -> tuple:
        return row_rank(key_row(sorted_table, i, key), key)

    return [bisect.bisect_left(range(sorted_table.num_rows), row_rank(b, key), key=rank_of) for b in bounds]


def partition_by_boundaries(table: pa.Table, key: SortKey, bounds: list[tuple]) -> list[pa.Table]:
    """The block sorted and cut into ``len(bounds) + 1`` pieces, each compact (a slice of a table
    pickles its whole buffers, so every piece is its own copy)."""
    if table.num_rows == 0:
        return [table.schema.empty_table()] * (len(bounds) + 1)
    order = sort_indices(table, key)
    starts = [0, *cut_points(table.select(list(key.columns)).take(order), key, bounds), table.num_rows]
    return [table.take(order.slice(lo, hi - lo)) for lo, hi in zip(starts, starts[1:])]


def merge_sorted(pieces: list[pa.Table], key: SortKey) -> pa.Table:
    """One sorted block from a partition's pieces (each piece is sorted; one sort_indices over all)."""
    return sort_table(concat(pieces), key)
