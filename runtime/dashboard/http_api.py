"""The dashboard's state API as tornado handlers, written once and mounted twice.

The route logic (parameter checks, the thread pool, errors as JSON, the websocket
bridge to the :class:`~juno.dashboard.event_hub.EventHub`) lives in the mixins
here. Each mount subclasses them with its own base handler, which answers two
questions: which cluster serves this request (:meth:`StateApiMixin.juno_address`)
and is the request authenticated (the standalone server's cluster token in
runtime/dashboard/server.py; Jupyter's own auth in jupyter_extension/handlers.py).
:func:`api_routes` lists the routes of a mount, so neither can forget one.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import tornado.web
import tornado.websocket

from juno.dashboard import payloads

logger = logging.getLogger("juno.dashboard")

TASKS_LIMIT = (1, payloads.MAX_TASK_LIMIT, 100)  # (min, max, default) of /api/tasks?limit=
OBJECTS_LIMIT = (1, payloads.MAX_OBJECT_LIMIT, 500)
LOG_TAIL = (1, payloads.MAX_LOG_LINES, 200)
MIN_ID_PREFIX = payloads.MIN_ID_PREFIX
_HEX = payloads.HEX
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
EVENTS_INTERVAL_S = 1.0


class ApiError(tornado.web.HTTPError):
    """An error the client can act on: its message goes back as ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.message = message


def _state_errors() -> tuple[type, type, type]:
    from juno.dashboard.state_service import BadRequest, NotFound, Unreachable

    return NotFound, BadRequest, Unreachable


def as_api_error(error: BaseException) -> ApiError:
    """The HTTP form of an exception of the state service (404, 400, 502), else a 500."""
    if isinstance(error, ApiError):
        return error
    not_found, bad_request, unreachable = _state_errors()
    if isinstance(error, not_found):
        return ApiError(404, str(error))
    if isinstance(error, bad_request):
        return ApiError(400, str(error))
    if isinstance(error, (unreachable, TimeoutError, ConnectionError)):
        return ApiError(502, str(error))
    logger.exception("dashboard request failed", exc_info=error)
    return ApiError(500, f"the dashboard failed to answer: {type(error).__name__}: {error} "
                         "(see the dashboard's log)")


def check_address(value: str) -> str:
    """``host:port`` of a cluster (a ``tcp://`` prefix is dropped), or ApiError 400."""
    address = value.strip()
    if address.startswith("tcp://"):
        address = address[len("tcp://"):]
    if not _ADDRESS.match(address) or not 0 < int(address.rpartition(":")[2]) < 65536:
        raise ApiError(400, f"address must look like host:port (e.g. 127.0.0.1:6379), got {value!r}.")
    return address


