"""The steps a map task runs: each stage turns a stream of tables into another.

A fused operator is a list of stages (read, then map_batches, then filter ...) that one task or
actor runs back to back on its input blocks, so the blocks between the steps never reach the
object store. Stages are plain picklable objects; a stage holding a callable class builds one
instance per worker process (in ``setup()``), which is what an actor pool is for.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pyarrow as pa

from juno.data import block as blk


class UserCodeError(Exception):
    """A user function of a dataset operator raised; the message names the operator and the
    input it got, and the user's exception is chained below it (``__cause__``)."""


def udf_name(fn: Any) -> str:
    if isinstance(fn, type):
        return fn.__name__
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "<lambda>" if name == "<lambda>" else name


def describe_input(batch: Any) -> str:
    """A batch or row, described for an error message: its type, columns and row count."""
    if isinstance(batch, pa.Table):
        return f"a pyarrow.Table of {batch.num_rows} rows with columns {batch.column_names}"
    if isinstance(batch, dict):
        rows = next((len(v) for v in batch.values() if hasattr(v, "__len__")), 0)
        return f"a dict of {rows} rows with columns {list(batch)}"
    if type(batch).__name__ == "DataFrame":
        return f"a pandas.DataFrame of {len(batch)} rows with columns {list(batch.columns)}"
    return f"a {type(batch).__name__}"


@dataclass
class Stage:
    """One step of a fused operator. ``operator`` is its name in the plan, e.g. "MapBatches(f)"."""

    operator: str

    def setup(self) -> None:
        """Before the first block; a second call does nothing (build callable-class instances once
        per worker process)."""

    def apply(self, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        raise NotImplementedError


@dataclass
class ReadStage(Stage):
    """The first stage of a read: its input is a ReadTask instead of blocks."""

    def apply(self, read_task) -> Iterator[pa.Table]:  # type: ignore[override]
        for table in read_task():
            if not isinstance(table, pa.Table):
                table = blk.from_batch(table, what=f"{self.operator}'s read function")
            yield table


@dataclass
class UdfStage(Stage):
    """A stage that calls a user function (or callable class) with arguments."""

    fn: Any = None
    fn_args: tuple = ()
    fn_kwargs: dict = field(default_factory=dict)
    fn_constructor_args: tuple = ()
    fn_constructor_kwargs: dict = field(default_factory=dict)

    def setup(self) -> None:
        if getattr(self, "_callable", None) is not None:
            return
        if isinstance(self.fn, type):
            try:
                self._callable = self.fn(*self.fn_constructor_args, **self.fn_constructor_kwargs)
            except Exception as e:
                raise UserCodeError(f"{self.operator}: constructing {self.fn.__name__} raised "
                                    f"{type(e).__name__}: {e}") from e
        else:
            self._callable = self.fn

    def call(self, value: Any) -> Any:
        fn = getattr(self, "_callable", None)
        if fn is None:
            self.setup()
            fn = self._callable
        try:
            return fn(value, *self.fn_args, **self.fn_kwargs)
        except UserCodeError:
            raise
        except Exception as e:
            raise UserCodeError(f"{self.operator}: {udf_name(self.fn)} raised {type(e).__name__}: {e} "
                                f"(its input was {describe_input(value)})") from e

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_callable", None)  # built again in each worker
        return state


@dataclass
class BatchStage(UdfStage):
    """map_batches: batches of ``batch_size`` rows (None: whole blocks), in ``batch_format``."""

    batch_size: int | None = None
    batch_format: str = "default"

    def apply(self, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        what = f"{self.operator}'s function {udf_name(self.fn)}"
        for table in rebatch(tables, self.batch_size):
            out = self.call(blk.to_batch(table, self.batch_format))
            outputs = out if inspect.isgenerator(out) else (out,)
            for item in outputs:
                yield blk.from_batch(item, what=what)


@dataclass
class RowStage(UdfStage):
    """map, flat_map and filter: the function sees one row (a dict) at a time."""

    kind: str = "map"  # "map" | "flat_map" | "filter"

    def apply(self, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        what = f"{self.operator}'s function {udf_name(self.fn)}"
        for table in tables:
            if table.num_rows == 0:
                continue
            if self.kind == "filter":
                keep = [bool(self.call(row)) for row in blk.to_rows(table)]
                yield table.filter(pa.array(keep, type=pa.bool_()))
            elif self.kind == "map":
                yield blk.from_rows([self.call(row) for row in blk.to_rows(table)], what=what)
            else:
                out = []
                for row in blk.to_rows(table):
                    items = self.call(row)
                    try:
                        out.extend(items)
                    except TypeError:
                        raise TypeError(f"{what} must return a list (or iterable) of rows; it returned a "
                                        f"{type(items).__name__}") from None
                yield blk.from_rows(out, what=what)


@dataclass
class TableStage(Stage):
    """A step on whole tables that runs no user code per row (select, rename, expression filter ...)."""

    fn: Callable[[pa.Table], pa.Table] | None = None

    def apply(self, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        for table in tables:
            yield self.fn(table)


@dataclass
class WriteStage(Stage):
    """The last step of a write: each block (gathered to the sink's minimum rows) goes to
    ``sink.write_block``; the step's output is the paths written, one row each."""

    sink: Any = None
    task_index: int = 0

    def apply(self, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
        minimum = getattr(self.sink, "min_rows_per_write", None)
        for block_index, table in enumerate(rebatch(tables, None) if not minimum else _at_least(tables, minimum)):
            paths = self.sink.write_block(table, self.task_index, block_index)
            yield pa.table({"path": pa.array(paths, type=pa.string())})


def _at_least(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        if count >= rows:
            yield blk.concat(pending)
            pending, count = [], 0
    if count:
        yield blk.concat(pending)


def rebatch(tables: Iterator[pa.Table], batch_size: int | None) -> Iterator[pa.Table]:
    """Tables of exactly ``batch_size`` rows (the last one shorter), across input boundaries;
    ``None``: the inputs as they are (empty ones skipped unless all are empty)."""
    if batch_size is None:
        seen_any = False
        last_empty = None
        for table in tables:
            if table.num_rows == 0:
                last_empty = table
                continue
            seen_any = True
            yield table
        if not seen_any and last_empty is not None and last_empty.num_columns:
            yield last_empty
        return
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        offset = 0
        while offset < table.num_rows:
            take = min(batch_size - rows, table.num_rows - offset)
            pending.append(table.slice(offset, take))
            rows += take
            offset += take
            if rows == batch_size:
                yield blk.concat(pending) if len(pending) > 1 else pending[0]
                pending, rows = [], 0
    if pending:
        yield blk.concat(pending) if len(pending) > 1 else pending[0]


def run_stages(stages: list[Stage], source: Any, task_index: int = 0) -> Iterator[pa.Table]:
    """Chain the stages over ``source``: a ReadTask for a read, else an iterable of tables.
    ``task_index`` numbers the task within its operator (write stages name files by it)."""
    for stage in stages:
        if isinstance(stage, WriteStage):
            stage.task_index = task_index
        stage.setup()
    it = stages[0].apply(source if isinstance(stages[0], ReadStage) else iter(source))
    for stage in stages[1:]:
        it = stage.apply(it)
    return it

