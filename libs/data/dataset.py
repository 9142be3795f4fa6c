"""``Dataset``: Ray Data's dataset, lazy until a result is asked for.

Transformations (map, map_batches, filter ...) return a new dataset with one more operator in
its plan; consuming methods (take, count, iter_batches, write ...) run the plan with the
streaming executor. A ``MaterializedDataset`` holds blocks already in the object store.
"""
from __future__ import annotations

import html
import time
from typing import Any, Callable, Iterator

import pyarrow as pa

import juno
from juno.data import block as blk
from juno.data.block import RefBundle
from juno.data.context import DataContext
from juno.data.execution.executor import StreamingExecutor
from juno.data.plan import (AllToAllOp, InputOp, LimitOp, LogicalOp, MapOp, ReadOp, UnionOp, ZipOp, compute_from,
                            known_num_rows, known_schema, plan_lines)
from juno.data.read_task import Read, ReadTask
from juno.data.stats import summarize
from juno.data.transforms import BatchStage, ReadStage, RowStage, TableStage, WriteStage, udf_name

# What map steps accept besides their own arguments, passed to the task or actor (Ray's ray_remote_args).
REMOTE_ARG_NAMES = ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type", "scheduling_strategy",
                    "max_retries", "retry_exceptions", "runtime_env", "label_selector", "max_restarts",
                    "max_task_retries")


class Schema:
    """A dataset's columns and their types (Ray's ``ray.data.Schema``); ``base_schema`` is Arrow's."""

    def __init__(self, base_schema: pa.Schema):
        self.base_schema = base_schema

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list[pa.DataType]:
        return list(self.base_schema.types)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.base_schema.equals(other.base_schema)

    def __repr__(self) -> str:
        width = max([len("Column")] + [len(n) for n in self.names])
        rows = [f"{'Column':<{width}}  Type", f"{'------':<{width}}  ----"]
        rows += [f"{n:<{width}}  {t}" for n, t in zip(self.names, self.types)]
        return "\n".join(rows)


def _remote_args(fn_name: str, kwargs: dict, **resources) -> dict:
    unknown = sorted(set(kwargs) - set(REMOTE_ARG_NAMES))
    if unknown:
        raise TypeError(f"{fn_name}() got unexpected keyword argument(s) {', '.join(unknown)}; it takes its own "
                        f"arguments and these resource options: {', '.join(REMOTE_ARG_NAMES)}")
    args = {k: v for k, v in kwargs.items()}
    args.update({k: v for k, v in resources.items() if v is not None})
    for name in ("num_cpus", "num_gpus", "memory"):
        value = args.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{fn_name}({name}=...) must be a non-negative number, got {value!r}")
    return args