# ============================================================================ services per cluster
class ServiceRegistry:
    """One StateService and one EventHub per cluster address, shared by every request of a
    server process, and the thread pool their blocking calls run in. Keeps the ``max_clusters``
    most recently used clusters (a Jupyter server may be pointed at several over its life)."""

    def __init__(self, *, token: str | None = None, timeout: float = 10.0, interval: float = EVENTS_INTERVAL_S,
                 max_clusters: int = 8, max_threads: int = 8):
        self.token = token
        self.timeout = timeout
        self.interval = interval
        self.max_clusters = max_clusters
        self.executor = ThreadPoolExecutor(max_threads, thread_name_prefix="juno-dashboard")
        self._lock = threading.Lock()
        self._services: OrderedDict[str, Any] = OrderedDict()
        self._hubs: dict[str, Any] = {}

    def service(self, address: str):
        """The StateService of ``address``, made on first use (cheap: it connects lazily)."""
        from juno.dashboard.state_service import StateService

        evicted = []
        with self._lock:
            svc = self._services.get(address)
            if svc is not None:
                self._services.move_to_end(address)
                return svc
            svc = self._services[address] = StateService(address, timeout=self.timeout, token=self.token)
            # Beyond max_clusters: drop the least recently used clusters nobody watches live.
            idle = [a for a in self._services if a != address and not getattr(
                self._hubs.get(a), "subscribers", None)]
            for old in idle[:max(0, len(self._services) - self.max_clusters)]:
                evicted.append((self._hubs.pop(old, None), self._services.pop(old)))
        for hub, old_svc in evicted:
            self._close(hub, old_svc)
        return svc

    def hub(self, address: str):
        """The EventHub of ``address``; call on the IOLoop (the hub schedules its polls there)."""
        from juno.dashboard.event_hub import EventHub

        svc = self.service(address)
        with self._lock:
            hub = self._hubs.get(address)
            if hub is None:
                hub = self._hubs[address] = EventHub(svc, interval=self.interval, executor=self.executor)
            return hub

    @staticmethod
    def _close(hub: Any, svc: Any) -> None:
        for what in (hub, svc):
            close = getattr(what, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a half-broken service must not fail others
                    logger.debug("closing %r failed", what, exc_info=True)

    def close(self) -> None:
        with self._lock:
            items = [(self._hubs.pop(a, None), s) for a, s in self._services.items()]
            self._services.clear()
        for hub, svc in items:
            self._close(hub, svc)
        self.executor.shutdown(wait=False, cancel_futures=True)


# ============================================================================ route logic
class StateApiMixin:
    """What every route shares. A mount's base class provides ``juno_registry() -> ServiceRegistry``
    and ``juno_address() -> "host:port"`` (the cluster of this request), and authenticates the
    request before the verb runs."""

    async def juno_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``StateService.<method>(*args, **kwargs)`` in the thread pool (never on the IOLoop);
        its errors become ApiErrors."""
        registry = self.juno_registry()
        address = self.juno_address()

        def call() -> Any:
            return getattr(registry.service(address), method)(*args, **kwargs)

        try:
            return await asyncio.get_running_loop().run_in_executor(registry.executor, call)
        except Exception as e:  # noqa: BLE001 - mapped to its HTTP status
            raise as_api_error(e) from None

    def juno_int(self, name: str, bounds: tuple[int, int, int]) -> int:
        low, high, default = bounds
        raw = self.get_query_argument(name, None)  # type: ignore[attr-defined]
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be a whole number between {low} and {high}, got {raw!r}.") from None
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}, got {value}.")
        return value

    def juno_write(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json; charset=UTF-8")  # type: ignore[attr-defined]
        self.set_header("Cache-Control", "no-store")  # type: ignore[attr-defined]
        self.finish(json.dumps(payload))  # type: ignore[attr-defined]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error of the API is JSON ``{"error": "..."}`` that says what was wrong."""
        message = None
        exc_info = kwargs.get("exc_info")
        if exc_info is not None:
            error = exc_info[1]
            if isinstance(error, ApiError):
                message = error.message
            elif isinstance(error, tornado.web.HTTPError) and error.log_message:
                message = error.log_message % error.args if error.args else error.log_message
        if message is None:
            message = {401: "authentication required", 403: "forbidden: this request is not authenticated (or "
                       "its XSRF token is missing)", 404: "no such route",
                       405: "method not allowed"}.get(status_code, self._reason)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "application/json; charset=UTF-8")  # type: ignore[attr-defined]
        self.finish(json.dumps({"error": message}))  # type: ignore[attr-defined]

    def juno_body(self) -> dict:
        body = self.request.body  # type: ignore[attr-defined]
        if not body:
            return {}
        try:
            value = json.loads(body)
        except ValueError as e:
            raise ApiError(400, f"the request body must be a JSON object: {e}") from None
        if not isinstance(value, dict):
            raise ApiError(400, f"the request body must be a JSON object, got a JSON {type(value).__name__}.")
        return value


def check_hex_id(value: str, what: str, *, prefix_ok: bool = False) -> str:
    """A hex id (or, with ``prefix_ok``, a prefix of at least MIN_ID_PREFIX characters), lower case."""
    if not _HEX.match(value or ""):
        raise ApiError(400, f"{what} must be a hex string, got {value!r}.")
    if prefix_ok and len(value) < MIN_ID_PREFIX:
        raise ApiError(400, f"{what} must have at least {MIN_ID_PREFIX} hex characters, got {len(value)}.")
    return value.lower()


class SectionRoute(StateApiMixin):
    """GET one section of the state: ``StateService.<section>()``, with ``?limit=`` where the
    section takes one. Each section is a subclass made by :func:`_section`."""

    section = ""
    limit: tuple[int, int, int] | None = None  # (min, max, default) of ?limit=, when it takes one

    async def get(self) -> None:
        kwargs = {"limit": self.juno_int("limit", self.limit)} if self.limit else {}
        self.juno_write(await self.juno_call(self.section, **kwargs))


def _section(section: str, limit: tuple[int, int, int] | None = None) -> type:
    name = "".join(part.title() for part in section.split("_")) + "Route"
    return type(name, (SectionRoute,), {"section": section, "limit": limit})


