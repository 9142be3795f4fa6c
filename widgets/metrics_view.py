"""How a run of reported metrics (a Train run) looks: a chart per metric, the latest values, the workers.

A Train run (``juno.train.progress.TrainProgress``) reports through ``juno.util.progress`` like any
library; its snapshot means: ``done`` = iterations reported, ``series`` = one chart per metric
(x = iteration), ``fields`` = the latest metrics plus a few facts about the run (``FACT_FIELDS``:
the attempt after a restart, why it restarted, the checkpoints kept), ``rows`` = the worker table.
Drawn here as readable inline-SVG charts (axes, min/max, the latest value) that stay self-contained
in saved notebooks; a terminal gets one compact line (iteration, the loss-like metrics, elapsed)
instead of the whole metrics dict, and a one-line summary at the end. Pure functions of a snapshot.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from juno.util import progress
from juno.widgets import formatting as fmt
from juno.widgets.blocks import sparkline
from juno.widgets.run_view import STATE_COLORS, Layout, key_values, run_summary, state_badge, title_of

FACT_FIELDS = ("attempt", "restarted after", "checkpoints")  # run facts, shown apart from the metrics
CHART_W, CHART_H = 240, 120
CHART_COLORS = ("#4c8bf5", "#f0ad4e", "#9b59b6", "#17a2b8", "#5cb85c", "#d9534f")
LINE_METRICS = 3  # metrics in the terminal's compact line


def _num(value: float) -> str:
    return f"{value:.4g}"


def metric_fields(s: progress.RunSnapshot) -> dict[str, Any]:
    """The latest metrics (the fields that are not run facts), in the order the run set them."""
    return {k: v for k, v in s.fields.items() if k not in FACT_FIELDS}


def fact_fields(s: progress.RunSnapshot) -> dict[str, Any]:
    return {k: s.fields[k] for k in FACT_FIELDS if k in s.fields}


def headline_metrics(s: progress.RunSnapshot, limit: int = LINE_METRICS) -> dict[str, Any]:
    """What a one-line view shows: the loss-like metrics, else the first charted ones, else the first
    fields; at most ``limit``."""
    metrics = metric_fields(s)
    picked = [k for k in metrics if "loss" in k.lower()]
    if not picked:
        picked = [k for k in s.series if k in metrics] or list(metrics)
    return {k: metrics[k] for k in picked[:limit]}


def _iterations(s: progress.RunSnapshot) -> str:
    n = int(s.done) if float(s.done).is_integer() else s.done
    return f"{n} iteration{'' if n == 1 else 's'}"


def status_line(s: progress.RunSnapshot) -> str:
    """The terminal's compact line: ``[train] T: iter 12, loss=0.1234, elapsed 3.2s, attempt 2``."""
    parts = [f"iter {s.done:g}"]
    head = key_values(headline_metrics(s), ", ")
    if head:
        parts.append(head)
    parts.append(f"elapsed {fmt.format_duration(s.elapsed_s)}")
    if "attempt" in s.fields:
        parts.append(f"attempt {s.fields['attempt']}")
    if s.state != progress.RUNNING:
        parts.append(s.state)
    return f"{title_of(s)}: " + ", ".join(parts)


def summary_line(s: progress.RunSnapshot) -> str:
    """The terminal's last line: how the run ended, after how much, its final metrics and checkpoints."""
    line = f"{title_of(s)}: {s.state} after {_iterations(s)} in {fmt.format_duration(s.elapsed_s)}"
    head = key_values(headline_metrics(s), ", ")
    if head:
        line += f": {head}"
    if "checkpoints" in s.fields:
        line += f"; checkpoints: {s.fields['checkpoints']}"
    if s.error:
        line += f"\nerror: {s.error}"
    return line


def details_text(s: progress.RunSnapshot) -> str:
    """Everything but the status line as plain text: charts, metrics, facts, the worker table."""
    lines = []
    for name, pts in s.series.items():
        ys = [y for _, y in pts]
        if ys:
            lines.append(f"{name}: {sparkline(ys)} last {_num(ys[-1])} (min {_num(min(ys))}, max {_num(max(ys))})")
    metrics, facts = metric_fields(s), fact_fields(s)
    if metrics:
        lines.append("metrics: " + key_values(metrics))
    for key, value in facts.items():
        lines.append(f"{key}: {value}")
    if s.columns:
        lines.append(fmt.text_table(s.columns, s.rows))
    return "\n".join(lines)


def run_text(s: progress.RunSnapshot) -> str:
    """The whole run as plain text (the widget's text/plain)."""
    out = [status_line(s)]
    details = details_text(s)
    if details:
        out.append(details)
    if s.error:
        out.append(f"error: {s.error}")
    return "\n".join(out)


