"""Aggregations (Ray's ``ray.data.aggregate``): Count, Sum, Min, Max, Mean, Std, AbsMax, Quantile,
Unique, and ``AggregateFn`` for your own.

An aggregation runs in two steps so that no block ever travels whole: in each block, every group
is reduced to a small partial state; the partials of a group, gathered from all blocks, are then
combined into its value. The built-ins do both steps with Arrow's hash aggregations and numpy on
whole columns (no Python per row or per group); an ``AggregateFn`` of your own runs its Python
``init``/``accumulate_*``/``merge``/``finalize`` once per group (and per row with
``accumulate_row``).

The built-ins' two steps, as the shuffle (``juno.data.all_to_all.aggregation``) calls them:

* ``map_specs()``: the hash aggregations of a block, ``(column, function, options)``, each
  giving one state column of the partial table;
* ``combine(states, gids, num_groups)``: the partials' state columns (one row per group per
  block) and each row's group number -> one value per group.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class AggregateFn:
    """An aggregation of your own: ``init(key) -> state``; ``accumulate_row(state, row) -> state``
    (row: a dict) or ``accumulate_block(state, block) -> state`` (block: a ``pyarrow.Table`` of
    the group's rows in one block); ``merge(state, state) -> state``; ``finalize(state) ->
    value`` (the identity by default). ``name`` is the output column's name."""

    def __init__(self, init: Callable[[Any], Any], merge: Callable[[Any, Any], Any], name: str | None = None,
                 accumulate_row: Callable[[Any, dict], Any] | None = None,
                 accumulate_block: Callable[[Any, pa.Table], Any] | None = None,
                 finalize: Callable[[Any], Any] | None = None):
        if not isinstance(name, str) or not name:
            raise ValueError("AggregateFn needs a name (a non-empty str): it names the output column, e.g. "
                             "AggregateFn(init=..., merge=..., accumulate_row=..., name='my_sum')")
        for what, fn in (("init", init), ("merge", merge)):
            if not callable(fn):
                raise TypeError(f"AggregateFn {name!r}: {what} must be callable, got {fn!r}")
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError(f"AggregateFn {name!r}: give exactly one of accumulate_row (state, row) -> state "
                             "or accumulate_block (state, block) -> state")
        self.name = name
        self.init, self.merge = init, merge
        self.accumulate_row, self.accumulate_block = accumulate_row, accumulate_block
        self.finalize = finalize if finalize is not None else _identity

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns this aggregation reads (checked against the schema before anything runs)."""
        return ()

    def validate(self, schema: pa.Schema | None) -> None:
        """Raise a clear error when the aggregation cannot apply to ``schema``."""

    def accumulate(self, state: Any, group: pa.Table) -> Any:
        """``state`` updated with one block's rows of a group."""
        if self.accumulate_block is not None:
            return self.accumulate_block(state, group)
        from juno.data.block import to_rows

        for row in to_rows(group):
            state = self.accumulate_row(state, row)
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _identity(state: Any) -> Any:
    return state


# ============================================================================ the built-ins
class ArrowAggregation(AggregateFn):
    """A built-in: partial states from Arrow hash aggregations, combined with numpy."""

    default_name = ""
    numeric = False  # only numeric columns make sense (sum, mean, std ...)

    def __init__(self, on: str | None = None, ignore_nulls: bool = True, alias_name: str | None = None):
        if on is not None and not isinstance(on, str):
            raise TypeError(f"{type(self).__name__}(on=...) takes one column name (a str), got {on!r}; "
                            "to aggregate several columns, give one aggregation per column")
        if on is None and type(self) is not Count:
            raise ValueError(f"{type(self).__name__} needs the column to aggregate: {type(self).__name__}(on='col')")
        if alias_name is not None and (not isinstance(alias_name, str) or not alias_name):
            raise ValueError(f"alias_name must be a non-empty str, got {alias_name!r}")
        self.on, self.ignore_nulls = on, bool(ignore_nulls)
        self.name = alias_name or f"{self.default_name}({on or ''})"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.on,) if self.on else ()

    def validate(self, schema: pa.Schema | None) -> None:
        if not self.numeric or schema is None or self.on not in schema.names:
            return
        type_ = schema.field(self.on).type
        if not (pa.types.is_integer(type_) or pa.types.is_floating(type_)):
            raise TypeError(f"{self.name} needs a numeric column, but {self.on!r} is {type_}; cast it first "
                            "(map_batches) or choose a numeric column")

    def _skip(self) -> pc.ScalarAggregateOptions:
        return pc.ScalarAggregateOptions(skip_nulls=self.ignore_nulls, min_count=1)

    def map_specs(self) -> list[tuple[str, str, Any]]:
        raise NotImplementedError

    def combine(self, states: list[pa.Array], gids: np.ndarray, num_groups: int) -> pa.Array:
        raise NotImplementedError

    def accumulate(self, state, group):  # the built-ins never run per group
        raise TypeError(f"{self.name} is computed by columns, not per group")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(on={self.on!r}, name={self.name!r})"


