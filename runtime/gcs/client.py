"""GCS calls that ride out a GCS restart (drivers and workers).

A GCS can be killed and started again on the same port with the same session folder
(runtime/gcs/recovery.py). ZeroMQ reconnects by itself and delivers what was queued
meanwhile, but a request the old GCS received and never answered is lost. So every
call made here is tracked until it is answered: while one is slow, the client asks the
GCS for its incarnation id (``gcs_epoch``), and when that changed it sends again the
calls the previous incarnation may have swallowed. GCS handlers take a repeated
request calmly (actors register by id, a job by its driver, kv writes are writes), so
a call that was in fact delivered twice does no harm. A call still unanswered after
``gcs_reconnect_timeout_s`` fails with :class:`GcsUnavailableError`, which says what
to do.

Everything runs on the owner's IO loop thread, except :meth:`GcsClient.call_sync` and
:meth:`GcsClient.notify`, which any thread may use.
"""
from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Any, Callable

from juno.comm.rpc import future_callback

logger = logging.getLogger(__name__)

# How long, at most, between two checks of a slow call (shorter when the reconnect timeout is short).
CHECK_INTERVAL_S = 1.0


class GcsUnavailableError(ConnectionError, TimeoutError):
    """The GCS did not answer within ``gcs_reconnect_timeout_s``: it is down and was not restarted
    in time (or cannot be reached from here)."""


class _Call:
    __slots__ = ("method", "args", "callback", "timeout", "deadline", "epoch", "sent_at", "done")

    def __init__(self, method: str, args: tuple, callback: Callable[[bool, Any], None] | None, timeout: float,
                 epoch: str | None):
        self.method = method
        self.args = args
        self.callback = callback
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.epoch = epoch  # the GCS incarnation it was last sent to, as far as this client knows
        self.sent_at = 0.0
        self.done = False


class GcsClient:
    """The GCS as seen from one process (its :class:`juno.comm.rpc.RpcNode`)."""

    def __init__(self, rpc, address: str, reconnect_timeout_s: float, session_dir: str | None = None):
        self.rpc = rpc
        self.address = address
        self.session_dir = session_dir  # named in the error, for the restart command
        self.reconnect_timeout_s = reconnect_timeout_s
        self.check_interval_s = min(CHECK_INTERVAL_S, max(0.05, reconnect_timeout_s / 10))
        self.epoch: str | None = None  # learned with the first call
        self.restarts_seen = 0  # new incarnations noticed
        self._calls: set[_Call] = set()
        self._watching = False
        self._pinging = False
        self._first_ping_failed = False  # the GCS was down before we ever heard from it

    # ------------------------------------------------------------------ calls
    def call(self, method: str, *args: Any, callback: Callable[[bool, Any], None] | None = None,
             timeout: float | None = None) -> None:
        """Send a request (loop thread only); ``callback(ok, value)`` gets the answer, or
        ``(False, GcsUnavailableError)`` once ``timeout`` (default ``gcs_reconnect_timeout_s``) passed."""
        call = _Call(method, args, callback, timeout or self.reconnect_timeout_s, self.epoch)
        self._calls.add(call)
        if self.epoch is None and not self._pinging:
            self._ping()  # learn which incarnation gets this call (the ping goes first, on the same socket)
        self._send(call)
        if not self._watching:
            self._watching = True
            self.rpc.loop.call_later(self.check_interval_s, self._watch)

    def notify(self, method: str, *args: Any) -> None:
        """A request whose answer nobody waits for, but which must reach the GCS even across a
        restart (an actor reporting it was created). Any thread."""
        if self.rpc.loop.in_loop_thread():
            self.call(method, *args)
        else:
            self.rpc.loop.call_soon(lambda: self.call(method, *args))

    def call_sync(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Blocking request from a thread other than the loop's; raises the remote error, or
        :class:`GcsUnavailableError` when the GCS stays silent for ``timeout``."""
        fut, done = future_callback()
        self.rpc.loop.call_soon(lambda: self.call(method, *args, callback=done, timeout=timeout))
        limit = (timeout or self.reconnect_timeout_s) + 5.0  # the loop fails it first; this is a backstop
        try:
            return fut.result(limit)
        except concurrent.futures.TimeoutError:
            if fut.done():
                raise  # the loop's own GcsUnavailableError (a TimeoutError too)
            raise self._unavailable(method, limit) from None

    def _send(self, call: _Call) -> None:
        call.sent_at = time.monotonic()
        self.rpc.call(self.address, call.method, *call.args,
                      callback=lambda ok, value: self._answered(call, ok, value))

    def _answered(self, call: _Call, ok: bool, value: Any) -> None:
        if call.done:
            return  # a copy sent again was answered first
        call.done = True
        self._calls.discard(call)
        if call.callback is not None:
            call.callback(ok, value)

    def _unavailable(self, method: str, waited: float) -> GcsUnavailableError:
        shown = self.address.replace("tcp://", "")
        host, _, port = shown.rpartition(":")
        where = f"--host {host} --port {port}" if self.address.startswith("tcp://") else "..."
        return GcsUnavailableError(
            f"The GCS at {shown} did not answer {method!r} for {waited:.0f} s: it is down or cannot be "
            f"reached. If it crashed, start it again on the same port with the same session folder "
            f"(`python -m juno.gcs {where} --session-dir {self.session_dir or '<its session folder>'}`) "
            "and the cluster recovers; to wait longer for a restart, raise gcs_reconnect_timeout_s.")

    # ------------------------------------------------------------------ noticing a restart
    def _watch(self) -> None:
        self._watching = False
        if not self._calls:
            return
        now = time.monotonic()
        for call in [c for c in self._calls if now >= c.deadline]:
            self._answered(call, False, self._unavailable(call.method, call.timeout))
        if not self._pinging and any(now - c.sent_at >= self.check_interval_s for c in self._calls):
            self._ping()
        if self._calls:
            self._watching = True
            self.rpc.loop.call_later(self.check_interval_s, self._watch)

    def _ping(self) -> None:
        self._pinging = True
        self.rpc.call(self.address, "gcs_epoch", callback=self._on_epoch, timeout=self.check_interval_s)

    def _on_epoch(self, ok: bool, epoch: Any) -> None:
        self._pinging = False
        if not ok:  # no answer: the GCS is down; calls wait, and are sent again once it is back
            self._first_ping_failed = self._first_ping_failed or self.epoch is None
            return
        previous, self.epoch = self.epoch, epoch
        for call in list(self._calls):
            if call.epoch is None and not self._first_ping_failed:
                call.epoch = epoch  # sent right behind this ping, so to the same incarnation
            elif call.epoch != epoch:
                call.epoch = epoch
                self._send(call)  # the previous incarnation may have swallowed it
        self._first_ping_failed = False
        if previous is not None and previous != epoch:
            self.restarts_seen += 1
            logger.warning("the GCS at %s restarted; requests it had not answered were sent again", self.address)
