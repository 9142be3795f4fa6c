"""How a file read becomes read tasks: units (a file, or a parquet file's row groups) grouped or
split into the number of blocks asked for, and the picklable function each task runs.

The decisions (how many blocks, which units go together) are plain functions of sizes and
counts, tested without files; ``ReadFiles`` is the thin part that opens files in a worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pyarrow as pa

from juno.data.block import BlockBuilder
from juno.data.context import DataContext
from juno.data.read_task import Read, ReadTask


@dataclass(frozen=True)
class ReadUnit:
    """The smallest piece one task reads: a file, or some row groups of a parquet file."""

    path: str
    size_bytes: int  # estimated in-memory size
    partition: dict = field(default_factory=dict, hash=False)
    num_rows: int | None = None
    row_groups: tuple[int, ...] | None = None  # parquet: which row groups of the file


def num_blocks_arg(override_num_blocks, parallelism) -> int | None:
    """``override_num_blocks`` (or Ray's older ``parallelism``; -1 means "choose") validated."""
    if override_num_blocks is not None and parallelism not in (None, -1):
        raise ValueError("give override_num_blocks or parallelism (its older name), not both")
    value = override_num_blocks if override_num_blocks is not None else parallelism
    if value in (None, -1):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"override_num_blocks must be a positive int, got {value!r}")
    return value


def choose_num_blocks(total_bytes: int, *, requested: int | None, cpus: float,
                      ctx: DataContext) -> int:
    """How many blocks a read makes (Ray's rule): what was requested, else at least
    ``read_op_min_num_blocks`` and twice the CPUs, but no block under ``target_min_block_size``
    unless that is needed to keep them all under ``target_max_block_size``."""
    if requested is not None:
        return requested
    min_safe = math.ceil(total_bytes / ctx.target_max_block_size)
    max_reasonable = max(1, math.ceil(total_bytes / ctx.target_min_block_size))
    return max(min(ctx.read_op_min_num_blocks, max_reasonable), min_safe, int(cpus * 2), 1)


def group_units(sizes: list[int], num_groups: int) -> list[list[int]]:
    """Indices of ``sizes`` cut into ``min(num_groups, len(sizes))`` contiguous, non-empty groups of
    about equal total size (order is kept, so a dataset reads its files in the order listed)."""
    n = min(num_groups, len(sizes))
    groups: list[list[int]] = []
    start, left = 0, float(sum(sizes))
    for g in range(n):
        groups_left = n - g
        if groups_left == 1:
            groups.append(list(range(start, len(sizes))))
            break
        target = left / groups_left
        end, acc = start + 1, float(sizes[start])
        # Take the next unit while the group is nearer its share with it than without, and
        # every group after this one still gets a unit.
        while end < len(sizes) - (groups_left - 1) and acc + sizes[end] / 2 <= target:
            acc += sizes[end]
            end += 1
        groups.append(list(range(start, end)))
        left -= acc
        start = end
    return groups


def plan_tasks(units: list[ReadUnit], num_blocks: int) -> list[tuple[list[ReadUnit], int]]:
    """(units, split) per task: with more units than blocks, units are grouped; with fewer, each
    task reads one unit and cuts its output into ``split`` blocks."""
    if not units:
        return []
    groups = group_units([u.size_bytes for u in units], num_blocks)
    base, extra = divmod(num_blocks, len(groups)) if num_blocks > len(units) else (1, 0)
    return [([units[i] for i in group], base + (1 if k < extra else 0)) for k, group in enumerate(groups)]


@dataclass
class ReadFiles:
    """A read task's function: read each unit with ``read_unit``, add the partition and path
    columns, and yield blocks of about ``target_bytes`` (or ``split`` equal slices)."""

    read_unit: Callable[..., pa.Table]  # (unit, filesystem, **options) -> Table; module-level, so it pickles
    units: list[ReadUnit]
    options: dict
    filesystem: object = None
    include_paths: bool = False
    split: int = 1
    target_bytes: int = 128 * 1024 * 1024
    add_partition_columns: bool = True  # False where the reader fills them in itself (parquet)

    def __call__(self) -> Iterator[pa.Table]:
        if self.split > 1:
            yield from split_table(self._read(self.units[0]), self.split)
            return
        builder = BlockBuilder(self.target_bytes)
        for unit in self.units:
            yield from builder.add(self._read(unit))
        yield from builder.finish()

    def _read(self, unit: ReadUnit) -> pa.Table:
        table = self.read_unit(unit, self.filesystem, **self.options)
        for name, value in unit.partition.items() if self.add_partition_columns else ():
            if name not in table.column_names:
                table = table.append_column(name, pa.array([value] * table.num_rows, type=pa.string()))
        if self.include_paths:
            table = table.append_column("path", pa.array([unit.path] * table.num_rows, type=pa.string()))
        return table


def merge_row_groups(units: list[ReadUnit]) -> list[ReadUnit]:
    """Adjacent units of one file's row groups as one unit, so a task opens each file once."""
    out: list[ReadUnit] = []
    for unit in units:
        last = out[-1] if out else None
        if last is not None and last.path == unit.path and last.row_groups and unit.row_groups:
            rows = None if last.num_rows is None or unit.num_rows is None else last.num_rows + unit.num_rows
            out[-1] = ReadUnit(last.path, last.size_bytes + unit.size_bytes, last.partition, rows,
                               last.row_groups + unit.row_groups)
        else:
            out.append(unit)
    return out


def split_table(table: pa.Table, parts: int) -> list[pa.Table]:
    """``table`` as ``parts`` slices whose sizes differ by at most one row (zero-row slices when it is short)."""
    base, extra = divmod(table.num_rows, parts)
    out, start = [], 0
    for i in range(parts):
        length = base + (1 if i < extra else 0)
        out.append(table.slice(start, length))
        start += length
    return out


def make_read(name: str, units: list[ReadUnit], read_unit: Callable[..., pa.Table], options: dict, *,
              num_blocks: int, filesystem=None, include_paths: bool = False, add_partition_columns: bool = True,
              schema: pa.Schema | None = None, ctx: DataContext | None = None) -> Read:
    """The ``Read`` of ``units``: one ``ReadTask`` per planned group, with its estimates."""
    ctx = ctx or DataContext.get_current()
    tasks = []
    for group, split in plan_tasks(units, num_blocks):
        group = merge_row_groups(group)
        rows = [u.num_rows for u in group]
        fn = ReadFiles(read_unit, group, options, filesystem, include_paths, split, ctx.target_max_block_size,
                       add_partition_columns)
        tasks.append(ReadTask(
            fn, num_rows=sum(rows) if None not in rows else None, size_bytes=sum(u.size_bytes for u in group),
            input_files=tuple(dict.fromkeys(u.path for u in group)), schema=schema))
    if include_paths and schema is not None and "path" not in schema.names:
        schema = schema.append(pa.field("path", pa.string()))
    for task in tasks:
        task.schema = schema
    return Read(name, tasks, schema)