def _finite(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def svg_chart(name: str, points: Sequence[Sequence[float]], color: str = CHART_COLORS[0], *,
              width: int = CHART_W, height: int = CHART_H, x_label: str = "iteration") -> str:
    """One metric as a small line chart in inline SVG: its name and latest value on top, the y range
    (min, max) on the left axis, the x range and ``x_label`` under it. No scripts, no CSS classes,
    so it survives nbconvert and viewers; non-finite points are left out."""
    pts = _finite(points)
    if not pts:
        return ""
    return svg_lines(name, [(name, pts, color)], width=width, height=height, x_label=x_label, latest=pts[-1][1])


def svg_lines(name: str, lines: Sequence[tuple[str, Sequence[Sequence[float]], str]], *, width: int = CHART_W,
              height: int = CHART_H, x_label: str = "iteration", latest: float | None = None) -> str:
    """Several lines (``(label, points, color)``) on one chart titled ``name`` (with ``latest`` beside
    it when given): shared axes with the y range on the left and the x range under them; each line
    ends in a dot and carries its label as a tooltip. Non-finite points are left out; "" when none is left."""
    lines = [(label, _finite(points), color) for label, points, color in lines]
    lines = [line for line in lines if line[1]]
    if not lines:
        return ""
    left, right, top, bottom = 46, 8, 18, 26
    xs = [p[0] for _, pts, _ in lines for p in pts]
    ys = [p[1] for _, pts, _ in lines for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y0 == y1:  # a flat line sits in the middle, not on an axis
        pad = abs(y0) * 0.1 or 1.0
        lo, hi = y0 - pad, y1 + pad
    else:
        lo, hi = y0, y1
    pw, ph = width - left - right, height - top - bottom
    sx = pw / ((x1 - x0) or 1.0)
    sy = ph / (hi - lo)

    def at(x: float, y: float) -> str:
        px = left + (x - x0) * sx if x1 > x0 else left + pw / 2
        return f"{px:.1f},{top + ph - (y - lo) * sy:.1f}"

    text = 'font-family="monospace" font-size="10" fill="#666"'
    color = lines[0][2]
    head = f' <tspan fill="{color}" font-weight="bold">{_num(latest)}</tspan>' if latest is not None else ""
    shapes = []
    for label, pts, line_color in lines:
        tip = f"<title>{fmt.escape(label)}</title>" if len(lines) > 1 else ""
        if len(pts) > 1:
            shapes.append(f'<polyline fill="none" stroke="{line_color}" stroke-width="1.5" '
                          f'points="{" ".join(at(x, y) for x, y in pts)}">{tip}</polyline>')
        last = at(*pts[-1]).split(",")
        shapes.append(f'<circle cx="{last[0]}" cy="{last[1]}" r="2.5" fill="{line_color}">{tip}</circle>')
    return (
        f'<svg width="{width}" height="{height}" role="img" data-metric="{fmt.escape(name)}" '
        f'style="background:#fafafa;margin:2px 6px 2px 0;vertical-align:top">'
        f"<title>{fmt.escape(name)}</title>"
        f'<text x="{left}" y="12" font-family="monospace" font-size="11" fill="#333">{fmt.escape(name)}{head}</text>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#bbb"/>'
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#bbb"/>'
        f'<text x="{left - 3}" y="{top + ph - (y1 - lo) * sy + 4:.1f}" text-anchor="end" {text}>{_num(y1)}</text>'
        f'<text x="{left - 3}" y="{top + ph - (y0 - lo) * sy + 4:.1f}" text-anchor="end" {text}>{_num(y0)}</text>'
        f'<text x="{left}" y="{top + ph + 12}" {text}>{_num(x0)}</text>'
        f'<text x="{left + pw}" y="{top + ph + 12}" text-anchor="end" {text}>{_num(x1)}</text>'
        f'<text x="{left + pw / 2:.1f}" y="{height - 2}" text-anchor="middle" {text}>{fmt.escape(x_label)}</text>'
        f'{"".join(shapes)}</svg>')


def run_html(s: progress.RunSnapshot) -> str:
    """The whole run as self-contained HTML (inline styles only): title and state, a line of counts,
    one chart per metric, the latest metrics, the run's facts, the worker table, the error."""
    color = STATE_COLORS.get(s.state, STATE_COLORS[progress.RUNNING])
    counts = [_iterations(s), f"elapsed {fmt.format_duration(s.elapsed_s)}"]
    if s.done and s.elapsed_s > 0:
        counts.append(fmt.format_rate(s.rate, "it"))
    parts = [f'<div class="juno-run" data-kind="{fmt.escape(s.kind)}" data-state="{fmt.escape(s.state)}" '
             f'style="font-size:12px">',
             f"<div><b>{fmt.escape(title_of(s))}</b> {state_badge(s.state)}</div>"]
    if s.total is not None:
        parts.append(fmt.html_bar(s.fraction, label=run_summary(s), color=color))
    else:
        parts.append(f'<div style="font-family:monospace;color:#555">{fmt.escape(" · ".join(counts))}</div>')
    charts = [svg_chart(name, pts, CHART_COLORS[i % len(CHART_COLORS)]) for i, (name, pts) in enumerate(s.series.items())]
    if any(charts):
        parts.append(f'<div data-juno="charts">{"".join(charts)}</div>')
    metrics = metric_fields(s)
    if metrics:
        parts.append(f'<div style="font-family:monospace">{fmt.escape(key_values(metrics))}</div>')
    for key, value in fact_fields(s).items():
        parts.append(f'<div style="font-family:monospace;color:#555"><b>{fmt.escape(key)}</b>: '
                     f"{fmt.escape(value)}</div>")
    if s.columns:
        parts.append(fmt.html_table(s.columns, s.rows))
    if s.error:
        parts.append(fmt.error_html(s.error))
    parts.append("</div>")
    return "".join(parts)


LAYOUT = Layout(status_line, run_text, run_html, summary_line)

__all__ = ["LAYOUT", "FACT_FIELDS", "status_line", "summary_line", "details_text", "run_text", "run_html", "svg_chart", "svg_lines",
           "headline_metrics", "metric_fields", "fact_fields"]
