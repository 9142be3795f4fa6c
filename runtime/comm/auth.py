"""The cluster token: who may talk to a cluster over TCP.

Every cluster has a secret token (``juno start --head`` and ``juno.init()`` make
one). Every TCP socket of the cluster speaks ZeroMQ CURVE with keys derived from
it: a listener's key pair comes from the token, so only a token holder can
complete a handshake with it, and a ZAP handler (:class:`ZapAuthenticator`) admits
only clients whose key is the token's client key. A connection that fails either
check is logged by the listener (who, why) and nothing it sent is ever unpickled.
ipc sockets inside one node skip CURVE: the session's socket folder (0700)
protects them.

With comm/transport.py, this is the only module that imports zmq.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import secrets
import socket
import threading
import time

import zmq
import zmq.utils.z85

from juno.exceptions import ClusterAuthError  # noqa: F401 - public in juno.exceptions; raised here

logger = logging.getLogger(__name__)

TOKEN_ENV = "JUNO_CLUSTER_TOKEN"
MIN_TOKEN_LENGTH = 16
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP specification (RFC 27)
_KEY_LABELS = (b"juno-curve-server-v1", b"juno-curve-client-v1")
# A refusal with the same reason from the same host is logged at most this often (a client with
# the wrong token retries its connection every 100 ms).
REFUSAL_LOG_INTERVAL_S = 10.0


# ============================================================================ tokens
def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_token(token: str, source: str) -> str:
    """``token`` stripped, or ClusterAuthError saying what is wrong with it and where it came from."""
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ClusterAuthError(f"The cluster token from {source} is too short ({len(token)} characters; at least "
                               f"{MIN_TOKEN_LENGTH}). Use the token the cluster was started with "
                               "(`juno token` prints it on the head machine).")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ClusterAuthError(f"The cluster token from {source} contains spaces or characters that are not "
                               "printable ASCII; copy it again from `juno token` on the head machine.")
    return token


def token_from_env() -> str | None:
    value = os.environ.get(TOKEN_ENV)
    return check_token(value, f"${TOKEN_ENV}") if value and value.strip() else None


def token_for_new_cluster() -> str:
    """The token of a cluster being started: $JUNO_CLUSTER_TOKEN if set, else a fresh one."""
    return token_from_env() or new_token()


def resolve_token(gcs_address: str, explicit: str | None = None, explicit_source: str = "--token",
                  required: bool = True) -> tuple[str | None, str]:
    """(token, where it came from) for a client of the cluster at ``gcs_address``: ``explicit``,
    else $JUNO_CLUSTER_TOKEN, else the token stored on this machine for that address. None of
    them: ClusterAuthError, or with ``required=False``, (None, the error's message)."""
    from juno.cluster import local_cluster

    if explicit:
        return check_token(explicit, explicit_source), explicit_source
    env = token_from_env()
    if env:
        return env, f"${TOKEN_ENV}"
    stored = local_cluster.read_cluster_token(gcs_address)
    if stored:
        return check_token(stored, local_cluster.token_path(gcs_address)), local_cluster.token_path(gcs_address)
    shown = gcs_address.replace("tcp://", "")
    missing = (f"No cluster token for the Juno cluster at {shown}: set ${TOKEN_ENV} (or pass --token) to the "
               f"token that cluster was started with. On its head machine `juno token --address {shown}` "
               f"prints it; clusters started on this machine store it in {local_cluster.token_dir()}, which "
               f"has none for {shown}.")
    if required:
        raise ClusterAuthError(missing)
    return None, missing


def refused_message(gcs_address: str, source: str, detail: str) -> str:
    shown = gcs_address.replace("tcp://", "")
    return (f"The Juno cluster at {shown} refused this connection ({detail}): the cluster token from "
            f"{source} is not that cluster's token. Use the token it was started with: `juno token "
            f"--address {shown}` prints it on the head machine; pass it with --token or ${TOKEN_ENV}.")


# ============================================================================ CURVE keys
class CurveKeys:
    """The CURVE key pairs of one token (Z85 text, as zmq's socket options take them)."""

    __slots__ = ("server_public", "server_secret", "client_public", "client_secret", "client_public_raw")

    def __init__(self, token: str):
        pairs = []
        for label in _KEY_LABELS:
            secret = zmq.utils.z85.encode(hmac.new(token.encode(), label, hashlib.sha256).digest())
            pairs.append((zmq.curve_public(secret), secret))
        (self.server_public, self.server_secret), (self.client_public, self.client_secret) = pairs
        self.client_public_raw = zmq.utils.z85.decode(self.client_public)


_keys_cache: dict[str, CurveKeys] = {}


def curve_keys(token: str) -> CurveKeys:
    keys = _keys_cache.get(token)
    if keys is None:
        keys = _keys_cache[token] = CurveKeys(token)
    return keys


def configure_server(sock: zmq.Socket, keys: CurveKeys, domain: str, name: str) -> None:
    """Make ``sock`` (a ROUTER about to bind tcp) a CURVE server admitting only this token's clients."""
    ZapAuthenticator.for_context(sock.context).allow(domain, keys.client_public_raw, name)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.server_secret)
    sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler answering: refuse, never admit


def configure_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Make ``sock`` (a DEALER about to connect over tcp) a CURVE client holding this token's key."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.client_public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.client_secret)


