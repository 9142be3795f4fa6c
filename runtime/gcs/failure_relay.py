"""The GCS's part in failures: process deaths made cluster-wide, node deaths published.

Node managers report every driver and worker they start and lose
(``report_process_started`` / ``report_process_died``). The GCS relays each death to
every live node manager (``processes_died``), which tells the local processes that
watch the dead one (owners and borrowers of its objects), frees the objects it owned
in that node's store and the workers it leased there. When a node dies, all of its
processes are dead at once; every live node manager gets ``node_died`` with their
addresses and passes the node's death on to its drivers and workers (leases on that
node fail over, objects stored there are rebuilt or reported lost). A dead driver's
job ends (its non-detached actors die with it).
"""
from __future__ import annotations

import logging

from juno.gcs.process_directory import ProcessDirectory

logger = logging.getLogger(__name__)


class FailureRelay:
    def __init__(self, gcs):
        self.gcs = gcs
        self.directory = ProcessDirectory()
        gcs.node_death_listeners.append(self.on_node_died)
        gcs.node_death_listeners.append(gcs.actors.on_node_died)

    def messages(self) -> dict:
        """The one-way messages this part answers (op -> handler), for the GCS's op table."""
        return {"report_process_started": self.on_process_started,
                "report_process_died": self.on_process_died,
                "check_processes": self.on_check_processes}

    def _live_node_managers(self, exclude: str | None = None) -> list[str]:
        return [n["address"] for n in self.gcs.node_table.alive() if n["address"] != exclude]

    # ------------------------------------------------------------------ reports from node managers
    def on_process_started(self, address: str, node_id: str, kind: str) -> None:
        self.directory.started(address, node_id, kind)

    def on_process_died(self, address: str, node_id: str, reason: str) -> None:
        self.directory.died(address)
        for nm in self._live_node_managers():
            self.gcs.loop.send(nm, ("processes_died", [address], reason))
        self._driver_gone(address)

    def on_check_processes(self, addresses: list, reply_to: str) -> None:
        """A node manager was asked to watch processes of other nodes: say which are dead already."""
        dead = [a for a in addresses if self.directory.is_dead(a)]
        if dead:
            self.gcs.loop.send(reply_to, ("processes_died", dead, "it had exited already"))

    # ------------------------------------------------------------------ node deaths
    def on_node_died(self, node: dict) -> None:
        node_id = node["node_id"]
        reason = node.get("death_reason") or "the node died"
        dead = self.directory.node_died(node_id)
        addresses = [address for address, _ in dead]
        logger.warning("node %s died with %d driver/worker processes", node_id[:12], len(addresses))
        for nm in self._live_node_managers(exclude=node["address"]):
            self.gcs.loop.send(nm, ("node_died", node_id, node["address"], reason, addresses))
        for address, kind in dead:
            if kind == "driver":
                self._driver_gone(address)

    def _driver_gone(self, address: str) -> None:
        """A driver exited or crashed, or its node died: its job ends (non-detached actors die)."""
        for job_id, job in list(self.gcs.jobs.items()):
            if job.get("driver_address") == address and not job["is_dead"]:
                logger.info("job %s ended: its driver %s is gone", job_id, address)
                self.gcs.finish_job(job_id)
