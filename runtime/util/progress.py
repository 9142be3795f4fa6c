"""``juno.util.progress``: how a library reports a run (a Data pipeline, a Train run, a Tune sweep...).

    from juno.util import progress
    with progress.open(kind="data", title="Dataset.map_batches(f)") as run:
        run.set_total(2_000_000, unit="rows")
        run.advance(done=10_000)                         # from any thread, as often as you like
        run.set_table(["operator", "rows"], [["map_batches(f)", 10_000]])
        run.add_point("loss", x=step, y=value)           # chart points
        run.set_fields(iteration=3)                       # free key/values shown as one line

A run is state plus a stream of typed events (:class:`RunOpened`, :class:`RunUpdated`,
:class:`RunClosed`, each carrying a :class:`RunSnapshot`) sent to the registered sinks. The
default sinks are the display (``juno.widgets`` renders it: a widget in a kernel, a text line in a
terminal, static HTML in a saved notebook) and the cluster publisher (the dashboard and
``juno.util.state.list_library_runs``). Updates are coalesced: a sink sees a run at most once per
its ``interval`` (display 0.25 s in a kernel, 1 s in a terminal; cluster 1 s), always its latest
state, and always its final state: ``finish()``/``fail()`` deliver it at once. A run ends finished
or failed exactly once; updates after that are ignored. Nothing here imports ipywidgets.
"""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import math
import os
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

logger = logging.getLogger("juno.progress")

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
MAX_TABLE_ROWS = 200      # rows kept of a run's table (the rest are counted as dropped)
MAX_SERIES_POINTS = 500   # points kept per chart series (the oldest go first)
MAX_SERIES = 20
_SCALARS = (str, int, float, bool, type(None))

__all__ = ["open", "ProgressRun", "RunSnapshot", "RunState", "Pacer", "RunOpened", "RunUpdated", "RunClosed",
           "ProgressSink", "add_sink", "remove_sink", "sinks", "set_display_enabled", "display_enabled",
           "RUNNING", "FINISHED", "FAILED"]


# ============================================================================ snapshots and events
@dataclasses.dataclass(frozen=True)
class RunSnapshot:
    """A run's whole state at one moment: what sinks render and what the cluster keeps."""
    run_id: str
    kind: str
    title: str
    state: str = RUNNING
    done: float = 0
    failed: float = 0
    total: float | None = None
    unit: str = "it"
    columns: tuple = ()
    rows: tuple = ()
    rows_dropped: int = 0
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    series: Mapping[str, tuple] = dataclasses.field(default_factory=dict)  # name -> ((x, y), ...)
    error: str | None = None
    start_time: float = 0.0       # wall clock (time.time())
    end_time: float | None = None
    elapsed_s: float = 0.0
    version: int = 0
    job_id: str = ""

    @property
    def ended(self) -> bool:
        return self.state != RUNNING

    @property
    def fraction(self) -> float | None:
        """(done + failed)/total in [0, 1]: how much of the work is over; None while the total is unknown."""
        if not self.total or self.total <= 0:
            return None
        return max(0.0, min(1.0, (self.done + self.failed) / self.total))

    @property
    def rate(self) -> float | None:
        """Units done per second over the run so far; None before the first."""
        return self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate; 0 once ended; None when unknown."""
        if self.ended:
            return 0.0
        rate = self.rate
        if self.total is None or not rate:
            return None
        return max(0.0, self.total - self.done - self.failed) / rate

    def to_dict(self) -> dict:
        """Plain JSON-able data (lists, not tuples): what the publisher sends and the dashboard shows."""
        out = dataclasses.asdict(self)
        out["columns"] = list(self.columns)
        out["rows"] = [list(r) for r in self.rows]
        out["fields"] = dict(self.fields)
        out["series"] = {name: [list(p) for p in pts] for name, pts in self.series.items()}
        out["rate"] = self.rate
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSnapshot":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["columns"] = tuple(kw.get("columns") or ())
        kw["rows"] = tuple(tuple(r) for r in kw.get("rows") or ())
        kw["series"] = {n: tuple(tuple(p) for p in pts) for n, pts in (kw.get("series") or {}).items()}
        return cls(**kw)


@dataclasses.dataclass(frozen=True)
class RunOpened:
    """The first event of a run; ``display`` says whether the run asked to be displayed."""
    snapshot: RunSnapshot
    display: bool


@dataclasses.dataclass(frozen=True)
class RunUpdated:
    snapshot: RunSnapshot


@dataclasses.dataclass(frozen=True)
class RunClosed:
    """The last event of a run: its final snapshot, finished or failed."""
    snapshot: RunSnapshot


class ProgressSink(Protocol):
    """Receives every run's events. ``interval``: the fewest seconds between two events of one run it
    wants (read when a run opens). ``handle`` runs on the run's thread or the progress thread: quick,
    and what it raises is logged and stops that run's events to it, never the user's work."""
    interval: float

    def handle(self, event: RunOpened | RunUpdated | RunClosed) -> None: ...


# ============================================================================ the pure state
def _number(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        kind = "None or a " if allow_none else "a "
        raise ValueError(f"{name} must be {kind}non-negative number, got {value!r}")
    return value


def _cell(value: Any) -> Any:
    """A table cell or field value as JSON-able data: scalars as they are, anything else as str()."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, _SCALARS) else str(value)


