"""The end of a worker's log file, for the dashboard (a node manager's ``read_log`` RPC).

Workers write stdout and stderr to ``<session>/logs/worker-<first 12 hex of id>.log`` on
their node (runtime/node/worker_pool.py). Only the last ``max_bytes`` of the file are read,
so asking for the tail of a log of gigabytes costs the node as little as a small one.
"""
from __future__ import annotations

import glob
import os

MAX_TAIL_BYTES = 4 << 20  # the most a caller may ask for


def _this_nodes_workers(manager) -> dict[str, int | None]:
    """worker id hex -> pid of the workers this node started (alive or recently exited)."""
    out = {w.worker_id.hex(): w.pid for w in manager.pool.workers.values()}
    for row in manager.exited_workers:
        if row.get("worker_id") is not None and row.get("worker_type", "WORKER") == "WORKER":
            out.setdefault(row["worker_id"].hex(), row.get("pid"))
    return out


def find_worker(manager, key: str | int) -> tuple[list[str], dict[str, int | None], bool]:
    """(matching worker id hexes, id -> pid, whether they are this node's) for a hex prefix or pid.
    Files of the log folder count too (a worker exited long ago), but as not known to this node."""
    workers = _this_nodes_workers(manager)
    if isinstance(key, int):
        return [wid for wid, pid in workers.items() if pid == key], workers, True
    key = key.lower()
    matches = [wid for wid in workers if wid.startswith(key)]
    if matches:
        return matches, workers, True
    prefix = key[:12]
    paths = glob.glob(os.path.join(glob.escape(manager.log_dir), f"worker-{prefix}*.log"))
    return [os.path.basename(p)[len("worker-"):-len(".log")] for p in paths], {}, False


def tail_file(path: str, tail_lines: int, max_bytes: int) -> tuple[list[str], bool]:
    """The last ``tail_lines`` lines within the last ``max_bytes`` bytes; and whether more came before."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - max_bytes)
        f.seek(start)
        data = f.read(size - start)
    if start > 0:  # began inside a line: drop the part
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
    lines = data.decode(errors="replace").splitlines()
    truncated = start > 0 or len(lines) > tail_lines
    return (lines[-tail_lines:] if tail_lines > 0 else []), truncated


def read_log(manager, key: str | int, tail_lines: int, max_bytes: int) -> dict | None:
    """The tail of one worker's log on this node: {worker_id, pid, path, lines, truncated, known}
    (``known``: the worker is this node's, not only a file in a log folder nodes share), or
    {"ambiguous": [ids]} when a prefix names several workers, or None when none matches."""
    matches, pids, known = find_worker(manager, key)
    if not matches:
        return None
    if len(matches) > 1:
        return {"ambiguous": sorted(matches)}
    worker_id = matches[0]
    path = os.path.join(manager.log_dir, f"worker-{worker_id[:12]}.log")
    max_bytes = max(1, min(int(max_bytes), MAX_TAIL_BYTES))
    try:
        lines, truncated = tail_file(path, max(0, int(tail_lines)), max_bytes)
    except FileNotFoundError:
        lines, truncated = [], False
    return {"worker_id": worker_id, "pid": pids.get(worker_id), "path": path, "lines": lines,
            "truncated": truncated, "known": known, "node_id": manager.node_id}
