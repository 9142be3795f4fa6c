"""How a Tune experiment looks: the trial table sorted by the metric, the best trials' curves, the counts.

An experiment (``juno.tune.progress.TuneProgress``) reports through ``juno.util.progress`` like any
library; its snapshot means: ``done`` = trials terminated, ``failed`` = trials in error, ``total`` =
trials expected (None while unknown), ``rows`` = one per trial (best first, every running trial
kept; ``rows_dropped`` = the trials left out), ``series`` = one curve per charted trial (the metric
over ``training_iteration``), ``fields`` = the metric, the mode, the best trial and the status
counts (``FIELDS``). Drawn here as one chart of all curves with a legend, the table with coloured
statuses, and one summary line at the end; a terminal gets the same table as text. Pure functions
of a snapshot.
"""
from __future__ import annotations

from typing import Any, Mapping

from juno.util import progress
from juno.widgets import formatting as fmt
from juno.widgets.blocks import sparkline
from juno.widgets.metrics_view import CHART_COLORS, svg_lines
from juno.widgets.run_view import STATE_COLORS, Layout, run_summary, state_badge, title_of

# The fields an experiment sets (the dashboard's libraries.ts reads the same names).
METRIC, MODE, BEST, BEST_TRIAL, BEST_CONFIG, SUMMARY = "metric", "mode", "best", "best trial", "best config", "summary"
COUNT_FIELDS = ("running", "pending", "paused", "terminated", "error")  # trials per status
FIELDS = (METRIC, MODE, BEST, BEST_TRIAL, BEST_CONFIG, SUMMARY) + COUNT_FIELDS
STATUS_COLORS = {"PENDING": "#999999", "RUNNING": "#4c8bf5", "PAUSED": "#f0ad4e", "TERMINATED": "#5cb85c",
                 "ERROR": "#d9534f"}
CHART_W, CHART_H = 420, 180
LEGEND_TRIALS = 10


def counts_text(fields: Mapping[str, Any]) -> str:
    """``3 running, 10 terminated, 1 error`` (statuses with no trial left out)."""
    return ", ".join(f"{fields[k]} {k}" for k in COUNT_FIELDS if fields.get(k))


def best_text(s: progress.RunSnapshot) -> str:
    """``best loss=0.1234 (a_00003)``, or "" before any trial reported the metric."""
    f = s.fields
    if f.get(BEST) is None:
        return ""
    value = f[BEST]
    value = f"{value:.4g}" if isinstance(value, float) else value
    return f"best {f.get(METRIC)}={value}" + (f" ({f[BEST_TRIAL]})" if f.get(BEST_TRIAL) else "")


def _trials(s: progress.RunSnapshot) -> str:
    n = len(s.rows) + s.rows_dropped
    total = f"/{s.total:g}" if s.total is not None else ""
    return f"{n}{total} trials"


def status_line(s: progress.RunSnapshot) -> str:
    """``[tune] T: 3 running, 10 terminated of 13/30 trials, best loss=0.1234 (a_00003), elapsed 12s``."""
    parts = [counts_text(s.fields) or "no trials yet", _trials(s)]
    best = best_text(s)
    if best:
        parts.append(best)
    parts.append(f"elapsed {fmt.format_duration(s.elapsed_s)}")
    if s.ended:
        parts.append(s.state)
    return f"{title_of(s)}: " + ", ".join(parts)


def table_text(s: progress.RunSnapshot) -> str:
    if not s.columns:
        return ""
    text = fmt.text_table(s.columns, s.rows)
    if s.rows_dropped:
        text += f"\n({s.rows_dropped} more trials not shown)"
    return text


def report_text(s: progress.RunSnapshot) -> str:
    """What a terminal prints every few seconds: the status line and the table, nothing per result."""
    table = table_text(s)
    return status_line(s) + (f"\n{table}" if table else "")


def run_text(s: progress.RunSnapshot) -> str:
    """The whole experiment as plain text: the status line, the table, the curves as sparklines."""
    lines = [status_line(s)]
    table = table_text(s)
    if table:
        lines.append(table)
    for name, pts in s.series.items():
        ys = [y for _, y in pts]
        if ys:
            lines.append(f"{name}: {sparkline(ys)} last {ys[-1]:.4g}")
    if s.fields.get(SUMMARY):
        lines.append(str(s.fields[SUMMARY]))
    if s.error:
        lines.append(f"error: {s.error}")
    return "\n".join(lines)


