"""Stream a worker's print output to the driver, each line tagged with its source.

``sys.stdout``/``sys.stderr`` are replaced by line buffers that know which task
or actor is running (through the task context, so threaded and async actors
tag lines correctly) and ship complete lines to that job's driver in batches.
Every line also lands in the worker's log file (the dashboard's logs view reads it),
as does anything written straight to the file descriptors.
"""
from __future__ import annotations

import io
import os
import sys
import threading

from juno.owner.core_worker import CoreWorker, current_task


class _Forwarder:
    """Collects tagged lines and flushes them to drivers from the IO thread."""

    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.pending: dict[str, list] = {}
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()  # held from taking the lines until they are sent
        self.scheduled = False

    def add(self, log_to: str, prefix: str, is_err: bool, line: str, task_id: bytes | None = None,
            actor_id: bytes | None = None) -> None:
        # (prefix, is_err, line, task_id, actor_id): the ids let a notebook driver route the line
        # to the cell that launched the task (juno.kernel_ext.output); task_id is the root task the
        # driver submitted, for a nested task
        with self.lock:
            self.pending.setdefault(log_to, []).append((prefix, is_err, line, task_id, actor_id))
            if self.scheduled:
                return
            self.scheduled = True
        self.cw.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send the lines collected so far. Any thread: the executor flushes before it sends a
        task's result, so that a driver has the lines a task printed before its result (the
        lock makes it wait for lines another thread took and is still sending)."""
        if not (self.pending or self.flush_lock.locked()):
            return  # no lines, and none another thread took is still being sent
        with self.flush_lock:
            with self.lock:
                pending, self.pending = self.pending, {}
                self.scheduled = False
            for address, entries in pending.items():
                self.cw.send_any_thread(address, ("log", entries))


class _TaggedStream(io.TextIOBase):
    def __init__(self, forwarder: _Forwarder, fallback, is_err: bool):
        self._forwarder = forwarder
        self._fallback = fallback
        self._is_err = is_err
        self._partial = threading.local()
        self._pid = os.getpid()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return "utf-8"

    def fileno(self) -> int:
        return self._fallback.fileno()

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        buf = getattr(self._partial, "buf", "") + text
        if "\n" not in buf:
            self._partial.buf = buf
            return len(text)
        *lines, rest = buf.split("\n")
        self._partial.buf = rest
        self._emit(lines)
        return len(text)

    def flush(self) -> None:
        buf = getattr(self._partial, "buf", "")
        if buf:
            self._partial.buf = ""
            self._emit([buf])
        self._fallback.flush()

    def _emit(self, lines: list[str]) -> None:
        # Every line lands in the worker's log file (as Ray's worker logs do: the dashboard reads
        # it from the node), and goes to the driver whose task printed it, if any.
        self._fallback.write("".join(line + "\n" for line in lines))
        self._fallback.flush()
        cw = self._forwarder.cw
        ctx = current_task.get() or cw.default_context
        if ctx is None or not ctx.log_to:
            return
        prefix = f"{ctx.name or 'worker'} pid={self._pid}"
        for line in lines:
            self._forwarder.add(ctx.log_to, prefix, self._is_err, line, ctx.root or ctx.task_id, ctx.actor_id)


def install_output_capture(cw: CoreWorker) -> _Forwarder:
    forwarder = _Forwarder(cw)
    sys.stdout = _TaggedStream(forwarder, sys.__stdout__, False)
    sys.stderr = _TaggedStream(forwarder, sys.__stderr__, True)
    return forwarder
