"""``GroupedData``: what ``Dataset.groupby(key)`` returns (Ray's ``ray.data.grouped_data``).

Aggregations give a dataset of one row per group, sorted by the key: the key columns, then one
column per aggregation (``count()``, ``sum(x)`` ...). ``map_groups`` sorts by the key, so each
block holds whole groups, and runs the function once per group through ``map_batches`` (tasks or
an actor pool, with every option map_batches takes).
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence

import pyarrow as pa

from juno.data import block as blk
from juno.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum
from juno.data.all_to_all import aggregation, ops


def normalize_keys(key: str | Sequence[str] | None) -> tuple[str, ...]:
    if key is None:
        return ()
    if isinstance(key, str):
        return (key,)
    if isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key):
        if len(set(key)) != len(key):
            raise ValueError(f"groupby() names a column twice: {list(key)}")
        return tuple(key)
    raise ValueError(f"groupby() takes a column name, a non-empty list of column names, or None (one group "
                     f"of everything), got {key!r}")


def aggregations_on(agg_class: type, on: str | Sequence[str] | None, skip: Sequence[str] = (), **options):
    """One aggregation per column: ``on``, or (None) every column but ``skip`` once the schema is
    known. Returns the aggregations, or a function of the schema that makes them."""
    if isinstance(on, str):
        return [agg_class(on, **options)]
    if isinstance(on, (list, tuple)) and on and all(isinstance(c, str) for c in on):
        return [agg_class(c, **options) for c in on]
    if on is not None:
        raise ValueError(f"on must be a column name, a non-empty list of column names, or None (every column), "
                         f"got {on!r}")

    def every_column(schema: pa.Schema | None) -> list[AggregateFn]:
        names = schema.names if schema is not None else []
        return [agg_class(c, **options) for c in names if c not in skip]

    return every_column


class GroupedData:
    """A dataset grouped by key columns; each method below is one aggregation per group."""

    def __init__(self, dataset, key: str | Sequence[str] | None):
        self._dataset = dataset
        self._keys = normalize_keys(key)

    def __repr__(self) -> str:
        return f"GroupedData(dataset={self._dataset!r}, key={list(self._keys) or None!r})"

    def aggregate(self, *aggs: AggregateFn):
        """A dataset of one row per group: the key columns, then each aggregation's column."""
        aggregation.check_aggs(aggs)
        return self._aggregate(list(aggs))

    def _aggregate(self, aggs):
        run = functools.partial(ops.aggregate, keys=self._keys, aggs=aggs)
        names = ", ".join(a.name for a in aggs) if not callable(aggs) else "..."
        return self._dataset._all_to_all(f"Aggregate({names})", run)

    def _on(self, agg_class: type, on, **options):
        return self._aggregate(aggregations_on(agg_class, on, self._keys, **options))

    def count(self):
        """Rows per group, in a column ``count()``."""
        return self._aggregate([Count()])

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        return self._on(Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        return self._on(Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        return self._on(Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        return self._on(Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1, ignore_nulls: bool = True):
        return self._on(Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn: Callable, *, compute=None, batch_format: str | None = "default", fn_args=None,
                   fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None,
                   num_gpus=None, memory=None, concurrency=None, **ray_remote_args):
        """``fn(batch)`` once per group (the group's rows as one batch in ``batch_format``); what it
        returns (a batch) makes the output. A callable class runs in actors, as in map_batches."""
        if not callable(fn):
            raise TypeError(f"map_groups() expects a function or a callable class, got {type(fn).__name__} {fn!r}")
        if batch_format not in blk.BATCH_FORMATS and batch_format is not None:
            raise ValueError(f"map_groups(batch_format=...) must be one of {', '.join(blk.BATCH_FORMATS)}, "
                             f"got {batch_format!r}")
        from juno.data.all_to_all import api

        grouped = api.sort(self._dataset, list(self._keys)) if self._keys else api.repartition(self._dataset, 1)
        return grouped.map_batches(
            _per_group(fn, self._keys, batch_format), batch_size=None, batch_format="pyarrow", compute=compute,
            fn_args=fn_args, fn_kwargs=fn_kwargs, fn_constructor_args=fn_constructor_args,
            fn_constructor_kwargs=fn_constructor_kwargs, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
            concurrency=concurrency, **ray_remote_args)


def apply_to_groups(fn: Callable, table: pa.Table, keys: Sequence[str], batch_format: str | None,
                    args: tuple, kwargs: dict) -> pa.Table:
    """``fn`` on each group of a block that holds whole groups; the outputs concatenated."""
    what = f"map_groups' function {getattr(fn, '__name__', type(fn).__name__)}"
    outputs = []
    for group in aggregation.split_groups(table, keys):
        out = fn(blk.to_batch(group, batch_format), *args, **kwargs)
        for item in (out if inspect.isgenerator(out) else (out,)):
            outputs.append(blk.from_batch(item, what=what))
    return blk.concat(outputs)


def _per_group(fn: Callable, keys: Sequence[str], batch_format: str | None):
    """The map_batches function (or class, for a class ``fn``) that runs ``fn`` per group."""
    keys = tuple(keys)
    if not isinstance(fn, type):
        def map_groups(table: pa.Table, *args, **kwargs) -> pa.Table:
            return apply_to_groups(fn, table, keys, batch_format, args, kwargs)

        map_groups.__name__ = f"map_groups({getattr(fn, '__name__', 'fn')})"
        return map_groups

    class MapGroups:
        def __init__(self, *args, **kwargs):
            self.fn = fn(*args, **kwargs)

        def __call__(self, table: pa.Table, *args, **kwargs) -> pa.Table:
            return apply_to_groups(self.fn, table, keys, batch_format, args, kwargs)

    MapGroups.__name__ = MapGroups.__qualname__ = f"MapGroups({fn.__name__})"
    return MapGroups


__all__ = ["GroupedData"]
