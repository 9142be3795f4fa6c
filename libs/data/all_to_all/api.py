"""The all-to-all operations on a ``Dataset``, as its methods call them (``ds.sort(...)`` is
``sort(ds, ...)``). Each checks its arguments at once and adds one barrier step to the plan;
nothing runs until a result is asked for (except the aggregations that return values)."""
from __future__ import annotations

import functools
from typing import Any, Sequence

from juno.data.aggregate import AggregateFn, Max, Mean, Min, Std, Sum, Unique
from juno.data.all_to_all import ops
from juno.data.all_to_all.keys import SortKey
from juno.data.grouped_data import GroupedData, aggregations_on


def _step(fn, keeps_rows: bool, **params):
    """``fn`` with its parameters bound, flagged for the plan (row count and schema unchanged)."""
    step = functools.partial(fn, **params)
    step.keeps_rows = step.keeps_schema = keeps_rows
    return step


def _check_seed(method: str, seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"{method}(seed=...) must be None or a non-negative int, got {seed!r}")


def sort(ds, key: str | Sequence[str], descending: bool | Sequence[bool] = False):
    """Rows ordered by ``key`` (one or more columns; ``descending`` one bool, or one per column).
    Nulls come last in either direction."""
    sort_key = SortKey.of(key, descending)
    return ds._all_to_all(f"Sort(key={list(sort_key.columns)}, descending={list(sort_key.descending)})",
                          _step(ops.sort, True, key=sort_key))


def random_shuffle(ds, *, seed: int | None = None, num_blocks: int | None = None):
    """Rows in a random order. A seed makes it repeatable for the same blocks arriving in the same
    order (a materialized dataset, or ``preserve_order``): each block's seed is its position."""
    _check_seed("random_shuffle", seed)
    if num_blocks is not None and (isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1):
        raise ValueError(f"random_shuffle(num_blocks=...) must be None or a positive int, got {num_blocks!r}")
    return ds._all_to_all("RandomShuffle", _step(ops.random_shuffle, True, seed=seed, num_blocks=num_blocks))


def repartition(ds, num_blocks: int, *, shuffle: bool = False):
    """Exactly ``num_blocks`` blocks of about equal row counts; rows keep their order unless
    ``shuffle``."""
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"repartition(num_blocks=...) must be a positive int, got {num_blocks!r}")
    if not isinstance(shuffle, bool):
        raise ValueError(f"repartition(shuffle=...) must be a bool, got {shuffle!r}")
    return ds._all_to_all(f"Repartition(num_blocks={num_blocks}, shuffle={shuffle})",
                          _step(ops.repartition, True, num_blocks=num_blocks, shuffle_rows=shuffle))


def randomize_block_order(ds, *, seed: int | None = None):
    """The same blocks in a random order (cheap: rows within a block keep their order)."""
    _check_seed("randomize_block_order", seed)
    return ds._all_to_all("RandomizeBlockOrder", _step(ops.randomize_block_order, True, seed=seed))


def groupby(ds, key: str | Sequence[str] | None) -> GroupedData:
    """Rows grouped by ``key`` (a column, several, or None for one group of everything)."""
    return GroupedData(ds, key)


def aggregate(ds, *aggs: AggregateFn) -> dict | None:
    """The aggregations over the whole dataset: ``{name: value}``, or None for an empty dataset."""
    rows = groupby(ds, None).aggregate(*aggs).take_all()
    return rows[0] if rows else None


def _aggregate_on(ds, agg_class: type, on, **options):
    """Ray's ``ds.sum(on)`` and friends: a value for one column, a dict for several (or on=None:
    every column), None for an empty dataset."""
    aggs = aggregations_on(agg_class, on, **options)
    rows = groupby(ds, None)._aggregate(aggs).take_all()
    if not rows:
        return None
    return rows[0][aggs[0].name] if isinstance(on, str) else rows[0]


def sum(ds, on: str | list[str] | None = None, ignore_nulls: bool = True):  # noqa: A001 (Ray's name)
    return _aggregate_on(ds, Sum, on, ignore_nulls=ignore_nulls)


def min(ds, on: str | list[str] | None = None, ignore_nulls: bool = True):  # noqa: A001
    return _aggregate_on(ds, Min, on, ignore_nulls=ignore_nulls)


def max(ds, on: str | list[str] | None = None, ignore_nulls: bool = True):  # noqa: A001
    return _aggregate_on(ds, Max, on, ignore_nulls=ignore_nulls)


def mean(ds, on: str | list[str] | None = None, ignore_nulls: bool = True):
    return _aggregate_on(ds, Mean, on, ignore_nulls=ignore_nulls)


def std(ds, on: str | list[str] | None = None, ddof: int = 1, ignore_nulls: bool = True):
    return _aggregate_on(ds, Std, on, ddof=ddof, ignore_nulls=ignore_nulls)


def unique(ds, column: str) -> list:
    """The distinct values of ``column`` (None included when present), sorted where they can be."""
    if not isinstance(column, str):
        raise ValueError(f"unique() takes one column name (a str), got {column!r}")
    result = _aggregate_on(ds, Unique, column)
    values = list(result or [])
    present = [v for v in values if v is not None]
    try:
        present.sort()
    except TypeError:  # values that do not order (dicts ...): as found
        pass
    return present + [None] * (len(present) < len(values))


__all__ = ["aggregate", "groupby", "max", "mean", "min", "random_shuffle", "randomize_block_order", "repartition",
           "sort", "std", "sum", "unique"]
