"""DeploymentHandle, DeploymentResponse and DeploymentResponseGenerator (Ray Serve's names).

A handle sends each call through the process's Router for its deployment (``juno.serve.router``),
which runs on one shared background loop per process; the handle only builds the request's
metadata and bridges that loop to the caller (blocking ``result()``, ``await``, iteration).
Handles pickle as their names and options and rebuild their router lazily in the new process.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from typing import Any

import juno

_routers: dict[tuple[str, str], Any] = {}
_routers_lock = threading.Lock()
_routers_pid: list[int] = []
ROUTER_START_TIMEOUT_S = 30.0


def _router_for(app: str, deployment: str) -> tuple[Any, asyncio.AbstractEventLoop]:
    """This process's Router for the deployment (made on first use) and the loop it runs on."""
    import os

    from juno.serve.controller import CONTROLLER_NAME, SERVE_NAMESPACE
    from juno.serve.router import Router, shared_loop

    loop = shared_loop()
    key = (app, deployment)
    with _routers_lock:
        if _routers_pid != [os.getpid()]:  # a forked child: the parent's routers are not ours
            _routers.clear()
            _routers_pid[:] = [os.getpid()]
        router = _routers.get(key)
        if router is None:
            try:
                controller = juno.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
            except ValueError:
                raise RuntimeError("Serve is not running on this cluster: deploy an application with "
                                   "serve.run(...) first") from None

            async def make() -> Any:
                return Router(controller, app, deployment, loop=loop)

            router = _routers[key] = _run_on(loop, make()).result(ROUTER_START_TIMEOUT_S)
    return router, loop


def _run_on(loop: asyncio.AbstractEventLoop, coro: Any) -> concurrent.futures.Future:
    return asyncio.run_coroutine_threadsafe(coro, loop)


def shutdown_routers() -> None:
    """Stop every router of this process (serve.shutdown)."""
    with _routers_lock:
        routers = list(_routers.values())
        _routers.clear()
    for router in routers:
        try:
            router.shutdown()
        except Exception:  # noqa: BLE001 - a router whose loop is gone has nothing left to stop
            pass


