"""How ``juno.util.progress`` runs look: an overall bar, a fields line, a table, a sparkline per chart.

Runs of reported metrics (kind "train") get their own ``Layout`` (``metrics_view``: a chart per
metric, the worker table, a compact terminal line), so do Tune experiments (kind "tune",
``tune_view``: the trial table and the best trials' curves); every other kind is drawn as below.

``run_text(snapshot)`` and ``run_html(snapshot)`` are pure (tested without a kernel). ``RunDisplay``
shows one run: in a kernel one ipywidgets view per run, updated in place, whose output is rewritten
with the final static HTML when the run ends (so a saved notebook shows the end, not the start); in
a terminal a status line on stderr at most once a second and the whole final state once.
``DisplaySink`` is the progress sink that makes one per run that asks to be displayed.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from juno.util import progress
from juno.widgets import formatting as fmt
from juno.widgets.blocks import sparkline
from juno.widgets.live import LiveView, kernel_shell

KERNEL_INTERVAL_S = 0.25   # at most 4 widget updates a second
TERMINAL_INTERVAL_S = 1.0  # at most one line a second
STATE_COLORS = {progress.RUNNING: "#4c8bf5", progress.FINISHED: "#5cb85c", progress.FAILED: "#d9534f"}
SPARK_W, SPARK_H = 120, 24


def _count(value: float) -> str:
    """12, 1.5, 12,345: whole numbers with thousands separators."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def run_summary(s: progress.RunSnapshot) -> str:
    """``10,000/2,000,000 rows (0.5%), 12.3k rows/s, elapsed 3.2s, ETA 1m 20s`` (+ failed, state)."""
    total = "?" if s.total is None else _count(s.total)
    frac = s.fraction
    parts = [f"{_count(s.done)}/{total} {s.unit}" + (f" ({frac * 100:.1f}%)" if frac is not None else "")]
    if s.failed:
        parts.append(f"{_count(s.failed)} failed")
    parts.append(fmt.format_rate(s.rate, s.unit))
    parts.append(f"elapsed {fmt.format_duration(s.elapsed_s)}")
    if s.state == progress.RUNNING:
        parts.append(f"ETA {fmt.format_duration(s.eta_s)}")
    else:
        parts.append(s.state)
    return ", ".join(parts)


def key_values(values: Mapping[str, Any], sep: str = "  ") -> str:
    """``loss=0.1234  epoch=3``: floats to 4 significant digits."""
    return sep.join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def fields_line(s: progress.RunSnapshot) -> str:
    return key_values(s.fields)


def title_of(s: progress.RunSnapshot) -> str:
    return f"[{s.kind}] {s.title}" if s.title else f"[{s.kind}]"


def status_line(s: progress.RunSnapshot) -> str:
    """One line: what a terminal prints while the run goes on."""
    fields = fields_line(s)
    return f"{title_of(s)} {fmt.text_bar(s.fraction)} {run_summary(s)}" + (f" | {fields}" if fields else "")


def run_text(s: progress.RunSnapshot) -> str:
    """The whole run as plain text: the status line, the table, the charts, the error."""
    lines = [status_line(s)]
    if s.columns:
        lines.append(fmt.text_table(s.columns, s.rows))
        if s.rows_dropped:
            lines.append(f"({s.rows_dropped} more rows not shown)")
    for name, pts in s.series.items():
        ys = [y for _, y in pts]
        if ys:
            lines.append(f"{name}: {sparkline(ys)} last {ys[-1]:.4g} (min {min(ys):.4g}, max {max(ys):.4g})")
    if s.error:
        lines.append(f"error: {s.error}")
    return "\n".join(lines)


