"""A node's side of placement groups: the bundles it reserves, and what removing them ends.

The GCS reserves a group's bundles with two-phase commit (runtime/gcs/placement_groups.py):
``prepare`` takes each bundle's resources out of the node's free pool (all the bundles
asked of this node, or none), ``commit`` makes them usable by the group's work (the node
gains the bundle resources named in juno.gcs.placement_group_resources), ``cancel`` gives prepared or
committed bundles back, and ``remove`` drops the whole group: the node kills the workers
leased on its resources (their tasks fail, their actors die) and fails lease requests
for it from then on. :class:`BundleTable` is the bookkeeping, without sockets;
:func:`handle` carries an operation out on the node manager.
"""
from __future__ import annotations

import collections
import logging
from typing import Any

from juno import exceptions as exc
from juno.gcs.placement_group_resources import bundle_totals, groups_in
from juno.node.resources import Allocation, NodeResources

logger = logging.getLogger(__name__)

PREPARED, COMMITTED = "prepared", "committed"


class BundleTable:
    def __init__(self, resources: NodeResources):
        self.resources = resources
        # (pg hex, bundle index) -> [stage, allocation taken from the free pool, totals the node gained]
        self.bundles: dict[tuple[str, int], list] = {}
        self._removed: collections.deque[str] = collections.deque(maxlen=10000)
        self.removed: set[str] = set()
        self.removal_reasons: dict[str, str] = {}

    def prepare(self, pg_hex: str, bundles: list[tuple[int, dict]]) -> tuple[bool, str]:
        """Reserve every bundle or none; a bundle held already counts as reserved."""
        if pg_hex in self.removed:
            return False, "the placement group was removed"
        taken: list[tuple[int, Allocation]] = []
        for index, bundle in bundles:
            if (pg_hex, index) in self.bundles:
                continue
            allocation = self.resources.allocate(bundle)
            if allocation is None:
                for _, a in taken:
                    self.resources.release(a)
                return False, (f"bundle {index} {bundle} does not fit in what is free on this node now "
                               f"({self._free(bundle)})")
            taken.append((index, allocation))
        for index, allocation in taken:
            self.bundles[(pg_hex, index)] = [PREPARED, allocation, None]
        return True, ""

    def commit(self, pg_hex: str, indices: list[int]) -> tuple[bool, str]:
        missing = [i for i in indices if (pg_hex, i) not in self.bundles]
        if missing:
            return False, f"bundles {missing} were not prepared on this node"
        for index in indices:
            entry = self.bundles[(pg_hex, index)]
            if entry[0] == PREPARED:
                totals = bundle_totals(pg_hex, index, entry[1].resources.to_dict())
                self.resources.add_total(totals)
                if entry[1].gpu_shares:
                    self.resources.add_bundle_gpus(pg_hex, index, entry[1].gpu_shares)
                entry[0], entry[2] = COMMITTED, totals
        return True, ""

    def cancel(self, pg_hex: str, indices: list[int] | None = None) -> list[int]:
        """Give bundles back (all of the group's when ``indices`` is None); the indices dropped."""
        keys = [k for k in self.bundles if k[0] == pg_hex and (indices is None or k[1] in indices)]
        for key in keys:
            stage, allocation, totals = self.bundles.pop(key)
            if totals:
                self.resources.remove_total(totals)
                self.resources.remove_bundle_gpus(pg_hex, key[1])
            self.resources.release(allocation)
        return [k[1] for k in keys]

    def remove(self, pg_hex: str, reason: str) -> list[int]:
        if pg_hex not in self.removed:
            if len(self._removed) == self._removed.maxlen:
                old = self._removed.popleft()
                self.removed.discard(old)
                self.removal_reasons.pop(old, None)
            self._removed.append(pg_hex)
            self.removed.add(pg_hex)
            self.removal_reasons[pg_hex] = reason
        return self.cancel(pg_hex)

    def removed_group(self, resources: dict) -> str | None:
        """The removed group a resource request asks for, if any."""
        for pg_hex in groups_in(resources):
            if pg_hex in self.removed:
                return pg_hex
        return None

    def summary(self) -> dict[str, dict[int, str]]:
        """``{pg hex: {index: stage}}``: sent with the node's registration (GCS recovery)."""
        out: dict[str, dict[int, str]] = {}
        for (pg_hex, index), entry in self.bundles.items():
            out.setdefault(pg_hex, {})[index] = entry[0]
        return out

    def _free(self, bundle: dict) -> dict:
        avail = self.resources.available
        return {k: avail.get(k, 0.0) for k in bundle}


def unschedulable(pg_hex: str, reason: str, is_actor: bool) -> BaseException:
    cls = exc.ActorUnschedulableError if is_actor else exc.TaskUnschedulableError
    return cls(f"its placement group {pg_hex} was removed ({reason}); create a new placement group and "
               "schedule the work there")


def _prepare(nm, table: BundleTable, pg_hex: str, arg: Any) -> tuple[bool, str]:
    return table.prepare(pg_hex, [(int(i), dict(b)) for i, b in arg])


def _commit(nm, table: BundleTable, pg_hex: str, arg: Any) -> tuple[bool, str]:
    return table.commit(pg_hex, [int(i) for i in arg])


def _cancel(nm, table: BundleTable, pg_hex: str, arg: Any) -> tuple[bool, str]:
    dropped = table.cancel(pg_hex, [int(i) for i in arg])
    _kill_users(nm, pg_hex, dropped, "its placement group bundle was moved")
    return True, ""


def _remove(nm, table: BundleTable, pg_hex: str, arg: Any) -> tuple[bool, str]:
    dropped = table.remove(pg_hex, str(arg))
    _kill_users(nm, pg_hex, None, f"its placement group was removed ({arg})")
    _fail_requests(nm, pg_hex, str(arg))
    if dropped:
        logger.info("placement group %s removed: returned bundles %s", pg_hex[:12], dropped)
    return True, ""


# The operations of the placement_group_bundles request (wire name -> function).
OPS = {"prepare": _prepare, "commit": _commit, "cancel": _cancel, "remove": _remove}


def handle(nm, op: str, pg_hex: str, arg: Any) -> tuple:
    """Carry out one GCS request on node manager ``nm``; answers ``(ok, total, available, why)``."""
    operation = OPS.get(op)
    if operation is None:
        raise ValueError(f"unknown bundle operation {op!r}")
    ok, why = operation(nm, nm.bundles, pg_hex, arg)
    nm.node["resources"] = nm.resources.total
    nm.node["bundles"] = nm.bundles.summary()
    nm.schedule()
    nm.report_resources_soon()
    return (ok, nm.resources.total, nm.available_resources(), why)


def _kill_users(nm, pg_hex: str, indices: list[int] | None, reason: str) -> None:
    """Kill the workers leased on the group's resources (``indices``: only those bundles')."""
    suffixes = {f"_{pg_hex}"} if indices is None else {f"_group_{i}_{pg_hex}" for i in indices}
    for lease in list(nm.leases.values()):
        names = lease.allocation.resources
        if any(name.endswith(s) for name in names for s in suffixes):
            worker = nm.pool.workers.get(lease.worker_id)
            if worker is not None:
                nm.pool.kill(worker, reason)


def _fail_requests(nm, pg_hex: str, reason: str) -> None:
    for req in list(nm.scheduler.requests):
        if pg_hex in groups_in(req.resources):
            nm.scheduler.requests.remove(req)
            req.reply.fail(unschedulable(pg_hex, reason, req.actor_id is not None))
