"""``juno.widgets.progress``: live progress of futures (done / failed / running, rate, ETA).

    for ref in progress(refs):                   # or: with progress(refs): juno.get(refs)
        ...
    p = progress(refs, description="squares")   # then any juno.wait loop; it updates itself

Completion is learned from the owner's memory store callbacks (no polling of the cluster); a ticker thread
redraws at most ``1 / interval`` times a second and stops once the work has ended.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Iterator

from juno.widgets import formatting as fmt
from juno.widgets.live import LiveView, Ticker, kernel_shell

DEFAULT_INTERVAL_S = 0.25   # kernel: at most 4 widget updates a second
TEXT_INTERVAL_S = 1.0       # terminal: at most one line a second


class ProgressState:
    """The counts and derived figures (rate, ETA); pure, with an injectable clock."""

    def __init__(self, total: int | None = None, description: str = "",
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.description = description
        self.submitted = 0
        self.done = 0
        self.failed = 0
        self.exhausted = total is not None  # no more work will be added
        self._clock = clock
        self.started = clock()
        self.ended: float | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def running(self) -> int:
        return max(0, self.submitted - self.finished)

    @property
    def expected(self) -> int | None:
        """How many will finish in all: the given total, else what was submitted once the source ended."""
        if self.total is not None:
            return self.total
        return self.submitted if self.exhausted else None

    @property
    def complete(self) -> bool:
        expected = self.expected
        return expected is not None and self.finished >= expected and self.running == 0

    def record(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self.complete and self.ended is None:
            self.ended = self._clock()

    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else self._clock()) - self.started

    def rate(self) -> float | None:
        elapsed = self.elapsed()
        return self.finished / elapsed if elapsed > 0 and self.finished else None

    def eta(self) -> float | None:
        expected, rate = self.expected, self.rate()
        if self.complete:
            return 0.0
        if expected is None or not rate:
            return None
        return max(0, expected - self.finished) / rate

    def summary(self) -> str:
        total = self.expected
        counts = f"{self.finished}/{total if total is not None else '?'}"
        parts = [f"{counts} finished", f"{self.done} done", f"{self.failed} failed", f"{self.running} running",
                 fmt.format_rate(self.rate(), "task"), f"elapsed {fmt.format_duration(self.elapsed())}"]
        if not self.complete:
            parts.append(f"ETA {fmt.format_duration(self.eta())}")
        return ", ".join(parts)

    def text(self) -> str:
        head = f"{self.description}: " if self.description else ""
        return f"{head}{fmt.text_bar(fmt.fraction(self.finished, self.expected))} {self.summary()}"

    def html(self) -> str:
        expected = self.expected
        frac = fmt.fraction(self.finished, expected)
        failed_frac = (fmt.fraction(self.failed, expected) or 0.0) if expected else 0.0
        color = "#5cb85c" if self.complete and not self.failed else "#4c8bf5"
        title = f"<b>{fmt.escape(self.description)}</b> " if self.description else ""
        return (f'<div class="juno-progress">{title}'
                f"{fmt.html_bar(frac, label=self.summary(), color=color, failed_frac=failed_frac)}</div>")


def _value_failed(value: tuple) -> bool:
    """Whether a memory-store value is an error, read from its header only (no unpickling)."""
    kind = value[0]
    if kind == "e":
        return True
    if kind == "v":
        from juno.store import format as store_format

        try:
            flags, _, _ = store_format.unpack(memoryview(value[1]))
        except Exception:  # noqa: BLE001 - unreadable: get() will say why
            return True
        return bool(flags & store_format.FLAG_ERROR)
    return False  # in shared memory: errors are always stored inline


class Progress:
    """A live progress display of futures; see ``progress()``."""

    def __init__(self, refs_or_generator: Any = None, *, total: int | None = None, description: str = "",
                 interval: float = DEFAULT_INTERVAL_S, display: bool = True, stream: Any = None):
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be None or a non-negative int, got {total!r}")
        if not isinstance(description, str):
            raise TypeError(f"description must be a str, got {type(description).__name__}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.state = ProgressState(total, description)
        self._lock = threading.Lock()
        self._pending: dict[bytes, tuple[Any, Callable]] = {}  # oid -> (ref, store callback)
        self._iterable: Iterator | None = None
        self._refs: list = []  # a list source, for __iter__
        self._closed = False
        self._changed = True
        self._finished = threading.Event()
        self.view = LiveView(self.text, self.html)
        self._handle = None
        self._stream = stream
        in_kernel = kernel_shell() is not None
        self._text_throttle = fmt.Throttle(TEXT_INTERVAL_S) if not in_kernel else None
        self._init_source(refs_or_generator, total)
        if display and in_kernel:
            from IPython.display import display as ipy_display

            self._handle = ipy_display(self, display_id=True)
        self._ticker = Ticker(self._tick, interval, name="juno-progress").start()

    # ------------------------------------------------------------------ sources
    def _init_source(self, source: Any, total: int | None) -> None:
        from juno.object_ref import ObjectRef

        if source is None:
            self.state.exhausted = total is not None
            return
        if isinstance(source, ObjectRef):
            source = [source]
        if isinstance(source, (list, tuple)):
            for i, r in enumerate(source):
                if not isinstance(r, ObjectRef):
                    raise TypeError(f"progress() expected ObjectRefs, but item {i} is a {type(r).__name__}")
            if total is None:
                self.state.total = len(source)
            self._refs = list(source)
            self.state.exhausted = True
            self.add(source)
            return
        try:
            self._iterable = iter(source)
        except TypeError:
            raise TypeError("progress() expects a list of ObjectRefs, an ObjectRefGenerator or an iterable "
                            f"of ObjectRefs, got {type(source).__name__}") from None
        self.state.exhausted = False

    def add(self, refs: Any, *, last: bool = False) -> None:
        """Track more futures (e.g. ones submitted later in a ``juno.wait`` loop). Without a ``total``,
        the display is complete only once ``last=True`` says no more will come (or ``close()``)."""
        from juno.owner.core_worker import global_worker
        from juno.object_ref import ObjectRef

        refs = [refs] if isinstance(refs, ObjectRef) else list(refs)
        for i, r in enumerate(refs):
            if not isinstance(r, ObjectRef):
                raise TypeError(f"progress.add() expected ObjectRefs, but item {i} is a {type(r).__name__}")
        cw = global_worker()
        if cw is None and refs:
            raise RuntimeError("Juno is not running: call juno.init() before tracking futures.")
        for ref in refs:
            self._track(cw, ref)
        if last:
            self._no_more()

    def _track(self, cw: Any, ref: Any) -> None:
        oid = ref.binary()

        def ready(object_id: bytes, value: tuple) -> None:  # the IO thread: quick
            with self._lock:
                if self._pending.pop(object_id, None) is None:
                    return
                self.state.record(not _value_failed(value))
                self._changed = True
            self._maybe_finished()

        with self._lock:
            if oid in self._pending:
                return
            self.state.submitted += 1
            self._pending[oid] = (ref, ready)
            self._changed = True
        if not cw.owned.on_ready(oid, ready):
            cw.ensure_fetch(ref)

    def __iter__(self) -> Iterator:
        """Pass the source's items through, tracking each ObjectRef (others count as done when yielded)."""
        from juno.owner.core_worker import global_worker
        from juno.object_ref import ObjectRef

        if self._iterable is None:
            yield from self._refs
            return
        try:
            for item in self._iterable:
                if isinstance(item, ObjectRef):
                    self._track(global_worker(), item)
                else:
                    with self._lock:
                        self.state.submitted += 1
                        self.state.record(True)
                        self._changed = True
                yield item
        finally:
            self._no_more()

    def _no_more(self) -> None:
        """No more refs will be added: the work is complete once those tracked are."""
        with self._lock:
            self.state.exhausted = True
            if self.state.complete and self.state.ended is None:
                self.state.ended = self.state._clock()
            self._changed = True
        self._maybe_finished()

    # ------------------------------------------------------------------ rendering
    def text(self) -> str:
        with self._lock:
            return self.state.text()

    def html(self) -> str:
        with self._lock:
            return self.state.html()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return self.view.mimebundle()

    def __repr__(self) -> str:
        return f"Progress({self.text()})"

    def _emit(self, final: bool = False) -> None:
        if self._text_throttle is not None:
            if final or self._text_throttle.ready():
                stream = self._stream or sys.stdout
                print(self.text(), file=stream, flush=True)
            return
        self.view.refresh()
        if final and self._handle is not None:
            # Rewrite the output so a saved notebook keeps the final static HTML, not the first.
            self._handle.update(self)

    def _tick(self) -> bool:
        with self._lock:
            changed, self._changed = self._changed, False
            complete = self.state.complete
        if complete or self._closed:
            return False
        from juno.owner.core_worker import global_worker

        if global_worker() is None:  # juno.shutdown(): the pending futures will never finish here
            self._emit(final=True)
            return False
        if changed:
            self._emit()
        return True

    def _maybe_finished(self) -> None:
        with self._lock:
            complete = self.state.complete
        if complete and not self._finished.is_set():
            self._finished.set()
            self._ticker_stopped_final()

    def _ticker_stopped_final(self) -> None:
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.stop(timeout=0)  # never join from the IO thread
        threading.Thread(target=self._emit, kwargs={"final": True}, name="juno-progress-final",
                         daemon=True).start()

    # ------------------------------------------------------------------ lifetime
    @property
    def complete(self) -> bool:
        with self._lock:
            return self.state.complete

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every expected future finished (True) or ``timeout`` seconds passed (False)."""
        return self._finished.wait(timeout)

    def close(self) -> None:
        """Stop tracking and updating; the display keeps its last state."""
        from juno.owner.core_worker import global_worker

        if self._closed:
            return
        self._closed = True
        self._ticker.stop()
        cw = global_worker()
        with self._lock:
            pending, self._pending = self._pending, {}
        if cw is not None:
            for oid, (_, cb) in pending.items():
                cw.owned.remove_waiter(oid, cb)
        if not self._finished.is_set():
            self._emit(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.wait(timeout=5.0)  # the final callbacks may trail the caller's get() by a moment
        self.close()


def progress(refs_or_generator: Any = None, *, total: int | None = None, description: str = "",
             interval: float = DEFAULT_INTERVAL_S) -> Progress:
    """Show live progress of futures: a list of ObjectRefs, an ObjectRefGenerator, or any iterable of refs.

    In a kernel it displays an ipywidgets view (with static HTML for saved notebooks); in a terminal it
    prints a text line at most once a second. Use it as a context manager, iterate it, or keep it while a
    ``juno.wait`` loop runs; ``add(refs)`` tracks more. Updates are throttled to ``1 / interval`` per second.
    """
    return Progress(refs_or_generator, total=total, description=description, interval=interval)