def regroup(states: pa.Array, gids: np.ndarray, num_groups: int, function: str, options: Any = None) -> pa.Array:
    """One Arrow hash aggregation of a state column by group number: the value of group i at i
    (null for a group with no rows in ``states``)."""
    table = pa.table({"g": pa.array(gids, pa.int64()), "s": states})
    out = table.group_by("g", use_threads=False).aggregate([("s", function, options)])
    order = np.full(num_groups, -1, np.int64)
    order[out.column("g").to_numpy()] = np.arange(out.num_rows)
    return out.column(f"s_{function}").take(pa.array(order, mask=order < 0)).combine_chunks()


class Count(ArrowAggregation):
    """Rows per group (``Count()``), or values of a column (``Count("x")``; nulls too unless
    ``ignore_nulls``)."""

    default_name = "count"

    def __init__(self, on: str | None = None, ignore_nulls: bool = False, alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def map_specs(self):
        mode = "only_valid" if self.on and self.ignore_nulls else "all"
        return [(self.on, "count", pc.CountOptions(mode=mode))]  # on=None: counted on a key column

    def combine(self, states, gids, num_groups):
        return regroup(states[0], gids, num_groups, "sum")


class _ByFunction(ArrowAggregation):
    """Sum, Min, Max: the same hash aggregation on blocks, then on the partials."""

    function = ""

    def map_specs(self):
        return [(self.on, self.function, self._skip())]

    def combine(self, states, gids, num_groups):
        return regroup(states[0], gids, num_groups, self.function, self._skip())


class Sum(_ByFunction):
    default_name = function = "sum"
    numeric = True


class Min(_ByFunction):
    default_name = function = "min"


class Max(_ByFunction):
    default_name = function = "max"


class AbsMax(ArrowAggregation):
    """The largest absolute value."""

    default_name = "abs_max"
    numeric = True

    def map_specs(self):
        return [(self.on, "min", self._skip()), (self.on, "max", self._skip())]

    def combine(self, states, gids, num_groups):
        low = pc.abs(regroup(states[0], gids, num_groups, "min", self._skip()))
        high = pc.abs(regroup(states[1], gids, num_groups, "max", self._skip()))
        return pc.max_element_wise(low, high, skip_nulls=self.ignore_nulls)


class Mean(ArrowAggregation):
    default_name = "mean"
    numeric = True

    def map_specs(self):
        return _moment_specs(self.on)

    def combine(self, states, gids, num_groups):
        count, mean, _, nulls = _combine_moments(states, gids, num_groups)
        return _masked(mean, (count == 0) | (nulls & (not self.ignore_nulls)))


class Std(ArrowAggregation):
    """Standard deviation with ``ddof`` (1: the sample's, as in Ray and pandas). As in Ray, a group
    of one value gives 0.0. Partials are (count, mean, M2) merged exactly (Chan et al.), so a
    large mean does not eat the precision."""

    default_name = "std"
    numeric = True

    def __init__(self, on: str | None = None, ddof: int = 1, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)
        if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
            raise ValueError(f"Std(ddof=...) must be a non-negative int, got {ddof!r}")
        self.ddof = ddof

    def map_specs(self):
        return _moment_specs(self.on)

    def combine(self, states, gids, num_groups):
        count, _, m2, nulls = _combine_moments(states, gids, num_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.where(count < 2, 0.0, np.sqrt(m2 / np.maximum(count - self.ddof, 0)))
        return _masked(std, (count == 0) | (nulls & (not self.ignore_nulls)))


def _moment_specs(on: str) -> list:
    skip = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)
    return [(on, "count", pc.CountOptions(mode="only_valid")), (on, "mean", skip),
            (on, "variance", pc.VarianceOptions(ddof=0, skip_nulls=True, min_count=1)),
            (on, "count", pc.CountOptions(mode="only_null"))]


def _combine_moments(states, gids, num_groups):
    """Per group: count, mean, M2 (sum of squared deviations) and whether a null was seen."""
    n = states[0].to_numpy(zero_copy_only=False).astype(np.float64)
    mu = pc.fill_null(states[1], 0.0).to_numpy(zero_copy_only=False)
    m2 = pc.fill_null(states[2], 0.0).to_numpy(zero_copy_only=False) * n
    count = np.bincount(gids, n, num_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(gids, n * mu, num_groups) / count
    spread = np.bincount(gids, m2 + n * (mu - np.nan_to_num(mean)[gids]) ** 2, num_groups)
    nulls = np.bincount(gids, states[3].to_numpy(zero_copy_only=False), num_groups) > 0
    return count, mean, spread, nulls


def _masked(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=np.asarray(null, dtype=bool))


def _flatten_by_group(states: pa.Array, gids: np.ndarray) -> pa.Table:
    """A list state column as one row per value: (group number, value)."""
    lists = states.combine_chunks() if isinstance(states, pa.ChunkedArray) else states
    parents = pc.list_parent_indices(lists).to_numpy()
    return pa.table({"g": pa.array(gids[parents], pa.int64()), "v": pc.list_flatten(lists)})


class Quantile(ArrowAggregation):
    """The ``q`` quantile, interpolated linearly between the two nearest values (numpy's default).
    It gathers the group's values, so it costs memory in proportion to the group."""

    default_name = "quantile"
    numeric = True

    def __init__(self, on: str | None = None, q: float = 0.5, ignore_nulls: bool = True,
                 alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"Quantile(q=...) must be a number between 0 and 1, got {q!r}")
        self.q = float(q)

    def map_specs(self):
        return [(self.on, "list", None)]

    def combine(self, states, gids, num_groups):
        values = _flatten_by_group(states[0], gids)
        has_null = np.bincount(values.column("g").to_numpy(), pc.is_null(values.column("v")).to_numpy(
            zero_copy_only=False), num_groups) > 0
        values = values.filter(pc.is_valid(values.column("v")))
        values = values.take(pc.sort_indices(values, [("g", "ascending"), ("v", "ascending")]))
        v = values.column("v").to_numpy().astype(np.float64)
        count = np.bincount(values.column("g").to_numpy(), minlength=num_groups)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        pos = self.q * np.maximum(count - 1, 0)
        low, high = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
        empty = count == 0
        at = np.where(empty, 0, start)
        result = np.zeros(num_groups)
        if len(v):
            lo_v, hi_v = v[np.minimum(at + low, len(v) - 1)], v[np.minimum(at + high, len(v) - 1)]
            result = lo_v + (hi_v - lo_v) * (pos - low)
        return _masked(result, empty | (has_null & (not self.ignore_nulls)))


class Unique(ArrowAggregation):
    """The distinct values of a column, as a list per group (None among them unless
    ``ignore_nulls``)."""

    default_name = "unique"

    def __init__(self, on: str | None = None, ignore_nulls: bool = False, alias_name: str | None = None):
        super().__init__(on, ignore_nulls, alias_name)

    def _mode(self) -> pc.CountOptions:
        return pc.CountOptions(mode="only_valid" if self.ignore_nulls else "all")

    def map_specs(self):
        return [(self.on, "distinct", self._mode())]

    def combine(self, states, gids, num_groups):
        values = _flatten_by_group(states[0], gids)
        out = regroup(values.column("v"), values.column("g").to_numpy(), num_groups, "distinct", self._mode())
        if out.null_count:  # groups with no value left: an empty list, not None
            out = pa.array([v if v is not None else [] for v in out.to_pylist()], out.type)
        return out


__all__ = ["AbsMax", "AggregateFn", "Count", "Max", "Mean", "Min", "Quantile", "Std", "Sum", "Unique"]
