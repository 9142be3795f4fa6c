"""The proxy's ASGI app: an HTTP request -> one replica call -> the HTTP response.

Per request: match the route (no controller call), read the body (at most ``max_body_bytes``, within the
request timeout), build the payload, ``await router.assign_request(meta, (payload,), {})`` on the ingress
deployment's Router, await the one ref (or iterate the stream) and answer. Status codes: 404 no route,
413 body too large (refused before it is read), 408 body too slow, 503 back-pressure (Retry-After) or no
replica to take it, 504 no answer (or no free replica) within request_timeout_s, 500 a failed replica or user error, and GET/HEAD retried on another replica when the
replica died with the request. ``/-/healthz`` and ``/-/routes`` answer as Ray's proxy does.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import juno
from juno.exceptions import RayActorError
from juno.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestTimeoutError
from juno.serve.http.routes import Route, RouteTable

logger = logging.getLogger(__name__)

RETRYABLE_METHODS = frozenset({"GET", "HEAD"})
MAX_ATTEMPTS = 3
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class ProxyOptions:
    """The http_options the proxy acts on (the controller's ``get_http_options()``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    request_timeout_s: float | None = None  # the whole request; None: no limit (Ray's default)
    max_body_bytes: int = 100 * 1024 * 1024
    body_timeout_s: float = 60.0  # reading a body, when request_timeout_s does not say less
    keep_alive_timeout_s: float = 5.0

    @classmethod
    def from_dict(cls, options: dict | None) -> ProxyOptions:
        known = {k: v for k, v in (options or {}).items() if k in cls.__dataclass_fields__}
        opts = cls(**known)
        if not isinstance(opts.port, int) or not 0 <= opts.port < 65536:
            raise ValueError(f"http_options port must be an int in 0..65535 (0: pick a free one), got {opts.port!r}")
        if opts.max_body_bytes is not None and opts.max_body_bytes < 0:
            raise ValueError(f"http_options max_body_bytes must be >= 0, got {opts.max_body_bytes}")
        if opts.request_timeout_s is not None and opts.request_timeout_s <= 0:
            raise ValueError(f"http_options request_timeout_s must be > 0 or None, got {opts.request_timeout_s}")
        return opts