def summary_text(s: progress.RunSnapshot) -> str:
    """What a terminal prints at the end: the final table and one summary line."""
    lines = [table_text(s)] if s.columns else []
    head = f"{title_of(s)}: {s.state}"
    if s.fields.get(SUMMARY):
        head += f": {s.fields[SUMMARY]}"
    lines.append(head)
    if s.error:
        lines.append(f"error: {s.error}")
    return "\n".join(lines)


def status_badge(status: Any) -> str:
    color = STATUS_COLORS.get(str(status), "#777777")
    return (f'<span data-status="{fmt.escape(status)}" style="color:{color};font-weight:bold">'
            f"{fmt.escape(status)}</span>")


def _ranked_series(s: progress.RunSnapshot) -> list[tuple[str, tuple]]:
    """The curves best first by their last value (by the mode), else as given."""
    items = [(name, pts) for name, pts in s.series.items() if pts]
    mode = s.fields.get(MODE)
    if mode in ("min", "max"):
        items.sort(key=lambda item: item[1][-1][1] * (1 if mode == "min" else -1))
    return items


def chart_html(s: progress.RunSnapshot) -> str:
    """One chart of the charted trials' curves (colours follow the series order) and its legend."""
    colors = {name: CHART_COLORS[i % len(CHART_COLORS)] for i, name in enumerate(s.series)}
    lines = [(name, pts, colors[name]) for name, pts in s.series.items()]
    svg = svg_lines(str(s.fields.get(METRIC) or "metric"), lines, width=CHART_W, height=CHART_H,
                    x_label="training_iteration")
    if not svg:
        return ""
    legend = "".join(
        f'<div><span style="display:inline-block;width:10px;height:3px;background:{colors[name]};'
        f'vertical-align:middle"></span> {fmt.escape(name)} {pts[-1][1]:.4g}</div>'
        for name, pts in _ranked_series(s)[:LEGEND_TRIALS])
    return (f'<div data-juno="charts" style="display:flex;align-items:flex-start;gap:6px">{svg}'
            f'<div style="font-family:monospace;font-size:11px;color:#555">{legend}</div></div>')


def table_html(s: progress.RunSnapshot) -> str:
    if not s.columns:
        return ""
    status_col = s.columns.index("status") if "status" in s.columns else -1
    rows = [[status_badge(c) if i == status_col else fmt.escape(c) for i, c in enumerate(row)] for row in s.rows]
    html = fmt.html_table(s.columns, rows, raw_columns=range(len(s.columns)))
    if s.rows_dropped:
        html += f"<div><i>{s.rows_dropped} more trials not shown</i></div>"
    return html


def run_html(s: progress.RunSnapshot) -> str:
    """The whole experiment as self-contained HTML (inline styles only): title and state, the trials
    bar, the counts and the best trial, the chart, the table, the summary or the error."""
    color = STATE_COLORS.get(s.state, STATE_COLORS[progress.RUNNING])
    parts = [f'<div class="juno-run" data-kind="{fmt.escape(s.kind)}" data-state="{fmt.escape(s.state)}" '
             f'style="font-size:12px">',
             f"<div><b>{fmt.escape(title_of(s))}</b> {state_badge(s.state)}</div>"]
    if s.total is not None:
        parts.append(fmt.html_bar(s.fraction, label=run_summary(s), color=color,
                                  failed_frac=(s.failed / s.total) if s.total else 0.0))
    counts = [counts_text(s.fields) or "no trials yet", best_text(s), f"elapsed {fmt.format_duration(s.elapsed_s)}"]
    parts.append(f'<div data-juno="counts" style="font-family:monospace;color:#555">'
                 f'{fmt.escape(" · ".join(p for p in counts if p))}</div>')
    if s.fields.get(BEST_CONFIG):
        parts.append(f'<div style="font-family:monospace;color:#555"><b>best config</b>: '
                     f"{fmt.escape(s.fields[BEST_CONFIG])}</div>")
    parts.append(chart_html(s))
    parts.append(table_html(s))
    if s.fields.get(SUMMARY):
        parts.append(f'<div data-juno="summary" style="font-family:monospace"><b>{fmt.escape(s.fields[SUMMARY])}'
                     f"</b></div>")
    if s.error:
        parts.append(fmt.error_html(s.error))
    parts.append("</div>")
    return "".join(parts)


LAYOUT = Layout(status_line, run_text, run_html, summary_text)

__all__ = ["LAYOUT", "FIELDS", "COUNT_FIELDS", "STATUS_COLORS", "status_line", "report_text", "run_text", "run_html", "summary_text",
           "counts_text", "best_text", "chart_html", "table_html"]
