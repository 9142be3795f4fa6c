"""Physical operators: the executor's view of each step, as plain state (no I/O).

An operator has input queues (one per upstream operator), an output queue, and the work it
has handed out but not got back. The executor (executor.py) asks it for the next unit of work,
runs that as a task or actor call, and gives the result back; ``ExecutionState`` decides which
operator may hand out work next (backpressure). All of this is tested without processes.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from juno.data.block import BlockMetadata, RefBundle
from juno.data.plan import ActorPoolStrategy, ComputeStrategy, TaskPoolStrategy
from juno.data.transforms import Stage


@dataclass
class Work:
    """One task's worth of input: a read task, or the blocks of one or more bundles."""

    seq: int
    source: Any  # a ReadTask, or a list of block refs
    rows: int
    size_bytes: int


@dataclass
class OpMetrics:
    rows_in: int = 0
    rows_out: int = 0
    blocks_out: int = 0
    bytes_out: int = 0
    tasks_submitted: int = 0
    tasks_done: int = 0
    exec_s: float = 0.0
    wall_started: float | None = None
    wall_ended: float | None = None
    held_back: int = 0  # dispatches refused by backpressure


class PhysicalOp:
    """Base: queues, completion and ordering. ``preserve_order`` releases outputs in input order."""

    def __init__(self, name: str, inputs: list["PhysicalOp"], *, preserve_order: bool = False):
        self.name = name
        self.inputs = inputs
        self.input_queues: list[collections.deque[RefBundle]] = [collections.deque() for _ in inputs]
        self.inputs_done = [False] * len(inputs)
        self.outputs: collections.deque[RefBundle] = collections.deque()
        self.in_flight = 0
        self.metrics = OpMetrics()
        self.preserve_order = preserve_order
        self.stopped = False  # downstream needs no more (a limit was reached)
        self._next_seq = 0
        self._release_seq = 0
        self._finished_out: dict[int, list[RefBundle]] = {}

    # ------------------------------------------------------------------ inputs
    def add_input(self, bundle: RefBundle, index: int = 0) -> None:
        self.metrics.rows_in += bundle.num_rows
        self.input_queues[index].append(bundle)

    def mark_input_done(self, index: int = 0) -> None:
        self.inputs_done[index] = True

    @property
    def all_inputs_done(self) -> bool:
        return all(self.inputs_done)

    @property
    def queued_bytes(self) -> int:
        return sum(b.size_bytes for q in self.input_queues for b in q) + sum(b.size_bytes for b in self.outputs)

    # ------------------------------------------------------------------ work
    def has_work(self) -> bool:
        """Whether ``next_work()`` would give something now."""
        return False

    def next_work(self) -> Work | None:
        return None

    def new_seq(self) -> int:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return seq

    def finish_work(self, seq: int, outputs: list[RefBundle], exec_s: float = 0.0) -> None:
        """A unit of work came back with ``outputs`` (possibly none)."""
        self.in_flight -= 1
        self.metrics.tasks_done += 1
        self.metrics.exec_s += exec_s
        if not self.preserve_order:
            for bundle in outputs:
                self.emit(bundle)
            return
        self._finished_out[seq] = outputs
        while self._release_seq in self._finished_out:
            for bundle in self._finished_out.pop(self._release_seq):
                self.emit(bundle)
            self._release_seq += 1

    def emit(self, bundle: RefBundle) -> None:
        self.metrics.rows_out += bundle.num_rows
        self.metrics.blocks_out += len(bundle.blocks)
        self.metrics.bytes_out += bundle.size_bytes
        self.outputs.append(bundle)

    def completed(self) -> bool:
        """No more outputs will come (the queue may still hold some)."""
        if self.stopped:
            return self.in_flight == 0
        return self.all_inputs_done and self.in_flight == 0 and not any(self.input_queues) and not self.has_work()

    def stop(self) -> None:
        """Downstream needs nothing more: drop queued input; work in flight is the executor's to cancel."""
        self.stopped = True
        for q in self.input_queues:
            q.clear()


class InputDataOp(PhysicalOp):
    """Bundles that are already in the store: all output from the start."""

    def __init__(self, name: str, bundles: list[RefBundle]):
        super().__init__(name, [])
        for bundle in bundles:
            self.emit(bundle)

    def completed(self) -> bool:
        return True


