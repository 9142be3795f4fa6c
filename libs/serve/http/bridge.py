"""The replica's side of an HTTP request: payload -> Starlette ``Request`` -> user code -> response payload.

The proxy sends one plain payload per request ({"scope": ASGI http scope, "body": bytes}); the replica calls
``handle_http(target, payload)`` (one reply) or iterates ``stream_http(target, payload)`` (a stream: first
{"status", "headers"}, then byte chunks). ``target`` is what the deployment serves: a function, a class
instance (its ``__call__``), or an instance of an ``@serve.ingress(app)`` class, whose requests go to the
ASGI app with the instance bound. Return values become responses as in Ray Serve: a Starlette ``Response``
as it is, dict/list/None/numbers as JSON, str as text, bytes as octet-stream, generators as streams.
"""
from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import json
import traceback
from collections.abc import AsyncIterator
from typing import Any

from juno.serve.http import require

require("starlette")

from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response, StreamingResponse  # noqa: E402

JSON_HEADERS = [[b"content-type", b"application/json"]]
TEXT_HEADERS = [[b"content-type", b"text/plain; charset=utf-8"]]
BYTES_HEADERS = [[b"content-type", b"application/octet-stream"]]

# The instance an ingress app's routes get as ``self`` while they serve a request (ingress.py reads it).
current_instance: contextvars.ContextVar[Any] = contextvars.ContextVar("juno_serve_instance", default=None)


# Apps still running after their reply (background tasks): held so they are not garbage collected.
_after_reply: set = set()


class InvalidJSONBody(json.JSONDecodeError):
    """``await request.json()`` on a body that is not JSON: the client's mistake, answered 400."""


class ServeRequest(Request):
    """Starlette's Request whose ``json()`` tells a bad body (400) from a bug in user code (500)."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except json.JSONDecodeError as exc:
            raise InvalidJSONBody(f"the request body is not valid JSON: {exc.msg}", exc.doc, exc.pos) from exc
        except UnicodeDecodeError as exc:
            raise InvalidJSONBody(f"the request body is not UTF-8 text: {exc.reason}", "", 0) from exc


def asgi_app_of(target: Any):
    """The ASGI app an ``@serve.ingress`` class serves, or None for a plain callable."""
    return getattr(type(target), "__serve_asgi_app__", None)


def streams(target: Any) -> bool:
    """Whether a deployment's HTTP answers are generators (its ``__call__`` is a generator function; ``target``
    is the function, the class or an instance): the driver computes it when it builds the app and the
    controller can put ``"stream": True`` in its route so the proxy calls the replica's streaming method and
    chunks reach the client as they are made (otherwise ``handle_http`` joins them into one reply)."""
    if asgi_app_of(target) is not None or getattr(target, "__serve_asgi_app__", None) is not None:
        return False  # an @serve.ingress class (or its instance): the ASGI app answers, streaming or not
    call = target if inspect.isfunction(target) else getattr(target, "__call__", None)
    return inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call)


def make_receive(body: bytes):
    """An ASGI receive() that gives the body once, then waits (a disconnect is the proxy's business)."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never set: cancelled when the response is done
        raise AssertionError("unreachable")

    return receive


def prepare_scope(payload: dict) -> dict:
    """The ASGI scope for user code: the proxy's fields plus what ASGI apps expect to find."""
    scope = dict(payload["scope"])
    scope["type"] = "http"
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}  # 2.4: no listening for disconnects
    scope["headers"] = [(bytes(k), bytes(v)) for k, v in scope.get("headers", ())]
    scope.setdefault("path_params", {})
    scope.setdefault("root_path", "")
    for key in ("client", "server"):
        if scope.get(key) is not None:
            scope[key] = tuple(scope[key])
    return scope


# --- one reply ---------------------------------------------------------------------------------------------------

async def handle_http(target: Any, payload: dict) -> dict:
    """Serve one request; always a response payload {"status", "headers", "body"} (errors included)."""
    parts: list = []
    async for item in stream_http(target, payload):
        parts.append(item)
    start, chunks = parts[0], parts[1:]
    return {"status": start["status"], "headers": start["headers"], "body": b"".join(chunks)}


# --- a stream ----------------------------------------------------------------------------------------------------

async def stream_http(target: Any, payload: dict) -> AsyncIterator:
    """Serve one request as a stream: {"status", "headers"}, then bytes chunks. An error before the first
    chunk becomes an error response; one after it is raised (the proxy cuts the connection)."""
    scope = prepare_scope(payload)
    receive = make_receive(payload.get("body", b""))
    app = asgi_app_of(target)
    if app is not None:
        if scope["root_path"] and scope["path"] == scope["root_path"]:
            scope["path"] += "/"  # the app's "/" route answers at the bare prefix too
        source = run_asgi(app, scope, receive, instance=target)
    else:
        try:
            result = await call_user(target, ServeRequest(scope, receive))
        except Exception as exc:  # noqa: BLE001  (every user error becomes a response)
            source = error_stream(exc)
        else:
            source = result_stream(result, scope, receive)
    async for item in source:
        yield item


