"""The GCS's directory of processes: which node each live driver and worker runs on,
and which died recently.

Owners and borrowers watch each other so that neither waits on a process that is
gone. Node managers report each process they start and lose; the GCS relays every
death to every node manager (which tells the local watchers and frees what the dead
process owned or leased there) and, when a node dies, declares all of that node's
processes dead at once. No sockets here: the GCS's FailureRelay
(runtime/gcs/failure_relay.py) acts on what comes back, so the decisions are
unit-tested.
"""
from __future__ import annotations

import collections


class ProcessDirectory:
    def __init__(self, max_dead: int = 10000):
        self.processes: dict[str, tuple[str, str]] = {}   # address -> (node id, "driver" | "worker")
        self._dead: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._max_dead = max_dead

    def started(self, address: str, node_id: str, kind: str = "worker") -> None:
        self._dead.pop(address, None)
        self.processes[address] = (node_id, kind)

    def is_dead(self, address: str) -> bool:
        return address in self._dead

    def node_of(self, address: str) -> str | None:
        found = self.processes.get(address)
        return found[0] if found else None

    def kind_of(self, address: str) -> str | None:
        found = self.processes.get(address)
        return found[1] if found else None

    def died(self, address: str) -> tuple[str, str] | None:
        """``address`` died: forget it; returns its (node id, kind) if it was known alive."""
        found = self.processes.pop(address, None)
        self._dead[address] = None
        self._dead.move_to_end(address)
        while len(self._dead) > self._max_dead:
            self._dead.popitem(last=False)
        return found

    def on_node(self, node_id: str) -> list[str]:
        return [a for a, (nid, _) in self.processes.items() if nid == node_id]

    def node_died(self, node_id: str) -> list[tuple[str, str]]:
        """Every process of a dead node is dead: (address, kind) of each."""
        out = []
        for address in self.on_node(node_id):
            _, kind = self.died(address)
            out.append((address, kind))
        return out

    def live(self) -> list[str]:
        return list(self.processes)
