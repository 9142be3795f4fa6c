"""How RL training looks: the learning curve, the sampling speed, the algorithm's settings.

An Algorithm's training (``juno.rl.progress.RLProgress``) reports through ``juno.util.progress`` like
any library; its snapshot means: ``done`` = training iterations, ``series`` = the episode return's
mean, min and max (and the evaluation's mean, where the algorithm evaluates) over iterations, env
steps per second, iteration time and the first learner loss, ``fields`` = the algorithm's key
settings (env, runners, lr, batch sizes: every field not in ``LIVE_FIELDS`` and not a ``learner/``
value) followed by the latest iteration's numbers. Drawn here as one return chart with a line each
for mean/min/max, two small charts for speed and time, the settings and the latest values; a
terminal gets one compact line per iteration (``iteration_line``), never RLlib's nested result dict.
Pure functions of a snapshot.
"""
from __future__ import annotations

import math
from typing import Any

from juno.util import progress
from juno.widgets import formatting as fmt
from juno.widgets.blocks import sparkline
from juno.widgets.metrics_view import CHART_COLORS, svg_chart, svg_lines
from juno.widgets.run_view import Layout, key_values, state_badge, title_of

# The latest iteration's numbers (fields and, where charted, series of the same name).
RETURN_MEAN, RETURN_MIN, RETURN_MAX = "return mean", "return min", "return max"
EVAL_RETURN = "eval return"
EPISODES, EPISODE_LEN = "episodes", "episode len"
ENV_STEPS, STEPS_PER_S, ITERATION_S = "env steps", "env steps/s", "iteration s"
NO_EPISODE = "n/a"       # the return mean before any episode ended
NOTE = "note"            # an interrupted train(): how to go on
LEARNER = "learner/"     # prefix of the learner's loss values
LIVE_FIELDS = (RETURN_MEAN, RETURN_MIN, RETURN_MAX, EVAL_RETURN, EPISODES, EPISODE_LEN, ENV_STEPS, STEPS_PER_S,
               ITERATION_S, NOTE)
RETURN_SERIES = (RETURN_MEAN, RETURN_MIN, RETURN_MAX, EVAL_RETURN)
RETURN_COLORS = {RETURN_MEAN: "#4c8bf5", RETURN_MIN: "#9fb8e8", RETURN_MAX: "#1f4fa8", EVAL_RETURN: "#5cb85c"}
RETURN_W, RETURN_H = 420, 180


def _num(value: Any) -> str:
    """4 significant digits for floats (nan as "n/a": no episode ended yet), whole counts with separators."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def is_live(name: str) -> bool:
    return name in LIVE_FIELDS or name.startswith(LEARNER)


def settings(s: progress.RunSnapshot) -> dict[str, Any]:
    """The algorithm's key settings, in the order the run set them."""
    return {k: v for k, v in s.fields.items() if not is_live(k)}


def latest(s: progress.RunSnapshot) -> dict[str, Any]:
    """The latest iteration's numbers and the learner's losses (the note left out)."""
    return {k: v for k, v in s.fields.items() if is_live(k) and k != NOTE}


def returns_text(fields: dict[str, Any]) -> str:
    """``return 22.4 (min 9, max 61)``; "no episode ended yet" before the first one."""
    mean = fields.get(RETURN_MEAN)
    if not isinstance(mean, (int, float)) or isinstance(mean, bool) or not math.isfinite(mean):
        return "no episode ended yet"
    text = f"return {_num(mean)}"
    if RETURN_MIN in fields and RETURN_MAX in fields:
        text += f" (min {_num(fields[RETURN_MIN])}, max {_num(fields[RETURN_MAX])})"
    if EVAL_RETURN in fields:
        text += f", eval {_num(fields[EVAL_RETURN])}"
    return text


def iteration_line(s: progress.RunSnapshot) -> str:
    """The terminal's line per iteration:
    ``[rl] PPO on CartPole-v1: iter 3, return 22.4 (min 9, max 61), 12,000 env steps, 1,234 steps/s, iter 2.1s``."""
    f = s.fields
    parts = [f"iter {s.done:g}", returns_text(f)]
    if ENV_STEPS in f:
        parts.append(f"{_num(f[ENV_STEPS])} env steps")
    if STEPS_PER_S in f:
        parts.append(f"{_num(f[STEPS_PER_S])} steps/s")
    if ITERATION_S in f:
        parts.append(f"iter {fmt.format_duration(f[ITERATION_S])}")
    if f.get(NOTE):
        parts.append(str(f[NOTE]))
    if s.ended:
        parts.append(s.state)
    return f"{title_of(s)}: " + ", ".join(parts)


