"""ZeroMQ messaging: the only module that imports zmq.

Every process owns one :class:`EventLoop`. It binds a ROUTER socket that receives
every message sent to the process, connects one DEALER per peer it sends to,
and runs timers and callbacks posted from other threads. A message is a tuple
``(op, *fields)`` pickled into one frame; its handler is looked up by ``op`` in one
table, :attr:`EventLoop.handlers`, which each role fills in one place
(:meth:`EventLoop.serve`; requests are the one op ``rpc``, answered from a table of
their own: runtime/comm/rpc.py). Sockets are touched only by the loop's thread;
other threads use :meth:`EventLoop.call_soon`, which wakes the loop through a pipe.

A thread that must block on a peer's answer anyway (the object store's create and pin
calls, on every put and get of a large value) can skip the loop thread with a
:class:`DirectSocket` of its own: the request goes out on that thread's connection and
the answer comes back on it (``reply_to`` :data:`DIRECT_REPLY`), which saves two thread
hand-offs per call.

A thread that only sends (an actor call from the caller's thread, a result from the thread
that computed it) can use the loop's own connection to the peer with
:meth:`EventLoop.send_threadsafe`: every use of a peer socket holds the loop's send lock,
so such a message is ordered with everything the loop and other threads send to that peer.

Every connection opens with a version handshake (:data:`HELLO`), once per peer and never per
message: a DEALER's first frame announces the sender's Juno and protocol versions; the listener
answers on that connection, and one that runs another version is refused there: the listener logs
it once and drops everything else it sends; the sender reads the refusal (:class:`VersionMismatchError`,
naming both versions) and drops the connection.

TCP sockets speak CURVE with keys derived from the cluster token (runtime/comm/auth.py,
the one other module that imports zmq); ipc sockets rely on their folder's
permissions. The receive path survives any frame: undecodable, wrongly shaped or
unknown messages and failing handlers are dropped and logged, never fatal.
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
from zmq.utils.monitor import parse_monitor_message

from juno.comm import auth
from juno.exceptions import VersionMismatchError  # noqa: F401 - public in juno.exceptions; raised here

logger = logging.getLogger(__name__)

# What the messages between Juno processes look like; processes that differ in it, or in the Juno
# version, refuse each other at the handshake.
PROTOCOL_VERSION = 2
# The handshake's two messages, frozen for every version to come (pickle protocol 2, readable by any
# Python 3): (HELLO, protocol, juno version, name, address), the first frame a DEALER sends, and
# (HELLO_ANSWER, protocol, juno version, name, accepted), the listener's answer on that connection.
HELLO = "juno-hello"
HELLO_ANSWER = "juno-hello-answer"
_HELLO_PICKLE = 2
# Test-only: the Juno version this process announces instead of juno.__version__, so that a test can
# run a real process "of another version" without a second install.
ANNOUNCE_VERSION_ENV = "JUNO_TEST_ANNOUNCE_VERSION"
# A connection whose answer has not come is looked at again after 5 ms, doubling up to 1 s, for this long.
_ANSWER_WAIT_S = 300.0
_MAX_REFUSED = 10000  # refused connections remembered (a peer refused again and again opens new ones)
_dumps = pickle.dumps
_loads = pickle.loads
_HIGHEST = pickle.HIGHEST_PROTOCOL


def encode(msg: tuple) -> bytes:
    return _dumps(msg, _HIGHEST)


def decode(frame: bytes) -> tuple:
    return _loads(frame)


# Frames larger than this are refused (ZMQ_MAXMSGSIZE: the sender is disconnected) unless the
# process passes its config's max_message_bytes; Ray's gRPC limit is the same 512 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 512 << 20
# Plain ints: zmq's flag enums make every `events & POLLIN` build an enum member.
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
# The reply_to of a request whose answer goes back over the connection it came in on.
DIRECT_REPLY = "direct"
_loop_ids = itertools.count(1)


class MessageTooLargeError(ValueError):
    """A message is larger than the receivers accept (Config.max_message_bytes)."""


def juno_version() -> str:
    """The Juno version this process announces: juno.__version__ (or $JUNO_TEST_ANNOUNCE_VERSION)."""
    import juno  # at run time: this module is imported while juno's own __init__ runs

    return os.environ.get(ANNOUNCE_VERSION_ENV) or juno.__version__


def version_mismatch(ours: tuple[int, str], theirs: tuple[int, str], peer: str) -> str:
    """What both sides of a refused handshake say: both versions, and what to do about it."""
    return (f"{peer} runs Juno {theirs[1]} (protocol {theirs[0]}) and this process runs Juno {ours[1]} "
            f"(protocol {ours[0]}): use the same Juno version on every node and driver of a cluster "
            f"(install juno=={theirs[1]} here, or restart the cluster with Juno {ours[1]}).")


class EventLoop:
    """Single-threaded reactor over a ROUTER socket, peer DEALERs, timers and a wake pipe."""

    def __init__(self, bind: str, handlers: dict[str, Callable] | None = None, name: str = "juno", *,
                 token: str | None = None, max_message_bytes: int | None = None,
                 on_handshake: Callable[[str, str | None], None] | None = None,
                 on_refused: Callable[[str, VersionMismatchError], None] | None = None):
        """``token``: the cluster token for TCP (default $JUNO_CLUSTER_TOKEN); ``on_handshake(address,
        reason)`` hears how CURVE handshakes with the TCP peers we send to end: reason None when one
        succeeds, else why the peer refused us; ``on_refused(address, error)`` hears (loop thread)
        that a peer refused us at the version handshake (it is logged either way)."""
        self.name = name
        self.version = (PROTOCOL_VERSION, juno_version())
        self.on_refused = on_refused
        self.ctx = zmq.Context.instance()
        self.max_message_bytes = max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
        self._token = token
        self._keys: auth.CurveKeys | None = None
        self._zap_domain: str | None = None
        self.on_handshake = on_handshake
        self._monitors: dict[str, tuple[zmq.Socket, zmq.Socket]] = {}  # address -> (watched, monitor)
        self._drops = _DropLog(name)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVHWM, 0)
        self.router.setsockopt(zmq.SNDHWM, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        self._poller = zmq.Poller()
        self._extra_fds: dict[Any, Callable[[], None]] = {}
        try:
            if bind.startswith("tcp://"):
                keys = self.curve_keys()
                self._zap_domain = f"{name}-{os.getpid()}-{next(_loop_ids)}"
                auth.configure_server(self.router, keys, self._zap_domain, name)
                self._watch_listener()
            if bind.startswith("tcp://") and bind.endswith(":0"):
                port = self.router.bind_to_random_port(bind[: bind.rindex(":")])
                self.address = f"{bind[: bind.rindex(':')]}:{port}"
            else:
                self.router.bind(bind)
                self.address = bind
        except BaseException:
            for key in list(self._monitors):
                self._forget_monitor(key)
            self.router.close(linger=0)
            raise
        self.handlers: dict[str, Callable] = dict(handlers or {})
        self.handlers[HELLO] = self._on_hello
        self._hello = pickle.dumps((HELLO, *self.version, name, self.address), _HELLO_PICKLE)
        # Connections refused at the handshake (oldest first): what they send is dropped.
        self._refused: dict[bytes, None] = {}
        self._refusals = auth.RefusalLog()
        self._unanswered: dict[str, tuple[zmq.Socket, float]] = {}  # address -> (peer socket, when opened)
        self._answer_delay = 0.005  # until the next look at unanswered connections
        self._answers_scheduled = False
        self._peers: dict[str, zmq.Socket] = {}
        self._send_lock = threading.Lock()  # held by every use of a peer socket (send_threadsafe)
        self._timers: list[tuple[float, int, Callable, tuple]] = []
        self._timer_seq = itertools.count()
        self._calls: collections.deque = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._poller.register(self.router, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._running = False
        self.thread: threading.Thread | None = None
        self._closed = False
        self.sender: bytes | None = None  # the connection of the message being dispatched

    # ---- security ----
    def curve_keys(self) -> auth.CurveKeys:
        """This loop's CURVE keys, from its token (ClusterAuthError if it has none)."""
        if self._keys is None:
            token = self._token or auth.token_from_env()
            if not token:
                raise auth.ClusterAuthError(
                    f"{self.name}: TCP connections need the cluster token, and this process has none: set "
                    f"${auth.TOKEN_ENV} to the token the cluster was started with (`juno token` prints it).")
            self._keys = auth.curve_keys(auth.check_token(token, "the token given to this process"))
        return self._keys

    def _watch_listener(self) -> None:
        """Log every connection the CURVE listener refuses (who, why)."""
        zap = auth.ZapAuthenticator.for_context(self.ctx)
        watcher = auth.ListenerMonitor(self.name, zap.refusals)
        mon = self._monitor(self.router, "listener", auth.ListenerMonitor.EVENTS)

        def drain() -> None:
            for event, value in _monitor_events(mon):
                watcher.on_event(event, value)

        self.add_reader(mon, drain)

    def _monitor(self, sock: zmq.Socket, what: str, events: int) -> zmq.Socket:
        endpoint = f"inproc://juno-monitor-{id(self)}-{what}-{next(_loop_ids)}"
        sock.monitor(endpoint, events)
        mon = self.ctx.socket(zmq.PAIR)
        mon.setsockopt(zmq.LINGER, 0)
        mon.connect(endpoint)
        self._monitors[what] = (sock, mon)
        return mon

    def _watch_handshake(self, address: str, sock: zmq.Socket) -> None:
        mon = self._monitor(sock, address, auth.CLIENT_MONITOR_EVENTS)

        def drain() -> None:
            for event, value in _monitor_events(mon):
                if self.on_handshake is not None:
                    self.on_handshake(address, auth.client_failure_reason(event, value))

        self.add_reader(mon, drain)

    # ---- sending (loop thread only, but send_threadsafe) ----
    def send(self, address: str, msg: tuple) -> None:
        frame = _dumps(msg, _HIGHEST)
        if len(frame) > self.max_message_bytes:
            raise _too_large(len(frame), self.max_message_bytes, msg)
        with self._send_lock:
            sock = self._peers.get(address) or self._connect(address)
            sock.send(frame, copy=False)

    def send_threadsafe(self, address: str, msg: tuple) -> bool:
        """``send`` from any thread, on the loop's connection to ``address``: ordered after what
        was sent to it before (by any thread), with no hand-off to the loop thread. False (nothing
        sent) when this thread may not open that connection: the loop is closed, or its new
        connections are watched (``on_handshake``), which only the loop thread can set up."""
        frame = _dumps(msg, _HIGHEST)
        if len(frame) > self.max_message_bytes:
            raise _too_large(len(frame), self.max_message_bytes, msg)
        with self._send_lock:
            if self._closed:
                return False
            sock = self._peers.get(address)
            if sock is None:
                if self.on_handshake is not None and address.startswith("tcp://"):
                    return False
                sock = self._connect(address)
            sock.send(frame, copy=False)
        return True

    def send_raw(self, address: str, frame: bytes) -> None:
        with self._send_lock:
            sock = self._peers.get(address) or self._connect(address)
            sock.send(frame, copy=False)

    def send_frames(self, address: str, msg: tuple, payload: list) -> None:
        """Send ``msg`` followed by ``payload`` (buffers: bytes, memoryviews of shared memory) as
        separate frames, without copying them; the handler gets ``(*msg[1:], frames)``, each frame
        a zmq.Frame whose ``.buffer`` is a memoryview. A buffer must stay unchanged until sent."""
        with self._send_lock:
            sock = self._peers.get(address) or self._connect(address)
            sock.send_multipart([_dumps(msg, _HIGHEST), *payload], copy=False)

    def send_back(self, sender: bytes, msg: tuple) -> None:
        """Answer a :class:`DirectSocket` over the connection its request came in on (loop thread)."""
        self.router.send_multipart([sender, _dumps(msg, _HIGHEST)], copy=False)

    def _connect(self, address: str) -> zmq.Socket:
        """A new peer socket (the send lock held)."""
        sock = self.new_dealer(address, linger_ms=1000, watch=True)
        self._peers[address] = sock
        self._unanswered[address] = (sock, time.monotonic())
        self._answer_delay = 0.005
        if not self._answers_scheduled:
            self._answers_scheduled = True
            self.call_soon(self._read_answers)
        return sock

    def new_dealer(self, address: str, linger_ms: int, watch: bool = False) -> zmq.Socket:
        """A DEALER connected to ``address`` (CURVE for TCP); ``watch``: report its handshakes."""
        if not isinstance(address, str) or not address.startswith(("ipc://", "tcp://")):
            raise ValueError(f"{self.name}: cannot send to {str(address)[:100]!r}: not an ipc:// or tcp:// address")
        tcp = address.startswith("tcp://")
        keys = self.curve_keys() if tcp else None
        sock = self.ctx.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, linger_ms)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.IMMEDIATE, 0)
            if keys is not None:
                auth.configure_client(sock, keys)
                if watch and self.on_handshake is not None:
                    self._watch_handshake(address, sock)
            sock.connect(address)
            sock.send(self._hello)  # queued first: the handshake (HELLO) precedes every message
        except BaseException:
            if watch:
                self._forget_monitor(address)
            sock.close(linger=0)
            raise
        return sock

    def disconnect(self, address: str) -> None:
        self._forget_monitor(address)
        with self._send_lock:
            self._unanswered.pop(address, None)
            sock = self._peers.pop(address, None)
            if sock is not None:
                sock.close(linger=0)

    def _forget_monitor(self, key: str) -> None:
        entry = self._monitors.pop(key, None)
        if entry is None:
            return
        watched, mon = entry
        self._extra_fds.pop(mon, None)
        try:
            self._poller.unregister(mon)
        except KeyError:
            pass
        try:
            watched.disable_monitor()
        except zmq.ZMQError:
            pass
        mon.close(linger=0)

    def serve(self, handlers: dict[str, Callable]) -> None:
        """Add a role's table of one-way messages (op -> handler); an op already taken is an error,
        so that two parts of a process never answer one op by accident."""
        taken = handlers.keys() & self.handlers.keys()
        if taken:
            raise ValueError(f"{self.name}: ops {sorted(taken)} already have handlers")
        self.handlers.update(handlers)

    # ---- the version handshake ----
    def _on_hello(self, protocol: Any, version: Any, name: Any = "?", address: Any = "?", *_later: Any) -> None:
        """A new connection announced its versions: answer on it; another version is refused,
        logged once and everything else it sends is dropped (the run loop checks ``_refused``)."""
        sender = self.sender
        accepted = (protocol, version) == self.version
        if sender is not None:
            self.router.send_multipart([sender, pickle.dumps((HELLO_ANSWER, *self.version, self.name, accepted),
                                                             _HELLO_PICKLE)], copy=False)
        if not accepted:
            if sender is not None:
                if len(self._refused) >= _MAX_REFUSED:  # forget the oldest: those peers hung up long ago
                    for old in list(self._refused)[: _MAX_REFUSED // 2]:
                        del self._refused[old]
                self._refused[sender] = None
            peer = f"{_short(address, 200)} ({_short(name)})"
            self._refusals.log(self.name, peer, version_mismatch(self.version, (protocol, version), "it"))

    def _read_answers(self) -> None:
        """Look for the answers to our handshakes (loop thread): a peer's DEALER receives nothing
        else, and is read under the send lock, as every use of it is. Runs while any is missing."""
        refused = []
        now = time.monotonic()
        with self._send_lock:
            for address, (sock, opened) in list(self._unanswered.items()):
                answer = _hello_answer(sock)
                if answer is None and now - opened < _ANSWER_WAIT_S:
                    continue
                del self._unanswered[address]
                if answer is not None and not answer[-1]:
                    refused.append((address, answer))
        for address, answer in refused:
            self._peer_refused(address, answer)
        with self._send_lock:
            if self._unanswered and not self._closed:
                self.call_later(self._answer_delay, self._read_answers)
                self._answer_delay = min(1.0, self._answer_delay * 2)
            else:
                self._answers_scheduled = False

    def refusal(self, address: str, answer: tuple) -> VersionMismatchError:
        """The error a refusing answer from the peer at ``address`` stands for."""
        _, protocol, version, name = answer[:4]
        return VersionMismatchError(f"The Juno process at {address} ({_short(name)}) refused this one "
                                    f"({self.name}): " + version_mismatch(self.version, (protocol, version), "it"))

    def _peer_refused(self, address: str, answer: tuple) -> None:
        error = self.refusal(address, answer)
        self.disconnect(address)  # a later send opens a new connection, with a new handshake
        if self._drops.due(("refused-by", address)):
            logger.error("%s", error)
        if self.on_refused is not None:
            self.on_refused(address, error)

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

    def remove_reader(self, fd: int) -> None:
        if self._extra_fds.pop(fd, None) is not None:
            self._poller.unregister(fd)

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
        dispatch = self.dispatch
        poll = self._poller.poll
        calls = self._calls
        timers = self._timers
        wake_r = self._wake_r
        extra_fds = self._extra_fds
        refused = self._refused
        while self._running:
            timeout = -1
            if calls:
                timeout = 0
            elif timers:
                timeout = max(0, int((timers[0][0] - time.monotonic()) * 1000) + 1)
            events = dict(poll(timeout))
            if router in events:
                # Drain everything queued, bounded so timers and calls still run; asking the socket
                # whether more is queued is cheaper than a receive that fails (zmq.Again).
                for _ in range(1000):
                    try:
                        frames, payload = _recv_message(router)
                    except zmq.Again:
                        break
                    self.sender = frames[0]
                    if refused and frames[0] in refused:
                        self._drops.counts["refused-version"] += 1
                    else:
                        dispatch(frames[-1], payload)
                    if not router.getsockopt(_EVENTS) & _POLLIN:
                        break
            if wake_r in events:
                try:
                    os.read(wake_r, 65536)
                except BlockingIOError:
                    pass
            for fd in events:  # not the table itself: a callback may add or remove readers
                cb = extra_fds.get(fd)
                if cb is not None:
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

    def dispatch(self, frame: bytes, payload: list | None = None) -> bool:
        """Decode one message and run its handler; False if it was dropped.

        Never raises for bad input: a frame that does not unpickle (even one whose unpickling
        raises SystemExit), is not a non-empty tuple, names an unknown op, or makes its handler
        fail (wrong arity, wrong types) is dropped and logged (rate-limited). Only KeyboardInterrupt
        and a handler's own SystemExit (a process deciding to exit) get through."""
        try:
            msg = _loads(frame)
        except (Exception, SystemExit):  # noqa: BLE001 - hostile or corrupt input must not kill us
            self._drops.drop("undecodable", "a frame that does not unpickle")
            return False
        if type(msg) is not tuple or not msg:
            self._drops.drop("malformed", f"a message that is not an (op, ...) tuple: {type(msg).__name__}")
            return False
        try:
            handler = self.handlers.get(msg[0])
        except Exception:  # noqa: BLE001 - an unhashable (or hostile) op
            handler = None
        if handler is None:
            self._drops.drop("unknown-op", f"a message with unknown op {_short(msg[0])}")
            return False
        try:
            if payload is None:
                handler(*msg[1:])
            else:
                handler(*msg[1:], payload)
        except Exception:  # noqa: BLE001
            self._drops.handler_failed(msg[0])
            return False
        return True

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
        for key in list(self._monitors):
            self._forget_monitor(key)
        with self._send_lock:
            self._closed = True
            self._unanswered.clear()
            for sock in self._peers.values():
                sock.close(linger=100)
            self._peers.clear()
        self.router.close(linger=0)
        if self._zap_domain is not None:
            auth.ZapAuthenticator.for_context(self.ctx).forget(self._zap_domain)
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


def _monitor_events(mon: zmq.Socket):
    """(event, value) of every event queued on a socket monitor."""
    while True:
        try:
            frames = mon.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            event = parse_monitor_message(frames)
        except Exception:  # noqa: BLE001 - never let a monitor break the loop
            continue
        yield event["event"], event["value"]


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _too_large(size: int, limit: int, msg: tuple) -> MessageTooLargeError:
    op = msg[0] if type(msg) is tuple and msg else "?"
    return MessageTooLargeError(
        f"A {op!r} message of {size / 2**20:.1f} MiB is larger than the {limit / 2**20:.0f} MiB a Juno process "
        "accepts (max_message_bytes). Large values belong in the object store: pass them through "
        "juno.put() or as task arguments rather than capturing them in a function or class.")


class _DropLog:
    """Counts dropped messages and logs them at most once per interval per kind (a flood of
    garbage must not flood the log); the first failure of each handler keeps its traceback."""

    INTERVAL_S = 10.0

    def __init__(self, name: str):
        self.name = name
        self.counts: collections.Counter = collections.Counter()
        self._last: dict[Any, float] = {}

    def due(self, key: Any) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.INTERVAL_S:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True

    def drop(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        if self.due(kind):
            logger.warning("%s: dropped %s (%d dropped as %s so far)", self.name, what, self.counts[kind], kind)

    def handler_failed(self, op: Any) -> None:
        self.counts["handler-failed"] += 1
        key = ("handler", op if isinstance(op, str) else "?")
        if self.due(key):
            logger.exception("%s: handler for %s failed (%d handler failures so far)", self.name, _short(op),
                             self.counts["handler-failed"])


def _recv_message(sock: zmq.Socket) -> tuple[list, list | None]:
    """One message from a ROUTER: ``[identity, message]`` as bytes (what recv_multipart gave), and
    the payload frames of a multi-frame message (``send_frames``), received without a copy, else None."""
    frames = [sock.recv(zmq.NOBLOCK)]
    if sock.getsockopt(zmq.RCVMORE):
        frames.append(sock.recv(zmq.NOBLOCK))
    payload = None
    while sock.getsockopt(zmq.RCVMORE):
        if payload is None:
            payload = []
        payload.append(sock.recv(zmq.NOBLOCK, copy=False))
    return frames, payload


def _hello_answer(sock: zmq.Socket) -> tuple | None:
    """The handshake's answer waiting on a connection we opened, if it came (else None)."""
    while True:
        try:
            msg = _loads(sock.recv(zmq.NOBLOCK))
        except zmq.Again:
            return None
        except Exception:  # noqa: BLE001 - garbage is skipped, as the receive path skips it
            continue
        if type(msg) is tuple and len(msg) >= 5 and msg[0] == HELLO_ANSWER:
            return msg


class DirectSocket:
    """One thread's own connection to a peer, for requests it blocks on: sent and answered
    without the loop thread. Used only by the thread that made it."""

    def __init__(self, loop: EventLoop, address: str):
        self.address = address
        self._loop = loop
        self._sock = loop.new_dealer(address, linger_ms=0)

    def send(self, msg: tuple) -> None:
        self._sock.send(_dumps(msg, _HIGHEST), copy=False)

    def recv(self, timeout: float) -> tuple | None:
        """The next message from the peer, or None when ``timeout`` seconds pass first;
        VersionMismatchError when the peer refused our handshake."""
        deadline = time.monotonic() + timeout
        while self._sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            msg = _loads(self._sock.recv())
            if type(msg) is not tuple or not msg or msg[0] != HELLO_ANSWER:
                return msg
            if not msg[-1]:
                raise self._loop.refusal(self.address, msg)
        return None

    def close(self) -> None:
        self._sock.close(linger=0)


class RequestTracker:
    """Matches replies to requests by id so handlers can be written as callbacks."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, Callable[[Any], None]] = {}

    def new(self, callback: Callable[[Any], None]) -> int:
        rid = next(self._ids)
        self._pending[rid] = callback
        return rid

    def start_ids_at(self, start: int) -> None:
        """Hand out ids from ``start`` on (a restarted GCS: past those its previous incarnation used)."""
        self._ids = itertools.count(start)

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


def is_loopback(ip: str) -> bool:
    return ip == "localhost" or ip.startswith("127.")


def listen_address(ip: str, socket_dir: str, name: str) -> str:
    """Where a node's process (node manager, worker, driver) listens: an ipc socket in the node's
    socket folder (0700) when the node's IP is loopback, else TCP on that IP (a free port, CURVE),
    so processes on other machines can reach it."""
    if is_loopback(ip):
        return short_ipc_path(socket_dir, name)
    return f"tcp://{ip}:0"
