"""Pure formatting helpers shared by every Juno widget: numbers, durations, bars, tables, throttling.

Nothing here imports IPython or ipywidgets, so the text and static-HTML fallbacks work everywhere
(terminals, nbconvert, viewers without widget support) and are tested without a kernel.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from juno.util.notebook import format_bytes  # noqa: F401 - one byte formatter for the CLI and the widgets

BAR_WIDTH = 30


def escape(value: Any) -> str:
    """HTML-escape any value's str(); every user-supplied string goes through this."""
    return html.escape(str(value), quote=True)


def format_duration(seconds: float | None) -> str:
    """``1.2s``, ``3m 04s``, ``2h 05m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def format_rate(per_second: float | None, unit: str = "it") -> str:
    if per_second is None or per_second <= 0:
        return f"? {unit}/s"
    if per_second >= 100:
        return f"{per_second:.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f} {unit}/s"
    return f"{1 / per_second:.1f} s/{unit}"


def fraction(done: float, total: float | None) -> float | None:
    """done/total clamped to [0, 1]; None when the total is unknown or zero."""
    if not total or total <= 0:
        return None
    return max(0.0, min(1.0, done / total))


def text_bar(frac: float | None, width: int = BAR_WIDTH) -> str:
    """``[#########.........]``; an unknown fraction shows a bar of ``?``."""
    if frac is None:
        return "[" + "?" * width + "]"
    filled = int(round(frac * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def html_bar(frac: float | None, *, label: str = "", color: str = "#4c8bf5", failed_frac: float = 0.0) -> str:
    """A self-contained inline-styled bar (no CSS classes, no scripts): survives nbconvert and viewers."""
    pct = 0.0 if frac is None else frac * 100
    bad = max(0.0, min(pct, failed_frac * 100))
    return (
        '<div style="display:flex;align-items:center;gap:8px;font-family:monospace;font-size:12px">'
        '<div style="flex:0 0 240px;height:12px;background:#e8e8e8;border-radius:3px;overflow:hidden;display:flex">'
        f'<div style="width:{pct - bad:.1f}%;background:{color}"></div>'
        f'<div style="width:{bad:.1f}%;background:#d9534f"></div></div>'
        f"<span>{escape(label)}</span></div>")


def error_html(error: Any) -> str:
    """A run's error (a traceback, often) as a red pre-formatted block that keeps its line breaks."""
    return f'<pre style="color:#d9534f;white-space:pre-wrap;margin:2px 0">{escape(error)}</pre>'


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A left-aligned, space-padded plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw_columns: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped except the columns in ``raw_columns`` (already-built HTML)."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        tds = "".join(
            f'<td style="text-align:left;padding:2px 8px">{c if i in raw_columns else escape(c)}</td>'
            for i, c in enumerate(row))
        body.append(f"<tr>{tds}</tr>")
    return (f'<table style="border-collapse:collapse;font-size:12px"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


class Throttle:
    """Allows an action at most once per ``interval`` seconds (the clock is injectable for tests)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        if interval < 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True (and the window restarts) if the last allowed call was ``interval`` or more ago."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self.interval:
                return False
            self._last = now
            return True