class DeploymentHandle:
    """Calls a deployment: ``handle.remote(...)`` (its ``__call__``) or ``handle.method.remote(...)``."""

    def __init__(self, deployment_name: str, app_name: str = "default", *, method_name: str = "__call__",
                 stream: bool = False, multiplexed_model_id: str = "") -> None:
        self.deployment_name = deployment_name
        self.app_name = app_name
        self._method_name = method_name
        self._stream = stream
        self._multiplexed_model_id = multiplexed_model_id

    def options(self, *, method_name: str | None = None, stream: bool | None = None,
                multiplexed_model_id: str | None = None, use_new_handle_api: Any = None) -> "DeploymentHandle":
        """A new handle with these call options changed."""
        if method_name is not None and (not isinstance(method_name, str) or not method_name):
            raise ValueError(f"method_name must be a non-empty string, got {method_name!r}")
        if stream is not None and not isinstance(stream, bool):
            raise TypeError(f"stream must be True or False, got {stream!r}")
        return DeploymentHandle(
            self.deployment_name, self.app_name,
            method_name=self._method_name if method_name is None else method_name,
            stream=self._stream if stream is None else stream,
            multiplexed_model_id=(self._multiplexed_model_id if multiplexed_model_id is None
                                  else str(multiplexed_model_id)))

    def __getattr__(self, name: str) -> "DeploymentHandle":
        if name.startswith("_"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def remote(self, *args: Any, **kwargs: Any) -> "DeploymentResponse | DeploymentResponseGenerator":
        meta = {"request_id": uuid.uuid4().hex, "app": self.app_name, "deployment": self.deployment_name,
                "method": self._method_name, "stream": self._stream, "http": False, "route": "",
                "multiplexed_model_id": self._multiplexed_model_id}
        router, loop = _router_for(self.app_name, self.deployment_name)
        future = _run_on(loop, _assign(router, meta, args, kwargs))
        if self._stream:
            return DeploymentResponseGenerator(future)
        return DeploymentResponse(future)

    def __reduce__(self) -> tuple:
        return (_rebuild_handle, (self.deployment_name, self.app_name, self._method_name, self._stream,
                                  self._multiplexed_model_id))

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"


def _rebuild_handle(deployment: str, app: str, method: str, stream: bool, model_id: str) -> DeploymentHandle:
    return DeploymentHandle(deployment, app, method_name=method, stream=stream, multiplexed_model_id=model_id)


async def _assign(router: Any, meta: dict, args: tuple, kwargs: dict) -> Any:
    """On the router's loop: responses among the arguments become their ObjectRefs (unresolved,
    so the next replica waits for them, not this process), then the router picks a replica."""
    if any(isinstance(a, DeploymentResponse) for a in args):
        args = tuple([await a._assigned_async() if isinstance(a, DeploymentResponse) else a for a in args])
    if any(isinstance(v, DeploymentResponse) for v in kwargs.values()):
        kwargs = {k: (await v._assigned_async() if isinstance(v, DeploymentResponse) else v)
                  for k, v in kwargs.items()}
    return await router.assign_request(meta, args, kwargs)


class _Pending:
    """A call the router has not assigned yet: a concurrent future of its ObjectRef(Generator)."""

    def __init__(self, future: concurrent.futures.Future) -> None:
        self._future = future

    def _assigned(self, timeout_s: float | None) -> Any:
        try:
            return self._future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the request was not assigned to a replica within {timeout_s} s") from None

    async def _assigned_async(self) -> Any:
        return await asyncio.wrap_future(self._future)


class DeploymentResponse(_Pending):
    """The future result of one handle call: ``result()``, ``await``, or pass it on to another call."""

    def result(self, timeout_s: float | None = None) -> Any:
        """The call's return value (its exception raised here); TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ref = self._assigned(timeout_s)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return juno.get(ref, timeout=remaining)

    def __await__(self) -> Any:
        return self._await_result().__await__()

    async def _await_result(self) -> Any:
        ref = await self._assigned_async()
        return await ref

    def _to_object_ref_sync(self, timeout_s: float | None = None) -> Any:
        return self._assigned(timeout_s)

    async def _to_object_ref(self) -> Any:
        return await self._assigned_async()

    def cancel(self) -> None:
        """Cancel the call: before assignment it never runs; after, the replica's call is cancelled."""
        if self._future.cancel():
            return
        try:
            juno.cancel(self._future.result(timeout=0))
        except Exception:  # noqa: BLE001 - finished or failed already: nothing left to cancel
            pass

    def __reduce__(self) -> tuple:
        raise TypeError("a DeploymentResponse cannot be pickled: pass it straight to another handle call "
                        "(handle.remote(response)), or pass its result")


class DeploymentResponseGenerator(_Pending):
    """The items of a streaming call (``handle.options(stream=True)``): ``for`` and ``async for``."""

    def __init__(self, future: concurrent.futures.Future) -> None:
        super().__init__(future)
        self._gen: Any = None

    def __iter__(self) -> "DeploymentResponseGenerator":
        return self

    def __next__(self) -> Any:
        if self._gen is None:
            self._gen = self._assigned(None)
        return juno.get(next(self._gen))

    def __aiter__(self) -> "DeploymentResponseGenerator":
        return self

    async def __anext__(self) -> Any:
        if self._gen is None:
            self._gen = await self._assigned_async()
        ref = await self._gen.__anext__()
        return await ref

    def cancel(self) -> None:
        if self._future.cancel():
            return
        try:
            juno.cancel(self._future.result(timeout=0))
        except Exception:  # noqa: BLE001
            pass

    def __reduce__(self) -> tuple:
        raise TypeError("a DeploymentResponseGenerator cannot be pickled: iterate it where it was made")