class RunState:
    """One run's state and its changes, without threads or I/O (the clocks are injected).

    Each change bumps ``version``; changes after the run ended are ignored (they return False), so
    a straggling executor thread can never reopen a finished run. Changes only set attributes (a
    run may count 100k updates a second); ``snapshot()`` builds the immutable view."""

    def __init__(self, run_id: str, kind: str, title: str, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, job_id: str = ""):
        for name, value in (("kind", kind), ("title", title)):
            if not isinstance(value, str):
                raise TypeError(f"progress.open(): {name} must be a str, got {type(value).__name__}")
        if not kind:
            raise ValueError("progress.open(): kind must name the library, e.g. kind='data'")
        self._clock, self._wall = clock, wall_clock
        self.run_id, self.kind, self.title, self.job_id = run_id, kind, title, job_id
        self.state = RUNNING
        self.done: float = 0
        self.failed: float = 0
        self.total: float | None = None
        self.unit = "it"
        self.columns: tuple = ()
        self.rows: tuple = ()
        self.rows_dropped = 0
        self.fields: dict[str, Any] = {}
        self.series: dict[str, list] = {}
        self.error: str | None = None
        self.start_time = wall_clock()
        self.end_time: float | None = None
        self._started = clock()
        self._ended_at: float | None = None
        self.version = 0

    @property
    def ended(self) -> bool:
        return self.state != RUNNING

    def set_total(self, total: float | None, unit: str | None = None) -> bool:
        total = _number("total", total, allow_none=True)
        if unit is not None and not isinstance(unit, str):
            raise TypeError(f"unit must be a str such as 'rows', got {type(unit).__name__}")
        if self.state != RUNNING:
            return False
        self.total = total
        if unit is not None:
            self.unit = unit
        self.version += 1
        return True

    def update(self, done: float | None = None, failed: float | None = None) -> bool:
        """Set the overall counts (absolute); a count left None keeps its value."""
        if done is not None:
            _number("done", done)
        if failed is not None:
            _number("failed", failed)
        if self.state != RUNNING:
            return False
        if done is not None:
            self.done = done
        if failed is not None:
            self.failed = failed
        self.version += 1
        return True

    def advance(self, done: float = 0, failed: float = 0) -> bool:
        """Add to the overall counts."""
        if type(done) is not int or done < 0:  # ints skip the full check: this is the hot call
            _number("done", done)
        if type(failed) is not int or failed < 0:
            _number("failed", failed)
        if self.state != RUNNING:
            return False
        self.done += done
        self.failed += failed
        self.version += 1
        return True

    def set_table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], dropped: int = 0) -> bool:
        """Replace the table; ``dropped``: rows the caller left out itself (shown as "N more")."""
        if isinstance(columns, str) or not columns or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns must be a non-empty list of str, got {columns!r}")
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise ValueError(f"dropped must be a non-negative int (rows left out), got {dropped!r}")
        cols = tuple(columns)
        kept = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or len(row) != len(cols):
                raise ValueError(f"table row {i} has {len(row)} cells, but there are {len(cols)} columns "
                                 f"({', '.join(cols)})")
            if len(kept) < MAX_TABLE_ROWS:
                kept.append(tuple(_cell(c) for c in row))
            else:
                dropped += 1
        if self.state != RUNNING:
            return False
        self.columns, self.rows, self.rows_dropped = cols, tuple(kept), dropped
        self.version += 1
        return True

    def set_series(self, series: Mapping[str, Iterable[Sequence[float]]]) -> bool:
        """Replace every chart series at once (a library that charts the best few of many, say)."""
        if not isinstance(series, Mapping):
            raise TypeError(f"series must be a dict of name -> [(x, y), ...], got {type(series).__name__}")
        if len(series) > MAX_SERIES:
            raise ValueError(f"a run holds at most {MAX_SERIES} chart series, got {len(series)}")
        new: dict[str, list] = {}
        for name, points in series.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"series names must be non-empty str, got {name!r}")
            try:
                pts = [(float(x), float(y)) for x, y in points]
            except (TypeError, ValueError):
                raise TypeError(f"set_series({name!r}): points must be (x, y) pairs of numbers") from None
            new[name] = pts[-MAX_SERIES_POINTS:]
        if self.state != RUNNING:
            return False
        self.series = new
        self.version += 1
        return True

    def add_point(self, series: str, x: float, y: float) -> bool:
        if not isinstance(series, str) or not series:
            raise TypeError(f"series must be a non-empty str, got {series!r}")
        try:
            point = (float(x), float(y))
        except (TypeError, ValueError):
            raise TypeError(f"add_point({series!r}): x and y must be numbers, got {x!r} and {y!r}") from None
        if self.state != RUNNING:
            return False
        if series not in self.series and len(self.series) >= MAX_SERIES:
            raise ValueError(f"a run holds at most {MAX_SERIES} chart series; {series!r} would be one more")
        points = self.series.setdefault(series, [])
        points.append(point)
        if len(points) > MAX_SERIES_POINTS:
            del points[0]
        self.version += 1
        return True

    def set_fields(self, fields: Mapping[str, Any]) -> bool:
        """Merge key/values into the fields line (a value of None removes its key)."""
        for key in fields:
            if not isinstance(key, str):
                raise TypeError(f"field names must be str, got {key!r}")
        if self.state != RUNNING:
            return False
        for key, value in fields.items():
            if value is None:
                self.fields.pop(key, None)
            else:
                self.fields[key] = _cell(value)
        self.version += 1
        return True

    def finish(self) -> bool:
        """End the run as finished; with a known total the counts show it all done."""
        if self.state != RUNNING:
            return False
        if self.total is not None and self.done + self.failed < self.total:
            self.done = self.total - self.failed  # never a half-filled bar after success
        return self._end(FINISHED)

    def fail(self, error: str) -> bool:
        if self.state != RUNNING:
            return False
        self.error = str(error) or "failed"
        return self._end(FAILED)

    def _end(self, state: str) -> bool:
        self.state = state
        self._ended_at = self._clock()
        self.end_time = self._wall()
        self.version += 1
        return True

    def snapshot(self) -> RunSnapshot:
        end = self._ended_at if self._ended_at is not None else self._clock()
        return RunSnapshot(
            run_id=self.run_id, kind=self.kind, title=self.title, state=self.state, done=self.done,
            failed=self.failed, total=self.total, unit=self.unit, columns=self.columns, rows=self.rows,
            rows_dropped=self.rows_dropped, fields=dict(self.fields),
            series={n: tuple(p) for n, p in self.series.items()}, error=self.error, start_time=self.start_time,
            end_time=self.end_time, elapsed_s=max(0.0, end - self._started), version=self.version,
            job_id=self.job_id)