def _check_fn(method: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{method}() expects a function or a callable class, got {type(fn).__name__} {fn!r}")


class Dataset:
    """A lazy, distributed collection of rows in Arrow blocks (Ray's ``ray.data.Dataset``)."""

    def __init__(self, op: LogicalOp):
        self._op = op
        self._last_stats: str | None = None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_read(read: Read, *, override_num_blocks: int | None = None, parallelism: int = -1,
                  ray_remote_args: dict | None = None, concurrency: int | None = None) -> "Dataset":
        """A dataset whose blocks a datasource's read tasks make (juno.data.read_* build these)."""
        if override_num_blocks is None and parallelism not in (-1, None):
            override_num_blocks = parallelism
        tasks = group_read_tasks(read.tasks, override_num_blocks)
        read = Read(read.name, tasks, read.schema)
        op = ReadOp(read.name, read=read, ray_remote_args=dict(ray_remote_args or {}), concurrency=concurrency,
                    stage=ReadStage(read.name))
        return Dataset(op)

    @staticmethod
    def from_bundles(bundles: list[RefBundle], name: str = "FromBlocks") -> "MaterializedDataset":
        return MaterializedDataset(InputOp(name, bundles=list(bundles)))

    def _with(self, op: LogicalOp) -> "Dataset":
        return Dataset(op)

    def _map(self, name: str, stage, compute, concurrency, is_class: bool, ray_remote_args: dict,
             min_rows_per_bundle: int | None = None) -> "Dataset":
        strategy = compute_from(compute, concurrency, is_class)
        return self._with(MapOp(name, [self._op], stage=stage, compute=strategy, ray_remote_args=ray_remote_args,
                                min_rows_per_bundle=min_rows_per_bundle))

    # ------------------------------------------------------------------ transformations
    def map(self, fn: Callable, *, compute=None, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
            fn_constructor_kwargs=None, num_cpus=None, num_gpus=None, memory=None, concurrency=None,
            **ray_remote_args) -> "Dataset":
        """Apply ``fn`` to each row (a dict) and keep what it returns (a dict)."""
        return self._row_op("map", "Map", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                            fn_constructor_kwargs, concurrency, _remote_args("map", ray_remote_args,
                                                                             num_cpus=num_cpus, num_gpus=num_gpus,
                                                                             memory=memory))

    def flat_map(self, fn: Callable, *, compute=None, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
                 fn_constructor_kwargs=None, num_cpus=None, num_gpus=None, memory=None, concurrency=None,
                 **ray_remote_args) -> "Dataset":
        """Apply ``fn`` to each row; it returns a list of rows, all kept."""
        return self._row_op("flat_map", "FlatMap", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                            fn_constructor_kwargs, concurrency, _remote_args("flat_map", ray_remote_args,
                                                                             num_cpus=num_cpus, num_gpus=num_gpus,
                                                                             memory=memory))

    def filter(self, fn: Callable | None = None, expr: str | None = None, *, compute=None, fn_args=None,
               fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None, num_gpus=None,
               memory=None, concurrency=None, **ray_remote_args) -> "Dataset":
        """Keep the rows for which ``fn(row)`` is true, or that match ``expr`` ("x > 3 and y == 'a'")."""
        if (fn is None) == (expr is None):
            raise ValueError("filter() takes either a function or expr=..., exactly one of them")
        args = _remote_args("filter", ray_remote_args, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory)
        if expr is not None:
            from juno.data.expressions import compile_filter

            predicate = compile_filter(expr)
            return self._map(f"Filter({expr})", TableStage(f"Filter({expr})", fn=predicate), compute, concurrency,
                             False, args)
        return self._row_op("filter", "Filter", fn, compute, fn_args, fn_kwargs, fn_constructor_args,
                            fn_constructor_kwargs, concurrency, args)

    def _row_op(self, kind, label, fn, compute, fn_args, fn_kwargs, ctor_args, ctor_kwargs, concurrency, args):
        _check_fn(kind, fn)
        name = f"{label}({udf_name(fn)})"
        stage = RowStage(name, fn=fn, fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
                         fn_constructor_args=tuple(ctor_args or ()), fn_constructor_kwargs=dict(ctor_kwargs or {}),
                         kind=kind)
        return self._map(name, stage, compute, concurrency, isinstance(fn, type), args)

    def map_batches(self, fn: Callable, *, batch_size: int | None | str = "default", compute=None,
                    batch_format: str | None = "default", zero_copy_batch: bool = False, fn_args=None,
                    fn_kwargs=None, fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None,
                    num_gpus=None, memory=None, concurrency=None, **ray_remote_args) -> "Dataset":
        """Apply ``fn`` to batches of rows (a dict of column -> ndarray by default, or a pandas
        DataFrame / pyarrow Table per ``batch_format``); it returns a batch (or yields several)."""
        _check_fn("map_batches", fn)
        if batch_size == "default":
            batch_size = DataContext.get_current().default_batch_size
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ValueError(f"map_batches(batch_size=...) must be a positive int, None (whole blocks) or "
                             f"'default', got {batch_size!r}")
        if batch_format not in blk.BATCH_FORMATS and batch_format is not None:
            raise ValueError(f"map_batches(batch_format=...) must be one of {', '.join(blk.BATCH_FORMATS)}, "
                             f"got {batch_format!r}")
        is_class = isinstance(fn, type)
        if not is_class and (fn_constructor_args or fn_constructor_kwargs):
            raise ValueError("fn_constructor_args/fn_constructor_kwargs are for a callable class; "
                             f"{udf_name(fn)} is a function")
        name = f"MapBatches({udf_name(fn)})"
        stage = BatchStage(name, fn=fn, fn_args=tuple(fn_args or ()), fn_kwargs=dict(fn_kwargs or {}),
                           fn_constructor_args=tuple(fn_constructor_args or ()),
                           fn_constructor_kwargs=dict(fn_constructor_kwargs or {}), batch_size=batch_size,
                           batch_format=batch_format or "pyarrow")
        args = _remote_args("map_batches", ray_remote_args, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory)
        return self._map(name, stage, compute, concurrency, is_class, args, min_rows_per_bundle=batch_size)

    def add_column(self, col: str, fn: Callable, *, batch_format: str = "pandas", compute=None, concurrency=None,
                   **ray_remote_args) -> "Dataset":
        """A new column ``col`` computed from each batch by ``fn`` (in ``batch_format``, pandas by default)."""
        _check_fn("add_column", fn)
        if not isinstance(col, str):
            raise TypeError(f"add_column(col=...) must be a column name (str), got {col!r}")

        def add(batch):
            values = fn(batch)
            if isinstance(batch, pa.Table):
                column = blk.to_arrow_column(values, col)
                return batch.set_column(batch.column_names.index(col), col, column) if col in batch.column_names \
                    else batch.append_column(col, column)
            batch[col] = values
            return batch

        add.__name__ = f"add_column({col})"
        return self.map_batches(add, batch_format=batch_format, batch_size=None, compute=compute,
                                concurrency=concurrency, **ray_remote_args)

    def drop_columns(self, cols: list[str], **ray_remote_args) -> "Dataset":
        cols = [cols] if isinstance(cols, str) else list(cols)

        def drop(table: pa.Table) -> pa.Table:
            missing = [c for c in cols if c not in table.column_names]
            if missing and table.num_columns:
                raise KeyError(f"drop_columns: no column {missing} in this dataset; its columns are "
                               f"{table.column_names}")
            return table.drop_columns([c for c in cols if c in table.column_names])

        return self._table_op(f"DropColumns({', '.join(cols)})", drop, ray_remote_args)

    def select_columns(self, cols: list[str], **ray_remote_args) -> "Dataset":
        cols = [cols] if isinstance(cols, str) else list(cols)
        if len(set(cols)) != len(cols):
            raise ValueError(f"select_columns: columns listed twice in {cols}")

        def select(table: pa.Table) -> pa.Table:
            missing = [c for c in cols if c not in table.column_names]
            if missing:
                if not table.num_columns:
                    return table
                raise KeyError(f"select_columns: no column {missing} in this dataset; its columns are "
                               f"{table.column_names}")
            return table.select(cols)

        return self._table_op(f"SelectColumns({', '.join(cols)})", select, ray_remote_args)

    def rename_columns(self, names: dict[str, str] | list[str], **ray_remote_args) -> "Dataset":
        if not isinstance(names, (dict, list)):
            raise TypeError(f"rename_columns() takes a dict old -> new or a list of all new names, got {names!r}")

        def rename(table: pa.Table) -> pa.Table:
            if isinstance(names, list):
                if len(names) != table.num_columns and table.num_columns:
                    raise ValueError(f"rename_columns: {len(names)} names for {table.num_columns} columns "
                                     f"{table.column_names}")
                return table.rename_columns(names) if table.num_columns else table
            missing = [c for c in names if c not in table.column_names]
            if missing and table.num_columns:
                raise KeyError(f"rename_columns: no column {missing} in this dataset; its columns are "
                               f"{table.column_names}")
            return table.rename_columns([names.get(c, c) for c in table.column_names])

        return self._table_op("RenameColumns", rename, ray_remote_args)

    def _table_op(self, name: str, fn: Callable[[pa.Table], pa.Table], ray_remote_args: dict) -> "Dataset":
        args = _remote_args(name, ray_remote_args)
        return self._map(name, TableStage(name, fn=fn), None, None, False, args)

    def random_sample(self, fraction: float, *, seed: int | None = None) -> "Dataset":
        """About ``fraction`` of the rows, each kept independently (a seed makes it repeatable)."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"random_sample(fraction=...) must be between 0 and 1, got {fraction!r}")

        def sample(table: pa.Table) -> pa.Table:
            import numpy as np

            # With a seed, each block's generator is seeded by (seed, its row count): repeatable, but
            # blocks of the same size draw the same mask.
            rng = np.random.default_rng(None if seed is None else [seed, table.num_rows])
            return table.filter(pa.array(rng.random(table.num_rows) < fraction))

        return self._table_op(f"RandomSample({fraction})", sample, {})

    def limit(self, limit: int) -> "Dataset":
        """The first ``limit`` rows; upstream work stops once they are there."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit() takes a non-negative int, got {limit!r}")
        return self._with(LimitOp(f"Limit[limit={limit}]", [self._op], limit=limit))

    def union(self, *others: "Dataset") -> "Dataset":
        """The rows of this dataset and then of each of ``others``."""
        for other in others:
            if not isinstance(other, Dataset):
                raise TypeError(f"union() takes datasets, got {type(other).__name__}")
        return self._with(UnionOp("Union", [self._op] + [o._op for o in others]))

    def zip(self, other: "Dataset") -> "Dataset":
        """Rows side by side with ``other``'s (same row count); a name in both gets a "_1" suffix."""
        if not isinstance(other, Dataset):
            raise TypeError(f"zip() takes a dataset, got {type(other).__name__}")
        return self._with(ZipOp("Zip", [self._op, other._op]))

    def _write(self, sink) -> None:
        """Write every block through ``sink`` (libs/data/datasource/sinks.py): ``prepare`` here,
        ``write_block`` in the tasks (fused with the steps before), then ``commit``, or ``abort``
        (which removes what this write made) if anything failed or the run was interrupted."""
        sink.prepare()
        if not sink.should_write:
            return
        name = f"Write{type(sink).__name__.replace('Sink', '')}"
        args = dict(getattr(sink, "ray_remote_args", None) or {})
        written: list[list[str]] = []
        ds = self._map(name, WriteStage(name, sink=sink), None, getattr(sink, "concurrency", None), False, args)
        try:
            for table in ds._tables():
                written.append(table.column("path").to_pylist() if "path" in table.column_names else [])
        except BaseException:
            sink.abort(written)
            raise
        self._last_stats = ds._last_stats
        sink.commit(written)

    def write_parquet(self, path: str, **options) -> None:
        """One or more parquet files per block under ``path`` (``partition_cols=``, ``mode=`` ...)."""
        from juno.data.datasource.api import write_parquet

        write_parquet(self, path, **options)

    def write_csv(self, path: str, **options) -> None:
        from juno.data.datasource.api import write_csv

        write_csv(self, path, **options)

    def write_json(self, path: str, **options) -> None:
        """JSON lines, one or more files per block."""
        from juno.data.datasource.api import write_json

        write_json(self, path, **options)

    def write_numpy(self, path: str, *, column: str, **options) -> None:
        """The ``column`` of each block as a .npy file."""
        from juno.data.datasource.api import write_numpy

        write_numpy(self, path, column=column, **options)

    def _all_to_all(self, name: str, fn: Callable) -> "Dataset":
        """A barrier step: ``fn(bundles, ctx) -> bundles`` gets all of this dataset's output at once."""
        return self._with(AllToAllOp(name, [self._op], fn=fn))

    # ------------------------------------------------------------------ all-to-all (libs/data/all_to_all)
    def sort(self, key: str | list[str], descending: bool | list[bool] = False) -> "Dataset":
        """Rows sorted by one or more columns (``descending`` per key or for all)."""
        from juno.data.all_to_all import api

        return api.sort(self, key, descending)

    def random_shuffle(self, *, seed: int | None = None, num_blocks: int | None = None) -> "Dataset":
        from juno.data.all_to_all import api

        return api.random_shuffle(self, seed=seed, num_blocks=num_blocks)

    def repartition(self, num_blocks: int, *, shuffle: bool = False) -> "Dataset":
        from juno.data.all_to_all import api

        return api.repartition(self, num_blocks, shuffle=shuffle)

    def randomize_block_order(self, *, seed: int | None = None) -> "Dataset":
        from juno.data.all_to_all import api

        return api.randomize_block_order(self, seed=seed)

    def groupby(self, key: str | list[str] | None):
        """A ``GroupedData``: count/sum/min/max/mean/std/aggregate/map_groups per group of ``key``."""
        from juno.data.all_to_all import api

        return api.groupby(self, key)

    def aggregate(self, *aggs) -> dict | None:
        from juno.data.all_to_all import api

        return api.aggregate(self, *aggs)

    def sum(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        from juno.data.all_to_all import api

        return api.sum(self, on, ignore_nulls)

    def min(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        from juno.data.all_to_all import api

        return api.min(self, on, ignore_nulls)

    def max(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        from juno.data.all_to_all import api

        return api.max(self, on, ignore_nulls)

    def mean(self, on: str | list[str] | None = None, ignore_nulls: bool = True):
        from juno.data.all_to_all import api

        return api.mean(self, on, ignore_nulls)

    def std(self, on: str | list[str] | None = None, ddof: int = 1, ignore_nulls: bool = True):
        from juno.data.all_to_all import api

        return api.std(self, on, ddof, ignore_nulls)

    def unique(self, column: str) -> list:
        from juno.data.all_to_all import api

        return api.unique(self, column)

    # ------------------------------------------------------------------ iterating and splitting (iterator.py, split.py)
    def iterator(self):
        """A ``DataIterator`` over this dataset; each pass runs the plan anew."""
        from juno.data.iterator import dataset_iterator

        return dataset_iterator(self)

    def iter_batches(self, **options) -> Iterator[Any]:
        """Batches of ``batch_size`` rows (256) across block edges, prefetched while the loop works
        (``prefetch_batches``, ``batch_format``, ``drop_last``, ``local_shuffle_buffer_size`` ...)."""
        return self.iterator().iter_batches(**options)

    def iter_torch_batches(self, **options) -> Iterator[Any]:
        """Batches as dicts of torch tensors (``dtypes``, ``device``, ``collate_fn`` ...)."""
        return self.iterator().iter_torch_batches(**options)

    def streaming_split(self, n: int, *, equal: bool = False, locality_hints: list | None = None) -> list:
        """``n`` DataIterators that share one execution, each for a different consumer (Train's workers)."""
        from juno.data import split

        return split.streaming_split(self, n, equal=equal, locality_hints=locality_hints)

    def split(self, n: int, *, equal: bool = False, locality_hints: list | None = None) -> list:
        from juno.data import split

        return split.split(self, n, equal=equal, locality_hints=locality_hints)

    def split_at_indices(self, indices: list[int]) -> list:
        from juno.data import split

        return split.split_at_indices(self, indices)

    def split_proportionately(self, proportions: list[float]) -> list:
        from juno.data import split

        return split.split_proportionately(self, proportions)

    def train_test_split(self, test_size: float | int, *, shuffle: bool = False, seed: int | None = None) -> list:
        from juno.data import split

        return split.train_test_split(self, test_size, shuffle=shuffle, seed=seed)

    # ------------------------------------------------------------------ execution
    def iter_internal_ref_bundles(self, _display: bool = True) -> Iterator[RefBundle]:
        """Run the plan, yielding output bundles as they are made (blocks stay in the store).
        ``_display=False``: no progress view (a peek such as schema())."""
        from juno.data.execution.progress import DataProgress

        started = time.monotonic()
        reporter = DataProgress(self._op, DataContext.get_current(), display=_display)
        executor = StreamingExecutor(self._op, on_progress=reporter)
        error: BaseException | None = None
        try:
            yield from executor.execute()
        except BaseException as e:
            error = e
            raise
        finally:
            self._last_stats = summarize(executor.ops, time.monotonic() - started)
            reporter.close(executor, error)

    def _bundles(self) -> list[RefBundle]:
        if isinstance(self._op, InputOp):
            return list(self._op.bundles)
        return list(self.iter_internal_ref_bundles())

    def _tables(self) -> Iterator[pa.Table]:
        for bundle in self.iter_internal_ref_bundles():
            yield from juno.get(bundle.refs)

    def materialize(self) -> "MaterializedDataset":
        """Run the plan now and keep its blocks in the object store."""
        bundles = self._bundles()
        out = MaterializedDataset(InputOp(f"MaterializedDataset({self._op.name})", bundles=bundles))
        out._last_stats = self._last_stats
        return out

    def count(self) -> int:
        """The number of rows (from metadata where the plan knows it; blocks are never fetched)."""
        known = known_num_rows(self._op)
        if known is not None:
            return known
        return sum(b.num_rows for b in self.iter_internal_ref_bundles())

    def schema(self, fetch_if_missing: bool = True) -> Schema | None:
        known = known_schema(self._op)
        if known is None and fetch_if_missing:
            peek = self.limit(1).iter_internal_ref_bundles(_display=False) if not isinstance(self._op, InputOp) else []
            for bundle in peek:
                known = next((m.schema for m in bundle.metadata if m.schema is not None), None)
            if known is None and not isinstance(self._op, InputOp):
                for bundle in self.iter_internal_ref_bundles(_display=False):
                    known = next((m.schema for m in bundle.metadata if m.schema is not None and m.schema.names),
                                 known)
                    if known is not None:
                        break
        return Schema(known) if known is not None and known.names else None

    def columns(self, fetch_if_missing: bool = True) -> list[str] | None:
        schema = self.schema(fetch_if_missing)
        return schema.names if schema is not None else None

    def num_blocks(self) -> int:
        """Blocks of the materialized data, or the read's blocks where the plan has only a read."""
        if isinstance(self._op, InputOp):
            return sum(len(b.blocks) for b in self._op.bundles)
        if isinstance(self._op, ReadOp):
            return len(self._op.read.tasks)
        return sum(len(b.blocks) for b in self.materialize()._op.bundles)

    def size_bytes(self) -> int:
        return sum(b.size_bytes for b in self._bundles())

    def input_files(self) -> list[str]:
        ops = [op for op in self._op.chain() if isinstance(op, ReadOp)]
        return sorted({f for op in ops for t in op.read.tasks for f in t.input_files})

    def stats(self) -> str:
        return self._last_stats or summarize([], None)

    def take(self, limit: int = 20) -> list[dict]:
        """The first ``limit`` rows, as dicts."""
        rows = []
        for table in self.limit(limit)._tables():
            rows.extend(blk.to_rows(table))
        return rows[:limit]

    def take_all(self, limit: int | None = None) -> list[dict]:
        """Every row as a dict; with ``limit``, an error if there are more than that."""
        rows = []
        for table in self._tables():
            rows.extend(blk.to_rows(table))
            if limit is not None and len(rows) > limit:
                raise ValueError(f"take_all(limit={limit}): the dataset has more than {limit} rows")
        return rows

    def take_batch(self, batch_size: int = 20, *, batch_format: str | None = "default") -> Any:
        tables = list(self.limit(batch_size)._tables())
        return blk.to_batch(blk.concat(tables) if tables else pa.table({}), batch_format)

    def show(self, limit: int = 20) -> None:
        for row in self.take(limit):
            print(row)

    def iter_rows(self, *, prefetch_batches: int = 1) -> Iterator[dict]:
        return self.iterator().iter_rows(prefetch_batches=prefetch_batches)

    def to_pandas(self, limit: int | None = None):
        """All rows as one pandas DataFrame (an error past ``limit`` rows, when given)."""
        tables = list(self._tables())
        table = blk.concat(tables) if tables else pa.table({})
        if limit is not None and table.num_rows > limit:
            raise ValueError(f"to_pandas(limit={limit}): the dataset has {table.num_rows} rows; raise the limit "
                             "or iterate with iter_batches(batch_format='pandas')")
        return blk.to_pandas(table)

    def to_arrow_refs(self) -> list:
        return [r for b in self._bundles() for r in b.refs]

    def to_numpy_refs(self, *, column: str | None = None) -> list:
        from juno.data.execution.remote import to_numpy_block

        return [to_numpy_block.remote(r, column) for r in self.to_arrow_refs()]

    def to_pandas_refs(self) -> list:
        from juno.data.execution.remote import to_pandas_block

        return [to_pandas_block.remote(r) for r in self.to_arrow_refs()]

    # ------------------------------------------------------------------ display
    def _plan_text(self) -> str:
        return "\n".join(plan_lines(self._op))

    def __repr__(self) -> str:
        """Ray's form: the steps, last first, down to the source dataset with what is known of it."""
        lines = plan_lines(self._op)
        if any(len(op.inputs) > 1 for op in self._op.chain()):
            return "\n".join(lines)  # union, zip: each branch down to its source
        source = self._op.chain()[0] if len(lines) > 1 else self._op
        rows, schema = known_num_rows(source), known_schema(source)
        fields = "{" + ", ".join(f"{f.name}: {f.type}" for f in schema) + "}" if schema is not None else "Unknown"
        body = f"{type(self).__name__}(num_rows={rows if rows is not None else '?'}, schema={fields})"
        if len(lines) == 1:
            return body
        return "\n".join(lines[:-1] + ["   " * (len(lines) - 2) + "+- " + body])

    def _repr_html_(self) -> str:
        rows, schema = known_num_rows(self._op), known_schema(self._op)
        plan = html.escape("\n".join(plan_lines(self._op)))
        cols = "".join(f"<tr><td>{html.escape(f.name)}</td><td><code>{html.escape(str(f.type))}</code></td></tr>"
                       for f in schema) if schema is not None else "<tr><td colspan=2>unknown until run</td></tr>"
        return (f"<div class='juno-dataset'><b>{type(self).__name__}</b> "
                f"({rows if rows is not None else '?'} rows, not executed)"
                f"<pre style='margin:4px 0'>{plan}</pre><table><tr><th>Column</th><th>Type</th></tr>{cols}"
                "</table></div>")

    def __iter__(self):
        raise TypeError("a Dataset is not iterable itself: use ds.iter_rows(), ds.iter_batches() or ds.take()")

    def __len__(self):
        raise TypeError("a Dataset has no len() (counting may run the whole plan): use ds.count()")


class MaterializedDataset(Dataset):
    """A dataset whose blocks are already in the object store (``materialize()``, ``split()``)."""


def group_read_tasks(tasks: list[ReadTask], n: int | None) -> list[ReadTask]:
    """At most ``n`` read tasks: neighbours are merged into one (a task cannot be split here)."""
    if n is None or n >= len(tasks) or not tasks:
        return list(tasks)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"override_num_blocks must be a positive int, got {n!r}")
    groups = [tasks[i * len(tasks) // n:(i + 1) * len(tasks) // n] for i in range(n)]
    return [_merged(g) for g in groups if g]


def _merged(group: list[ReadTask]) -> ReadTask:
    if len(group) == 1:
        return group[0]

    def read_all(parts=tuple(group)):
        for part in parts:
            yield from part()

    rows = [t.num_rows for t in group]
    sizes = [t.size_bytes for t in group]
    return ReadTask(read_all, sum(rows) if None not in rows else None, sum(sizes) if None not in sizes else None,
                    tuple(f for t in group for f in t.input_files), group[0].schema)
