"""The streaming executor: runs physical operators as Juno tasks and actors, block by block.

It runs in the consumer's thread as a generator: each time the consumer asks for the next
output bundle, the executor moves finished work downstream, starts what the budget allows
(downstream operators first) and waits briefly for more to finish. A consumer that stops
asking is backpressure by itself; closing the generator (a ``break``, an error, an interrupted
cell) cancels the tasks in flight and stops the actors, and the blocks go with their refs.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

import juno
from juno.data.block import RefBundle
from juno.data.context import DataContext
from juno.data.execution import remote
from juno.data.execution.operators import (BarrierOp, Budget, ExecutionState, LimitOp, MapLikeOp, PhysicalOp,
                                           Work)
from juno.data.execution.planner import plan
from juno.data.plan import LogicalOp

logger = logging.getLogger("juno.data")

WAIT_S = 0.1  # longest wait for work to finish before looking again (progress, timeouts)


class ActorPool:
    """The actors of one actor-pool operator and the calls each has running."""

    def __init__(self, op: MapLikeOp, stages_ref: Any, start_timeout_s: float):
        self.op = op
        self.stages_ref = stages_ref
        self.actors: list[Any] = []
        self.busy: dict[int, int] = {}  # index -> calls in flight
        self.pending_ready: dict[Any, tuple[int, float]] = {}  # ready ref -> (index, created at)
        self.start_timeout_s = start_timeout_s
        low, _ = op.compute.bounds
        for _ in range(low):
            self.add_actor()

    def add_actor(self) -> None:
        actor = remote.MapWorker.options(**self.op.ray_remote_args).remote(self.stages_ref)
        index = len(self.actors)
        self.actors.append(actor)
        self.busy[index] = 0
        self.pending_ready[actor.ready.remote()] = (index, time.monotonic())

    def free_actor(self) -> int | None:
        """The least busy actor with a free slot; grows the pool when all are full and it may."""
        limit = self.op.compute.max_tasks_in_flight_per_actor
        index = min(self.busy, key=self.busy.get) if self.busy else None
        if index is not None and self.busy[index] < limit:
            return index
        high = self.op.compute.bounds[1]
        if high is None or len(self.actors) < high:
            self.add_actor()
            return len(self.actors) - 1
        return None

    def check_started(self) -> None:
        """Actors that could not start within the timeout fail the run (never a wait forever)."""
        if not self.pending_ready:
            return
        ready, _ = juno.wait(list(self.pending_ready), num_returns=len(self.pending_ready), timeout=0)
        for ref in ready:
            self.pending_ready.pop(ref)
            juno.get(ref)  # raises if the constructor failed
        now = time.monotonic()
        for _ref, (_index, created) in self.pending_ready.items():
            if now - created > self.start_timeout_s:
                raise TimeoutError(
                    f"{self.op.name}: an actor of its pool did not start within {self.start_timeout_s:g} s; the "
                    f"cluster may lack the resources it asks for ({self.op.ray_remote_args}). Check "
                    "juno.available_resources(), or use a smaller pool (concurrency=...).")

    def shutdown(self) -> None:
        for actor in self.actors:
            try:
                juno.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors.clear()


class StreamingExecutor:
    """Runs one dataset's plan; ``execute()`` yields its output bundles."""

    def __init__(self, tip: LogicalOp, ctx: DataContext | None = None,
                 on_progress: Callable[["StreamingExecutor"], None] | None = None):
        self.tip = tip
        self.ctx = (ctx or DataContext.get_current()).copy()
        self.on_progress = on_progress
        self.ops: list[PhysicalOp] = []
        self.started = time.monotonic()
        self.finished_at: float | None = None
        self._in_flight: dict[Any, tuple[PhysicalOp, Work | None, Any, int | None]] = {}
        self._pools: dict[int, ActorPool] = {}
        self._stages_refs: dict[int, Any] = {}

    # ------------------------------------------------------------------ setup
    def _setup(self) -> ExecutionState:
        if not juno.is_initialized():
            juno.init()
        cluster = juno.cluster_resources()
        limits = self.ctx.execution_options.resource_limits
        if limits.cpu is not None:
            cluster = dict(cluster, CPU=min(cluster.get("CPU", 0.0), limits.cpu))
        if limits.gpu is not None:
            cluster = dict(cluster, GPU=min(cluster.get("GPU", 0.0), limits.gpu))
        self.ops = plan(self.tip, self.ctx, cluster)
        store = limits.object_store_memory or \
            self.ctx.object_store_memory_fraction * cluster.get("object_store_memory", 2 << 30)
        cpus = cluster.get("CPU", 1.0) or 1.0
        self.consumers: dict[int, list[tuple[PhysicalOp, int]]] = {id(op): [] for op in self.ops}
        for op in self.ops:
            for index, upstream in enumerate(op.inputs):
                self.consumers[id(upstream)].append((op, index))
        self._state = ExecutionState(self.ops, Budget(store, max(2, int(cpus * 2))))
        return self._state

    # ------------------------------------------------------------------ the loop
    def execute(self) -> Iterator[RefBundle]:
        state = self._setup()
        sink = state.sink
        try:
            while True:
                self._route()
                while sink.outputs:
                    yield sink.outputs.popleft()
                if state.finished():
                    break
                progressed = self._run_barriers(state)
                progressed |= self._dispatch(state)
                self._report()
                if not self._in_flight:
                    if progressed:
                        continue
                    self._route()
                    if sink.outputs or state.finished():
                        continue
                    raise RuntimeError(f"the executor of {self.tip.name} stalled with nothing running; "
                                       f"operators: {[(op.name, op.completed()) for op in self.ops]}")
                self._wait_some()
        finally:
            self.finished_at = time.monotonic()
            self._report(final=True)
            self._shutdown()

    def _route(self) -> None:
        """Move each operator's outputs to its consumers; tell them when it has no more."""
        for op in self.ops[:-1]:
            consumers = self.consumers[id(op)]
            while op.outputs:
                bundle = op.outputs.popleft()
                for consumer, index in consumers:
                    if not consumer.stopped:
                        consumer.add_input(bundle, index)
            if op.completed():
                for consumer, index in consumers:
                    consumer.mark_input_done(index)

    def _dispatch(self, state: ExecutionState) -> bool:
        started = False
        for op in state.dispatch_order():
            if not isinstance(op, MapLikeOp):
                continue
            while op.has_work():
                peek = op.read_tasks[0].size_bytes if op.read_tasks else \
                    (op.input_queues[0][0].size_bytes if op.input_queues and op.input_queues[0] else 0)
                if not state.may_dispatch(op, peek or 0):
                    break
                actor_index = None
                if op.is_actor_pool:
                    pool = self._pool(op)
                    actor_index = pool.free_actor()
                    if actor_index is None:
                        break
                work = op.next_work()
                self._submit(op, work, actor_index, state)
                started = True
        return started

    def _submit(self, op: MapLikeOp, work: Work, actor_index: int | None, state: ExecutionState) -> None:
        if op.metrics.wall_started is None:
            op.metrics.wall_started = time.monotonic()
        sources = work.source if isinstance(work.source, list) else [work.source]  # blocks, or one read task
        target = self.ctx.target_max_block_size
        if actor_index is not None:
            pool = self._pools[id(op)]
            pool.busy[actor_index] += 1
            gen = pool.actors[actor_index].run.options(num_returns="streaming").remote(work.seq, target, *sources)
        else:
            fn = remote.map_task.options(**op.ray_remote_args)
            gen = fn.remote(self._stages_ref(op), work.seq, target, *sources)
        done_ref = gen.completed()
        self._in_flight[done_ref] = (op, work, gen, actor_index)
        self._state.in_flight_bytes[id(done_ref)] = op.expected_output_bytes(work.size_bytes)

    def _stages_ref(self, op: MapLikeOp) -> Any:
        ref = self._stages_refs.get(id(op))
        if ref is None:
            ref = self._stages_refs[id(op)] = juno.put(op.stages)
        return ref

    def _pool(self, op: MapLikeOp) -> ActorPool:
        pool = self._pools.get(id(op))
        if pool is None:
            pool = self._pools[id(op)] = ActorPool(op, self._stages_ref(op), self.ctx.actor_pool_start_timeout_s)
        return pool

    def _wait_some(self) -> None:
        refs = list(self._in_flight)
        ready, _ = juno.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            ready, _ = juno.wait(refs, num_returns=1, timeout=WAIT_S)
        for pool in self._pools.values():
            pool.check_started()
        for ref in ready:
            op, work, result, actor_index = self._in_flight.pop(ref)
            self._state.in_flight_bytes.pop(id(ref), None)
            if actor_index is not None:
                self._pools[id(op)].busy[actor_index] -= 1
            outputs = self._outputs(op, ref, result)
            if outputs is None:  # cancelled: a limit was reached
                op.finish_work(work.seq if work else 0, [])
                continue
            for bundle in outputs:
                if isinstance(op, MapLikeOp):
                    op.record_output(bundle.blocks[0][1])
            if isinstance(op, LimitOp):
                op.pending_cut = None
            op.finish_work(work.seq if work else 0, outputs, sum(m.exec_s for b in outputs for m in b.metadata))
            if op.completed() and op.metrics.wall_ended is None:
                op.metrics.wall_ended = time.monotonic()

    def _outputs(self, op: PhysicalOp, done_ref: Any, result: Any) -> list[RefBundle] | None:
        """The bundles a finished unit made (one per block); None if it was cancelled because
        nothing downstream needs it. A task's error is raised here."""
        try:
            if isinstance(result, tuple):  # a small task's (block ref, metadata ref)
                block_ref, meta_ref = result
                return [RefBundle(((block_ref, juno.get(meta_ref)),))]
            items = list(result)  # the generator has finished: its items are all there
            if len(items) % 2:
                juno.get(items[-1])  # the task raised after its last block: this raises its error
            metas = juno.get(items[1::2]) if items else []
        except juno.exceptions.TaskCancelledError:
            if op.stopped:
                return None
            raise
        return [RefBundle(((block, meta),)) for block, meta in zip(items[0::2], metas)]

    # ------------------------------------------------------------------ barriers, limits, unions
    def _run_barriers(self, state: ExecutionState) -> bool:
        progressed = False
        for op in self.ops:
            if isinstance(op, LimitOp):
                progressed |= self._run_limit(op)
            elif isinstance(op, BarrierOp):
                if op.kind == "union":
                    for queue, done in zip(op.input_queues, op.inputs_done):
                        while queue:
                            op.emit(queue.popleft())
                            progressed = True
                        if op.preserve_order and not done:
                            break  # in order: the next input's rows wait for this one's
                elif op.ready_to_run():
                    op.metrics.wall_started = time.monotonic()
                    bundles = [[b for b in q] for q in op.input_queues]
                    for q in op.input_queues:
                        q.clear()
                    outputs = self._zip(bundles) if op.kind == "zip" else op.fn(bundles[0], self.ctx)
                    op.ran = True
                    for bundle in outputs:
                        op.emit(bundle)
                    op.metrics.tasks_done += 1
                    op.metrics.wall_ended = time.monotonic()
                    progressed = True
        return progressed

    def _run_limit(self, op: LimitOp) -> bool:
        before = (op.passed, op.in_flight)
        op.take_inputs()
        if op.pending_cut is not None and op.in_flight == 0:
            bundle, keep = op.pending_cut
            refs, kept = [], 0
            for ref, meta in bundle.blocks:  # whole blocks first, then a cut of the one that crosses
                if kept + meta.num_rows <= keep:
                    refs.append((ref, meta))
                    kept += meta.num_rows
                    continue
                block_ref, meta_ref = remote.slice_block.options(num_returns=2).remote(ref, 0, keep - kept)
                if refs:
                    op.emit(RefBundle(tuple(refs)))
                op.in_flight += 1
                self._in_flight[meta_ref] = (op, None, (block_ref, meta_ref), None)
                break
            else:
                op.emit(RefBundle(tuple(refs)))
                op.pending_cut = None
        if op.reached:
            self._stop_upstream(op)
        return (op.passed, op.in_flight) != before

    def _stop_upstream(self, op: PhysicalOp) -> None:
        for upstream in op.inputs:
            if upstream.stopped or upstream.completed():
                continue
            upstream.stop()
            for done_ref, (owner, _work, result, _a) in list(self._in_flight.items()):
                if owner is upstream:
                    _cancel(done_ref, result)
            self._stop_upstream(upstream)

    def _zip(self, sides: list[list[RefBundle]]) -> list[RefBundle]:
        left = [(r, m) for b in sides[0] for r, m in b.blocks]
        right = [(r, m) for b in sides[1] for r, m in b.blocks]
        left_rows, right_rows = sum(m.num_rows for _, m in left), sum(m.num_rows for _, m in right)
        if left_rows != right_rows:
            raise ValueError(f"zip: the datasets have different numbers of rows ({left_rows} and {right_rows}); "
                             "zip pairs rows one to one, so both must have the same count")
        pending, start, index, offset = [], 0, 0, 0  # offset: rows of right[index] already used
        for ref, meta in left:
            need, parts, skip = meta.num_rows, [], offset
            j, used = index, offset
            while need > 0 and j < len(right):
                take = min(need, right[j][1].num_rows - used)
                parts.append(right[j][0])
                need -= take
                used += take
                if used == right[j][1].num_rows:
                    j, used = j + 1, 0
            index, offset = j, used
            pending.append(remote.zip_blocks.options(num_returns=2).remote(ref, skip, *parts))
            start += meta.num_rows
        metas = juno.get([m for _, m in pending])
        return [RefBundle(((b, m),)) for (b, _), m in zip(pending, metas)]

    # ------------------------------------------------------------------ end
    def _shutdown(self) -> None:
        for done_ref, (_op, _work, result, _a) in list(self._in_flight.items()):
            _cancel(done_ref, result)
        self._in_flight.clear()
        for pool in self._pools.values():
            pool.shutdown()
        self._pools.clear()
        self._stages_refs.clear()

    def operator_states(self) -> list[tuple[PhysicalOp, int]]:
        """Each operator with the number of actors its pool has (0 for tasks), for progress views."""
        return [(op, len(self._pools[id(op)].actors) if id(op) in self._pools else 0) for op in self.ops]

    def _report(self, final: bool = False) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self)
            except Exception:  # noqa: BLE001 - a display glitch never fails the run
                logger.debug("progress update failed", exc_info=True)


def _cancel(done_ref: Any, result: Any) -> None:
    """Cancel the task behind an in-flight unit (a map generator, or a small task's refs)."""
    try:
        juno.cancel(done_ref if isinstance(result, tuple) else result)
    except Exception:  # noqa: BLE001 - finished meanwhile, or the cluster is gone
        pass
