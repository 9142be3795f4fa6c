"""Request/response over the event loop, for the control plane.

A server exposes ``rpc_<method>(reply, *args)`` handlers; returning a value
answers at once, returning :data:`DEFER` keeps ``reply`` to answer later (a
lease granted when resources free up, an actor reported alive). Clients call
with a callback on the loop thread, or block on a Future from any other thread.
"""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Callable

from juno.transport import EventLoop, RequestTracker

logger = logging.getLogger(__name__)

DEFER = object()


class RpcError(Exception):
    """The remote handler failed; carries the remote exception's text."""


class Reply:
    __slots__ = ("_loop", "_to", "_rid", "_done")

    def __init__(self, loop: EventLoop, to: str | None, rid: int):
        self._loop = loop
        self._to = to
        self._rid = rid
        self._done = False

    def send(self, value: Any = None) -> None:
        if self._done or self._to is None:
            return
        self._done = True
        self._loop.send(self._to, ("rpc_reply", self._rid, True, value))

    def fail(self, exc: BaseException) -> None:
        if self._done or self._to is None:
            return
        self._done = True
        try:
            self._loop.send(self._to, ("rpc_reply", self._rid, False, exc))
        except Exception:  # noqa: BLE001 - exception not picklable
            self._loop.send(self._to, ("rpc_reply", self._rid, False, RpcError(repr(exc))))

    @property
    def caller(self) -> str | None:
        return self._to


def future_callback() -> tuple[concurrent.futures.Future, Callable[[bool, Any], None]]:
    """A Future and the ``callback(ok, value)`` that settles it (once; later calls are ignored)
    with the answer, or with the remote error (an :class:`RpcError` if it is no exception)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def done(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value if isinstance(value, BaseException) else RpcError(str(value)))

    return fut, done


class RpcNode:
    """Mixin wiring ``rpc``/``rpc_reply`` messages into an EventLoop's handler table."""

    loop: EventLoop

    def install_rpc(self, loop: EventLoop) -> None:
        self.loop = loop
        self._requests = RequestTracker()
        loop.handlers["rpc"] = self._on_rpc
        loop.handlers["rpc_reply"] = self._on_rpc_reply

    def _on_rpc(self, rid: int, reply_to: str | None, method: str, args: tuple) -> None:
        reply = Reply(self.loop, reply_to, rid)
        handler = getattr(self, "rpc_" + method, None)
        if handler is None:
            reply.fail(RpcError(f"{type(self).__name__} has no method {method!r}"))
            return
        try:
            result = handler(reply, *args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            logger.debug("rpc %s failed", method, exc_info=True)
            reply.fail(exc)
            return
        if result is not DEFER:
            reply.send(result)

    def _on_rpc_reply(self, rid: int, ok: bool, value: Any) -> None:
        self._requests.resolve(rid, (ok, value))

    def call(self, address: str, method: str, *args: Any, callback: Callable[[bool, Any], None] | None = None,
             timeout: float | None = None) -> None:
        """Send a request from the loop thread; ``callback(ok, value)`` gets the answer, or
        ``(False, TimeoutError)`` if ``timeout`` seconds pass first."""
        if callback is None:
            self.loop.send(address, ("rpc", 0, None, method, args))
            return
        rid = self._requests.new(lambda result: callback(*result))
        try:
            self.loop.send(address, ("rpc", rid, self.loop.address, method, args))
        except Exception as exc:  # noqa: BLE001 - e.g. too large, bad address, no token: the caller hears of it
            self._requests.resolve(rid, (False, exc))
            return
        if timeout is not None:
            self.loop.call_later(timeout, self._requests.resolve, rid,
                                 (False, TimeoutError(f"{method} to {address} got no answer in {timeout:g} s")))

    def call_future(self, address: str, method: str, *args: Any) -> concurrent.futures.Future:
        """Send a request from any thread; the Future holds the answer or the remote error."""
        fut, done = future_callback()
        if self.loop.in_loop_thread():
            self.call(address, method, *args, callback=done)
        else:
            self.loop.call_soon(lambda: self.call(address, method, *args, callback=done))
        return fut

    def call_sync(self, address: str, method: str, *args: Any, timeout: float, what: str = "") -> Any:
        """Blocking request from a non-loop thread, with a clear error on timeout."""
        fut = self.call_future(address, method, *args)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            target = what or address
            raise TimeoutError(
                f"{target} did not answer {method!r} within {timeout:.0f} s; "
                "is the cluster still running? (`juno status` shows it)"
            ) from None

    def notify(self, address: str, method: str, *args: Any) -> None:
        """Fire-and-forget request (no answer expected); loop thread only."""
        self.loop.send(address, ("rpc", 0, None, method, args))