class Pacer:
    """When one sink may next see one run: at most once per ``interval``, only when something changed.

    Pure: the caller passes the time and the run's version."""

    def __init__(self, interval: float):
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ValueError(f"a sink's interval must be a number of seconds >= 0, got {interval!r}")
        self.interval = float(interval)
        self.sent_version = -1
        self.sent_at: float | None = None

    def due(self, version: int, now: float) -> bool:
        return version > self.sent_version and (self.sent_at is None or now - self.sent_at >= self.interval)

    def next_time(self, version: int) -> float | None:
        """When the pending change may go out (None: nothing pending)."""
        if version <= self.sent_version:
            return None
        return -math.inf if self.sent_at is None else self.sent_at + self.interval

    def sent(self, version: int, now: float) -> None:
        self.sent_version, self.sent_at = version, now


# ============================================================================ sinks registry
_sinks: list | None = None
_sinks_lock = threading.Lock()
_display_enabled = True


def _default_sinks() -> list:
    from juno.widgets.run_view import DisplaySink

    return [DisplaySink(), ClusterPublisher()]


def sinks() -> list:
    """The registered sinks (the display and the cluster publisher unless removed)."""
    global _sinks
    with _sinks_lock:
        if _sinks is None:
            _sinks = _default_sinks()
        return list(_sinks)


def add_sink(sink: ProgressSink) -> None:
    """Send the events of runs opened from now on to ``sink`` too."""
    if not callable(getattr(sink, "handle", None)):
        raise TypeError(f"a progress sink needs a handle(event) method, got {type(sink).__name__}")
    Pacer(getattr(sink, "interval", None))  # checks the interval
    sinks()
    with _sinks_lock:
        _sinks.append(sink)