# ============================================================================ ZAP
class ZapAuthenticator:
    """One per zmq context: answers the ZAP requests of every CURVE listener in this process.

    A daemon thread on the ZAP endpoint; each listener registers its ZAP domain with the
    client key it admits (processes such as a driver may run several event loops)."""

    _lock = threading.Lock()
    _by_context: dict[int, "ZapAuthenticator"] = {}

    @classmethod
    def for_context(cls, ctx: zmq.Context) -> "ZapAuthenticator":
        with cls._lock:
            auth = cls._by_context.get(id(ctx))
            if auth is None:
                auth = cls._by_context[id(ctx)] = cls(ctx)
            return auth

    def __init__(self, ctx: zmq.Context):
        self.domains: dict[bytes, tuple[bytes, str]] = {}
        self.refusals = RefusalLog()
        self._sock = ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(ZAP_ENDPOINT)
        threading.Thread(target=self._serve, name="juno-zap", daemon=True).start()

    def allow(self, domain: str, client_key: bytes, name: str) -> None:
        self.domains[domain.encode()] = (client_key, name)

    def forget(self, domain: str) -> None:
        self.domains.pop(domain.encode(), None)

    def _serve(self) -> None:
        """Only this thread touches the ZAP socket; it closes it when the context terminates
        (ETERM), so that Context.term() can finish."""
        sock = self._sock
        try:
            while True:
                try:
                    request = sock.recv_multipart()
                    sock.send_multipart(self.answer(request))
                except zmq.ZMQError as e:
                    if e.errno == errno.EINTR:  # a signal (node managers get SIGCHLD): carry on
                        continue
                    if e.errno != zmq.ETERM:
                        logger.error("the ZAP handler stopped (%s): TCP connections to this process are "
                                     "refused from now on", e)
                    return
        finally:
            sock.close(linger=0)
            with self._lock:
                for key, auth in list(self._by_context.items()):
                    if auth is self:
                        del self._by_context[key]

    def answer(self, request: list[bytes]) -> list[bytes]:
        """The ZAP reply to one request: 200 for this token's client key, else 400 (and a log line)."""
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, address, _identity, mechanism = request[:6]
        credentials = request[6:]
        allowed = self.domains.get(domain)
        if allowed is None:
            why = "no listener of this process uses that ZAP domain"
        elif mechanism != b"CURVE":
            why = f"it did not use CURVE encryption (mechanism {mechanism.decode(errors='replace')})"
        elif not credentials or not hmac.compare_digest(credentials[0], allowed[0]):
            why = "its CURVE key does not come from this cluster's token"
        else:
            return [version, request_id, b"200", b"OK", b"", b""]
        name = allowed[1] if allowed else "juno"
        self.refusals.log(name, address.decode(errors="replace"), why)
        return [version, request_id, b"400", b"not a member of this cluster", b"", b""]


class RefusalLog:
    """Logs refused connections (who, why), rate-limited per (listener, host, reason)."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S):
        self.interval_s = interval_s
        self._last: dict[tuple, list] = {}  # key -> [time of last line, refusals not logged since]
        self._lock = threading.Lock()

    def log(self, listener: str, peer: str, why: str) -> None:
        host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer
        key = (listener, host, why)
        now = time.monotonic()
        with self._lock:
            entry = self._last.get(key)
            if entry is not None and now - entry[0] < self.interval_s:
                entry[1] += 1
                return
            suppressed = entry[1] if entry else 0
            self._last[key] = [now, 0]
            if len(self._last) > 10000:
                self._last = {key: self._last[key]}
        more = f" ({suppressed} more refusals like it since the last report)" if suppressed else ""
        logger.warning("%s: refused a connection from %s: %s; nothing it sent was read%s",
                       listener, peer or "an unknown peer", why, more)


# ============================================================================ listener monitor
_HANDSHAKE_FAILURES = {
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its CURVE handshake failed: it does not hold this cluster's token",
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it did not use CURVE encryption (a client without the cluster "
                                                "token, or not a Juno process)",
}


class ListenerMonitor:
    """Turns a CURVE listener's socket-monitor events into refusal log lines (who, why).

    Monitor events name the listening endpoint, not the peer; the peer is read from the
    accepted connection's fd (ACCEPTED) and matched to the failure by the DISCONNECTED
    event that follows it on the same I/O thread. Best effort: a peer gone before its
    ACCEPTED event is read shows as unknown."""

    EVENTS = (zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
              | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)

    def __init__(self, name: str, refusals: RefusalLog):
        self.name = name
        self.refusals = refusals
        self._peers: dict[int, str] = {}
        self._pending: str | None = None

    def on_event(self, event: int, value: int) -> None:
        if event == zmq.EVENT_ACCEPTED:
            self._peers[value] = _peer_of_fd(value)
        elif event == zmq.EVENT_DISCONNECTED:
            peer = self._peers.pop(value, "")
            if self._pending is not None:
                self.refusals.log(self.name, peer, self._pending)
                self._pending = None
        elif event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
            if self._pending is not None:
                self.refusals.log(self.name, "", self._pending)
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self._pending = _HANDSHAKE_FAILURES.get(value, f"its handshake broke the ZMTP protocol "
                                                               f"(error 0x{value:x})")
            else:
                self._pending = "it broke off the CURVE handshake (not a Juno process, or a wrong token)"


def _peer_of_fd(fd: int) -> str:
    try:
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as s:
            host, port = s.getpeername()[:2]
            return f"{host}:{port}"
    except OSError:
        return ""


def client_failure_reason(event: int, value: int) -> str | None:
    """Why a client-side monitor event says our handshake was refused (None: it succeeded)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "the cluster's ZAP handler rejected this process's key"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return "the cluster closed the connection during the CURVE handshake"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"the CURVE handshake broke the ZMTP protocol (error 0x{value:x})"
    return None


CLIENT_MONITOR_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                         | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
