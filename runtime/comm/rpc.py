"""Request/response over the event loop, for the control plane.

A server answers the requests named by its ``rpc_<method>(reply, *args)`` methods:
they are collected into its class's table :attr:`RpcNode.rpc_methods` (wire name ->
function) when the class is defined, so each request costs one dict lookup and the
table lists what a process answers. Returning a value answers at once, returning
:data:`DEFER` keeps ``reply`` to answer later (a lease granted when resources free
up, an actor reported alive). One-way messages go through the event loop's op table
(:meth:`juno.comm.transport.EventLoop.serve`). Clients call
with a callback on the loop thread, or block on a Future from any other thread;
``call_direct`` blocks on a connection of the calling thread's own instead, for
the calls a hot path makes one after another (the object store's create and pin).
"""
from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
import time
from typing import Any, Callable

from juno.comm.transport import DIRECT_REPLY, DirectSocket, EventLoop, RequestTracker, VersionMismatchError

logger = logging.getLogger(__name__)

DEFER = object()


class RpcError(Exception):
    """The remote handler failed; carries the remote exception's text."""


class Reply:
    __slots__ = ("_loop", "_to", "_rid", "_done", "_sender")

    def __init__(self, loop: EventLoop, to: str | None, rid: int):
        self._loop = loop
        self._to = to
        self._rid = rid
        self._done = False
        # A direct request is answered over the connection it came in on.
        self._sender = loop.sender if to == DIRECT_REPLY else None

    def send(self, value: Any = None) -> None:
        self._answer(True, value)

    def fail(self, exc: BaseException) -> None:
        try:
            self._answer(False, exc)
        except Exception:  # noqa: BLE001 - exception not picklable
            self._done = False
            self._answer(False, RpcError(repr(exc)))

    def _answer(self, ok: bool, value: Any) -> None:
        if self._done or self._to is None:
            return
        self._done = True
        msg = ("rpc_reply", self._rid, ok, value)
        if self._to == DIRECT_REPLY:
            if self._sender is not None:
                self._loop.send_back(self._sender, msg)
        else:
            self._loop.send(self._to, msg)

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
    # The requests this class answers: wire name -> its rpc_<name> function (per class, __init_subclass__).
    rpc_methods: dict[str, Callable] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.rpc_methods = {name[len("rpc_"):]: fn for klass in reversed(cls.__mro__)
                           for name, fn in vars(klass).items()
                           if name.startswith("rpc_") and name != "rpc_methods" and callable(fn)}

    def install_rpc(self, loop: EventLoop) -> None:
        self.loop = loop
        self._requests = RequestTracker()
        self._direct = threading.local()  # .sockets: address -> DirectSocket, per thread
        self._direct_ids = itertools.count(1)
        loop.serve({"rpc": self._on_rpc, "rpc_reply": self._on_rpc_reply})

    def _on_rpc(self, rid: int, reply_to: str | None, method: str, args: tuple) -> None:
        reply = Reply(self.loop, reply_to, rid)
        if type(method) is not str:  # garbage: dropped and logged by the loop, as any failing handler
            raise TypeError(f"an rpc method name must be a str, not {type(method).__name__}")
        handler = self.rpc_methods.get(method)
        if handler is None:
            reply.fail(RpcError(f"{type(self).__name__} has no method {method!r}"))
            return
        try:
            result = handler(self, reply, *args)
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

    def call_direct(self, address: str, method: str, *args: Any, timeout: float, what: str = "") -> Any:
        """``call_sync`` over this thread's own connection to ``address``, past the loop thread
        (on the loop thread itself it is ``call_sync``'s work, so it never blocks the loop)."""
        if self.loop.in_loop_thread():
            return self.call_sync(address, method, *args, timeout=timeout, what=what)
        sock = self._direct_socket(address)
        rid = next(self._direct_ids)
        sock.send(("rpc", rid, DIRECT_REPLY, method, args))
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = sock.recv(deadline - time.monotonic())
            except VersionMismatchError:  # refused at the handshake: the next call tries a new connection
                sock.close()
                del self._direct.sockets[address]
                raise
            if msg is None:
                raise TimeoutError(f"{what or address} did not answer {method!r} within {timeout:.0f} s; "
                                   "is the cluster still running? (`juno status` shows it)")
            if type(msg) is tuple and len(msg) == 4 and msg[0] == "rpc_reply" and msg[1] == rid:
                _, _, ok, value = msg
                if ok:
                    return value
                raise value if isinstance(value, BaseException) else RpcError(str(value))
            # an answer to an earlier call that timed out: skip it

    def notify_direct(self, address: str, method: str, *args: Any) -> None:
        """``notify`` over this thread's own connection: ordered after its ``call_direct`` calls."""
        if self.loop.in_loop_thread():
            self.notify(address, method, *args)
        else:
            self._direct_socket(address).send(("rpc", 0, None, method, args))

    def _direct_socket(self, address: str) -> DirectSocket:
        sockets = getattr(self._direct, "sockets", None)
        if sockets is None:
            sockets = self._direct.sockets = {}
        sock = sockets.get(address)
        if sock is None:
            sock = sockets[address] = DirectSocket(self.loop, address)
        return sock

    def close_direct_sockets(self) -> None:
        """Close the calling thread's direct connections (other threads' close with them)."""
        for sock in getattr(self._direct, "sockets", {}).values():
            sock.close()
        self._direct.sockets = {}

    def notify(self, address: str, method: str, *args: Any) -> None:
        """Fire-and-forget request (no answer expected); loop thread only."""
        self.loop.send(address, ("rpc", 0, None, method, args))

    def send_any_thread(self, address: str, msg: tuple) -> None:
        """Send ``msg`` from any thread on the loop's connection to ``address`` (no hand-off to the
        loop thread where it can be helped): in order with what this thread sent there before. A
        message that cannot be sent is logged, as the loop logs a failed send."""
        loop = self.loop
        try:
            if loop.in_loop_thread():
                loop.send(address, msg)
            elif not loop.send_threadsafe(address, msg):
                loop.call_soon(loop.send, address, msg)
        except Exception:  # noqa: BLE001 - e.g. too large: the loop thread would have logged it too
            logger.exception("could not send %r to %s", msg[0], address)

    def notify_any_thread(self, address: str, method: str, *args: Any) -> None:
        """``notify`` from any thread, ordered as :meth:`send_any_thread` orders."""
        self.send_any_thread(address, ("rpc", 0, None, method, args))