class MapLikeOp(PhysicalOp):
    """A fused chain of stages run per unit of work, as tasks or in an actor pool.

    ``read_tasks`` make it a source (its work items are ReadTasks); otherwise input bundles are
    grouped into one unit until it holds ``min_rows_per_bundle`` rows."""

    def __init__(self, name: str, inputs: list[PhysicalOp], stages: list[Stage], *, compute: ComputeStrategy,
                 ray_remote_args: dict, min_rows_per_bundle: int | None = None, read_tasks: list | None = None,
                 preserve_order: bool = False):
        super().__init__(name, inputs, preserve_order=preserve_order)
        self.stages = stages
        self.compute = compute
        self.ray_remote_args = ray_remote_args
        self.min_rows_per_bundle = min_rows_per_bundle
        self.read_tasks = collections.deque(read_tasks or [])
        self.avg_output_bytes: float | None = None

    @property
    def is_actor_pool(self) -> bool:
        return isinstance(self.compute, ActorPoolStrategy)

    @property
    def concurrency_cap(self) -> int | None:
        return self.compute.size if isinstance(self.compute, TaskPoolStrategy) else None

    def has_work(self) -> bool:
        if self.stopped:
            return False
        if self.read_tasks:
            return True
        queue = self.input_queues[0] if self.input_queues else None
        if not queue:
            return False
        if self.min_rows_per_bundle is None or self.all_inputs_done:
            return True
        return sum(b.num_rows for b in queue) >= self.min_rows_per_bundle

    def next_work(self) -> Work | None:
        if not self.has_work():
            return None
        if self.read_tasks:
            task = self.read_tasks.popleft()
            work = Work(self.new_seq(), task, task.num_rows or 0, task.size_bytes or 0)
        else:
            queue = self.input_queues[0]
            refs, rows, size = [], 0, 0
            while queue and (not refs or (self.min_rows_per_bundle is not None and rows < self.min_rows_per_bundle)):
                bundle = queue.popleft()
                refs.extend(bundle.refs)
                rows += bundle.num_rows
                size += bundle.size_bytes
            work = Work(self.new_seq(), refs, rows, size)
        self.in_flight += 1
        self.metrics.tasks_submitted += 1
        return work

    def expected_output_bytes(self, work_bytes: int) -> float:
        """What a new unit of work will add to the store, for the memory budget."""
        if self.avg_output_bytes is not None:
            return self.avg_output_bytes
        return float(work_bytes)

    def record_output(self, meta: BlockMetadata) -> None:
        n = self.metrics.blocks_out
        prev = self.avg_output_bytes or 0.0
        self.avg_output_bytes = (prev * n + meta.size_bytes) / (n + 1)

    def completed(self) -> bool:
        if self.stopped:
            return self.in_flight == 0
        return self.all_inputs_done and not self.read_tasks and not any(self.input_queues) and self.in_flight == 0


class LimitOp(PhysicalOp):
    """Passes bundles until ``limit`` rows went through; the bundle that crosses it is cut (a
    small task the executor runs); then the upstream operators are stopped."""

    def __init__(self, name: str, inputs: list[PhysicalOp], limit: int):
        super().__init__(name, inputs, preserve_order=True)
        self.limit = limit
        self.passed = 0
        self.pending_cut: tuple[RefBundle, int] | None = None  # (bundle, rows to keep)

    def has_work(self) -> bool:
        return self.pending_cut is not None

    def take_inputs(self) -> None:
        """Move what fits under the limit to the output; remember a bundle that must be cut."""
        queue = self.input_queues[0]
        while queue and self.passed < self.limit and self.pending_cut is None:
            bundle = queue.popleft()
            if self.passed + bundle.num_rows <= self.limit:
                self.passed += bundle.num_rows
                self.emit(bundle)
            else:
                self.pending_cut = (bundle, self.limit - self.passed)
                self.passed = self.limit
        if self.passed >= self.limit:
            queue.clear()

    @property
    def reached(self) -> bool:
        return self.passed >= self.limit

    def completed(self) -> bool:
        if self.reached:
            return self.pending_cut is None and self.in_flight == 0
        return super().completed()


class BarrierOp(PhysicalOp):
    """All-to-all, union and zip: the executor runs ``run`` once every input is done (union
    passes bundles through as they come instead)."""

    def __init__(self, name: str, inputs: list[PhysicalOp], kind: str, fn: Any = None):
        super().__init__(name, inputs)
        self.kind = kind  # "all_to_all" | "union" | "zip"
        self.fn = fn
        self.ran = False

    def ready_to_run(self) -> bool:
        return not self.ran and self.all_inputs_done and self.kind != "union"

    def completed(self) -> bool:
        if self.kind == "union":
            return self.all_inputs_done and not any(self.input_queues)
        return self.ran and self.in_flight == 0


@dataclass
class Budget:
    """Backpressure: how many bytes an execution's blocks may hold in the store, and how many
    units of work may run at once (the rest wait in queues, not in the cluster's)."""

    object_store_bytes: float
    max_in_flight: int


@dataclass
class ExecutionState:
    """The operators in topological order (the last is the sink) and the dispatch policy."""

    ops: list[PhysicalOp]
    budget: Budget
    in_flight_bytes: dict[int, float] = field(default_factory=dict)  # work id -> expected output bytes

    @property
    def sink(self) -> PhysicalOp:
        return self.ops[-1]

    def held_bytes(self) -> float:
        return sum(op.queued_bytes for op in self.ops) + sum(self.in_flight_bytes.values())

    def total_in_flight(self) -> int:
        return sum(op.in_flight for op in self.ops)

    def may_dispatch(self, op: MapLikeOp, work_bytes: int) -> bool:
        """Whether ``op`` may start one more unit now. Downstream operators get priority (the
        caller asks them first); when nothing at all is running, one unit may always start, so
        the pipeline never stalls on a budget smaller than one block."""
        if op.concurrency_cap is not None and op.in_flight >= op.concurrency_cap:
            return False
        if self.total_in_flight() >= self.budget.max_in_flight and op.in_flight > 0:
            return False
        if self.total_in_flight() == 0:
            return True
        if self.held_bytes() + op.expected_output_bytes(work_bytes) > self.budget.object_store_bytes:
            op.metrics.held_back += 1
            return False
        return True

    def dispatch_order(self) -> list[PhysicalOp]:
        """Downstream first: finishing work already in the pipe frees memory before new reads."""
        return list(reversed(self.ops))

    def finished(self) -> bool:
        return all(op.completed() for op in self.ops) and not self.sink.outputs
