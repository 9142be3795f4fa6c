"""A GCS that restarts finds the cluster again: what it writes, what it reads back, and how
it settles with the nodes that check in.

Write path (:class:`GcsPersistence`): every change of the node, job, KV and actor tables
is written through to the GCS storage (runtime/gcs/storage.py, ``gcs.db`` in the session
folder) before the GCS answers the request that made it. An actor is two rows: its spec
(written once, at registration) and its state (rewritten on every change: state,
address, worker, node, restarts, death cause), plus a row per subscriber (a process
that gets the actor's state changes). Named actors are rebuilt
from the actor rows; placement groups persist their own table.

Read path (:meth:`GcsRecovery.recover`, run by a new GcsServer before it serves):

* nodes come back as they were; live ones are *unconfirmed*: their heartbeat is
  answered UNKNOWN_NODE, so they register again and say which actors they host, and one
  that stays silent for ``node_death_timeout_s`` is declared dead as usual;
* jobs come back (a local driver that died meanwhile is finished by the GCS's usual
  check), and new job ids continue after the largest one;
* the KV store (function exports live there) comes back whole;
* actors: ALIVE and DEAD ones stay so (and their subscribers hear their state again, in
  case the previous GCS died between writing a change and publishing it). One whose creation was in progress either waits
  for its worker's report (the lease was granted: the worker was creating it) or, if
  the GCS was still waiting for a lease, has that request cancelled at the node and is
  placed again. Actor placement is held until every recovered node has checked in or
  been declared dead, so nothing is sent to a node that died while the GCS was down.

When a node registers again (:func:`reconcile_node`): an actor the GCS thinks runs there
but the node no longer hosts died meanwhile (it restarts or dies per its
``max_restarts``); a worker the node leased for an actor the GCS does not place there
(a lease granted to the previous GCS incarnation, its answer lost) is killed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from juno.comm import messages
from juno.gcs.actor_lifecycle import ALIVE, DEAD, PENDING, ActorRecord

logger = logging.getLogger(__name__)

NODES, JOBS, KV, ACTORS, ACTOR_SPECS, SUBSCRIBERS = "nodes", "jobs", "kv", "actors", "actor_specs", "actor_subscribers"

# ActorRecord attributes that make up an actor's state row.
_ACTOR_FIELDS = ("state", "address", "worker_id", "node_id", "node_manager", "num_restarts", "death_cause",
                 "last_death", "no_restart", "pending_request")


# ---------------------------------------------------------------------- write path
class GcsPersistence:
    """One call per table change; each is one storage write (sqlite: ~20 us)."""

    def __init__(self, storage):
        self.storage = storage

    def node(self, node: dict) -> None:
        self.storage.put(NODES, node["node_id"], {k: v for k, v in node.items() if k != "last_heartbeat"})

    def job(self, job: dict) -> None:
        self.storage.put(JOBS, job["job_id"], dict(job))

    def kv_put(self, namespace: str, key: bytes, value: bytes) -> None:
        self.storage.put(KV, (namespace, key), value)

    def kv_delete(self, namespace: str, key: bytes) -> None:
        self.storage.delete(KV, (namespace, key))

    def actor_registered(self, record: ActorRecord) -> None:
        """The spec row only: placement writes the state row right after (an actor without one
        comes back as waiting to be placed, which is what it is until then)."""
        self.storage.put(ACTOR_SPECS, record.actor_id, {"spec": record.spec, "info": record.info,
                                                         "registered_at": time.time()})

    def actor(self, record: ActorRecord) -> None:
        self.storage.put(ACTORS, record.actor_id, actor_row(record))

    def actor_creation_sent(self, record: ActorRecord) -> None:
        """A worker was leased and told to create the actor: remembered on the record as
        (restart number, worker), so a recovered record knows whether its worker is the one
        creating this incarnation or the previous, dead one."""
        record.creation_sent = (record.num_restarts, record.worker_id)
        self.actor(record)

    def actor_subscriber(self, record: ActorRecord, address: str) -> None:
        """A row per subscriber, so an actor with many callers costs one small write per caller."""
        self.storage.put(SUBSCRIBERS, (record.actor_id, address), True)


def actor_row(record: ActorRecord) -> dict:
    row = {name: getattr(record, name) for name in _ACTOR_FIELDS}
    row["pid"] = record.info.get("pid")
    row["creation_sent"] = getattr(record, "creation_sent", None)
    return row


def restore_actor(actor_id: bytes, spec_row: dict, row: dict | None, subscribers=()) -> ActorRecord:
    """An ActorRecord as it was written (a record whose state row is missing starts over as pending)."""
    record = ActorRecord(actor_id, spec_row["spec"], dict(spec_row["info"]))
    for name in _ACTOR_FIELDS:
        if row is not None and name in row:
            setattr(record, name, row[name])
    if row is not None and row.get("pid"):
        record.info["pid"] = row["pid"]
    record.creation_sent = row.get("creation_sent") if row is not None else None
    record.subscribers = set(subscribers)
    return record


# ---------------------------------------------------------------------- read path (pure)
@dataclass
class RecoveredTables:
    nodes: dict[str, dict] = field(default_factory=dict)
    jobs: dict[int, dict] = field(default_factory=dict)
    kv: dict[tuple[str, bytes], bytes] = field(default_factory=dict)
    actors: list[ActorRecord] = field(default_factory=list)  # in registration order

    def empty(self) -> bool:
        return not (self.nodes or self.jobs or self.kv or self.actors)


def load_tables(storage) -> RecoveredTables:
    specs = storage.load(ACTOR_SPECS)
    rows = storage.load(ACTORS)
    subscribers: dict[bytes, list[str]] = {}
    for actor_id, address in storage.load(SUBSCRIBERS):
        subscribers.setdefault(actor_id, []).append(address)
    order = sorted(specs, key=lambda aid: specs[aid].get("registered_at", 0.0))
    return RecoveredTables(nodes=storage.load(NODES), jobs=storage.load(JOBS), kv=storage.load(KV),
                           actors=[restore_actor(aid, specs[aid], rows.get(aid), subscribers.get(aid, ()))
                                   for aid in order])


def named_actors(records: list[ActorRecord]) -> dict[tuple[str, str], bytes]:
    """(namespace, name) -> actor id; a live actor wins over dead ones of the same name, and
    among dead ones the latest registered."""
    named: dict[tuple[str, str], bytes] = {}
    state: dict[bytes, str] = {}
    for record in records:
        name = record.info.get("name")
        if not name:
            continue
        key = (record.info.get("namespace") or "", name)
        current = named.get(key)
        if current is None or state[current] == DEAD or record.state != DEAD:
            named[key] = record.actor_id
        state[record.actor_id] = record.state
    return named


# What a recovered actor needs (plan_actor).
KEEP, AWAIT_CREATION, CANCEL_AND_PLACE, PLACE = "keep", "await_creation", "cancel_and_place", "place"


def plan_actor(record: ActorRecord) -> str:
    """KEEP (alive or dead), AWAIT_CREATION (a worker was creating it: its report or the node's
    re-registration decides), CANCEL_AND_PLACE (the lease request at a node is cancelled and the
    actor placed again) or PLACE (it was waiting to be placed)."""
    if record.state in (ALIVE, DEAD):
        return KEEP
    if record.pending_request is not None:
        return CANCEL_AND_PLACE
    if record.worker_id is not None and record.node_id is not None \
            and getattr(record, "creation_sent", None) == (record.num_restarts, record.worker_id):
        return AWAIT_CREATION
    return PLACE  # never placed, or restarting and waiting to be (its worker is the dead one)


def reconcile_node(node_id: str, hosted: dict[bytes, bytes], records,
                   held: frozenset | set = frozenset()) -> tuple[list[ActorRecord], list[bytes]]:
    """A node registered again, hosting ``hosted`` (actor id -> worker id of its actor leases).
    Returns the actors whose worker is gone (they died while the GCS was away) and the workers
    to kill (leased for an actor the GCS does not place there). Actors in ``held`` wait to be
    placed: whatever worker they had is not theirs any more."""
    gone: list[ActorRecord] = []
    wanted: dict[bytes, bytes] = {}
    for record in records:
        if record.node_id != node_id or record.state == DEAD or record.worker_id is None \
                or record.actor_id in held:
            continue
        if record.state != ALIVE and record.pending_request is not None:
            continue  # being placed anew: its old worker, if any, is not its worker any more
        if hosted.get(record.actor_id) == record.worker_id:
            wanted[record.actor_id] = record.worker_id
        else:
            gone.append(record)
    stray = [worker_id for actor_id, worker_id in hosted.items() if wanted.get(actor_id) != worker_id]
    return gone, stray


# ---------------------------------------------------------------------- the GCS side
class GcsRecovery:
    """Runs the read path in a new GcsServer, then settles with the nodes as they check in."""

    def __init__(self, gcs):
        self.gcs = gcs
        self.unconfirmed: set[str] = set()  # recovered live nodes that have not registered again
        self.held: list[bytes] = []  # actors whose placement waits for the nodes to check in
        self.recovered = False

    def recover(self) -> None:
        gcs = self.gcs
        gcs.node_death_listeners.append(self._on_node_dead)
        tables = load_tables(gcs.storage)
        if tables.empty():
            return
        self.recovered = True
        # Ids this incarnation hands out must not collide with the previous one's, whose
        # answers may still arrive: request ids and lease request ids restart above them.
        start = time.time_ns() // 1000
        gcs.continue_ids(start, max(tables.jobs, default=0) + 1)
        for node in tables.nodes.values():
            gcs.node_table.restore(node)
            if node.get("alive"):
                self.unconfirmed.add(node["node_id"])
        gcs.jobs.update(tables.jobs)
        gcs.kv.update(tables.kv)
        plans: dict[str, int] = {}
        for record in tables.actors:
            plan = plan_actor(record)
            plans[plan] = plans.get(plan, 0) + 1
            if plan == CANCEL_AND_PLACE:
                address, rid = record.pending_request
                gcs.notify(address, "cancel_lease_request", gcs.loop.address, rid)
                record.pending_request = None
            if plan in (CANCEL_AND_PLACE, PLACE):
                # Whatever worker it had is not creating it: its death must not count again.
                record.worker_id = record.node_id = record.node_manager = None
                self.held.append(record.actor_id)
        gcs.actors.restore(tables.actors, named_actors(tables.actors), start)
        logger.warning("recovered from %s: %d nodes (%d to confirm), %d jobs, %d kv entries, %d actors %s",
                       getattr(gcs.storage, "path", "storage"), len(tables.nodes), len(self.unconfirmed),
                       len(tables.jobs), len(tables.kv), len(tables.actors), plans)
        gcs.loop.call_soon(self._republish, [r for r in tables.actors if r.subscribers])
        if self.held:
            gcs.loop.call_soon(self._release_if_ready)

    def _republish(self, records: list[ActorRecord]) -> None:
        """Tell every subscriber its actors' state once more: the previous GCS may have died
        between writing a change and publishing it, leaving callers waiting on a stale state."""
        for record in records:
            if record.state == PENDING:
                continue
            info = record.public()
            for address in list(record.subscribers):
                self.gcs.loop.send(address, messages.actor_update(record.actor_id, info))

    # ------------------------------------------------------------------ holding placement
    def hold(self, record: ActorRecord) -> bool:
        """Whether the actor's placement must wait (recovered nodes not yet confirmed)."""
        if not self.unconfirmed:
            return False
        if record.actor_id not in self.held:
            self.held.append(record.actor_id)
        return True

    def _release_if_ready(self) -> None:
        if self.unconfirmed or not self.held:
            return
        held, self.held = self.held, []
        for actor_id in held:
            record = self.gcs.actors.actors.get(actor_id)
            if record is not None and record.state != DEAD and record.pending_request is None \
                    and record.state != ALIVE:
                self.gcs.actors.schedule(record)

    # ------------------------------------------------------------------ nodes checking in
    def node_registered(self, node_id: str, hosted: dict | None) -> None:
        """A node registered; ``hosted`` is what a node registering again reports (None: a new node)."""
        self.unconfirmed.discard(node_id)
        if hosted is not None:
            gcs = self.gcs
            node = gcs.nodes.get(node_id) or {}
            gone, stray = reconcile_node(node_id, hosted, list(gcs.actors.actors.values()), set(self.held))
            for worker_id in stray:
                logger.warning("node %s: killing worker %s, leased for an actor this GCS does not place there",
                               node_id[:12], worker_id.hex()[:12])
                gcs.notify(node["address"], "kill_worker", worker_id,
                           "leased for an actor the restarted GCS does not place here")
            for record in gone:
                logger.warning("actor %s: its worker on node %s died while the GCS was down",
                               record.actor_id.hex()[:12], node_id[:12])
                gcs.actors.on_worker_died(record.actor_id, record.worker_id,
                                          "its worker process died while the GCS was restarting")
        self._release_if_ready()

    def _on_node_dead(self, node: dict) -> None:
        self.gcs.persist.node(node)
        self.unconfirmed.discard(node["node_id"])
        self._release_if_ready()
