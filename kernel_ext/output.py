"""Route the output of remote work to the notebook cell that launched it.

A driver prints its workers' output lines as they arrive; in a kernel those would land
under whatever cell runs now. Here, when a task or actor call is submitted
(``juno.util.notebook.add_submit_hook``, on the submitting thread) we remember the kernel's current
parent message (the executing cell) against the task id, and the creating cell (or, for
an actor made elsewhere, the first caller's) against the actor id. Each line from a worker carries its task and actor id, so the
router (``juno.util.notebook.set_output_router``, on Juno's IO thread) writes it to the kernel's own
stdout/stderr ``OutStream`` with that cell as the thread's parent header: ipykernel
buffers output per parent and flushes it in order, so it lands live under the launching
cell even after that cell finished. Lines with no known cell (nested tasks, actors this
kernel neither created nor called) go to the cell running now.

High-rate output is throttled per cell (``set_rate_limit``): lines past the limit in a
one-second window are dropped and counted, and one note per burst says how many were left
out, so a flood never freezes the page.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Any

from juno.util import notebook

DEFAULT_MAX_LINES_PER_S = 200
DEFAULT_MAX_BYTES_PER_S = 64 * 1024
NOTE_EVERY_S = 10.0  # during a long flood, one note at most this often
MAX_TRACKED_TASKS = 100_000  # task id -> cell, oldest forgotten first
MAX_TRACKED_CELLS = 1_000  # cell -> task ids (for interrupts), oldest forgotten first
_WINDOW_S = 1.0

_lock = threading.Lock()
_router: "OutputRouter | None" = None
_disabled = False  # set by uninstall(): a later juno.init() must not switch routing back on


def set_rate_limit(lines_per_s: int = DEFAULT_MAX_LINES_PER_S, bytes_per_s: int = DEFAULT_MAX_BYTES_PER_S) -> None:
    """Throttle each cell's remote output to this many lines and bytes per second."""
    for name, value in (("lines_per_s", lines_per_s), ("bytes_per_s", bytes_per_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    OutputRouter.max_lines = lines_per_s
    OutputRouter.max_bytes = bytes_per_s


class _Throttle:
    """One cell's output budget; touched only on Juno's IO thread."""

    __slots__ = ("cell", "window_start", "lines", "bytes", "dropped", "burst_start", "last_drop")

    def __init__(self, cell: dict | None) -> None:
        self.cell = cell  # where its "left out" note goes
        self.window_start = time.monotonic()
        self.lines = self.bytes = self.dropped = 0
        self.burst_start = self.last_drop = 0.0


class OutputRouter:
    """Remembers which cell launched each task; writes worker lines under that cell."""

    max_lines = DEFAULT_MAX_LINES_PER_S
    max_bytes = DEFAULT_MAX_BYTES_PER_S

    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.kernel = ip.kernel
        self.stdout = sys.stdout  # the kernel's OutStreams (not a cell's %%capture replacement)
        self.stderr = sys.stderr
        self.routing = False  # track only (interrupts) until output.install()/attach()
        self.cw = None  # the connection (juno.util.notebook) it is hooked to
        self._lock = threading.Lock()
        self.task_cells: collections.OrderedDict[bytes, dict] = collections.OrderedDict()
        self.actor_cells: dict[bytes, dict] = {}
        self.cell_tasks: collections.OrderedDict[str, list[bytes]] = collections.OrderedDict()
        self.throttles: dict[str, _Throttle] = {}
        self._note_check_scheduled = False

    # ------------------------------------------------------------ submission side
    def current_cell(self) -> dict | None:
        """The execute request the kernel is running now (any thread), or None."""
        try:
            parent = self.kernel.get_parent("shell")
        except Exception:  # noqa: BLE001 - no request yet
            return None
        if not parent or parent.get("header", {}).get("msg_type") != "execute_request":
            return None
        return parent

    def on_submit(self, entry: Any) -> None:
        cell = self.current_cell()
        if cell is None:
            return
        msg_id = cell["header"]["msg_id"]
        with self._lock:
            if entry.task_id is None:  # an actor created (ActorCreation): output outside calls goes here
                self.actor_cells[entry.actor_id] = cell
                return
            self.task_cells[entry.task_id] = cell
            while len(self.task_cells) > MAX_TRACKED_TASKS:
                self.task_cells.popitem(last=False)
            if entry.actor_id is not None:
                self.actor_cells.setdefault(entry.actor_id, cell)
            tasks = self.cell_tasks.get(msg_id)
            if tasks is None:
                tasks = self.cell_tasks[msg_id] = []
                while len(self.cell_tasks) > MAX_TRACKED_CELLS:
                    self.cell_tasks.popitem(last=False)
            tasks.append(entry.task_id)

    def tasks_of_cell(self, msg_id: str) -> list[bytes]:
        with self._lock:
            return list(self.cell_tasks.get(msg_id, ()))

    def cell_of(self, task_id: bytes | None, actor_id: bytes | None) -> dict | None:
        with self._lock:
            cell = self.task_cells.get(task_id) if task_id is not None else None
            if cell is None and actor_id is not None:
                cell = self.actor_cells.get(actor_id)
            return cell

    # ------------------------------------------------------------ output side (Juno's IO thread)
    def route(self, entries: list) -> None:
        now = time.monotonic()
        for entry in entries:
            prefix, is_err, line = entry[0], entry[1], entry[2]
            task_id, actor_id = (entry[3], entry[4]) if len(entry) >= 5 else (None, None)
            cell = self.cell_of(task_id, actor_id)
            if not self._admit(cell, len(line) + len(prefix) + 4, now):
                continue
            self._write(self.stderr if is_err else self.stdout, cell, f"({prefix}) {line}\n")

    def _admit(self, cell: dict | None, size: int, now: float) -> bool:
        key = cell["header"]["msg_id"] if cell is not None else ""
        th = self.throttles.get(key)
        if th is None:
            th = self.throttles[key] = _Throttle(cell)
        if now - th.window_start >= _WINDOW_S:
            self._maybe_note(key, cell, th, now)
            th.window_start, th.lines, th.bytes = now, 0, 0
        if th.lines + 1 > self.max_lines or th.bytes + size > self.max_bytes:
            if not th.dropped:
                th.burst_start = now
            th.dropped += 1
            th.last_drop = now
            self._schedule_note_check()
            return False
        th.lines += 1
        th.bytes += size
        return True

    def _maybe_note(self, key: str, cell: dict | None, th: _Throttle, now: float) -> None:
        """Say how many lines were left out, once the burst is over (or every NOTE_EVERY_S)."""
        if not th.dropped:
            return
        if now - th.last_drop < _WINDOW_S and now - th.burst_start < NOTE_EVERY_S:
            return
        n, th.dropped = th.dropped, 0
        self._write(self.stdout, cell,
                    f"[juno] {n} line{'s' if n != 1 else ''} of remote output left out: more than "
                    f"{self.max_lines} lines or {self.max_bytes} bytes per second from this cell's work "
                    "(juno.kernel_ext.output.set_rate_limit changes the limit)\n")

    def _schedule_note_check(self) -> None:
        cw = self.cw
        if self._note_check_scheduled or cw is None:
            return
        self._note_check_scheduled = True
        notebook.call_later(_WINDOW_S, self._check_notes, cw)

    def _check_notes(self) -> None:
        self._note_check_scheduled = False
        now = time.monotonic()
        pending = False
        for key, th in list(self.throttles.items()):
            if th.dropped:
                self._maybe_note(key, th.cell, th, now)
                pending = pending or bool(th.dropped)
            elif now - th.window_start > 60 * _WINDOW_S:
                del self.throttles[key]  # an idle cell: forget its budget
        if pending:
            self._schedule_note_check()

    @staticmethod
    def _write(stream: Any, cell: dict | None, text: str) -> None:
        try:
            if cell is None or not hasattr(stream, "set_thread_parent"):
                stream.write(text)  # the cell running now
                return
            token = stream.set_thread_parent(cell)
            try:
                stream.write(text)
            finally:
                stream.reset_thread_parent(token)
        except Exception:  # noqa: BLE001 - a closed stream while the kernel stops
            pass


# ---------------------------------------------------------------- install / attach
def _kernel_shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    return ip if ip is not None and getattr(ip, "kernel", None) is not None else None


def router(ip: Any = None) -> "OutputRouter | None":
    """The kernel's router, made on first use (tracking only; routing is switched on by install/attach)."""
    global _router
    with _lock:
        if _router is None:
            ip = ip or _kernel_shell()
            if ip is None:
                return None
            _router = OutputRouter(ip)
        return _router


def _hook(r: OutputRouter, cw: Any) -> None:
    """Connect a router to a driver's connection (idempotent)."""
    if r.cw is not cw:
        r.cw = cw
        r._note_check_scheduled = False
    notebook.add_submit_hook(r.on_submit, cw)
    if r.routing:
        notebook.set_output_router(r.route, cw)


def attach(cw: Any) -> None:
    """Called as a driver starts: inside an ipykernel, route its output (unless uninstalled)."""
    if _disabled:
        return
    r = router()
    if r is None:
        return
    r.routing = True
    _hook(r, cw)


def track(cw: Any) -> None:
    """Record which cell launches which task (for interrupts) without routing output."""
    r = router()
    if r is not None:
        _hook(r, cw)


def install(ip: Any) -> None:
    """``%load_ext juno``: route remote output to the launching cell, now and after juno.init()."""
    global _disabled
    _disabled = False
    if getattr(ip, "kernel", None) is None:
        return  # plain IPython: worker lines already print where they belong
    r = router(ip)
    if r is None:
        return
    r.routing = True
    cw = notebook.connection()
    if cw is not None:
        _hook(r, cw)


def uninstall(ip: Any) -> None:
    """``%unload_ext juno``: print worker output as plain lines again."""
    global _disabled
    _disabled = True
    r = _router
    if r is None:
        return
    r.routing = False
    cw = r.cw
    if cw is not None and notebook.output_router(cw) == r.route:
        notebook.set_output_router(None, cw)
