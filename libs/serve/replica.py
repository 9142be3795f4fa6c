"""The replica actor: one copy of a deployment's class or function, serving requests.

An async actor (the controller creates it with ``max_concurrency = max_ongoing_requests + 16``, so
control calls find a slot even when requests fill the rest). Async user methods run on the
actor's event loop; sync ones run in a thread pool as large as ``max_ongoing_requests``, so that
many calls really overlap and the loop stays free for health checks and metrics.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
import os
import time
from typing import Any, AsyncIterator, Callable

import juno
from juno.util import serialization

MAX_KEPT_LATENCIES = 10_000  # between two get_metrics calls; older ones are dropped


@dataclasses.dataclass
class ReplicaContext:
    """What ``serve.get_replica_context()`` returns inside a replica."""

    app_name: str
    deployment: str
    replica_id: str
    servable_object: Any = None

    @property
    def replica_tag(self) -> str:
        return self.replica_id


_context: ReplicaContext | None = None


def current_context() -> ReplicaContext | None:
    """The running replica's context, or None outside a replica."""
    return _context


class Replica:
    """The actor class behind every replica (the controller wraps it with ``juno.remote``)."""

    def __init__(self, app: str, deployment: str, replica_id: str, serialized_def: bytes, init_args: tuple,
                 init_kwargs: dict, config: dict, is_function: bool) -> None:
        # No user code here: a constructor error must come back from initialize(), not kill the actor.
        self._app = app
        self._deployment = deployment
        self._replica_id = replica_id
        self._serialized_def = serialized_def
        self._init_args = init_args
        self._init_kwargs = init_kwargs
        self._config = config
        self._is_function = is_function
        self._target: Any = None  # the user's instance, or the function
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, int(config.get("max_ongoing_requests", 5))), thread_name_prefix="serve-replica")
        self._ongoing = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._requests = 0
        self._errors = 0
        self._latencies_ms: list[float] = []

    # ------------------------------------------------------------------ control calls (the controller's)
    async def initialize(self) -> dict:
        """Run the user's constructor (and reconfigure with user_config); its error is this call's."""
        global _context
        _context = ReplicaContext(self._app, self._deployment, self._replica_id)
        definition = serialization.loads_code(self._serialized_def)
        if self._is_function:
            self._target = definition
        else:
            self._target = definition(*self._init_args, **self._init_kwargs)
        _context.servable_object = self._target
        if self._config.get("user_config") is not None:
            await self.reconfigure(self._config["user_config"])
        return {"replica_id": self._replica_id, "pid": os.getpid(),
                "node_id": juno.get_runtime_context().get_node_id()}

    async def reconfigure(self, user_config: Any) -> None:
        """Hand a new user_config to the user's ``reconfigure`` (no restart)."""
        self._config["user_config"] = user_config
        method = getattr(self._target, "reconfigure", None) if not self._is_function else None
        if method is None:
            if user_config is not None:
                raise ValueError(f"deployment {self._deployment!r} got a user_config but its class has no "
                                 "reconfigure(self, config) method to receive it")
            return
        await self._run(method, (user_config,), {})

    async def check_health(self) -> None:
        """Call the user's ``check_health`` if there is one; it raises when unhealthy."""
        method = getattr(self._target, "check_health", None) if not self._is_function else None
        if method is not None:
            await self._run(method, (), {})

    async def get_num_ongoing_requests(self) -> int:
        return self._ongoing

    async def get_metrics(self) -> dict:
        """Counters, and the latencies since the last call (the controller is the only caller)."""
        latencies, self._latencies_ms = self._latencies_ms, []
        return {"ongoing": self._ongoing, "requests": self._requests, "errors": self._errors,
                "latencies_ms": latencies}

    async def prepare_for_shutdown(self) -> None:
        """Wait graceful_shutdown_wait_loop_s first (as Ray does): routers learn that this replica left
        the set and stop sending to it, so no request arrives after it stopped; then wait for the
        requests in flight to finish, all within graceful_shutdown_timeout_s."""
        timeout = float(self._config.get("graceful_shutdown_timeout_s", 20.0))
        settle = min(timeout, float(self._config.get("graceful_shutdown_wait_loop_s", 2.0)))
        start = time.monotonic()
        await asyncio.sleep(settle)
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout - (time.monotonic() - start)))
        except asyncio.TimeoutError:
            pass
        self._executor.shutdown(wait=False)

    # ------------------------------------------------------------------ requests (routers')
    async def handle_request(self, meta: dict, args: tuple, kwargs: dict) -> Any:
        """One unary call of ``meta["method"]``; HTTP requests go through the HTTP bridge."""
        start = self._begin()
        ok = False
        try:
            if meta.get("http"):
                from juno.serve.http.bridge import handle_http

                result = await handle_http(self._http_target(), args[0])
            else:
                args, kwargs = await _resolve_refs(args, kwargs)
                result = await self._run(self._method(meta.get("method", "__call__")), args, kwargs)
            ok = True
            return result
        finally:
            self._end(start, ok)

    async def handle_request_streaming(self, meta: dict, args: tuple, kwargs: dict) -> AsyncIterator[Any]:
        """A streaming call (``num_returns="streaming"``): each item the user's generator yields."""
        start = self._begin()
        ok = False
        try:
            if meta.get("http"):
                from juno.serve.http.bridge import stream_http

                async for item in stream_http(self._http_target(), args[0]):
                    yield item
            else:
                method = self._method(meta.get("method", "__call__"))
                args, kwargs = await _resolve_refs(args, kwargs)
                async for item in self._iterate(method, args, kwargs):
                    yield item
            ok = True
        finally:
            self._end(start, ok)

    # ------------------------------------------------------------------ helpers
    def _begin(self) -> float:
        self._ongoing += 1
        self._idle.clear()
        return time.perf_counter()

    def _end(self, start: float, ok: bool) -> None:
        self._ongoing -= 1
        self._requests += 1
        if not ok:
            self._errors += 1
        if len(self._latencies_ms) < MAX_KEPT_LATENCIES:
            self._latencies_ms.append((time.perf_counter() - start) * 1000.0)
        if self._ongoing == 0:
            self._idle.set()

    def _http_target(self) -> Any:
        return self._target

    def _method(self, name: str) -> Callable:
        if self._target is None:
            raise RuntimeError(f"replica {self._replica_id} of deployment {self._deployment!r} is not initialized")
        if self._is_function:
            if name != "__call__":
                raise AttributeError(f"deployment {self._deployment!r} is a function: it has no method {name!r} "
                                     "(call the handle itself with handle.remote(...))")
            return self._target
        method = getattr(self._target, name, None) if not name.startswith("__") or name == "__call__" else None
        if method is None or not callable(method):
            raise AttributeError(f"deployment {self._deployment!r} has no method {name!r}")
        return method

    async def _run(self, fn: Callable, args: tuple, kwargs: dict) -> Any:
        """Await an async callable; run a sync one in the pool (an awaitable it returns is awaited)."""
        if _is_async(fn):
            return await fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _iterate(self, fn: Callable, args: tuple, kwargs: dict) -> AsyncIterator[Any]:
        if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(getattr(fn, "__call__", None)):
            async for item in fn(*args, **kwargs):
                yield item
            return
        if inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(getattr(fn, "__call__", None)):
            gen = fn(*args, **kwargs)
        else:
            gen = await self._run(fn, args, kwargs)
        if inspect.isasyncgen(gen):
            async for item in gen:
                yield item
            return
        if not inspect.isgenerator(gen):
            raise TypeError(f"method {getattr(fn, '__name__', fn)!r} of deployment {self._deployment!r} is not a "
                            "generator: call it without stream=True")
        loop = asyncio.get_running_loop()
        done = object()
        while True:  # each step in the pool, so a slow generator never blocks the loop
            item = await loop.run_in_executor(self._executor, next, gen, done)
            if item is done:
                return
            yield item


async def _resolve_refs(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Top-level ObjectRef arguments (a DeploymentResponse passed on unresolved travels as its ref,
    inside the args tuple) become their values, as a task's top-level refs do."""
    if any(isinstance(a, juno.ObjectRef) for a in args):
        args = tuple([await a if isinstance(a, juno.ObjectRef) else a for a in args])
    if any(isinstance(v, juno.ObjectRef) for v in kwargs.values()):
        kwargs = {k: (await v if isinstance(v, juno.ObjectRef) else v) for k, v in kwargs.items()}
    return args, kwargs


def _is_async(fn: Callable) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
