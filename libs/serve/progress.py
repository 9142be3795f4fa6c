"""Serve's live view: every application on the cluster, reported through ``juno.util.progress`` (kind "serve").

``serve.run`` in a notebook calls :func:`watch`; anyone can call it too::

    from juno.serve import progress
    view = progress.watch("default")     # the cell shows the applications, updated about once a second
    view.stop()                          # or serve.shutdown() / serve.delete("default") / juno.shutdown()

A daemon thread polls the controller's ``get_status()``, ``get_metrics()`` and ``get_routes()`` (each
round bounded by ``CALL_TIMEOUT_S``) and feeds :class:`ServeBoard`, the pure part: it keeps the
applications and deployments, the request-rate and p99 curves of the last ``WINDOW_S`` seconds,
the lines a terminal prints (one per state change, never one a second) and the decision when the
view ends: finished when Serve shuts down or the watched application is deleted, failed when it is
DEPLOY_FAILED. ``juno.widgets.serve_view`` draws the run. One poller per driver process: a newer
``watch`` ends the older view. Showing Serve never breaks it: the poller logs what goes wrong and
never raises into the user's code; it stops at interpreter exit and on ``juno.shutdown()``.
"""
from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import sys
import threading
import time
from typing import Any, Callable, Mapping

import juno
from juno.serve.names import CONTROLLER_NAME, SERVE_NAMESPACE
from juno.util import progress
from juno.widgets import serve_view as view

logger = logging.getLogger("juno.serve")

KIND = "serve"
POLL_INTERVAL_S = 1.0   # one round of controller calls a second
CALL_TIMEOUT_S = 5.0    # the most one round may take
WINDOW_S = 300.0        # the charts show the last five minutes
GRACE_S = 30.0          # how long a view waits for Serve (or its application) to appear
MAX_CHARTED_APPS = progress.MAX_SERIES // 2  # two curves per application
DEPLOY_FAILED, DELETING = "DEPLOY_FAILED", "DELETING"
REPLICA_ORDER = ("RUNNING", "STARTING", "UPDATING", "RECOVERING", "STOPPING", "PENDING_MIGRATION")


def replicas_text(states: Mapping[str, Any]) -> str:
    """``2 RUNNING, 1 STARTING``: replicas per state, Ray's states first in their order, none left out."""
    ordered = [s for s in REPLICA_ORDER if s in states] + sorted(s for s in states if s not in REPLICA_ORDER)
    return ", ".join(f"{int(states[s])} {s}" for s in ordered if states[s])