class HTTPError(Exception):
    """An answer other than the replica's: a status, a text and headers."""

    def __init__(self, status: int, text: str, headers: list | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or []


def error_answer(exc: BaseException, method: str, attempts: int = 1) -> HTTPError:
    """The HTTP answer to what went wrong between the proxy and a replica."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, BackPressureError):
        return HTTPError(503, f"Service unavailable, too many requests queued: {exc}", [(b"retry-after", b"1")])
    if isinstance(exc, DeploymentUnavailableError):
        return HTTPError(503, f"Service unavailable, no replica can take this request: {exc}")
    if isinstance(exc, RequestTimeoutError):
        return HTTPError(504, f"No replica was free within request_timeout_s ({exc.timeout_s:g} s): {exc}")
    if isinstance(exc, RayActorError):
        if method in RETRYABLE_METHODS:
            return HTTPError(500, f"The replica died while handling this request, on each of {attempts} tries: {exc}")
        return HTTPError(500, f"The replica died while handling this {method} request, which is not retried "
                              f"(only GET and HEAD are): {exc}")
    return HTTPError(500, f"{type(exc).__name__}: {exc}")


class RouterPool:
    """One Router per ingress deployment, made on first use on the proxy's loop, dropped with its route."""

    def __init__(self, make_router: Callable[[str, str], object]) -> None:
        self._make = make_router
        self._routers: dict[tuple[str, str], object] = {}

    def get(self, app: str, deployment: str):
        key = (app, deployment)
        router = self._routers.get(key)
        if router is None:
            router = self._routers[key] = self._make(app, deployment)
        return router

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        for key in list(self._routers):
            if key not in keys:
                self._routers.pop(key).shutdown()

    def shutdown(self) -> None:
        self.keep_only(set())


class ProxyApp:
    """The ASGI app uvicorn runs in the proxy."""

    def __init__(self, routes: RouteTable, routers: RouterPool, options: ProxyOptions) -> None:
        self.routes = routes
        self.routers = routers
        self.options = options

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        path = scope["path"]
        if path.startswith("/-/"):
            return await self.builtin(path, send)
        route = self.routes.match(path)
        try:
            if route is None:
                raise HTTPError(404, f"Path '{path}' not found. Routes: {sorted(self.routes.prefixes())}")
            body = await self.read_body(scope, receive)
            await self.forward(route, scope, body, send)
        except HTTPError as exc:
            await respond(send, exc.status, TEXT + exc.headers, exc.text.encode())

    async def builtin(self, path: str, send) -> None:
        if path == "/-/healthz":
            return await respond(send, 200, TEXT, b"success")
        if path == "/-/routes":
            return await respond(send, 200, JSON, json.dumps(self.routes.prefixes()).encode())
        await respond(send, 404, TEXT, f"Path '{path}' not found: the proxy answers /-/healthz and /-/routes".encode())

    async def read_body(self, scope, receive) -> bytes:
        """The whole body: 413 before reading one past the limit, 408 when it comes too slowly."""
        limit = self.options.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise HTTPError(400, f"Content-Length {value!r} is not a number of bytes")
                if limit is not None and int(value) > limit:
                    raise HTTPError(413, f"The request body ({int(value)} bytes) is larger than max_body_bytes "
                                         f"({limit}) in http_options")
                break
        timeout = min(self.options.body_timeout_s, self.options.request_timeout_s or float("inf"))
        try:
            return await asyncio.wait_for(read_all(receive, limit), timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, f"The request body did not arrive within {timeout:g} s") from None

    async def forward(self, route: Route, scope, body: bytes, send) -> None:
        """One replica call (more only for a GET/HEAD whose replica died) and the answer."""
        method = scope["method"]
        meta = {"request_id": request_id(scope), "app": route.app, "deployment": route.deployment,
                "method": "__call__", "stream": route.stream, "http": True, "route": route.prefix,
                "multiplexed_model_id": ""}
        payload = {"scope": replica_scope(scope, route.prefix), "body": body}
        router = self.routers.get(route.app, route.deployment)
        timeout = self.options.request_timeout_s
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout  # the router's wait for a slot counts too
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if route.stream:
                    return await self.stream(router, meta, payload, send, timeout)
                ref = await router.assign_request(meta, (payload,), {})
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    reply = await asyncio.wait_for(asyncio.wrap_future(ref.future()), remaining)
                except asyncio.TimeoutError:
                    cancel_quietly(ref)
                    raise HTTPError(504, f"The replica did not answer within request_timeout_s ({timeout:g} s)")
                return await respond(send, reply["status"], reply["headers"], reply["body"])
            except RayActorError as exc:
                if method not in RETRYABLE_METHODS or attempt == MAX_ATTEMPTS:
                    raise error_answer(exc, method, attempt) from None
                logger.info("replica died with %s %s; retrying (attempt %d)", method, scope["path"], attempt + 1)
            except HTTPError:
                raise
            except Exception as exc:  # noqa: BLE001  (answered, never crashes the proxy)
                raise error_answer(exc, method) from None

    async def stream(self, router, meta: dict, payload: dict, send, timeout: float | None) -> None:
        """A streaming reply: the first item is the start, then chunks as the replica yields them."""
        gen = await router.assign_request(meta, (payload,), {})
        started = False
        try:
            async for ref in gen:
                item = await ref
                if not started:
                    await send({"type": "http.response.start", "status": item["status"], "headers": item["headers"]})
                    started = True
                else:
                    await send({"type": "http.response.body", "body": item, "more_body": True})
        except Exception:
            if started:  # too late for a status: cut the response short
                logger.warning("stream of %s broke after it started", meta["request_id"], exc_info=True)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            raise
        if not started:
            raise HTTPError(500, "The replica's stream ended before it sent a response")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_all(receive, limit: int | None) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "The client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise HTTPError(413, f"The request body is larger than max_body_bytes ({limit}) in http_options")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replica_scope(scope, prefix: str) -> dict:
    """The part of the ASGI scope a replica needs (plain values: it pickles cheaply)."""
    return {"type": "http", "method": scope["method"], "path": scope["path"],
            "raw_path": scope.get("raw_path") or scope["path"].encode(), "query_string": scope["query_string"],
            "headers": scope["headers"], "root_path": "" if prefix == "/" else prefix, "client": scope.get("client"),
            "server": scope.get("server"), "scheme": scope.get("scheme", "http"),
            "http_version": scope.get("http_version", "1.1"), "path_params": {}}


def request_id(scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("latin-1")
    return uuid.uuid4().hex


def cancel_quietly(ref) -> None:
    try:
        juno.cancel(ref)
    except Exception:  # noqa: BLE001  (best effort: the reply is already a 504)
        logger.debug("cancelling a timed-out request failed", exc_info=True)


async def respond(send, status: int, headers, body: bytes) -> None:
    headers = list(headers)
    if not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
