"""Short-lived requests to a running cluster's GCS from a process that is not part of it.

Used by ``juno.init(address=...)`` to find the node to attach to, and by the CLI
(``juno start --address``, ``juno status``, ``juno stop --address``).
"""
from __future__ import annotations

import os
from typing import Any

from juno.rpc import RpcNode
from juno.transport import EventLoop


class GcsProbe(RpcNode):
    """A private event loop on a loopback port that only sends requests and reads replies.

    Use as a context manager; the loop thread and its sockets go away on exit.
    """

    def __init__(self, gcs_address: str):
        self.gcs_address = gcs_address
        loop = EventLoop("tcp://127.0.0.1:0", name="juno-probe")
        self.install_rpc(loop)
        loop.start_thread()

    def call_gcs(self, method: str, *args: Any, timeout: float, what: str = "") -> Any:
        """Blocking request to the GCS; TimeoutError (with a clear message) if it does not answer."""
        what = what or f"The cluster at {self.gcs_address.replace('tcp://', '')}"
        return self.call_sync(self.gcs_address, method, *args, timeout=timeout, what=what)

    def close(self) -> None:
        self.loop.stop()
        self.loop.join(5)

    def __enter__(self) -> "GcsProbe":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def gcs_request(gcs_address: str, method: str, *args: Any, timeout: float, what: str = "") -> Any:
    """One request to the GCS at ``gcs_address`` (``tcp://host:port``)."""
    with GcsProbe(gcs_address) as probe:
        return probe.call_gcs(method, *args, timeout=timeout, what=what)


def pick_local_node(nodes: list[dict], gcs_address: str) -> dict:
    """The live node of ``nodes`` on this machine to attach to (the head first)."""
    hostname = os.uname().nodename
    local = [n for n in nodes if n.get("alive") and n.get("hostname") == hostname]
    if not local:
        raise ConnectionError(f"The cluster at {gcs_address} has no live node on this machine ({hostname}).")
    local.sort(key=lambda n: not n.get("is_head"))
    return local[0]


def find_local_node(gcs_address: str, timeout: float) -> dict:
    """Ask the GCS for the nodes and pick one on this machine (the head first)."""
    return pick_local_node(gcs_request(gcs_address, "get_nodes", timeout=timeout), gcs_address)
