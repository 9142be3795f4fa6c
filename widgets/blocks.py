"""Building blocks for the library widgets (Data, Train, Tune, Serve, RL): a bar, a table, a line chart.

Each block keeps its state in plain attributes, renders ``text()`` and ``html()`` from it, and shows as a
live ipywidgets view in a kernel (static HTML and text elsewhere). ``update(...)`` changes the state and
refreshes the view at most once per ``min_interval`` seconds; ``flush()`` forces the last state out.

    bar = ProgressBar(total=10, description="epochs"); display(bar)
    bar.update(3)
    chart = LineChart(title="loss"); chart.append("train", step, loss)
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

from juno.widgets import formatting as fmt
from juno.widgets.live import LiveView

DEFAULT_MIN_INTERVAL_S = 0.25


class Block:
    """The shared machinery: a LiveView over ``text``/``html`` and a throttled refresh."""

    def __init__(self, min_interval: float = DEFAULT_MIN_INTERVAL_S):
        self._lock = threading.RLock()
        self._throttle = fmt.Throttle(min_interval)
        self.view = LiveView(self.text, self.html)

    def text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def html(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _changed(self) -> None:
        if self._throttle.ready():
            self.view.refresh()

    def flush(self) -> None:
        """Send the current state to the view now, whatever the throttle says."""
        self.view.refresh()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return self.view.mimebundle()

    def __repr__(self) -> str:
        return self.text()

    def close(self) -> None:
        self.view.close()


class ProgressBar(Block):
    """A bar of ``value`` out of ``total`` (None: unknown total) with a description and a note."""

    def __init__(self, total: float | None = None, description: str = "", *,
                 min_interval: float = DEFAULT_MIN_INTERVAL_S):
        super().__init__(min_interval)
        self.total, self.description, self.value, self.note = total, description, 0.0, ""

    def update(self, value: float, *, total: float | None = None, note: str | None = None) -> None:
        with self._lock:
            self.value = value
            if total is not None:
                self.total = total
            if note is not None:
                self.note = note
        self._changed()

    def _label(self) -> str:
        total = "?" if self.total is None else f"{self.total:g}"
        return f"{self.value:g}/{total}" + (f" {self.note}" if self.note else "")

    def text(self) -> str:
        with self._lock:
            head = f"{self.description}: " if self.description else ""
            return f"{head}{fmt.text_bar(fmt.fraction(self.value, self.total))} {self._label()}"

    def html(self) -> str:
        with self._lock:
            title = f"<b>{fmt.escape(self.description)}</b> " if self.description else ""
            return f"<div>{title}{fmt.html_bar(fmt.fraction(self.value, self.total), label=self._label())}</div>"


class Table(Block):
    """Rows under fixed headers; ``max_rows`` keeps the newest (the text and HTML say how many were cut)."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[Any]] = (), *, max_rows: int = 50,
                 min_interval: float = DEFAULT_MIN_INTERVAL_S):
        if not headers:
            raise ValueError("Table needs at least one header")
        if max_rows <= 0:
            raise ValueError(f"max_rows must be positive, got {max_rows!r}")
        super().__init__(min_interval)
        self.headers = [str(h) for h in headers]
        self.max_rows = max_rows
        self.rows: list[list[Any]] = []
        self.num_dropped = 0
        for row in rows:
            self._add(row)

    def _add(self, row: Sequence[Any]) -> None:
        row = list(row)
        if len(row) != len(self.headers):
            raise ValueError(f"row has {len(row)} cells, the table has {len(self.headers)} columns")
        self.rows.append(row)
        if len(self.rows) > self.max_rows:
            del self.rows[0]
            self.num_dropped += 1

    def add_row(self, row: Sequence[Any]) -> None:
        with self._lock:
            self._add(row)
        self._changed()

    def set_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            self.rows, self.num_dropped = [], 0
            for row in rows:
                self._add(row)
        self._changed()

    def text(self) -> str:
        with self._lock:
            out = fmt.text_table(self.headers, self.rows)
            return out + (f"\n({self.num_dropped} older rows not shown)" if self.num_dropped else "")

    def html(self) -> str:
        with self._lock:
            out = fmt.html_table(self.headers, self.rows)
            return out + (f"<div><i>{self.num_dropped} older rows not shown</i></div>" if self.num_dropped else "")


_SPARK = "▁▂▃▄▅▆▇█"
_COLORS = ("#4c8bf5", "#d9534f", "#5cb85c", "#f0ad4e", "#9b59b6", "#17a2b8")


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """The last ``width`` values as block characters (the text fallback of a line chart)."""
    values = [float(v) for v in values][-width:]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(_SPARK[int((v - lo) / span * (len(_SPARK) - 1))] for v in values)


class LineChart(Block):
    """Named series of (x, y) points drawn as inline SVG (no scripts); ``max_points`` per series kept."""

    def __init__(self, title: str = "", *, max_points: int = 1000, width: int = 420, height: int = 140,
                 min_interval: float = DEFAULT_MIN_INTERVAL_S):
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points!r}")
        super().__init__(min_interval)
        self.title, self.max_points, self.width, self.height = title, max_points, width, height
        self.series: dict[str, list[tuple[float, float]]] = {}

    def append(self, name: str, x: float, y: float) -> None:
        x, y = float(x), float(y)  # a clear TypeError/ValueError for non-numbers
        with self._lock:
            points = self.series.setdefault(str(name), [])
            points.append((x, y))
            if len(points) > self.max_points:
                del points[0]
        self._changed()

    def text(self) -> str:
        with self._lock:
            lines = [self.title] if self.title else []
            for name, pts in self.series.items():
                ys = [y for _, y in pts]
                lines.append(f"{name}: {sparkline(ys)} last {ys[-1]:.4g} (min {min(ys):.4g}, max {max(ys):.4g})")
            return "\n".join(lines) or "(no data)"

    def html(self) -> str:
        with self._lock:
            pts = [p for s in self.series.values() for p in s]
            title = f"<div><b>{fmt.escape(self.title)}</b></div>" if self.title else ""
            if not pts:
                return f"<div>{title}<i>no data yet</i></div>"
            x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
            y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
            w, h, pad = self.width, self.height, 4
            sx = (w - 2 * pad) / ((x1 - x0) or 1.0)
            sy = (h - 2 * pad) / ((y1 - y0) or 1.0)
            lines, legend = [], []
            for i, (name, series) in enumerate(self.series.items()):
                color = _COLORS[i % len(_COLORS)]
                coords = " ".join(f"{pad + (x - x0) * sx:.1f},{h - pad - (y - y0) * sy:.1f}" for x, y in series)
                lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>')
                legend.append(f'<span style="color:{color}">&#9632; {fmt.escape(name)} {series[-1][1]:.4g}</span>')
            return (f"<div>{title}<svg width=\"{w}\" height=\"{h}\" style=\"background:#fafafa\">{''.join(lines)}"
                    f"</svg><div style=\"font-size:12px\">{' '.join(legend)} "
                    f"<span style=\"color:#999\">y {y0:.4g}..{y1:.4g}</span></div></div>")
