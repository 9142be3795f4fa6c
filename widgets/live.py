"""How a Juno widget reaches the screen: a live ipywidgets view in a kernel, static HTML and text elsewhere.

A displayable object gives two renderings, ``text()`` and ``html()``. ``LiveView`` turns them into a
mimebundle: text/plain and text/html always (what terminals, nbconvert and saved notebooks show), plus the
widget view when running in a kernel with ipywidgets installed. ipywidgets is imported only here, and only
when a kernel asks for a widget, so ``import juno`` stays fast and works without it.

Updates come from one background ``Ticker`` thread at a bounded rate; a trait change from any thread is
sent by ipykernel's IOPub thread, and ``hold_sync`` folds each refresh into a single comm message.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def kernel_shell() -> Any | None:
    """The IPython shell when running inside a Jupyter kernel (a front end may show widgets), else None."""
    import sys

    if "IPython" not in sys.modules:  # never import IPython just to find out
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return None
    return ip


def ipywidgets_module() -> Any | None:
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


class LiveView:
    """A block's renderings, plus (lazily, in a kernel) one ipywidgets.HTML whose value follows ``html()``."""

    def __init__(self, render_text: Callable[[], str], render_html: Callable[[], str]):
        self._render_text = render_text
        self._render_html = render_html
        self._widget = None
        self._lock = threading.Lock()
        self._last_html: str | None = None

    @property
    def widget(self) -> Any | None:
        """The ipywidgets.HTML view (created on first use in a kernel); None outside one."""
        with self._lock:
            if self._widget is None and kernel_shell() is not None:
                ipw = ipywidgets_module()
                if ipw is not None:
                    self._last_html = self._render_html()
                    self._widget = ipw.HTML(value=self._last_html)
            return self._widget

    def mimebundle(self) -> dict:
        html = self._render_html()
        bundle = {"text/plain": self._render_text(), "text/html": html}
        w = self.widget
        if w is not None:
            self.refresh(html)
            bundle[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": w.model_id}
        return bundle

    def refresh(self, html: str | None = None) -> bool:
        """Push the current HTML to the widget if it changed; True if a message went out."""
        w = self._widget
        if w is None:
            return False
        html = self._render_html() if html is None else html
        with self._lock:
            if html == self._last_html:
                return False
            self._last_html = html
            with w.hold_sync():
                w.value = html
        return True

    def close(self) -> None:
        with self._lock:
            w, self._widget = self._widget, None
        if w is not None:
            w.close()


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds on a daemon thread until it returns False, ``stop()``
    is called, or ``max_seconds`` pass (so a forgotten widget never polls forever)."""

    def __init__(self, tick: Callable[[], bool], interval: float, *, max_seconds: float | None = None,
                 name: str = "juno-widget"):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self._tick = tick
        self.interval = interval
        self.max_seconds = max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Ticker":
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        deadline = None if self.max_seconds is None else time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval):
            try:
                if not self._tick():
                    break
            except Exception:  # noqa: BLE001 - a display glitch must never kill the user's work
                import logging

                logging.getLogger("juno.widgets").debug("widget update failed", exc_info=True)
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