def svg_sparkline(points: Sequence[Sequence[float]], color: str, width: int = SPARK_W,
                  height: int = SPARK_H) -> str:
    """A tiny inline SVG line (no scripts, no CSS classes: it survives nbconvert and viewers)."""
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 2
    sx = (width - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (height - 2 * pad) / ((y1 - y0) or 1.0)
    coords = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in zip(xs, ys))
    return (f'<svg width="{width}" height="{height}" style="vertical-align:middle;background:#fafafa">'
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/></svg>')


def state_badge(state: str) -> str:
    """The run's state as a small coloured label (inline styles only)."""
    color = STATE_COLORS.get(state, STATE_COLORS[progress.RUNNING])
    return (f'<span style="background:{color};color:white;border-radius:3px;padding:0 4px;'
            f'font-size:11px">{fmt.escape(state)}</span>')


def run_html(s: progress.RunSnapshot) -> str:
    """The whole run as self-contained HTML (inline styles only)."""
    color = STATE_COLORS.get(s.state, STATE_COLORS[progress.RUNNING])
    failed_frac = (s.failed / s.total) if s.total else 0.0
    parts = [f'<div class="juno-run" data-state="{fmt.escape(s.state)}" style="font-size:12px">',
             f"<div><b>{fmt.escape(title_of(s))}</b> {state_badge(s.state)}</div>",
             fmt.html_bar(s.fraction if s.fraction is not None or s.ended else None, label=run_summary(s),
                          color=color, failed_frac=failed_frac)]
    fields = fields_line(s)
    if fields:
        parts.append(f'<div style="font-family:monospace">{fmt.escape(fields)}</div>')
    if s.columns:
        parts.append(fmt.html_table(s.columns, s.rows))
        if s.rows_dropped:
            parts.append(f"<div><i>{s.rows_dropped} more rows not shown</i></div>")
    for i, (name, pts) in enumerate(s.series.items()):
        if pts:
            line_color = ("#4c8bf5", "#f0ad4e", "#9b59b6", "#17a2b8", "#5cb85c")[i % 5]
            parts.append(f'<div style="font-family:monospace">{svg_sparkline(pts, line_color)} '
                         f"{fmt.escape(name)} {pts[-1][1]:.4g}</div>")
    if s.error:
        parts.append(fmt.error_html(s.error))
    parts.append("</div>")
    return "".join(parts)


class Layout(NamedTuple):
    """How one kind of run is drawn: the live status line, the whole run as text and as HTML, and
    what a terminal prints when the run ends."""
    status_line: Callable[[progress.RunSnapshot], str]
    text: Callable[[progress.RunSnapshot], str]
    html: Callable[[progress.RunSnapshot], str]
    final_text: Callable[[progress.RunSnapshot], str]


GENERIC_LAYOUT = Layout(status_line, run_text, run_html, run_text)
# Kinds drawn by a module of their own (each builds on this one and has a LAYOUT): a Train run's
# charts and workers (metrics_view), a Tune experiment's trial table and curves (tune_view), Serve's
# applications, deployments and their request rate and latency (serve_view), RL training's learning
# curve and sampling speed (rl_view).
KIND_LAYOUTS = {"train": "metrics_view", "tune": "tune_view", "serve": "serve_view", "rl": "rl_view"}


def layout_for(kind: str) -> Layout:
    module = KIND_LAYOUTS.get(kind)
    if module is None:
        return GENERIC_LAYOUT
    import importlib

    return importlib.import_module(f"juno.widgets.{module}").LAYOUT


def current_cell() -> str | None:
    """The execute request the kernel is running (its msg_id, else its execution count); None outside a kernel."""
    ip = kernel_shell()
    if ip is None:
        return None
    header = (getattr(ip, "parent_header", None) or {}).get("header") or {}
    return header.get("msg_id") or str(getattr(ip, "execution_count", ""))


class RunDisplay:
    """One run on the screen; ``update``/``close`` take snapshots (the sink paces them)."""

    def __init__(self, snapshot: progress.RunSnapshot, *, in_kernel: bool | None = None, stream: Any = None):
        self.snapshot = snapshot
        self.in_kernel = kernel_shell() is not None if in_kernel is None else in_kernel
        self._stream = stream
        self.layout = layout_for(snapshot.kind)
        self.view = LiveView(self.text, self.html)
        self._handle = None
        if self.in_kernel:
            from IPython.display import display

            self._handle = display(self, display_id=True)
        self._cells = {current_cell()}

    def show_here(self) -> bool:
        """Show the run in the cell running now as well, if it is not there yet: a run that lives across
        cells (RL's ``algo.train()`` called again later) follows the user. Every copy shares one display
        id, so each stays live and each gets the final static HTML. True if a copy was added."""
        cell = current_cell()
        if not self.in_kernel or self._handle is None or cell in self._cells:
            return False
        from IPython.display import display

        self._cells.add(cell)
        self._handle.update(self)  # the earlier copies keep today's state in a saved notebook
        display(self, display_id=self._handle.display_id)
        return True

    def text(self) -> str:
        return self.layout.text(self.snapshot)

    def html(self) -> str:
        return self.layout.html(self.snapshot)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return self.view.mimebundle()

    def __repr__(self) -> str:
        return self.text()

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)

    def update(self, snapshot: progress.RunSnapshot) -> None:
        self.snapshot = snapshot
        if self.in_kernel:
            self.view.refresh()
        else:
            self._print(self.layout.status_line(snapshot))

    def close(self, snapshot: progress.RunSnapshot) -> None:
        self.snapshot = snapshot
        if not self.in_kernel:
            self._print(self.layout.final_text(snapshot))
            return
        self.view.refresh()
        if self._handle is not None:
            self._handle.update(self)  # the saved notebook keeps the final static HTML


class DisplaySink:
    """The progress sink that displays runs opened with ``display`` on (one ``RunDisplay`` each)."""

    def __init__(self, stream: Any = None):
        self._stream = stream
        self._displays: dict[str, RunDisplay] = {}

    @property
    def interval(self) -> float:
        return KERNEL_INTERVAL_S if kernel_shell() is not None else TERMINAL_INTERVAL_S

    def handle(self, event: Any) -> None:
        run_id = event.snapshot.run_id
        if isinstance(event, progress.RunOpened):
            if event.display:
                self._displays[run_id] = RunDisplay(event.snapshot, stream=self._stream)
            return
        display = self._displays.get(run_id)
        if display is None:
            return
        if isinstance(event, progress.RunClosed):
            del self._displays[run_id]
            display.close(event.snapshot)
        else:
            display.update(event.snapshot)

    def show_here(self, run_id: str) -> bool:
        display = self._displays.get(run_id)
        return display.show_here() if display is not None else False


def show_in_this_cell(run_id: str) -> bool:
    """Show the live view of run ``run_id`` (displayed earlier in another cell) in the running cell too.
    False outside a kernel, for a run that is not displayed, or when it is already shown here."""
    return any(sink.show_here(run_id) for sink in progress.sinks() if isinstance(sink, DisplaySink))
