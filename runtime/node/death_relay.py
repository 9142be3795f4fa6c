"""A node manager's part in cluster-wide failures (the GCS side: runtime/gcs/failure_relay.py).

The node manager reports each driver and worker that registers here and each one
that dies to the GCS, which relays every death to every node manager. A death
relayed here means: tell the local processes watching the dead one (a borrower
learns its owner died, an owner that its borrower did), free the objects it owned in
this node's store, drop its queued lease requests and kill the workers it leased.
When a node dies, the GCS sends its processes' addresses with ``node_died``, and
this node passes the node's death on to its drivers and workers, whose leases and
objects on that node need recovering.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class DeathRelay:
    def __init__(self, nm):
        self.nm = nm
        self._checked: set[str] = set()  # remote processes the GCS was asked about

    def messages(self) -> dict:
        """The one-way messages this part answers (op -> handler), for the node manager's op table."""
        return {"processes_died": self.on_processes_died, "node_died": self.on_node_died}

    # ------------------------------------------------------------------ reports to the GCS
    def process_started(self, address: str, kind: str) -> None:
        nm = self.nm
        nm.loop.send(nm.gcs_address, ("report_process_started", address, nm.node_id, kind))

    def process_died(self, address: str, reason: str = "the process exited") -> None:
        nm = self.nm
        nm.loop.send(nm.gcs_address, ("report_process_died", address, nm.node_id, reason))

    def watch_remote(self, address: str, watcher: str) -> None:
        """``watcher`` (a local process) watches a process of another node: the GCS relays its
        death to every node; ask it once whether that process is dead already."""
        nm = self.nm
        nm.watchers.setdefault(address, set()).add(watcher)
        if address not in self._checked:
            if len(self._checked) > 100000:
                self._checked.clear()
            self._checked.add(address)
            nm.loop.send(nm.gcs_address, ("check_processes", [address], nm.address))

    # ------------------------------------------------------------------ deaths relayed by the GCS
    def on_processes_died(self, addresses: list, reason: str) -> None:
        nm = self.nm
        recent = set(nm.recently_dead)
        for address in addresses:
            self._checked.discard(address)
            if address in recent:
                continue  # died here: handled when it did
            nm.owner_gone(address, local=False)

    def on_node_died(self, node_id: str, node_address: str, reason: str, addresses: list) -> None:
        nm = self.nm
        logger.warning("node %s died (%s); %d of its processes are gone", node_id[:12], reason, len(addresses))
        if node_id in nm.cluster_view:  # no spilling work there until the next heartbeat's view
            nm.cluster_view = {k: v for k, v in nm.cluster_view.items() if k != node_id}
        self.on_processes_died(addresses, f"its node died: {reason}")
        msg = ("node_died", node_id, node_address, reason)
        for address in list(nm.drivers):
            nm.loop.send(address, msg)
        for worker in list(nm.pool.workers.values()):
            if worker.address and worker.registered:
                nm.loop.send(worker.address, msg)
