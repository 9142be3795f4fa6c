"""The cluster widget: nodes, CPU/GPU/memory/object-store usage bars, running tasks and actors, live.

``cluster_snapshot()`` does the I/O (one GCS call, then per live node its resources and workers); the
renderers are pure functions of that snapshot. ``ClusterWidget`` re-polls on a ticker (default once a
second, for at most ``max_seconds``) and pushes the new HTML to its ipywidgets view only when it changed.
It is the rich repr of what ``juno.init()`` returns and what ``%juno status`` shows (``cluster_widget()``).
"""
from __future__ import annotations

from typing import Any

import juno
from juno.util import notebook
from juno.widgets import formatting as fmt
from juno.widgets.live import LiveView, Ticker

DEFAULT_INTERVAL_S = 1.0
DEFAULT_MAX_SECONDS = 600.0  # a forgotten widget stops polling after ten minutes (its last state stays)
_ACTIVE_ACTOR_STATES = ("ALIVE", "PENDING_CREATION", "RESTARTING")


def cluster_snapshot(cw: Any = None) -> dict:
    """What the widget shows, gathered now from the GCS (nodes with their heartbeat figures,
    actors) and each live node's manager (its running tasks): ``juno.util.notebook.cluster_snapshot``."""
    return notebook.cluster_snapshot(cw)


def _total_usage(snapshot: dict) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for n in snapshot.get("nodes", []):
        if n["alive"]:
            for name, (u, t) in n["usage"].items():
                pu, pt = out.get(name, (0.0, 0.0))
                out[name] = (pu + u, pt + t)
    return out


def _format_amount(name: str, v: float) -> str:
    if name in ("memory", "object_store_memory"):
        return fmt.format_bytes(v)
    return f"{v:g}"


def _label(name: str) -> str:
    return {"object_store_memory": "object store"}.get(name, name)


def _headline(snapshot: dict) -> str:
    nodes = snapshot.get("nodes", [])
    alive = sum(1 for n in nodes if n["alive"])
    active = sum(v for k, v in snapshot.get("actors", {}).items() if k in _ACTIVE_ACTOR_STATES)
    dead = len(nodes) - alive
    return (f"{alive} node{'s' if alive != 1 else ''} alive" + (f" ({dead} dead)" if dead else "")
            + f", {snapshot.get('running_tasks', 0)} running tasks, {active} actors")


def render_cluster_text(snapshot: dict, title: str = "Juno cluster") -> str:
    if not snapshot.get("connected"):
        return f"{title}: not connected (call juno.init())"
    lines = [f"{title} {snapshot.get('address', '')}".rstrip() + ": " + _headline(snapshot)]
    for name, (u, t) in _total_usage(snapshot).items():
        lines.append(f"  {_label(name):<13} {fmt.text_bar(fmt.fraction(u, t), 20)} "
                     f"{_format_amount(name, u)} / {_format_amount(name, t)}")
    rows = [(n["node_id"][:12], n["ip"] or n["address"], "alive" if n["alive"] else "dead",
             ", ".join(f"{_label(k)} {_format_amount(k, u)}/{_format_amount(k, t)}" for k, (u, t) in
                       n["usage"].items() if k in ("CPU", "GPU")))
            for n in snapshot.get("nodes", [])]
    if rows:
        lines.append(fmt.text_table(["node", "address", "state", "in use"], rows))
    lines.extend(f"  (missing: {e})" for e in snapshot.get("errors", []))
    return "\n".join(lines)


def render_cluster_html(snapshot: dict, title: str = "Juno cluster") -> str:
    if not snapshot.get("connected"):
        return f"<div><b>{fmt.escape(title)}</b>: not connected (call <code>juno.init()</code>)</div>"
    bars = "".join(
        fmt.html_bar(fmt.fraction(u, t),
                     label=f"{_label(name)}: {_format_amount(name, u)} / {_format_amount(name, t)}")
        for name, (u, t) in _total_usage(snapshot).items())
    rows = []
    for n in snapshot.get("nodes", []):
        usage = " ".join(
            f"{fmt.escape(_label(k))} {fmt.escape(_format_amount(k, u))}/{fmt.escape(_format_amount(k, t))}"
            for k, (u, t) in n["usage"].items() if k in ("CPU", "GPU"))
        state = "alive" if n["alive"] else '<span style="color:#d9534f">dead</span>'
        rows.append((fmt.escape(n["node_id"][:12]), fmt.escape(n["ip"] or n["address"]), state, usage))
    table = fmt.html_table(["node", "address", "state", "in use"], rows, raw_columns=(0, 1, 2, 3))
    errors = "".join(f"<div style='color:#a94442'>missing: {fmt.escape(e)}</div>"
                     for e in snapshot.get("errors", []))
    return (f'<div class="juno-cluster"><div><b>{fmt.escape(title)}</b> '
            f"<code>{fmt.escape(snapshot.get('address', ''))}</code>: {fmt.escape(_headline(snapshot))}</div>"
            f"{bars}<details><summary>nodes</summary>{table}</details>{errors}</div>")


class ClusterWidget:
    """A live view of the cluster; polls every ``interval`` seconds for at most ``max_seconds``."""

    def __init__(self, *, interval: float = DEFAULT_INTERVAL_S, max_seconds: float = DEFAULT_MAX_SECONDS,
                 title: str = "Juno cluster"):
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.title = title
        self.interval = interval
        self.max_seconds = max_seconds
        self.snapshot = self._poll()
        self.view = LiveView(self.text, self.html)
        self._ticker: Ticker | None = None

    @staticmethod
    def _poll() -> dict:
        try:
            return cluster_snapshot()
        except Exception as e:  # noqa: BLE001 - shown, not raised: a repr must not fail
            return {"connected": True, "nodes": [], "errors": [str(e)]}

    def text(self) -> str:
        return render_cluster_text(self.snapshot, self.title)

    def html(self) -> str:
        return render_cluster_html(self.snapshot, self.title)

    def _tick(self) -> bool:
        if not juno.is_initialized():  # juno.shutdown(): show that, then stop
            self.snapshot = {"connected": False}
            self.view.refresh()
            return False
        self.snapshot = self._poll()
        self.view.refresh()
        return True

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = self.view.mimebundle()
        if self.view.widget is not None and self._ticker is None and self.snapshot.get("connected"):
            self._ticker = Ticker(self._tick, self.interval, max_seconds=self.max_seconds,
                                  name="juno-cluster-widget").start()
        return bundle

    def __repr__(self) -> str:
        return self.text()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self.view.close()


def cluster_widget(**kwargs: Any) -> ClusterWidget:
    """The cluster widget for the running session (``%juno status`` displays this)."""
    return ClusterWidget(**kwargs)