def remove_sink(sink: ProgressSink) -> None:
    """Stop sending runs opened from now on to ``sink`` (a run already open keeps its sinks)."""
    sinks()
    with _sinks_lock:
        if sink in _sinks:
            _sinks.remove(sink)


def set_display_enabled(enabled: bool) -> None:
    """Process-wide switch of the display for runs opened with ``display=None`` (the default)."""
    global _display_enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_display_enabled() takes True or False, got {enabled!r}")
    _display_enabled = enabled


def display_enabled() -> bool:
    return _display_enabled


# ============================================================================ runs
class ProgressRun:
    """A run in progress; see :func:`open`. Every method is thread-safe and cheap: the sinks are
    called from the progress thread at their own pace, never from ``advance``/``update``."""

    def __init__(self, state: RunState, run_sinks: Sequence[ProgressSink], display: bool,
                 clock: Callable[[], float] = time.monotonic):
        self._state = state
        self._clock = clock
        self._lock = threading.Lock()           # the state
        self._deliver_lock = threading.Lock()   # one delivery at a time, in order
        self._targets = [(s, Pacer(getattr(s, "interval", 1.0))) for s in run_sinks]
        self._flagged = False  # waiting for the progress thread
        self._closed = False
        self.run_id = state.run_id
        snap = self.snapshot()
        with self._deliver_lock:
            self._send(RunOpened(snap, display), snap.version)

    # ------------------------------------------------------------------ updates
    def _apply(self, method: str, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            changed = getattr(self._state, method)(*args, **kwargs)
        if changed and not self._flagged:
            self._flagged = True
            _flusher.wake(self)

    def set_total(self, total: float | None, unit: str | None = None) -> None:
        """The expected count (None: unknown) and its unit ("rows", "trials", ...)."""
        self._apply("set_total", total, unit)

    def advance(self, done: float = 0, failed: float = 0) -> None:
        """Add to the overall counts."""
        with self._lock:
            changed = self._state.advance(done, failed)
        if changed and not self._flagged:
            self._flagged = True
            _flusher.wake(self)

    def update(self, done: float | None = None, failed: float | None = None) -> None:
        """Set the overall counts (absolute); a count left None keeps its value."""
        self._apply("update", done, failed)

    def set_table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], dropped: int = 0) -> None:
        """Replace the run's table (e.g. one row per operator); cells are scalars, others shown as str().
        ``dropped``: rows the library left out itself (counted with those past MAX_TABLE_ROWS)."""
        self._apply("set_table", columns, rows, dropped)

    def set_series(self, series: Mapping[str, Iterable[Sequence[float]]]) -> None:
        """Replace every chart series: ``{name: [(x, y), ...]}`` (at most MAX_SERIES, the last 500 points each)."""
        self._apply("set_series", series)

    def add_point(self, series: str, x: float, y: float) -> None:
        """Append a point to a chart series (the last 500 points per series are kept)."""
        self._apply("add_point", series, x, y)

    def set_fields(self, **fields: Any) -> None:
        """Key/values shown as one line (``iteration=3``); a value of None removes the key."""
        self._apply("set_fields", fields)

    def snapshot(self) -> RunSnapshot:
        with self._lock:
            return self._state.snapshot()

    @property
    def state(self) -> str:
        return self.snapshot().state

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """End the run as finished (the counts fill a known total) and deliver the final state now."""
        self._close("finish")

    def fail(self, error: BaseException | str) -> None:
        """End the run as failed with ``error`` (an exception shows as ``Type: message``)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self._close("fail", str(error))

    def _close(self, method: str, *args: Any) -> None:
        with self._lock:
            getattr(self._state, method)(*args)
            snap = self._state.snapshot()
        with self._deliver_lock:
            if self._closed:
                return
            self._closed = True
            self._send(RunClosed(snap), snap.version)
        _flusher.forget(self)

    def __enter__(self) -> "ProgressRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.finish()
        else:
            self.fail(exc)  # the exception goes on

    def __repr__(self) -> str:
        s = self.snapshot()
        return f"ProgressRun({s.kind!r}, {s.title!r}, state={s.state!r}, done={s.done:g})"

    # ------------------------------------------------------------------ delivery
    def _pump(self, now: float) -> float | None:
        """The progress thread's turn: send what is due; when the next pending change may go out."""
        self._flagged = False
        with self._deliver_lock:
            if self._closed:
                return None
            snap = self.snapshot()
            nxt = None
            for sink, pacer in list(self._targets):
                if pacer.due(snap.version, now):
                    self._deliver(sink, RunUpdated(snap))
                    pacer.sent(snap.version, now)
                t = pacer.next_time(snap.version)
                if t is not None:
                    nxt = t if nxt is None else min(nxt, t)
            return nxt

    def _send(self, event: Any, version: int) -> None:
        """Every sink gets ``event`` now, whatever its pace (the first and the last event)."""
        now = self._clock()
        for sink, pacer in list(self._targets):
            self._deliver(sink, event)
            pacer.sent(version, now)

    def _deliver(self, sink: Any, event: Any) -> None:
        try:
            sink.handle(event)
        except Exception:  # noqa: BLE001 - a sink's failure never breaks the user's work
            logger.warning("progress sink %r failed; it gets no more events of run %s", sink, self.run_id,
                           exc_info=True)
            self._targets = [(s, p) for s, p in self._targets if s is not sink]