class LogsRoute(StateApiMixin):
    async def get(self) -> None:
        actor_id = self.get_query_argument("actor_id", None)  # type: ignore[attr-defined]
        worker_id = self.get_query_argument("worker_id", None)  # type: ignore[attr-defined]
        if (actor_id is None) == (worker_id is None):
            raise ApiError(400, "give exactly one of actor_id=<hex id> or worker_id=<hex id> "
                                f"(a prefix of at least {MIN_ID_PREFIX} characters is enough).")
        tail = self.juno_int("tail", LOG_TAIL)
        if actor_id is not None:
            kwargs = {"actor_id": check_hex_id(actor_id, "actor_id", prefix_ok=True)}
        else:
            kwargs = {"worker_id": check_hex_id(worker_id or "", "worker_id", prefix_ok=True)}
        self.juno_write(await self.juno_call("logs", tail=tail, **kwargs))


class ActorKillRoute(StateApiMixin):
    async def post(self, actor_id: str) -> None:
        actor_id = check_hex_id(actor_id, "the actor id")
        no_restart = self.juno_body().get("no_restart", True)
        if not isinstance(no_restart, bool):
            raise ApiError(400, f"no_restart must be true or false, got {no_restart!r}.")
        await self.juno_call("kill_actor", actor_id, no_restart=no_restart)
        self.juno_write({"ok": True})


class EventsSocketMixin(StateApiMixin):
    """``/api/events``: the EventHub's messages for one client, with pause/resume/ping.

    The mount's handler class puts this before ``tornado.websocket.WebSocketHandler`` and
    authenticates the upgrade request (``get``) itself; origins are checked by the base."""

    _juno_subscription: Any = None
    _juno_closed: bool = False

    def open(self, *args: Any, **kwargs: Any) -> None:
        address = self.juno_address()
        registry = self.juno_registry()
        try:  # the hub says hello, then sends a full update as soon as it has one
            self._juno_subscription = registry.hub(address).subscribe(self._juno_send)
        except Exception as e:  # noqa: BLE001 - the socket stays open; the client sees why
            self._juno_send({"type": "hello", "address": address, "interval": registry.interval})
            self._juno_send({"type": "error", "error": as_api_error(e).message})

    def _juno_send(self, message: dict) -> None:
        if self._juno_closed:
            return
        try:
            self.write_message(json.dumps(message))  # type: ignore[attr-defined]
        except tornado.websocket.WebSocketClosedError:
            self._juno_stop()

    def on_message(self, message: str | bytes) -> None:
        try:
            kind = json.loads(message).get("type")
        except (ValueError, AttributeError):
            kind = None
        sub = self._juno_subscription
        if kind == "ping":
            self._juno_send({"type": "pong"})
        elif kind == "pause" and sub is not None:
            sub.pause()
        elif kind == "resume" and sub is not None:
            sub.resume()
        elif kind not in ("pause", "resume"):
            self._juno_send({"type": "error", "error": "unknown message: send {\"type\": \"pause\"}, "
                                                      "{\"type\": \"resume\"} or {\"type\": \"ping\"}."})

    def on_close(self) -> None:
        self._juno_stop()

    def _juno_stop(self) -> None:
        self._juno_closed = True
        sub, self._juno_subscription = self._juno_subscription, None
        if sub is not None:
            sub.close()


# (path under the mount's api prefix, route mixin); the websocket route is "events".
ROUTES: list[tuple[str, type]] = [
    ("summary", _section("summary")),
    ("nodes", _section("nodes")),
    ("tasks", _section("tasks", TASKS_LIMIT)),
    ("actors", _section("actors")),
    ("actors/([^/]+)/kill", ActorKillRoute),
    ("objects", _section("objects", OBJECTS_LIMIT)),
    ("placement_groups", _section("placement_groups")),
    ("jobs", _section("jobs")),
    ("workers", _section("workers")),
    ("library_runs", _section("library_runs")),
    ("logs", LogsRoute),
]


def api_routes(prefix: str, make_handler: Callable[[type], type],
               make_socket_handler: Callable[[type], type]) -> list[tuple[str, type]]:
    """The tornado routes of a mount: ``prefix`` (e.g. ``/api/``) + each route, its handler class
    ``make_handler(route mixin)``; the events websocket ``make_socket_handler(EventsSocketMixin)``."""
    routes = [(prefix + path + "/?$" if "(" not in path else prefix + path + "$", make_handler(mixin))
              for path, mixin in ROUTES]
    routes.append((prefix + "events/?$", make_socket_handler(EventsSocketMixin)))
    return routes
