"""What an execution did, per operator: rows, blocks, bytes, task time and wall time (``ds.stats()``)."""
from __future__ import annotations

from juno.data.execution.operators import PhysicalOp
from juno.util.notebook import format_bytes


def summarize(ops: list[PhysicalOp], wall_s: float | None) -> str:
    """Readable text, one paragraph per operator, as ``Dataset.stats()`` prints it."""
    if not ops:
        return "This dataset has not been executed yet: stats() shows what its last execution did."
    lines = []
    for index, op in enumerate(ops):
        m = op.metrics
        wall = (m.wall_ended - m.wall_started) if m.wall_started and m.wall_ended else None
        lines.append(f"Operator {index} {op.name}: {m.tasks_done} tasks executed, {m.blocks_out} blocks produced"
                     + (f" in {wall:.2f}s" if wall is not None else ""))
        lines.append(f"* Output rows: {m.rows_out:,} ({format_bytes(m.bytes_out)})")
        if m.tasks_done and m.exec_s:
            lines.append(f"* Task time: {m.exec_s:.2f}s in all, {m.exec_s / m.tasks_done * 1000:.1f}ms per task")
        if wall:
            lines.append(f"* Throughput: {m.rows_out / wall:,.0f} rows/s")
        if m.held_back:
            lines.append(f"* Held back by the memory budget {m.held_back} times")
        lines.append("")
    if wall_s is not None:
        rows = ops[-1].metrics.rows_out
        lines.append(f"Dataset: {rows:,} rows in {wall_s:.2f}s" + (f" ({rows / wall_s:,.0f} rows/s)" if wall_s else ""))
    return "\n".join(lines).rstrip()