class _Flusher:
    """The one progress thread: sends each open run's pending changes when its sinks' pace allows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: dict[ProgressRun, float] = {}  # run -> when to pump it
        self._open: set[ProgressRun] = set()
        self._thread: threading.Thread | None = None

    def register(self, run: ProgressRun) -> None:
        with self._cond:
            self._open.add(run)

    def wake(self, run: ProgressRun) -> None:
        with self._cond:
            if run not in self._open:
                return
            self._waiting[run] = -math.inf
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="juno-progress", daemon=True)
                self._thread.start()
            self._cond.notify()

    def forget(self, run: ProgressRun) -> None:
        with self._cond:
            self._open.discard(run)
            self._waiting.pop(run, None)

    def open_runs(self) -> list[ProgressRun]:
        with self._cond:
            return list(self._open)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._waiting:
                        if not self._open:
                            self._thread = None  # nothing open: the thread ends, the next run starts one
                            return
                        self._cond.wait(5.0)
                        continue
                    now = self._clock()
                    due = [r for r, t in self._waiting.items() if t <= now]
                    if due:
                        for r in due:
                            del self._waiting[r]
                        break
                    self._cond.wait(min(self._waiting.values()) - now)
            for run in due:
                nxt = run._pump(self._clock())
                if nxt is not None:
                    with self._cond:
                        if run in self._open:
                            self._waiting[run] = min(self._waiting.get(run, math.inf), nxt)


_flusher = _Flusher()
_run_ids = itertools.count(1)


def open(kind: str, title: str = "", *, display: bool | None = None, total: float | None = None,
         unit: str | None = None) -> ProgressRun:
    """Open a run of a library (``kind``: "data", "train", "tune", "serve", "rl" ...) titled ``title``.

    ``display``: None follows :func:`set_display_enabled` (on by default); False keeps this run off
    the screen (it is still published to the cluster). Use it as a context manager (finished on
    success, failed on an exception, which goes on) or call ``finish()``/``fail()``.
    """
    if display is not None and not isinstance(display, bool):
        raise TypeError(f"display must be True, False or None, got {display!r}")
    run_id = f"{os.getpid():x}-{next(_run_ids)}-{os.urandom(3).hex()}"
    state = RunState(run_id, kind, title)
    if total is not None or unit is not None:
        state.set_total(total, unit)
    run = ProgressRun(state, sinks(), _display_enabled if display is None else display)
    _flusher.register(run)
    return run


@atexit.register
def _fail_open_runs() -> None:
    """A process that exits with runs open ends them failed: no run is left looking half done."""
    for run in _flusher.open_runs():
        run.fail("the process exited before the run ended")


# ============================================================================ the cluster publisher
class ClusterPublisher:
    """Publishes each run's snapshots to the connected cluster's GCS (``list_library_runs`` and the
    dashboard read them there), at most once a second; the final one waits for the GCS's answer so
    a finished run is listed as finished as soon as ``finish()`` returns. Without a connected
    cluster it does nothing."""

    interval = 1.0
    final_timeout_s = 2.0

    def handle(self, event: RunOpened | RunUpdated | RunClosed) -> None:
        import juno

        if not juno.is_initialized():
            return
        from juno.owner.core_worker import global_worker

        cw = global_worker()
        if cw is None:
            return
        data = event.snapshot.to_dict()
        if not data["job_id"]:
            data["job_id"] = juno.get_runtime_context().get_job_id()
        if isinstance(event, RunClosed):
            try:
                cw.gcs_call("library_run_publish", data, timeout=self.final_timeout_s)
            except Exception:  # noqa: BLE001 - the GCS is away: the display still ends right
                logger.debug("could not publish the final state of run %s", data["run_id"], exc_info=True)
        else:
            cw.notify_any_thread(cw.gcs_address, "library_run_publish", data)
