"""How Serve looks: the applications, their deployments, request rate and p99 over the last minutes.

Serve's live view (``juno.serve.progress``) reports through ``juno.util.progress`` like any library;
its snapshot means: ``rows`` = one row per application (its ``deployment`` cell empty) followed by one
per deployment of it (``COLUMNS``), ``series`` = per application its request rate (``QPS_SERIES`` +
name) and p99 latency (``P99_SERIES`` + name) over seconds since the view started, ``fields`` = the
watched application's (else all applications') route, status, replicas by state, req/s, p99 and
errors (``FIELDS``; the dashboard's libraries.ts reads the same names). Drawn here as two small
charts, the applications table and the deployments table with coloured statuses; a terminal gets
the same tables as text. Pure functions of a snapshot.
"""
from __future__ import annotations

from typing import Any, Sequence

from juno.util import progress
from juno.widgets import formatting as fmt
from juno.widgets.blocks import sparkline
from juno.widgets.metrics_view import CHART_COLORS, svg_lines
from juno.widgets.run_view import Layout, state_badge, title_of

COLUMNS = ("application", "deployment", "route", "status", "replicas", "req/s", "p50 ms", "p99 ms", "errors",
           "message")
APP_COLUMNS = ("application", "route", "status", "replicas", "req/s", "p50 ms", "p99 ms", "errors", "message")
DEPLOYMENT_COLUMNS = ("application", "deployment", "status", "replicas", "req/s", "p50 ms", "p99 ms", "errors",
                      "message")
# The fields the view sets (the dashboard's libraries.ts reads the first six).
STATUS, ROUTE, REPLICAS, QPS, P99, ERRORS = "status", "route", "replicas", "req/s", "p99 ms", "errors"
APPLICATIONS, WATCHING, NOTE, ENDED = "applications", "watching", "note", "ended"
FIELDS = (STATUS, ROUTE, REPLICAS, QPS, P99, ERRORS, APPLICATIONS, WATCHING, NOTE, ENDED)
QPS_SERIES, P99_SERIES = "req/s · ", "p99 ms · "  # + the application's name
CHARTS = ((QPS_SERIES, "requests/s"), (P99_SERIES, "p99 latency (ms)"))
CHART_W, CHART_H = 300, 130
GOOD, BUSY, BAD, IDLE = "#5cb85c", "#4c8bf5", "#d9534f", "#999999"
STATUS_COLORS = {"RUNNING": GOOD, "HEALTHY": GOOD, "DEPLOYING": BUSY, "UPDATING": BUSY, "UPSCALING": BUSY,
                 "DOWNSCALING": BUSY, "DEPLOY_FAILED": BAD, "UNHEALTHY": BAD, "DELETING": IDLE,
                 "NOT_STARTED": IDLE}


def split_rows(s: progress.RunSnapshot) -> tuple[list[dict], list[dict]]:
    """(applications, deployments) as dicts by column name."""
    rows = [dict(zip(s.columns, row)) for row in s.rows]
    return [r for r in rows if not r.get("deployment")], [r for r in rows if r.get("deployment")]


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def facts(s: progress.RunSnapshot) -> list[str]:
    """``route /``, ``RUNNING``, ``2 RUNNING, 1 STARTING``, ``12.5 req/s``, ``p99 4.1 ms``, ``0 errors``."""
    f = s.fields
    out = []
    if f.get(ROUTE):
        out.append(f"route {f[ROUTE]}")
    for key in (STATUS, REPLICAS):
        if f.get(key):
            out.append(str(f[key]))
    if f.get(QPS) is not None:
        out.append(f"{_value(f[QPS])} req/s")
    if f.get(P99) is not None:
        out.append(f"p99 {_value(f[P99])} ms")
    if f.get(ERRORS):
        out.append(f"{f[ERRORS]} error{'' if f[ERRORS] == 1 else 's'}")
    return out


def status_line(s: progress.RunSnapshot) -> str:
    """``[serve] Serve · default: route /, RUNNING, 2 RUNNING, 12.5 req/s, p99 4.1 ms, elapsed 3s``."""
    parts = facts(s) or [str(s.fields.get(NOTE) or "no applications yet")]
    parts.append(f"elapsed {fmt.format_duration(s.elapsed_s)}")
    if s.ended:
        parts.append(s.state)
    return f"{title_of(s)}: " + ", ".join(parts)


def _table(rows: list[dict], columns: Sequence[str]) -> list[list[Any]]:
    return [[row.get(c, "") for c in columns] for row in rows]


