"""The logical plan: what a dataset is, before anything runs.

Each ``Dataset`` holds the last operator of a small DAG (usually a chain); transformations add an
operator and return a new dataset, so nothing executes until a result is asked for. The planner
(libs/data/execution/planner.py) turns the DAG into physical operators, fusing map-like steps.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from juno.data.block import RefBundle
from juno.data.read_task import Read
from juno.data.transforms import Stage

_ids = itertools.count(1)


class ComputeStrategy:
    """Where a map step runs: tasks (the default) or a pool of actors."""


@dataclass(frozen=True)
class TaskPoolStrategy(ComputeStrategy):
    size: int | None = None  # at most this many tasks at once (None: as resources allow)

    def __post_init__(self):
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"TaskPoolStrategy(size=...) must be a positive int, got {self.size!r}")


@dataclass(frozen=True)
class ActorPoolStrategy(ComputeStrategy):
    """A pool of ``size`` actors, or one that grows from ``min_size`` to ``max_size`` with the backlog."""

    size: int | None = None
    min_size: int | None = None
    max_size: int | None = None
    max_tasks_in_flight_per_actor: int = 4

    def __post_init__(self):
        for name in ("size", "min_size", "max_size", "max_tasks_in_flight_per_actor"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ActorPoolStrategy({name}=...) must be a positive int, got {value!r}")
        if self.size is not None and (self.min_size is not None or self.max_size is not None):
            raise ValueError("ActorPoolStrategy: give either size=, or min_size= and max_size=, not both")
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise ValueError(f"ActorPoolStrategy: min_size ({self.min_size}) is larger than max_size ({self.max_size})")

    @property
    def bounds(self) -> tuple[int, int | None]:
        if self.size is not None:
            return self.size, self.size
        return (self.min_size or 1), self.max_size


def compute_from(compute: Any, concurrency: Any, is_class: bool) -> ComputeStrategy:
    """The strategy a map step asked for with Ray's arguments (``compute=`` or ``concurrency=``)."""
    if compute is not None and concurrency is not None:
        raise ValueError("give either compute= or concurrency=, not both (concurrency= is the newer form)")
    if isinstance(compute, str):
        if compute == "tasks":
            compute = TaskPoolStrategy()
        elif compute == "actors":
            compute = ActorPoolStrategy()
        else:
            raise ValueError(f"compute must be 'tasks', 'actors', or a strategy object, got {compute!r}")
    if compute is not None:
        if not isinstance(compute, ComputeStrategy):
            raise TypeError(f"compute must be ActorPoolStrategy(...) or TaskPoolStrategy(...), got {compute!r}")
        if is_class and isinstance(compute, TaskPoolStrategy):
            raise ValueError("a callable class runs in an actor pool: use compute=ActorPoolStrategy(...) or "
                             "concurrency=n, not tasks")
        return compute
    if concurrency is None:
        if is_class:
            raise ValueError("a callable class needs an actor pool: pass concurrency=n (n actors) or "
                             "concurrency=(min, max) for a pool that grows with the backlog")
        return TaskPoolStrategy()
    if isinstance(concurrency, tuple):
        if len(concurrency) != 2:
            raise ValueError(f"concurrency=(min, max) must have two ints, got {concurrency!r}")
        low, high = concurrency
        return ActorPoolStrategy(min_size=low, max_size=high) if is_class else TaskPoolStrategy(size=high)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int or a (min, max) tuple, got {concurrency!r}")
    return ActorPoolStrategy(size=concurrency) if is_class else TaskPoolStrategy(size=concurrency)


@dataclass(eq=False)
class LogicalOp:
    name: str
    inputs: list["LogicalOp"] = field(default_factory=list)
    id: int = field(default_factory=lambda: next(_ids))

    def chain(self) -> list["LogicalOp"]:
        """This operator and its upstream ones, sources first (depth-first over all inputs)."""
        seen: dict[int, LogicalOp] = {}

        def visit(op: LogicalOp) -> None:
            if op.id in seen:
                return
            for upstream in op.inputs:
                visit(upstream)
            seen[op.id] = op

        visit(self)
        return list(seen.values())


@dataclass(eq=False)
class ReadOp(LogicalOp):
    read: Read | None = None
    ray_remote_args: dict = field(default_factory=dict)
    concurrency: int | None = None
    stage: Stage | None = None


@dataclass(eq=False)
class InputOp(LogicalOp):
    """Data already in the object store (from_items, from_arrow, a materialized dataset)."""

    bundles: list[RefBundle] = field(default_factory=list)


@dataclass(eq=False)
class MapOp(LogicalOp):
    stage: Stage | None = None
    compute: ComputeStrategy = field(default_factory=TaskPoolStrategy)
    ray_remote_args: dict = field(default_factory=dict)
    min_rows_per_bundle: int | None = None  # coalesce small blocks into one task's input


@dataclass(eq=False)
class LimitOp(LogicalOp):
    limit: int = 0


@dataclass(eq=False)
class AllToAllOp(LogicalOp):
    """A barrier: ``fn(bundles, ctx)`` gets all of the input and returns all of the output."""

    fn: Callable | None = None


@dataclass(eq=False)
class UnionOp(LogicalOp):
    pass


@dataclass(eq=False)
class ZipOp(LogicalOp):
    pass


def known_schema(op: LogicalOp) -> pa.Schema | None:
    """The output schema when it is known without running anything."""
    if isinstance(op, InputOp):
        return next((m.schema for b in op.bundles for _, m in b.blocks if m.schema is not None and m.num_rows),
                    next((m.schema for b in op.bundles for _, m in b.blocks if m.schema is not None), None))
    if isinstance(op, ReadOp) and op.read is not None:
        return op.read.schema or next((t.schema for t in op.read.tasks if t.schema is not None), None)
    if isinstance(op, (LimitOp,)) or (isinstance(op, AllToAllOp) and getattr(op.fn, "keeps_schema", False)):
        return known_schema(op.inputs[0])
    return None


def known_num_rows(op: LogicalOp) -> int | None:
    """The output row count when it is known without running anything."""
    if isinstance(op, InputOp):
        return sum(b.num_rows for b in op.bundles)
    if isinstance(op, ReadOp) and op.read is not None:
        counts = [t.num_rows for t in op.read.tasks]
        return sum(counts) if all(c is not None for c in counts) else None
    if isinstance(op, LimitOp):
        upstream = known_num_rows(op.inputs[0])
        return op.limit if upstream is None else min(op.limit, upstream)
    if isinstance(op, AllToAllOp) and getattr(op.fn, "keeps_rows", False):
        return known_num_rows(op.inputs[0])
    if isinstance(op, UnionOp):
        counts = [known_num_rows(i) for i in op.inputs]
        return sum(counts) if all(c is not None for c in counts) else None
    return None


def plan_lines(op: LogicalOp) -> list[str]:
    """The plan as Ray prints it: the last operator first, each input indented below it."""
    lines: list[str] = []

    def visit(node: LogicalOp, depth: int) -> None:
        lines.append(("   " * (depth - 1) + "+- " if depth else "") + node.name)
        for upstream in node.inputs:
            visit(upstream, depth + 1)

    visit(op, 0)
    return lines