def summary_line(s: progress.RunSnapshot) -> str:
    """The terminal's last line: how training ended, after how much, where the return got to."""
    n = int(s.done)
    line = (f"{title_of(s)}: {s.state} after {n} iteration{'' if n == 1 else 's'} in "
            f"{fmt.format_duration(s.elapsed_s)}: {returns_text(s.fields)}")
    if ENV_STEPS in s.fields:
        line += f", {_num(s.fields[ENV_STEPS])} env steps"
    if s.error:
        line += f"\nerror: {s.error}"
    return line


def run_text(s: progress.RunSnapshot) -> str:
    """The whole run as plain text (the widget's text/plain): the line, the curves, the settings."""
    lines = [iteration_line(s)]
    for name, pts in s.series.items():
        ys = [y for _, y in pts]
        if ys:
            lines.append(f"{name}: {sparkline(ys)} last {_num(ys[-1])} (min {_num(min(ys))}, max {_num(max(ys))})")
    if settings(s):
        lines.append("settings: " + key_values(settings(s), ", "))
    if s.error:
        lines.append(f"error: {s.error}")
    return "\n".join(lines)


def returns_chart(s: progress.RunSnapshot) -> str:
    """The episode return's mean, min and max (and the evaluation's mean) on one chart, with a legend."""
    lines = [(name, s.series[name], RETURN_COLORS[name]) for name in RETURN_SERIES if s.series.get(name)]
    mean = s.series.get(RETURN_MEAN)
    svg = svg_lines("episode return", lines, width=RETURN_W, height=RETURN_H,
                    latest=mean[-1][1] if mean else None)
    if not svg:
        return ""
    legend = "".join(
        f'<div><span style="display:inline-block;width:10px;height:3px;background:{color};'
        f'vertical-align:middle"></span> {fmt.escape(name)} {_num(pts[-1][1])}</div>' for name, pts, color in lines)
    return (f'<div style="display:flex;align-items:flex-start;gap:6px">{svg}'
            f'<div style="font-family:monospace;font-size:11px;color:#555">{legend}</div></div>')


def run_html(s: progress.RunSnapshot) -> str:
    """The whole run as self-contained HTML (inline styles only): title and state, a line of counts,
    the return chart, small charts of speed, time and loss, the settings, the latest values."""
    f = s.fields
    n = int(s.done)
    counts = [f"{n} iteration{'' if n == 1 else 's'}", returns_text(f)]
    if ENV_STEPS in f:
        counts.append(f"{_num(f[ENV_STEPS])} env steps")
    if STEPS_PER_S in f:
        counts.append(f"{_num(f[STEPS_PER_S])} steps/s")
    counts.append(f"elapsed {fmt.format_duration(s.elapsed_s)}")
    parts = [f'<div class="juno-run" data-kind="{fmt.escape(s.kind)}" data-state="{fmt.escape(s.state)}" '
             f'style="font-size:12px">',
             f"<div><b>{fmt.escape(title_of(s))}</b> {state_badge(s.state)}</div>",
             f'<div data-juno="counts" style="font-family:monospace;color:#555">{fmt.escape(" · ".join(counts))}</div>']
    small = [svg_chart(name, pts, CHART_COLORS[(i + 1) % len(CHART_COLORS)])
             for i, (name, pts) in enumerate((k, v) for k, v in s.series.items() if k not in RETURN_SERIES)]
    charts = returns_chart(s) + "".join(small)
    if charts:
        parts.append(f'<div data-juno="charts" style="display:flex;flex-wrap:wrap;align-items:flex-start">'
                     f"{charts}</div>")
    if settings(s):
        parts.append(f'<div data-juno="settings" style="font-family:monospace;color:#555">'
                     f"{fmt.escape(key_values(settings(s), ', '))}</div>")
    if latest(s):
        values = {k: _num(v) for k, v in latest(s).items()}
        parts.append(f'<div data-juno="latest" style="font-family:monospace">{fmt.escape(key_values(values, ", "))}</div>')
    if f.get(NOTE):
        parts.append(f'<div data-juno="note" style="font-family:monospace;color:#b8860b">{fmt.escape(f[NOTE])}</div>')
    if s.error:
        parts.append(fmt.error_html(s.error))
    parts.append("</div>")
    return "".join(parts)


LAYOUT = Layout(iteration_line, run_text, run_html, summary_line)

__all__ = ["LAYOUT", "LIVE_FIELDS", "RETURN_SERIES", "iteration_line", "summary_line", "run_text", "run_html",
           "returns_chart", "returns_text", "settings", "latest"]
