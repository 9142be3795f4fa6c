"""An execution's live progress, reported through ``juno.util.progress``.

One run per execution: the overall bar counts the rows the dataset has produced (against the
plan's row count where it is known), and the table has one row per operator: rows out,
throughput, tasks and actors running, rows queued at its input, and whether the memory budget
is holding it back. ``juno.widgets`` draws it (a widget in a notebook, a line in a terminal,
static HTML in a saved notebook); the dashboard lists it. ``DataContext.enable_progress_bars``
turns the display off, not the dashboard's record; ``enable_operator_progress_bars=False``
keeps only the overall bar. Executions inside a task or an actor (a
``streaming_split`` coordinator) are recorded but never displayed: their text would flood the
driver's output.
"""
from __future__ import annotations

import time

import juno
from juno.data.context import DataContext
from juno.data.plan import LogicalOp, known_num_rows
from juno.util import progress

COLUMNS = ["operator", "rows", "rows/s", "tasks", "actors", "queued rows", "state"]
UPDATE_S = 0.1  # the executor loop calls often; the table is rebuilt at most this often


def _in_driver() -> bool:
    try:
        ctx = juno.get_runtime_context()
        return ctx.get_task_id() is None and ctx.get_actor_id() is None
    except Exception:  # noqa: BLE001 - not connected yet: this is a driver about to init
        return True


class DataProgress:
    """Feeds one execution's state to a progress run; the executor calls it from its loop."""

    def __init__(self, tip: LogicalOp, ctx: DataContext, display: bool = True):
        names = [op.name for op in tip.chain()]
        title = " -> ".join(names if len(names) <= 4 else names[:2] + ["..."] + names[-1:])
        self.run = progress.open(kind="data", title=title, display=display and bool(ctx.enable_progress_bars) and _in_driver(),
                                 total=known_num_rows(tip), unit="rows")
        self._last = 0.0
        self._held: dict[int, int] = {}
        self._per_operator = bool(ctx.enable_operator_progress_bars)

    def __call__(self, executor) -> None:
        now = time.monotonic()
        if now - self._last < UPDATE_S:
            return
        self._last = now
        self._update(executor)

    def _update(self, executor) -> None:
        if not executor.ops:
            return
        self.run.update(done=executor.ops[-1].metrics.rows_out)
        if not self._per_operator:
            return
        rows = []
        for op, actors in executor.operator_states():
            m = op.metrics
            wall = (m.wall_ended or time.monotonic()) - m.wall_started if m.wall_started else 0.0
            held = m.held_back > self._held.get(id(op), 0)
            self._held[id(op)] = m.held_back
            state = "done" if op.completed() else "held back (memory)" if held else \
                "running" if op.in_flight else "waiting"
            queued = sum(b.num_rows for q in op.input_queues for b in q)
            rows.append([op.name, m.rows_out, round(m.rows_out / wall) if wall > 0 else "", op.in_flight, actors,
                         queued, state])
        self.run.set_table(COLUMNS, rows)

    def close(self, executor, error: BaseException | None) -> None:
        """The execution ended: finished (also when the consumer stopped early), or failed."""
        try:
            self._update(executor)
        finally:
            if error is None or isinstance(error, GeneratorExit):
                if self.run.snapshot().total is None or error is not None:  # unknown, or the consumer stopped early
                    self.run.set_total(self.run.snapshot().done)
                self.run.finish()
            else:
                self.run.fail("interrupted" if isinstance(error, KeyboardInterrupt) else describe(error))


def describe(error: BaseException) -> str:
    """One line for the run's error: a remote error's last line holds the user's message (its first
    is the task's header)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[-1] if ":" in lines[-1] else f"{type(error).__name__}: {lines[-1]}"