def counts_text(statuses: list[str]) -> str:
    """``2 RUNNING, 1 DEPLOYING``: how many applications are in each status."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _round(value: float | None, digits: int = 3) -> float | str:
    """A table cell: a number to ``digits`` significant digits, "" when unknown."""
    return "" if value is None else float(f"{value:.{digits}g}")


@dataclasses.dataclass
class AppMetrics:
    """One application's (or deployment's) figures of the latest round; None when not reported."""
    qps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: float | None = None


def _metrics_of(m: Any) -> AppMetrics:
    m = m if isinstance(m, Mapping) else {}
    return AppMetrics(_number(m.get("qps")), _number(m.get("p50_ms")), _number(m.get("p99_ms")),
                      _number(m.get("errors")))


class ServeBoard:
    """What the view knows and decides, without I/O: feed it the controller's answers, read the table,
    the fields, the curves, the lines to print and the outcome.

    ``app_name`` is the application whose fate ends the view (None: every application; the view then
    ends only when Serve shuts down). Times are the caller's clock, in seconds."""

    def __init__(self, app_name: str | None = None, *, start: float = 0.0, window_s: float = WINDOW_S,
                 grace_s: float = GRACE_S):
        if app_name is not None and (not isinstance(app_name, str) or not app_name):
            raise ValueError(f"app_name must be an application's name (a non-empty str) or None, got {app_name!r}")
        self.app_name, self.start, self.window_s, self.grace_s = app_name, start, window_s, grace_s
        self.applications: dict[str, dict] = {}        # name -> ApplicationStatusOverview as a dict
        self.metrics: dict[str, dict[str, AppMetrics]] = {}
        self.routes: dict[str, str] = {}               # application -> route prefix
        self.ingress: dict[str, str] = {}              # application -> its ingress deployment
        self.curves: dict[str, list[tuple[float, float]]] = {}
        self.note: str | None = None                   # why the last round failed, until one works
        self.outcome: tuple[str, str] | None = None    # (FINISHED or FAILED, why), once decided
        self._seen_serve = False
        self._seen_app = False
        self._shown: dict[tuple, str] = {}             # what a terminal was last told, per app/deployment
        self._lines: list[str] = []

    # ------------------------------------------------------------------ events
    def observe(self, status: Mapping[str, Any], metrics: Mapping[str, Any] | None, routes: Any,
                now: float) -> None:
        """One round of answers: ``get_status()``, ``get_metrics()`` and ``get_routes()`` (contract shapes)."""
        if self.outcome is not None:
            return
        self._seen_serve, self.note = True, None
        apps = status.get("applications") if isinstance(status, Mapping) else None
        self.applications = {str(k): dict(v) for k, v in (apps or {}).items() if isinstance(v, Mapping)}
        self.metrics = {str(a): {str(d): _metrics_of(m) for d, m in deps.items()}
                        for a, deps in (metrics or {}).items() if isinstance(deps, Mapping)}
        self._take_routes(routes)
        self._chart(now)
        self._diff()
        self._decide(now)

    def serve_missing(self, now: float) -> None:
        """There is no controller (never started, or shut down)."""
        if self.outcome is not None:
            return
        if self._seen_serve:
            self._end(progress.FINISHED, "Serve shut down")
        elif now - self.start >= self.grace_s:
            self._end(progress.FINISHED, "Serve is not running on this cluster (serve.run or serve.start starts it)")
        else:
            self.note = "waiting for Serve to start"

    def poll_failed(self, error: str) -> None:
        """A round failed (the controller was slow, say): shown until a round works; the view goes on."""
        if self.outcome is None:
            self.note = error

    def stop(self, why: str) -> None:
        """The view stops watching (a newer view took over, the driver disconnected or exits)."""
        if self.outcome is None:
            self._end(progress.FINISHED, why)

    # ------------------------------------------------------------------ inside
    def _take_routes(self, routes: Any) -> None:
        table = routes.get("routes") if isinstance(routes, Mapping) else None
        if isinstance(table, Mapping):
            self.routes, self.ingress = {}, {}
            for prefix, target in table.items():
                if isinstance(target, Mapping) and target.get("app") is not None:
                    self.routes[str(target["app"])] = str(prefix)
                    self.ingress[str(target["app"])] = str(target.get("deployment") or "")
        for name, app in self.applications.items():  # a status that names its route wins
            if app.get("route_prefix"):
                self.routes[name] = str(app["route_prefix"])

    def app_metrics(self, name: str) -> AppMetrics:
        """An application's figures: its ingress deployment's (what its callers see), else the sum of
        its deployments' rates and errors with their worst latencies."""
        deps = self.metrics.get(name, {})
        ingress = self.ingress.get(name)
        if ingress in deps:
            return deps[ingress]
        if not deps:
            return AppMetrics()

        def total(attr: str, pick: Callable) -> float | None:
            values = [getattr(m, attr) for m in deps.values() if getattr(m, attr) is not None]
            return pick(values) if values else None
        return AppMetrics(total("qps", sum), total("p50_ms", max), total("p99_ms", max), total("errors", sum))

    def _chart(self, now: float) -> None:
        x = round(now - self.start, 3)
        for name in sorted(self.applications)[:MAX_CHARTED_APPS]:
            m = self.app_metrics(name)
            for label, value in ((view.QPS_SERIES, m.qps), (view.P99_SERIES, m.p99_ms)):
                if value is not None:
                    self.curves.setdefault(f"{label}{name}", []).append((x, value))
        for key in list(self.curves):
            app = key.split(" · ", 1)[1]
            points = [p for p in self.curves[key] if p[0] >= x - self.window_s]
            if app not in self.applications or not points:
                del self.curves[key]
            else:
                self.curves[key] = points[-progress.MAX_SERIES_POINTS:]

    def _diff(self) -> None:
        """A line for each application or deployment whose status changed since the last round."""
        seen = {}
        for name, app in self.applications.items():
            route = self.routes.get(name)
            text = f"application {name!r}" + (f" ({route})" if route else "") + f": {app.get('status', '?')}"
            if app.get("message") and app.get("status") != "RUNNING":
                text += f": {_first_line(app['message'])}"
            seen[(name,)] = (str(app.get("status")), text)
            for dep, d in (app.get("deployments") or {}).items():
                replicas = replicas_text(d.get("replica_states") or {})
                line = f"deployment {name}/{dep}: {d.get('status', '?')}" + (f", {replicas}" if replicas else "")
                seen[(name, dep)] = (str(d.get("status")), line)
        for key, (state, line) in seen.items():
            if self._shown.get(key) != state:
                self._lines.append(line)
        for key in self._shown.keys() - seen.keys():
            if len(key) == 1:
                self._lines.append(f"application {key[0]!r}: deleted")
        self._shown = {k: s for k, (s, _) in seen.items()}

    def _decide(self, now: float) -> None:
        if self.app_name is None:
            return
        app = self.applications.get(self.app_name)
        if app is None:
            if self._seen_app:
                self._end(progress.FINISHED, f"application {self.app_name!r} was deleted")
            elif now - self.start >= self.grace_s:
                names = ", ".join(sorted(self.applications)) or "none"
                self._end(progress.FAILED, f"there is no Serve application named {self.app_name!r} "
                                           f"(applications: {names})")
            return
        self._seen_app = True
        if app.get("status") == DEPLOY_FAILED:
            self._end(progress.FAILED, f"application {self.app_name!r} is DEPLOY_FAILED: "
                                       f"{app.get('message') or 'no message'}")

    def _end(self, state: str, why: str) -> None:
        self.outcome = (state, why)
        self._lines.append(f"{'view ended' if state == progress.FINISHED else 'failed'}: {why}")

    # ------------------------------------------------------------------ reading
    def take_lines(self) -> list[str]:
        """The state changes since the last call (what a terminal prints)."""
        lines, self._lines = self._lines, []
        return lines

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """``view.COLUMNS`` rows: each application (deployment "") followed by its deployments."""
        rows = []
        for name in sorted(self.applications):
            app = self.applications[name]
            deps = app.get("deployments") or {}
            states: dict[str, int] = {}
            for d in deps.values():
                for state, n in (d.get("replica_states") or {}).items():
                    states[state] = states.get(state, 0) + int(n or 0)
            rows.append(self._row(name, "", self.routes.get(name, ""), app.get("status", ""), states,
                                  self.app_metrics(name), app.get("message")))
            for dep in sorted(deps, key=lambda d: (d != self.ingress.get(name), d)):
                d = deps[dep]
                rows.append(self._row(name, dep, "", d.get("status", ""), d.get("replica_states") or {},
                                      self.metrics.get(name, {}).get(dep, AppMetrics()), d.get("message")))
        return list(view.COLUMNS), rows

    @staticmethod
    def _row(app: str, dep: str, route: str, status: Any, states: Mapping, m: AppMetrics, message: Any) -> list:
        errors = "" if m.errors is None else int(m.errors)
        return [app, dep, route, str(status), replicas_text(states), _round(m.qps), _round(m.p50_ms),
                _round(m.p99_ms), errors, _first_line(message or "")]

    def fields(self) -> dict[str, Any]:
        """``view.FIELDS``: the watched application's (else every application's) route, status, replicas,
        request rate, p99 and errors; None removes a field that does not apply now."""
        names = [self.app_name] if self.app_name in self.applications else sorted(self.applications)
        states: dict[str, int] = {}
        for name in names:
            for d in (self.applications[name].get("deployments") or {}).values():
                for state, n in (d.get("replica_states") or {}).items():
                    states[state] = states.get(state, 0) + int(n or 0)
        figures = [self.app_metrics(n) for n in names]
        qps = [m.qps for m in figures if m.qps is not None]
        p99 = [m.p99_ms for m in figures if m.p99_ms is not None]
        errors = [m.errors for m in figures if m.errors is not None]
        if len(names) == 1:
            status = self.applications[names[0]].get("status")
        else:
            status = counts_text([str(self.applications[n].get("status")) for n in names]) or None
        routes = ", ".join(self.routes[n] for n in names if self.routes.get(n))
        return {view.STATUS: status, view.ROUTE: routes or None, view.REPLICAS: replicas_text(states) or None,
                view.QPS: _round(sum(qps), 4) if qps else None, view.P99: _round(max(p99)) if p99 else None,
                view.ERRORS: int(sum(errors)) if errors else None,
                view.APPLICATIONS: len(self.applications) if self._seen_serve else None,
                view.WATCHING: self.app_name, view.NOTE: self.note}


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


