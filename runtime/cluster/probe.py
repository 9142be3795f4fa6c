"""Short-lived requests to a running cluster's GCS from a process that is not part of it.

Used by ``juno.init(address=...)`` to find the node to attach to, and by the CLI
(``juno start --address``, ``juno status``, ``juno stop --address``).
"""
from __future__ import annotations

import os
import socket
from typing import Any

from juno.comm import auth
from juno.comm.rpc import RpcNode
from juno.comm.transport import EventLoop, VersionMismatchError, is_loopback


class GcsProbe(RpcNode):
    """A private event loop on a TCP port (CURVE, the cluster token) that only sends requests
    and reads replies. The token is ``token``, else the one :func:`juno.comm.auth.resolve_token`
    finds; a GCS that refuses it fails every call at once with :class:`juno.comm.auth.ClusterAuthError`,
    one of another Juno version with :class:`juno.comm.transport.VersionMismatchError`.

    Use as a context manager; the loop thread and its sockets go away on exit.
    """

    def __init__(self, gcs_address: str, token: str | None = None, token_source: str = "the token given"):
        self.gcs_address = gcs_address
        self._missing: str | None = None
        if token is None:
            token, token_source = auth.resolve_token(gcs_address, required=False)
        if token is None:
            # No token here: still ask, so that an address where nothing answers fails as a timeout
            # (the address is wrong) and one that refuses us says the token is missing.
            self._missing, token = token_source, auth.new_token()
        self.token_source = token_source
        self.refused: ConnectionError | None = None
        self._failed_handshakes = 0
        loop = EventLoop(f"tcp://{local_ip_toward(gcs_address)}:0", name="juno-probe", token=token,
                         on_handshake=self._on_handshake, on_refused=self._on_refused)
        self.install_rpc(loop)
        loop.start_thread()

    def _on_handshake(self, address: str, reason: str | None) -> None:
        """Two refusals in a row (ZeroMQ retries every 100 ms) fail every call; one may be a GCS
        that died mid-handshake. A later success (a restarted GCS) clears it."""
        if address != self.gcs_address:
            return
        if reason is None:
            self._failed_handshakes, self.refused = 0, None
            return
        self._failed_handshakes += 1
        if self._failed_handshakes >= 2 and self.refused is None:
            self.refused = auth.ClusterAuthError(
                self._missing or auth.refused_message(address, self.token_source, reason))
            self._requests.fail_all((False, self.refused))

    def _on_refused(self, address: str, error: VersionMismatchError) -> None:
        if address == self.gcs_address:
            self.refused = error
            self._requests.fail_all((False, error))

    def call_gcs(self, method: str, *args: Any, timeout: float, what: str = "") -> Any:
        """Blocking request to the GCS; TimeoutError (with a clear message) if it does not answer,
        ClusterAuthError if it refused our token, VersionMismatchError if it runs another Juno."""
        if self.refused is not None:
            raise self.refused
        what = what or f"The cluster at {self.gcs_address.replace('tcp://', '')}"
        return self.call_sync(self.gcs_address, method, *args, timeout=timeout, what=what)

    def close(self) -> None:
        self.loop.stop()
        self.loop.join(5)

    def __enter__(self) -> "GcsProbe":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def gcs_request(gcs_address: str, method: str, *args: Any, timeout: float, what: str = "",
                token: str | None = None, token_source: str = "the token given") -> Any:
    """One request to the GCS at ``gcs_address`` (``tcp://host:port``)."""
    with GcsProbe(gcs_address, token, token_source) as probe:
        return probe.call_gcs(method, *args, timeout=timeout, what=what)


def local_ip_toward(gcs_address: str) -> str:
    """The IP of this machine that the GCS at ``gcs_address`` can reach us on (loopback for a
    loopback GCS): the GCS answers by connecting back to our listening address."""
    host = gcs_address.replace("tcp://", "").rpartition(":")[0]
    if is_loopback(host):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))  # UDP: nothing is sent, the kernel only picks the route
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def pick_local_node(nodes: list[dict], gcs_address: str) -> dict:
    """The live node of ``nodes`` on this machine to attach to (the head first)."""
    hostname = os.uname().nodename
    local = [n for n in nodes if n.get("alive") and n.get("hostname") == hostname]
    if not local:
        raise ConnectionError(f"The cluster at {gcs_address} has no live node on this machine ({hostname}).")
    local.sort(key=lambda n: not n.get("is_head"))
    return local[0]


def find_local_node(gcs_address: str, timeout: float, token: str | None = None,
                    token_source: str = "the token given") -> dict:
    """Ask the GCS for the nodes and pick one on this machine (the head first)."""
    return pick_local_node(gcs_request(gcs_address, "get_nodes", timeout=timeout, token=token,
                                       token_source=token_source), gcs_address)
