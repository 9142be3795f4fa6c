"""The GCS's actor table: placement, the life cycle, restarts and names.

States follow Ray: PENDING_CREATION -> ALIVE -> (RESTARTING -> ALIVE)* -> DEAD.
Every change is published to the actor's subscribers (callers holding a handle).
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

from juno.comm import messages
from juno.owner import serialization
from juno.owner.task_spec import TaskSpec

logger = logging.getLogger(__name__)

PENDING, ALIVE, RESTARTING, DEAD = "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"
OUT_OF_SCOPE = "The actor is dead because all references to the actor were removed (it went out of scope)."


class ActorRecord:
    def __init__(self, actor_id: bytes, spec: tuple, info: dict):
        self.actor_id = actor_id
        self.spec = TaskSpec(spec)  # a TaskSpec again if it was persisted as a plain tuple
        self.info = info  # name, namespace, detached, max_restarts, resources, runtime_env, owner, job_id, class_name, options
        self.state = PENDING
        self.address: str | None = None
        self.worker_id: bytes | None = None
        self.node_id: str | None = None
        self.node_manager: str | None = None
        self.num_restarts = 0
        self.death_cause = ""
        self.last_death = ""  # why the previous incarnation died (while restarting or after)
        self.no_restart = False
        self.subscribers: set[str] = set()
        self.kill_waiters: list = []  # answered once the killed process is gone and that is published
        self.pending_request: tuple[str, int] | None = None

    def public(self) -> dict:
        return {
            "actor_id": self.actor_id, "state": self.state, "address": self.address,
            "num_restarts": self.num_restarts, "death_cause": self.death_cause, "last_death": self.last_death,
            "name": self.info.get("name"), "namespace": self.info.get("namespace"),
            "class_name": self.info.get("class_name"), "node_id": self.node_id,
            "job_id": self.info.get("job_id"), "detached": self.info.get("detached", False),
            "pid": self.info.get("pid"), "meta": self.info.get("meta"),
        }


class ActorManager:
    def __init__(self, gcs):
        self.gcs = gcs
        self.actors: dict[bytes, ActorRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self._rids = itertools.count(1)

    # ------------------------------------------------------------------ registration
    def register(self, actor_id: bytes, spec: tuple, info: dict) -> tuple:
        if actor_id in self.actors:  # the caller sent it again across a GCS restart (runtime/gcs/client.py)
            return ("created", actor_id, self.actors[actor_id].info.get("meta"))
        name, namespace = info.get("name"), info.get("namespace") or ""
        if name:
            existing = self.named.get((namespace, name))
            if existing is not None and self.actors[existing].state != DEAD:
                if info.get("get_if_exists"):
                    return ("existing", existing, self.actors[existing].info.get("meta"))
                raise ValueError(
                    f"An actor named {name!r} already exists in namespace {namespace!r}. Use "
                    "get_if_exists=True to reuse it, juno.get_actor(name) to get a handle, or pick "
                    "another name.")
        record = ActorRecord(actor_id, spec, info)
        self.actors[actor_id] = record
        self.gcs.persist.actor_registered(record)
        self.gcs.events.actor_registered(record)
        if name:
            self.named[(namespace, name)] = actor_id
        self._schedule(record)
        return ("created", actor_id, info.get("meta"))

    def get_named(self, name: str, namespace: str) -> tuple | None:
        actor_id = self.named.get((namespace, name))
        if actor_id is None:
            return None
        record = self.actors[actor_id]
        if record.state == DEAD:
            return None
        return (actor_id, record.info.get("meta"))

    def list_named(self, namespace: str | None) -> list[dict]:
        out = []
        for (ns, name), actor_id in self.named.items():
            if self.actors[actor_id].state == DEAD:
                continue
            if namespace is None or ns == namespace:
                out.append({"name": name, "namespace": ns})
        return out

    def subscribe(self, actor_id: bytes, address: str) -> dict | None:
        record = self.actors.get(actor_id)
        if record is None:
            return None
        if address not in record.subscribers:
            record.subscribers.add(address)
            self.gcs.persist.actor_subscriber(record, address)
        return record.public()

    # ------------------------------------------------------------------ placement
    def _schedule(self, record: ActorRecord, node: dict | None = None, hops: int = 1) -> None:
        """Ask a node for the actor's worker: the node the placement policy picks, or ``node``
        (a node manager's spillback). ``hops`` > 0 tells the node to queue it rather than spill."""
        if self.gcs.placement_groups.hold_actor(record):
            return  # it waits for its placement group to be created (runtime/gcs/placement_groups.py)
        if self.gcs.recovery.hold(record):
            return  # the GCS restarted: placement waits until the nodes checked in (runtime/gcs/recovery.py)
        if node is None:
            node = self.gcs.pick_node(record.info.get("resources") or {}, record.info.get("strategy"),
                                      record.info.get("owner_node_id"))
        if node is None:
            self._publish_warning(record, "no node is alive to place the actor on; it will be created "
                                          "when a node joins")
            self.gcs.pending_actors.append(record.actor_id)
            return
        rid = next(self._rids)
        record.pending_request = (node["address"], rid)
        gcs = self.gcs
        gcs.persist.actor(record)
        max_restarts = record.info.get("max_restarts", 0)
        can_restart = max_restarts == -1 or record.num_restarts < max_restarts  # memory monitor: kill first
        gcs.call(node["address"], "request_lease", gcs.loop.address, rid, record.info.get("resources") or {},
                 record.info.get("runtime_env"), record.info.get("strategy"), record.info.get("class_name"),
                 record.actor_id, can_restart, hops, None,
                 callback=lambda ok, value: self._on_lease(record, node, ok, value, hops))

    def _on_lease(self, record: ActorRecord, node: dict, ok: bool, value: Any, hops: int = 1) -> None:
        record.pending_request = None
        if ok and value is not None and value[0] == "spillback":  # that node sent it on to another
            if record.state != DEAD:
                self._schedule(record, {"node_id": value[1], "address": value[2]}, hops + 1)
            return
        if record.state == DEAD:
            if ok and value is not None:
                self.gcs.notify(node["address"], "kill_worker", value[2], "the actor was killed before it started")
            return
        if not ok:
            self._mark_dead(record, f"the actor could not be scheduled: {value}")
            return
        if value is None:
            return
        lease_id, address, worker_id, gpu_ids, resources, node_manager = value
        record.worker_id = worker_id
        record.node_id = node["node_id"]
        record.node_manager = node_manager
        record.pending_address = address
        self.gcs.persist.actor_creation_sent(record)
        self.gcs.events.actor_creation_sent(record)
        self.gcs.loop.send(address, ("actor_create", record.spec, gpu_ids, resources, record.num_restarts,
                                     record.info.get("options") or {}))

    def on_created(self, actor_id: bytes, worker_id: bytes, address: str, error_blob: bytes | None,
                   pid: int | None = None) -> None:
        record = self.actors.get(actor_id)
        if record is None or record.worker_id != worker_id:
            return
        if pid:
            record.info["pid"] = pid
        if error_blob is not None:
            error, _ = serialization.deserialize_bytes(error_blob)
            self.gcs.events.actor_created(record, str(error))
            record.no_restart = True
            self._mark_dead(record, f"its constructor raised an exception:\n{error}")
            self.gcs.notify(record.node_manager, "kill_worker", worker_id, "the actor's constructor failed")
            return
        if record.state == DEAD:
            self.gcs.notify(record.node_manager, "kill_worker", worker_id, "the actor was killed")
            return
        record.state = ALIVE
        record.address = address
        self.gcs.events.actor_created(record, None)
        self._publish(record)

    # ------------------------------------------------------------------ death and restarts
    def on_worker_died(self, actor_id: bytes, worker_id: bytes, reason: str, kind: str | None = None) -> None:
        """The actor's process died; ``kind`` is "oom" when the node's memory monitor killed it."""
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD or record.worker_id != worker_id:
            return
        record.address = None
        max_restarts = record.info.get("max_restarts", 0)
        restarts = not record.no_restart and (max_restarts == -1 or record.num_restarts < max_restarts)
        if kind == "oom":
            self.warn(actor_id, f"Actor {record.info.get('class_name')} was killed due to memory use: {reason}. " + (
                f"Restarting it (restart {record.num_restarts + 1} of "
                f"{'infinite' if max_restarts == -1 else max_restarts})." if restarts
                else "It will not restart (max_restarts exhausted)."))
            reason = f"it was killed due to memory use: {reason}"
        record.last_death = reason
        if record.no_restart:
            self._mark_dead(record, record.death_cause or reason)
        elif restarts:
            record.num_restarts += 1
            record.state = RESTARTING
            self._publish(record)
            self._schedule(record)
        else:
            suffix = f" (it was restarted {record.num_restarts} times, max_restarts={max_restarts})" \
                if max_restarts else ""
            self._mark_dead(record, f"{reason}{suffix}")
        waiters, record.kill_waiters = record.kill_waiters, []
        for done in waiters:
            done()

    def on_node_died(self, node: dict) -> None:
        """A node died: its actors restart elsewhere (max_restarts) or die, saying why; actors
        whose placement was waiting on that node are placed again."""
        node_id, address = node["node_id"], node["address"]
        reason = f"the node it ran on ({node_id[:12]}) died: {node.get('death_reason') or 'unknown cause'}"
        for record in list(self.actors.values()):
            if record.state == DEAD:
                continue
            if record.pending_request is not None and record.pending_request[0] == address:
                record.pending_request = None  # the lease request died with the node
                self._schedule(record)
            elif record.node_id == node_id and record.worker_id is not None:
                self.on_worker_died(record.actor_id, record.worker_id, reason, "node_died")
                if record.worker_id is not None and record.node_id == node_id:
                    record.worker_id = None  # a late report of that worker's death must not count again

    def on_exiting(self, actor_id: bytes, reason: str | None = None) -> None:
        """The actor is about to exit on purpose (exit_actor(), __ray_terminate__): no restart."""
        record = self.actors.get(actor_id)
        if record is not None:
            record.no_restart = True
            if not record.death_cause:  # going out of scope came first: that is why it exits
                record.death_cause = reason or "The actor exited intentionally by calling exit_actor()."
            self.gcs.persist.actor(record)

    def on_out_of_scope(self, actor_id: bytes) -> None:
        """Its owner reports that no handle to it is left anywhere. As in Ray it stops for good:
        a live actor is asked to exit gracefully (calls that reached it run first, its exit
        handlers run) and is killed if it has not exited within ``actor_graceful_exit_timeout_s``;
        one not created yet is killed. Detached actors are never counted, so never reported."""
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD or record.info.get("detached"):
            return
        if record.state != ALIVE or not record.address:
            self.kill(actor_id, True, "all references to the actor were removed", cause=OUT_OF_SCOPE)
            return
        record.no_restart = True
        record.death_cause = OUT_OF_SCOPE
        self.gcs.persist.actor(record)
        self.gcs.loop.send(record.address, ("terminate_actor", OUT_OF_SCOPE))
        self.gcs.loop.call_later(self.gcs.config.actor_graceful_exit_timeout_s, self._kill_if_still_there,
                                 record, record.worker_id)

    def _kill_if_still_there(self, record: ActorRecord, worker_id: bytes) -> None:
        if record.state != DEAD and record.worker_id == worker_id and record.node_manager:
            self.gcs.notify(record.node_manager, "kill_worker", worker_id,
                            "the actor did not exit within actor_graceful_exit_timeout_s of being asked to")

    def kill(self, actor_id: bytes, no_restart: bool, reason: str, done=None, cause: str | None = None) -> None:
        """Kill the actor's process; ``done()`` runs once its death (or restart) is published,
        so a caller that waits for it never reaches the killed incarnation again. ``cause``: the
        death cause to show, when it is not "The actor was killed: {reason}"."""
        done = done or (lambda: None)
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD:
            done()
            return
        if no_restart:
            record.no_restart = True
            record.death_cause = cause or f"The actor was killed: {reason}."
            self.gcs.persist.actor(record)
        if record.pending_request is not None:
            address, rid = record.pending_request
            self.gcs.notify(address, "cancel_lease_request", self.gcs.loop.address, rid)
            record.pending_request = None
            self._mark_dead(record, record.death_cause or f"The actor was killed: {reason}.")
            done()
            return
        if record.node_manager and record.worker_id:
            record.kill_waiters.append(done)
            self.gcs.notify(record.node_manager, "kill_worker", record.worker_id, f"The actor was killed: {reason}.")
            return
        if no_restart:
            self._mark_dead(record, record.death_cause)
        done()

    def on_job_finished(self, job_id: int) -> None:
        for record in list(self.actors.values()):
            if record.info.get("job_id") == job_id and not record.info.get("detached") and record.state != DEAD:
                self.kill(record.actor_id, True, "its job (driver) finished")

    def _mark_dead(self, record: ActorRecord, cause: str) -> None:
        record.state = DEAD
        record.death_cause = cause
        record.address = None
        self._publish(record)

    # ------------------------------------------------------------------ publishing
    def _publish(self, record: ActorRecord) -> None:
        self.gcs.persist.actor(record)  # every state change is published, so written through here
        self.gcs.events.actor_changed(record)
        info = record.public()
        for address in list(record.subscribers):
            self.gcs.loop.send(address, messages.actor_update(record.actor_id, info))

    def _publish_warning(self, record: ActorRecord, text: str) -> None:
        owner = record.info.get("owner")
        if owner:
            self.gcs.loop.send(owner, messages.warning(f"Actor {record.info.get('class_name')}: {text}"))

    def warn(self, actor_id: bytes, text: str) -> None:
        record = self.actors.get(actor_id)
        if record is not None and record.info.get("owner"):
            self.gcs.loop.send(record.info["owner"], messages.warning(text))

    def list(self) -> list[dict]:
        return [r.public() for r in self.actors.values()]
