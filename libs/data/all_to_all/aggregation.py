"""Group-by aggregation of blocks: the pure half of ``groupby(...).aggregate`` and ``Dataset.aggregate``.

Map side, ``partial_aggregate``: one Arrow ``group_by`` pass over a block gives one row per group
(the key columns and each aggregation's state columns). Reduce side, ``combine_partials``: the
partials of one key range, concatenated, get a group number per row (``group_ids``: one more
``group_by``, collecting row numbers) and each aggregation combines its state columns by group
number. A global aggregation (no key) groups by a constant column, dropped at the end.
"""
from __future__ import annotations

import functools
import pickle
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from juno.data.aggregate import AggregateFn, ArrowAggregation
from juno.data.all_to_all.keys import SortKey, check_columns, sort_table
from juno.data.block import concat

ALL = "__juno_all"  # the constant key of a global aggregation
ROW = "__juno_row"


def _state(i: int, j: int) -> str:
    return f"__juno_a{i}_{j}"


def check_aggs(aggs: Sequence[AggregateFn]) -> None:
    """At least one aggregation, each an AggregateFn (checked where aggregate() is called)."""
    if not aggs:
        raise ValueError("aggregate() needs at least one aggregation, e.g. aggregate(Count(), Sum('x'))")
    for agg in aggs:
        if not isinstance(agg, AggregateFn):
            raise TypeError(f"aggregate() takes AggregateFn objects (Count(), Sum('x'), AggregateFn(...)), "
                            f"got {agg!r}")


def validate(keys: Sequence[str], aggs: Sequence[AggregateFn], schema: pa.Schema | None) -> None:
    """Clear errors before any task runs: unknown columns, unfit types, clashing names."""
    check_aggs(aggs)
    check_columns(keys, schema, "groupby key")
    names = list(keys)
    for agg in aggs:
        check_columns(agg.columns, schema, f"the column of {agg.name}:")
        agg.validate(schema)
        if agg.name in names:
            raise ValueError(f"two output columns would be named {agg.name!r}; give the aggregation another "
                             "name (alias_name=...)")
        names.append(agg.name)


def _group_keys(keys: Sequence[str]) -> list[str]:
    return list(keys) or [ALL]


def _with_constant_key(block: pa.Table, keys: Sequence[str]) -> pa.Table:
    if keys:
        return block
    return block.append_column(ALL, pa.array(np.zeros(block.num_rows, np.int8)))


def group_ids(table: pa.Table, keys: Sequence[str]) -> tuple[pa.Table, np.ndarray, pa.Array]:
    """The distinct key rows of ``table`` (nulls are a group), each row's group number into them,
    and the row numbers grouped (a list per group)."""
    rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
    out = (table.select(list(keys)).append_column(ROW, rows)
           .group_by(list(keys), use_threads=False).aggregate([(ROW, "list")]))
    lists = out.column(f"{ROW}_list").combine_chunks()
    gids = np.empty(table.num_rows, np.int64)
    gids[pc.list_flatten(lists).to_numpy()] = pc.list_parent_indices(lists).to_numpy()
    return out.select(list(keys)), gids, lists


def _key_values(key_table: pa.Table, keys: Sequence[str]) -> list:
    """What a custom ``init(key)`` gets per group: None (global), the value, or a tuple."""
    if not keys:
        return [None] * key_table.num_rows
    columns = [key_table.column(k).to_pylist() for k in keys]
    return columns[0] if len(keys) == 1 else list(zip(*columns))


def _groups(table: pa.Table, lists: pa.Array) -> list[pa.Table]:
    """``table``'s rows of each group (one take, then zero-copy slices)."""
    ordered = table.take(pc.list_flatten(lists))
    offsets = lists.offsets.to_numpy()
    return [ordered.slice(lo, hi - lo) for lo, hi in zip(offsets[:-1], offsets[1:])]


def partial_aggregate(block: pa.Table, keys: Sequence[str], aggs: Sequence[AggregateFn]) -> pa.Table:
    """One row per group of ``block``: its key columns and every aggregation's state columns."""
    if not keys and block.num_columns == 0 or any(k not in block.column_names for k in keys):
        return pa.table({})  # a block of an empty dataset, without columns
    group_keys = _group_keys(keys)
    table = _with_constant_key(block, keys)
    columns, specs, renames = {k: table.column(k) for k in group_keys}, [], {}
    custom = [i for i, agg in enumerate(aggs) if not isinstance(agg, ArrowAggregation)]
    for i, agg in enumerate(aggs):
        if i in custom:
            continue
        for j, (column, function, options) in enumerate(agg.map_specs()):
            name = _state(i, j)
            columns[name] = table.column(column or group_keys[0])
            specs.append((name, function, options))
            renames[f"{name}_{function}"] = name
    if custom:
        columns[ROW] = pa.array(np.arange(table.num_rows, dtype=np.int64))
        specs.append((ROW, "list", None))
    out = pa.table(columns).group_by(group_keys, use_threads=False).aggregate(specs)
    if custom:
        groups = _groups(block, out.column(f"{ROW}_list").combine_chunks())
        key_values = _key_values(out, keys)
        for i in custom:
            agg = aggs[i]
            states = [pickle.dumps(agg.accumulate(agg.init(k), g), protocol=5) for k, g in zip(key_values, groups)]
            out = out.append_column(_state(i, 0), pa.array(states, pa.binary()))
        out = out.drop_columns([f"{ROW}_list"])
    return out.rename_columns([renames.get(n, n) for n in out.column_names])


def combine_partials(partials: list[pa.Table], keys: Sequence[str], aggs: Sequence[AggregateFn]) -> pa.Table:
    """The aggregations' values per group from the groups' partials, sorted by the keys."""
    table = concat([p for p in partials if p.num_columns])
    if table.num_columns == 0:
        return pa.table({})
    key_table, gids, lists = group_ids(table, _group_keys(keys))
    num_groups = key_table.num_rows
    columns: dict[str, Any] = {k: key_table.column(k) for k in keys}
    for i, agg in enumerate(aggs):
        if isinstance(agg, ArrowAggregation):
            states = [table.column(_state(i, j)).combine_chunks() for j in range(len(agg.map_specs()))]
            columns[agg.name] = agg.combine(states, gids, num_groups)
        else:
            columns[agg.name] = _combine_custom(agg, table.column(_state(i, 0)), lists)
    out = pa.table(columns)
    return sort_table(out, SortKey.of(list(keys))) if keys else out


def _combine_custom(agg: AggregateFn, states: pa.ChunkedArray, lists: pa.Array) -> pa.Array:
    raw = states.to_pylist()
    values = []
    for rows in lists.to_pylist():
        merged = functools.reduce(agg.merge, (pickle.loads(raw[r]) for r in rows))
        values.append(agg.finalize(merged))
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise TypeError(f"{agg.name}: finalize returned values that do not make an Arrow column ({e}); "
                        "return numbers, strings, lists or dicts") from None


def split_groups(table: pa.Table, keys: Sequence[str]) -> list[pa.Table]:
    """``table``'s rows group by group (in order of first appearance: sorted input, sorted groups)."""
    if not keys:
        return [table]
    if table.num_rows == 0:
        return []
    _, _, lists = group_ids(table, keys)
    return _groups(table, lists)