def run_text(s: progress.RunSnapshot) -> str:
    """The whole view as plain text: the status line, both tables, the curves as sparklines."""
    lines = [status_line(s)]
    apps, deployments = split_rows(s)
    if apps:
        lines.append(fmt.text_table(APP_COLUMNS, _table(apps, APP_COLUMNS)))
    if deployments:
        lines.append(fmt.text_table(DEPLOYMENT_COLUMNS, _table(deployments, DEPLOYMENT_COLUMNS)))
    for name, pts in s.series.items():
        ys = [y for _, y in pts]
        if ys:
            lines.append(f"{name}: {sparkline(ys)} last {ys[-1]:.4g}")
    lines += [f"{key}: {s.fields[key]}" for key in (NOTE, ENDED) if s.fields.get(key)]
    if s.error:
        lines.append(f"error: {s.error}")
    return "\n".join(lines)


def final_text(s: progress.RunSnapshot) -> str:
    """What a terminal prints at the end: the status line and why the view ended."""
    line = status_line(s)
    why = s.error or s.fields.get(ENDED)
    return line + (f"\n{'error' if s.error else 'ended'}: {why}" if why else "")


def status_badge(status: Any) -> str:
    color = STATUS_COLORS.get(str(status), "#777777")
    return (f'<span data-status="{fmt.escape(status)}" style="color:{color};font-weight:bold">'
            f"{fmt.escape(status)}</span>")


def charts_html(s: progress.RunSnapshot) -> str:
    """Two charts over the last minutes, one line per application: request rate and p99 latency."""
    apps = sorted({name.split(" · ", 1)[1] for name in s.series if " · " in name})
    colors = {app: CHART_COLORS[i % len(CHART_COLORS)] for i, app in enumerate(apps)}
    charts = []
    for prefix, label in CHARTS:
        lines = [(app, s.series[prefix + app], colors[app]) for app in apps if s.series.get(prefix + app)]
        latest = lines[0][1][-1][1] if len(lines) == 1 else None
        charts.append(svg_lines(label, lines, width=CHART_W, height=CHART_H, x_label="seconds", latest=latest))
    if not any(charts):
        return ""
    legend = ""
    if len(apps) > 1:
        legend = "".join(f'<div><span style="display:inline-block;width:10px;height:3px;background:{colors[a]};'
                         f'vertical-align:middle"></span> {fmt.escape(a)}</div>' for a in apps)
        legend = f'<div style="font-family:monospace;font-size:11px;color:#555">{legend}</div>'
    return (f'<div data-juno="charts" style="display:flex;align-items:flex-start;gap:6px">{"".join(charts)}'
            f"{legend}</div>")


def _html_table(rows: list[dict], columns: Sequence[str], what: str) -> str:
    cells = [[status_badge(v) if c == "status" else fmt.escape(v) for c, v in zip(columns, row)]
             for row in _table(rows, columns)]
    return f'<div data-juno="{what}">{fmt.html_table(columns, cells, raw_columns=range(len(columns)))}</div>'


def run_html(s: progress.RunSnapshot) -> str:
    """The whole view as self-contained HTML (inline styles only): title and state, the facts line,
    the two charts, the applications table, the deployments table, why it ended or the error."""
    parts = [f'<div class="juno-run" data-kind="{fmt.escape(s.kind)}" data-state="{fmt.escape(s.state)}" '
             f'style="font-size:12px">',
             f"<div><b>{fmt.escape(title_of(s))}</b> {state_badge(s.state)}</div>"]
    line = " · ".join(facts(s) + [f"elapsed {fmt.format_duration(s.elapsed_s)}"])
    parts.append(f'<div data-juno="facts" style="font-family:monospace;color:#555">{fmt.escape(line)}</div>')
    if s.fields.get(NOTE):
        parts.append(f'<div data-juno="note" style="font-family:monospace;color:#f0ad4e">'
                     f"{fmt.escape(s.fields[NOTE])}</div>")
    parts.append(charts_html(s))
    apps, deployments = split_rows(s)
    if apps:
        parts.append(_html_table(apps, APP_COLUMNS, "applications"))
    if deployments:
        parts.append(_html_table(deployments, DEPLOYMENT_COLUMNS, "deployments"))
    if s.fields.get(ENDED):
        parts.append(f'<div data-juno="ended" style="font-family:monospace"><b>{fmt.escape(s.fields[ENDED])}'
                     f"</b></div>")
    if s.error:
        parts.append(fmt.error_html(s.error))
    parts.append("</div>")
    return "".join(parts)


LAYOUT = Layout(status_line, run_text, run_html, final_text)

__all__ = ["LAYOUT", "COLUMNS", "FIELDS", "STATUS_COLORS", "status_line", "run_text", "run_html", "final_text",
           "charts_html", "split_rows", "facts"]
