"""ZeroMQ messaging: the only module that imports zmq.

Every process owns one :class:`EventLoop`. It binds a ROUTER socket that receives
every message sent to the process, connects one DEALER per peer it sends to,
and runs timers and callbacks posted from other threads. A message is a tuple
``(op, *fields)`` pickled into one frame; handlers are looked up by ``op`` in a
table. Sockets are touched only by the loop's thread; other threads use
:meth:`EventLoop.call_soon`, which wakes the loop through a pipe.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import pickle
import threading
import time
from typing import Any, Callable

import zmq

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_dumps = pickle.dumps
_loads = pickle.loads
_HIGHEST = pickle.HIGHEST_PROTOCOL


def encode(msg: tuple) -> bytes:
    return _dumps(msg, _HIGHEST)


def decode(frame: bytes) -> tuple:
    return _loads(frame)


class EventLoop:
    """Single-threaded reactor over a ROUTER socket, peer DEALERs, timers and a wake pipe."""

    def __init__(self, bind: str, handlers: dict[str, Callable] | None = None, name: str = "juno"):
        self.name = name
        self.ctx = zmq.Context.instance()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVHWM, 0)
        self.router.setsockopt(zmq.SNDHWM, 0)
        if bind.startswith("tcp://") and bind.endswith(":0"):
            port = self.router.bind_to_random_port(bind[: bind.rindex(":")])
            self.address = f"{bind[: bind.rindex(':')]}:{port}"
        else:
            self.router.bind(bind)
            self.address = bind
        self.handlers: dict[str, Callable] = dict(handlers or {})
        self._peers: dict[str, zmq.Socket] = {}
        self._timers: list[tuple[float, int, Callable, tuple]] = []
        self._timer_seq = itertools.count()
        self._calls: collections.deque = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._poller = zmq.Poller()
        self._poller.register(self.router, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._extra_fds: dict[int, Callable[[], None]] = {}
        self._running = False
        self.thread: threading.Thread | None = None
        self._closed = False

    # ---- sending (loop thread only) ----
    def send(self, address: str, msg: tuple) -> None:
        sock = self._peers.get(address)
        if sock is None:
            sock = self._connect(address)
        sock.send(_dumps(msg, _HIGHEST), copy=False)

    def send_raw(self, address: str, frame: bytes) -> None:
        sock = self._peers.get(address)
        if sock is None:
            sock = self._connect(address)
        sock.send(frame, copy=False)

    def _connect(self, address: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.IMMEDIATE, 0)
        sock.connect(address)
        self._peers[address] = sock
        return sock

    def disconnect(self, address: str) -> None:
        sock = self._peers.pop(address, None)
        if sock is not None:
            sock.close(linger=0)

    # ---- scheduling ----
    def call_soon(self, fn: Callable, *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread; safe from any thread."""
        self._calls.append((fn, args))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def call_later(self, delay: float, fn: Callable, *args: Any) -> None:
        """Run ``fn(*args)`` after ``delay`` seconds; loop thread only."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), fn, args))

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self._extra_fds[fd] = callback
        self._poller.register(fd, zmq.POLLIN)

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    # ---- running ----
    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"{self.name}-io", daemon=True)
        self.thread.start()

    def run(self) -> None:
        if self.thread is None:
            self.thread = threading.current_thread()
        self._running = True
        router = self.router
        handlers = self.handlers
        poll = self._poller.poll
        calls = self._calls
        timers = self._timers
        wake_r = self._wake_r
        while self._running:
            timeout = -1
            if calls:
                timeout = 0
            elif timers:
                timeout = max(0, int((timers[0][0] - time.monotonic()) * 1000) + 1)
            events = dict(poll(timeout))
            if router in events:
                # Drain everything queued, bounded so timers and calls still run.
                for _ in range(1000):
                    try:
                        frames = router.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    try:
                        msg = _loads(frames[-1])
                        handler = handlers.get(msg[0])
                    except Exception:  # noqa: BLE001 - hostile or corrupt input must not kill us
                        logger.warning("%s: dropped an undecodable message", self.name)
                        continue
                    if handler is None:
                        logger.warning("%s: no handler for message %r", self.name, msg[0])
                        continue
                    try:
                        handler(*msg[1:])
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: handler for %r failed", self.name, msg[0])
            if wake_r in events:
                try:
                    os.read(wake_r, 65536)
                except BlockingIOError:
                    pass
            for fd, cb in self._extra_fds.items():
                if fd in events:
                    try:
                        cb()
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: reader callback failed", self.name)
            if calls:
                self._wake_pending = False
                for _ in range(len(calls)):
                    fn, args = calls.popleft()
                    try:
                        fn(*args)
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: callback %r failed", self.name, fn)
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    _, _, fn, args = heapq.heappop(timers)
                    try:
                        fn(*args)
                    except Exception:  # noqa: BLE001
                        logger.exception("%s: timer %r failed", self.name, fn)
        self._close_sockets()

    def stop(self) -> None:
        """Ask the loop to exit; safe from any thread."""
        def _stop():
            self._running = False
        self.call_soon(_stop)

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _close_sockets(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in self._peers.values():
            sock.close(linger=100)
        self._peers.clear()
        self.router.close(linger=0)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.address.startswith("ipc://"):
            try:
                os.unlink(self.address[len("ipc://"):])
            except OSError:
                pass


class RequestTracker:
    """Matches replies to requests by id so handlers can be written as callbacks."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, Callable[[Any], None]] = {}

    def new(self, callback: Callable[[Any], None]) -> int:
        rid = next(self._ids)
        self._pending[rid] = callback
        return rid

    def resolve(self, rid: int, value: Any) -> None:
        cb = self._pending.pop(rid, None)
        if cb is not None:
            cb(value)

    def fail_all(self, value: Any) -> None:
        pending, self._pending = self._pending, {}
        for cb in pending.values():
            cb(value)


def short_ipc_path(directory: str, name: str) -> str:
    """An ipc:// address for ``name`` in ``directory`` (sockets paths must stay under 107 bytes)."""
    path = os.path.join(directory, name)
    if len(path) > 100:
        raise ValueError(f"socket path too long for ipc transport: {path}")
    return "ipc://" + path
