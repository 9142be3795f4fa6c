"""The GCS's placement-group table: creation, two-phase reservation, removal, rescheduling.

A group's bundles are placed by ``placement_group_scheduling.place_bundles`` on the live nodes
of the node table, then reserved atomically with two-phase commit: every chosen node
is asked to ``prepare`` its bundles (take them out of its free pool, all or nothing),
and only when all agreed to ``commit`` them (the node gains the bundle resources that
work in the group asks for; see ``juno.gcs.placement_group_resources``). If any node refuses or
does not answer, every node that prepared is told to ``cancel`` and the group waits
for the cluster to change. One group is reserved at a time, in creation order; a
group that does not fit now does not hold up the others.

States are Ray's: PENDING -> CREATED, CREATED -> RESCHEDULING (a node holding some of
its bundles died; those are placed again) -> CREATED, and REMOVED (by
``remove_placement_group``, or when the job that created a non-detached group ends).
Removal tells every node to drop the group: they kill the workers using its bundles,
so its tasks fail and its actors die with that cause. Actors in a group wait here
until it is CREATED before the actor manager places them. The table is written
through to ``gcs.storage`` and read back when a GCS restarts.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from juno.gcs.placement_group_resources import validate_bundles, validate_strategy
from juno.gcs.actor_manager import DEAD
from juno.gcs.placement_group_scheduling import NodeRoom, place_bundles
from juno.comm import messages
from juno.comm.rpc import DEFER, Reply

logger = logging.getLogger(__name__)

PENDING, CREATED, REMOVED, RESCHEDULING = "PENDING", "CREATED", "REMOVED", "RESCHEDULING"
TABLE = "placement_groups"


class GroupRecord:
    __slots__ = ("pg_id", "name", "namespace", "strategy", "bundles", "state", "bundle_nodes", "job_id",
                 "detached", "owner", "max_cpu_fraction", "create_time", "ready_time", "attempts",
                 "removal_reason", "warned")

    def __init__(self, pg_id: bytes, bundles: list, strategy: str, name: str, namespace: str, job_id: Any,
                 detached: bool, owner: str | None, max_cpu_fraction: float | None):
        self.pg_id = pg_id
        self.name = name
        self.namespace = namespace
        self.strategy = strategy
        self.bundles = bundles
        self.state = PENDING
        self.bundle_nodes: list[str | None] = [None] * len(bundles)
        self.job_id = job_id
        self.detached = detached
        self.owner = owner
        self.max_cpu_fraction = max_cpu_fraction
        self.create_time = time.time()
        self.ready_time: float | None = None
        self.attempts = 0
        self.removal_reason = ""
        self.warned = False

    @property
    def hex(self) -> str:
        return self.pg_id.hex()

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> "GroupRecord":
        rec = cls.__new__(cls)
        for k in cls.__slots__:
            setattr(rec, k, d.get(k))
        rec.warned = False
        return rec

    def row(self) -> dict:
        """What ``placement_group_table`` shows (Ray's keys)."""
        latency = (self.ready_time - self.create_time) * 1000 if self.ready_time else None
        return {
            "placement_group_id": self.hex, "name": self.name, "namespace": self.namespace,
            "bundles": {i: dict(b) for i, b in enumerate(self.bundles)},
            "bundles_to_node_id": {i: n for i, n in enumerate(self.bundle_nodes) if n is not None},
            "strategy": self.strategy, "state": self.state, "is_detached": self.detached,
            "creator_job_id": self.job_id, "removal_reason": self.removal_reason,
            "stats": {"end_to_end_creation_latency_ms": latency, "scheduling_attempt": self.attempts,
                      "scheduling_state": {PENDING: "QUEUED", RESCHEDULING: "QUEUED", CREATED: "FINISHED",
                                           REMOVED: "REMOVED"}[self.state]},
        }


class _Reservation:
    """One two-phase commit in flight: which bundles go to which node, and who answered."""

    def __init__(self, record: GroupRecord, assignment: dict[int, str]):
        self.record = record
        self.assignment = assignment
        self.by_node: dict[str, list[int]] = {}
        for index, node_id in assignment.items():
            self.by_node.setdefault(node_id, []).append(index)
        self.waiting: set[str] = set(self.by_node)
        self.agreed: set[str] = set()
        self.failed: list[str] = []
        self.phase = "prepare"  # then "commit"


class PlacementGroupManager:
    def __init__(self, gcs):
        self.gcs = gcs
        self.config = gcs.config
        self.groups: dict[bytes, GroupRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self.held_actors: dict[str, list[bytes]] = {}  # pg hex -> actors waiting for the group
        self.waiters: dict[bytes, list[Reply]] = {}
        self._reservation: _Reservation | None = None
        self._tried_version = -1  # node table version when nothing pending could be placed
        self._retry_after = 0.0
        for pg_id, d in sorted(gcs.storage.load(TABLE).items(), key=lambda kv: kv[1].get("create_time") or 0):
            rec = GroupRecord.from_dict(d)
            self.groups[pg_id] = rec
            if rec.name and rec.state != REMOVED:
                self.named[(rec.namespace, rec.name)] = pg_id
        gcs.node_death_listeners.append(self.on_node_dead)
        gcs.loop.call_later(self.config.placement_group_retry_interval_s, self._tick)

    # ------------------------------------------------------------------ requests (rpc_placement_group)
    def handle(self, reply: Reply, op: str, *args: Any) -> Any:
        """One ``placement_group`` request: ``op`` names its operation in :attr:`OPS`."""
        handler = self.OPS.get(op)
        if handler is None:
            raise ValueError(f"unknown placement group operation {op!r}")
        return handler(self, reply, *args)

    def op_create(self, reply: Reply, pg_id: bytes, bundles: list, strategy: str, name: str, namespace: str,
                  job_id: Any, detached: bool, owner: str | None, max_cpu_fraction: float | None = None):
        bundles = validate_bundles(bundles)
        validate_strategy(strategy)
        if name:
            existing = self.named.get((namespace, name))
            if existing is not None and self.groups[existing].state != REMOVED:
                raise ValueError(f"A placement group named {name!r} already exists in namespace {namespace!r}. "
                                 "Remove it first, look it up with get_placement_group(name), or pick another "
                                 "name.")
        rec = GroupRecord(pg_id, bundles, strategy, name, namespace, job_id, detached, owner, max_cpu_fraction)
        self.groups[pg_id] = rec
        if name:
            self.named[(namespace, name)] = pg_id
        self._save(rec)
        self._tried_version = -1  # a new group: worth a try even if the cluster did not change
        self._try_schedule()
        return rec.row()

    def op_remove(self, reply: Reply, pg_id: bytes):
        rec = self.groups.get(pg_id)
        if rec is None:
            raise ValueError(f"Placement group {pg_id.hex()} does not exist.")
        self.remove(rec, "remove_placement_group() was called")
        return True

    def op_get(self, reply: Reply, pg_id: bytes):
        rec = self.groups.get(pg_id)
        return rec.row() if rec is not None else None

    def op_get_named(self, reply: Reply, name: str, namespace: str):
        pg_id = self.named.get((namespace, name))
        if pg_id is None or self.groups[pg_id].state == REMOVED:
            return None
        return self.groups[pg_id].row()

    def op_table(self, reply: Reply):
        return [rec.row() for rec in self.groups.values()]

    def op_wait_ready(self, reply: Reply, pg_id: bytes, timeout_s: float):
        """Answer ``(state, removal reason)`` once the group is CREATED or REMOVED, or after ``timeout_s``."""
        rec = self.groups.get(pg_id)
        if rec is None:
            raise ValueError(f"Placement group {pg_id.hex()} does not exist.")
        if rec.state in (CREATED, REMOVED) or timeout_s <= 0:
            return (rec.state, rec.removal_reason)
        self.waiters.setdefault(pg_id, []).append(reply)
        self.gcs.loop.call_later(timeout_s, self._answer_waiter, pg_id, reply)
        return DEFER

    # The operations of the placement_group request (wire name -> method).
    OPS = {"create": op_create, "remove": op_remove, "get": op_get, "get_named": op_get_named, "table": op_table,
           "wait_ready": op_wait_ready}

    def _answer_waiter(self, pg_id: bytes, reply: Reply) -> None:
        waiting = self.waiters.get(pg_id, [])
        if reply in waiting:
            waiting.remove(reply)
            rec = self.groups[pg_id]
            reply.send((rec.state, rec.removal_reason))

    def _wake_waiters(self, rec: GroupRecord) -> None:
        for reply in self.waiters.pop(rec.pg_id, []):
            reply.send((rec.state, rec.removal_reason))

    # ------------------------------------------------------------------ hooks from the GCS
    def hold_actor(self, record) -> bool:
        """ActorManager asks before placing an actor: True if the actor must wait (its group is not CREATED),
        or was failed (its group was removed). Its resources name the group."""
        pg_hex = (record.info or {}).get("placement_group")
        if not pg_hex:
            return False
        rec = self.groups.get(bytes.fromhex(pg_hex))
        if rec is None or rec.state == REMOVED:
            why = rec.removal_reason if rec is not None else "it does not exist"
            self.gcs.actors.mark_dead(record, f"its placement group {pg_hex} was removed ({why}), so the actor "
                                               "can not be scheduled")
            return True
        if rec.state == CREATED:
            return False
        held = self.held_actors.setdefault(pg_hex, [])
        if record.actor_id not in held:
            held.append(record.actor_id)
        return True

    def _release_actors(self, rec: GroupRecord) -> None:
        for actor_id in self.held_actors.pop(rec.hex, []):
            record = self.gcs.actors.actors.get(actor_id)
            if record is not None and record.state != DEAD:
                self.gcs.actors.schedule(record)

    def on_job_finished(self, job_id: Any) -> None:
        for rec in list(self.groups.values()):
            if rec.job_id == job_id and not rec.detached and rec.state != REMOVED:
                self.remove(rec, "the job (driver) that created it finished")

    def on_node_registered(self, info: dict) -> None:
        """A node joined (or registered again after a GCS restart, listing the bundles it holds)."""
        node_id = info["node_id"]
        for pg_hex, indices in (info.get("bundles") or {}).items():
            rec = self.groups.get(bytes.fromhex(pg_hex))
            if rec is None or rec.state == REMOVED:
                self._send(node_id, "remove", pg_hex, "the placement group was removed")
                continue
            stale = [int(i) for i, stage in indices.items()
                     if stage != "committed" or rec.bundle_nodes[int(i)] != node_id]
            if stale:
                self._send(node_id, "cancel", pg_hex, stale)
        self._tried_version = -1
        self._try_schedule()

    def on_node_dead(self, node: dict) -> None:
        node_id = node["node_id"]
        res = self._reservation
        if res is not None and node_id in res.waiting:
            res.waiting.discard(node_id)
            res.failed.append(f"node {node_id[:12]} died")
            self._maybe_finish_phase(res)
        for rec in self.groups.values():
            if rec.state == REMOVED or node_id not in rec.bundle_nodes:
                continue
            lost = [i for i, n in enumerate(rec.bundle_nodes) if n == node_id]
            logger.warning("placement group %s lost bundles %s with node %s; rescheduling them", rec.hex[:12], lost,
                           node_id[:12])
            for i in lost:
                rec.bundle_nodes[i] = None
            if rec.state == CREATED:
                rec.state = RESCHEDULING
            self._save(rec)
        self._try_schedule()

    # ------------------------------------------------------------------ removal
    def remove(self, rec: GroupRecord, reason: str) -> None:
        if rec.state == REMOVED:
            return
        logger.info("placement group %s removed: %s", rec.hex[:12], reason)
        rec.state = REMOVED
        rec.removal_reason = reason
        rec.bundle_nodes = [None] * len(rec.bundles)
        if rec.name and self.named.get((rec.namespace, rec.name)) == rec.pg_id:
            del self.named[(rec.namespace, rec.name)]
        self._save(rec)
        self._wake_waiters(rec)
        actors = self.gcs.actors
        for actor_id in self.held_actors.pop(rec.hex, []):
            record = actors.actors.get(actor_id)
            if record is not None and record.state != DEAD:
                actors.mark_dead(record, f"its placement group was removed ({reason})")
        for record in list(actors.actors.values()):
            if (record.info or {}).get("placement_group") == rec.hex and record.state != DEAD:
                actors.kill(record.actor_id, True, f"its placement group was removed ({reason})")
        # Every node hears of it, so lease requests for the group fail wherever they wait.
        for node in self.gcs.node_table.alive():
            self._send(node["node_id"], "remove", rec.hex, reason)

    # ------------------------------------------------------------------ scheduling
    def _tick(self) -> None:
        try:
            self._try_schedule()
        except Exception:  # noqa: BLE001 - keep the timer alive
            logger.exception("placement group scheduling failed")
        self.gcs.loop.call_later(self.config.placement_group_retry_interval_s, self._tick)

    def _pending(self) -> list[GroupRecord]:
        return [r for r in self.groups.values() if r.state in (PENDING, RESCHEDULING)]

    def _try_schedule(self) -> None:
        if self._reservation is not None or time.monotonic() < self._retry_after:
            return
        table = self.gcs.node_table
        if table.version == self._tried_version:
            return
        pending = self._pending()
        if not pending:
            return
        nodes = [NodeRoom(n["node_id"], dict(n.get("available") or {}), dict(n.get("resources") or {}))
                 for n in table.alive()]
        for rec in pending:
            fixed = {i: n for i, n in enumerate(rec.bundle_nodes) if n is not None}
            placement = place_bundles(rec.strategy, rec.bundles, nodes, fixed, rec.max_cpu_fraction)
            if placement.assignment is not None:
                self._start(rec, placement.assignment)
                return
            if not rec.warned:
                ever = place_bundles(rec.strategy, rec.bundles, nodes, fixed, rec.max_cpu_fraction, use_totals=True)
                if ever.assignment is None:
                    rec.warned = True
                    self._warn(rec, ever.reason)
        self._tried_version = table.version

    def _warn(self, rec: GroupRecord, reason: str) -> None:
        text = (f"The placement group {rec.name or rec.hex} cannot be created with the nodes in the cluster now "
                f"({reason}). It stays PENDING until nodes with enough resources join; remove it with "
                "remove_placement_group(pg), or bound the wait with pg.wait(timeout_seconds) or "
                "juno.get(pg.ready(), timeout=...).")
        logger.warning(text)
        if rec.owner:
            self.gcs.loop.send(rec.owner, messages.warning(text))

    def _start(self, rec: GroupRecord, assignment: dict[int, str]) -> None:
        rec.attempts += 1
        res = self._reservation = _Reservation(rec, assignment)
        for node_id, indices in res.by_node.items():
            bundles = [(i, rec.bundles[i]) for i in indices]
            self._call(node_id, "prepare", rec.hex, bundles,
                       callback=lambda ok, value, node_id=node_id: self._on_prepared(res, node_id, ok, value))

    def _on_prepared(self, res: _Reservation, node_id: str, ok: bool, value: Any) -> None:
        if node_id not in res.waiting:
            return
        res.waiting.discard(node_id)
        if ok and value and value[0]:
            res.agreed.add(node_id)
        else:
            res.failed.append(f"node {node_id[:12]}: {value[3] if ok and value else value}")
        self._node_resources(node_id, ok, value)
        self._maybe_finish_phase(res)

    def _maybe_finish_phase(self, res: _Reservation) -> None:
        if res.waiting or self._reservation is not res:
            return
        rec = res.record
        alive = {n["node_id"] for n in self.gcs.node_table.alive()}
        if rec.state == REMOVED or res.failed or not set(res.by_node) <= alive:
            self._abort(res)
            return
        if res.phase == "prepare":
            res.phase = "commit"
            res.waiting = set(res.by_node)
            for node_id, indices in res.by_node.items():
                self._call(node_id, "commit", rec.hex, indices,
                           callback=lambda ok, value, node_id=node_id: self._on_committed(res, node_id, ok, value))
            return
        for index, node_id in res.assignment.items():
            rec.bundle_nodes[index] = node_id
        rec.state = CREATED
        rec.ready_time = rec.ready_time or time.time()
        self._reservation = None
        self._save(rec)
        logger.info("placement group %s created: bundles on %s", rec.hex[:12],
                    [n[:12] if n else None for n in rec.bundle_nodes])
        self._wake_waiters(rec)
        self._release_actors(rec)
        self._try_schedule()

    def _on_committed(self, res: _Reservation, node_id: str, ok: bool, value: Any) -> None:
        if node_id not in res.waiting:
            return
        res.waiting.discard(node_id)
        if not (ok and value and value[0]):
            res.failed.append(f"node {node_id[:12]} did not commit: {value}")
        self._node_resources(node_id, ok, value)
        self._maybe_finish_phase(res)

    def _abort(self, res: _Reservation) -> None:
        rec = res.record
        if res.failed:
            logger.info("placement group %s: reservation failed (%s); will retry", rec.hex[:12],
                        "; ".join(res.failed))
        for node_id, indices in res.by_node.items():
            self._send(node_id, "cancel", rec.hex, indices)
        self._reservation = None
        self._retry_after = time.monotonic() + self.config.placement_group_retry_interval_s
        self._tried_version = -1

    # ------------------------------------------------------------------ node calls
    def _node(self, node_id: str) -> dict | None:
        node = self.gcs.nodes.get(node_id)
        return node if node is not None and node.get("alive") else None

    def _call(self, node_id: str, op: str, pg_hex: str, arg: Any, callback) -> None:
        node = self._node(node_id)
        if node is None:
            self.gcs.loop.call_soon(callback, False, f"node {node_id[:12]} is not alive")
            return
        self.gcs.call(node["address"], "placement_group_bundles", op, pg_hex, arg, callback=callback,
                      timeout=max(1.0, self.config.node_death_timeout_s))

    def _send(self, node_id: str, op: str, pg_hex: str, arg: Any) -> None:
        node = self._node(node_id)
        if node is not None:
            self.gcs.call(node["address"], "placement_group_bundles", op, pg_hex, arg,
                          callback=lambda ok, value: self._node_resources(node_id, ok, value),
                          timeout=max(1.0, self.config.node_death_timeout_s))

    def _node_resources(self, node_id: str, ok: bool, value: Any) -> None:
        """Node replies carry ``(ok, total, available, why)``: keep the node table current at once."""
        if not ok or not isinstance(value, tuple) or len(value) < 3:
            return
        node = self._node(node_id)
        if node is None:
            return
        _, total, available = value[:3]
        self.gcs.node_table.set_totals(node_id, dict(total))
        self.gcs.node_table.report_resources(node_id, dict(available))

    def _save(self, rec: GroupRecord) -> None:
        try:
            self.gcs.storage.put(TABLE, rec.pg_id, rec.to_dict())
        except Exception:  # noqa: BLE001 - the table stays right in memory
            logger.exception("could not persist placement group %s", rec.hex[:12])