async def call_user(target: Any, request: Request) -> Any:
    """Call the user's callable with the request; await it when it is a coroutine."""
    result = target(request)
    if inspect.isawaitable(result):
        result = await result
    return result


async def result_stream(result: Any, scope: dict, receive) -> AsyncIterator:
    """What the user returned, as a stream of (start, chunks...)."""
    if isinstance(result, Response):
        async for item in run_asgi(result, scope, receive):
            yield item
        return
    if inspect.isgenerator(result) or inspect.isasyncgen(result):
        async for item in run_asgi(StreamingResponse(encode_chunks(result), media_type="text/plain"), scope,
                                   receive):
            yield item
        return
    try:
        status, headers, body = value_response(result)
    except TypeError as exc:
        status, headers, body = 500, TEXT_HEADERS, str(exc).encode()
    yield {"status": status, "headers": headers + [[b"content-length", str(len(body)).encode()]]}
    yield body


async def encode_chunks(generator) -> AsyncIterator[bytes]:
    """A user generator's items as bytes: bytes as they are, str as UTF-8, other values as JSON lines."""
    if inspect.isasyncgen(generator):
        async for item in generator:
            yield chunk_bytes(item)
    else:
        for item in generator:
            yield chunk_bytes(item)


def chunk_bytes(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str):
        return item.encode()
    return json_bytes(item) + b"\n"


def value_response(value: Any) -> tuple[int, list, bytes]:
    """(status, headers, body) for a plain return value; TypeError naming the type when there is none."""
    if isinstance(value, str):
        return 200, TEXT_HEADERS, value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return 200, BYTES_HEADERS, bytes(value)
    return 200, JSON_HEADERS, json_bytes(value)


def json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, default=jsonable, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the deployment returned a {type(value).__module__}.{type(value).__qualname__}, which "
                        f"cannot become an HTTP response ({exc}): return a str, bytes, a JSON-serialisable value "
                        f"or a starlette Response") from exc


def jsonable(value: Any) -> Any:
    """What JSON cannot take by itself but has an obvious JSON form: numpy/torch values, pydantic models,
    dataclasses, sets."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


# --- errors ------------------------------------------------------------------------------------------------------

async def error_stream(exc: BaseException) -> AsyncIterator:
    status, headers, body = error_response(exc)
    yield {"status": status, "headers": headers + [[b"content-length", str(len(body)).encode()]]}
    yield body


def error_response(exc: BaseException) -> tuple[int, list, bytes]:
    """A bad JSON body is the client's fault (400); an HTTPException keeps its status; anything else is the
    deployment's (500, with the type, the message and the traceback)."""
    if isinstance(exc, InvalidJSONBody):
        return 400, TEXT_HEADERS, f"400 Bad Request: {exc.msg}".encode()
    if isinstance(exc, HTTPException):
        headers = [[k.lower().encode(), v.encode()] for k, v in (exc.headers or {}).items()]
        return exc.status_code, TEXT_HEADERS + headers, str(exc.detail).encode()
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return 500, TEXT_HEADERS, f"{type(exc).__name__}: {exc}\n\n{text}".encode()


# --- running an ASGI app -----------------------------------------------------------------------------------------

async def run_asgi(app, scope: dict, receive, instance: Any = None) -> AsyncIterator:
    """Run an ASGI app (a Starlette Response, a FastAPI app...) against ``scope``, yielding its response as
    (start, chunks...) while it runs. An app that fails before starting its response gives a 500; what it
    runs after its last chunk (background tasks) goes on after the reply."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def send(message: dict) -> None:
        await queue.put(message)

    async def run() -> None:
        current_instance.set(instance)  # this task's own context: seen by the app's dependencies only
        try:
            await app(scope, receive, send)
        except Exception as exc:  # noqa: BLE001  (reported in order, after what it sent)
            await queue.put(exc)
        finally:
            await queue.put(done)

    task = asyncio.get_running_loop().create_task(run())
    started = finished = False
    try:
        while True:
            message = await queue.get()
            if message is done:
                break
            if isinstance(message, BaseException):
                if started:
                    raise message
                async for item in error_stream(message):
                    yield item
                started = True
                continue
            kind = message["type"]
            if kind == "http.response.start" and not started:
                started = True
                yield {"status": message["status"],
                       "headers": [[bytes(k), bytes(v)] for k, v in message.get("headers", ())]}
            elif kind == "http.response.body" and started:
                if message.get("body"):
                    yield bytes(message["body"])
                if not message.get("more_body", False):
                    break
        if not started:
            async for item in error_stream(RuntimeError("the ASGI app returned without sending a response")):
                yield item
        finished = True
    finally:
        if not task.done() and not finished:
            task.cancel()  # the stream was abandoned: stop the app
        if not task.done():
            _after_reply.add(task)
            task.add_done_callback(_after_reply.discard)