# ============================================================================ the shell
class ServeProgress:
    """One live view of Serve: a progress run (kind "serve") and the daemon thread that polls the
    controller into it. :func:`watch` makes one and ends the previous one; ``stop()`` ends it."""

    def __init__(self, app_name: str | None = None, *, display: bool | None = None, stream: Any = None,
                 interval_s: float = POLL_INTERVAL_S, call_timeout_s: float = CALL_TIMEOUT_S,
                 grace_s: float = GRACE_S, clock: Callable[[], float] = time.monotonic):
        if display is not None and not isinstance(display, bool):
            raise TypeError(f"display must be True, False or None, got {display!r}")
        for name, value in (("interval_s", interval_s), ("call_timeout_s", call_timeout_s)):
            if _number(value) is None or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        from juno.widgets.live import kernel_shell

        self._clock, self._stream = clock, stream
        self.interval_s, self.call_timeout_s = float(interval_s), float(call_timeout_s)
        self.board = ServeBoard(app_name, start=clock(), grace_s=grace_s)
        shown = progress.display_enabled() if display is None else display
        in_kernel = kernel_shell() is not None
        self._terminal = shown and not in_kernel  # a terminal gets a line per change, printed here
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._controller: Any = None
        title = f"Serve · {app_name}" if app_name else "Serve applications"
        self.run = progress.open(KIND, title, display=shown and in_kernel, unit="requests")
        self._thread = threading.Thread(target=self._loop, name="juno-serve-view", daemon=True)

    def start(self) -> "ServeProgress":
        self._thread.start()
        return self

    @property
    def ended(self) -> bool:
        return self.board.outcome is not None

    def stop(self, why: str = "stopped watching", timeout_s: float = CALL_TIMEOUT_S) -> None:
        """End the view (finished, with ``why``) and wait up to ``timeout_s`` for its thread."""
        self._stopped.set()
        with self._lock:
            self.board.stop(why)
            self._publish()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def poll_once(self) -> bool:
        """One round: ask the controller, update the run. False once the view has ended. Never raises."""
        try:
            answers = self._ask()
            with self._lock:
                if answers is None:
                    pass
                elif answers == "missing":
                    self.board.serve_missing(self._clock())
                elif isinstance(answers, str):
                    self.board.poll_failed(answers)
                else:
                    self.board.observe(*answers, now=self._clock())
                self._publish()
        except Exception:  # noqa: BLE001 - watching Serve never breaks the user's work
            logger.warning("the Serve view could not update", exc_info=True)
        return not self.ended

    def _ask(self) -> Any:
        """The controller's answers, "missing" when there is no controller, an error text when a round
        failed, None when the view must stop (the driver disconnected)."""
        if not juno.is_initialized():
            with self._lock:
                self.board.stop("disconnected from the cluster (juno.shutdown())")
            return None
        if self._controller is None:
            try:
                self._controller = juno.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
            except ValueError:
                return "missing"
        c = self._controller
        try:
            refs = [c.get_status.remote(), c.get_metrics.remote(), c.get_routes.remote()]
            status, metrics, routes = juno.get(refs, timeout=self.call_timeout_s)
        except juno.exceptions.GetTimeoutError:
            return f"the Serve controller did not answer within {self.call_timeout_s:g}s"
        except juno.exceptions.ActorDiedError:
            self._controller = None  # shut down, or restarting: look it up again
            return "missing"
        except Exception as e:  # noqa: BLE001 - shown in the view; the next round tries again
            self._controller = None
            return f"could not ask the Serve controller: {type(e).__name__}: {_first_line(e)}"
        return status, metrics, routes

    def _publish(self) -> None:
        """Send the board to the run (under ``self._lock``); print the changes in a terminal; end the run."""
        if self.run.state != progress.RUNNING:
            return
        columns, rows = self.board.table()
        self.run.set_table(columns, rows)
        self.run.set_fields(**self.board.fields())
        self.run.set_series(self.board.curves)
        for line in self.board.take_lines():
            self._print(line)
        outcome = self.board.outcome
        if outcome is not None:
            state, why = outcome
            if state == progress.FAILED:
                self.run.fail(why)
            else:
                self.run.set_fields(**{view.ENDED: why})
                self.run.finish()

    def _print(self, line: str) -> None:
        if self._terminal:
            print(f"[serve] {line}", file=self._stream or sys.stderr, flush=True)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            started = self._clock()
            if not self.poll_once():
                break
            self._stopped.wait(max(0.0, self.interval_s - (self._clock() - started)))
        _forget(self)

    def snapshot(self) -> progress.RunSnapshot:
        return self.run.snapshot()

    def __repr__(self) -> str:
        s = self.run.snapshot()
        return f"ServeProgress({s.title!r}, state={s.state!r})"


_current: ServeProgress | None = None
_current_lock = threading.Lock()


def _forget(view_: ServeProgress) -> None:
    global _current
    with _current_lock:
        if _current is view_:
            _current = None


def watch(app_name: str | None = None, *, display: bool | None = None) -> ServeProgress:
    """Show every Serve application live (a widget in a notebook, a line per change in a terminal),
    about once a second, until Serve shuts down or ``app_name`` is deleted (finished) or fails to
    deploy (failed). A newer ``watch`` ends this one: one poller per process. Returns the view;
    ``view.stop()`` ends it."""
    global _current
    if not juno.is_initialized():
        raise RuntimeError("juno.serve.progress.watch() needs a connected cluster: call juno.init() "
                           "(or serve.run) first")
    new = ServeProgress(app_name, display=display)
    with _current_lock:
        old, _current = _current, new
    if old is not None:
        old.stop("a newer view took over")
    return new.start()


def current() -> ServeProgress | None:
    """The view this process is polling for, if any."""
    with _current_lock:
        return _current


@atexit.register
def _stop_at_exit() -> None:
    """Before juno.util.progress fails the runs left open: this one simply stopped watching."""
    view_ = current()
    if view_ is not None:
        view_.stop("stopped watching (the driver exited)", timeout_s=1.0)


__all__ = ["watch", "current", "ServeProgress", "ServeBoard", "replicas_text", "counts_text", "KIND"]
