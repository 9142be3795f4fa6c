"""The GCS's actor table: the shell that carries out what runtime/gcs/actor_lifecycle.py decides.

ActorLifecycle holds the records and their state machine; this class feeds it the GCS's
events (requests from callers, answers and reports from node managers and workers), asks the
other GCS tables where to place an actor (placement groups, recovery, the cluster policy),
and does the I/O each returned action names: requests, messages, storage writes, task events.
"""
from __future__ import annotations

import logging
from typing import Any

from juno.comm import messages
from juno.gcs.actor_lifecycle import (  # noqa: F401 - the states and the record are imported from here too
    ALIVE, DEAD, OUT_OF_SCOPE, PENDING, RESTARTING, ActorLifecycle, ActorRecord, Answer, AskToExit, CancelLease,
    CreationReported, KillWorker, Persist, Place, Publish, Registered, RequestLease, SendCreation, Warn)
from juno.owner import serialization

logger = logging.getLogger(__name__)


class ActorManager:
    def __init__(self, gcs):
        self.gcs = gcs
        self.lifecycle = ActorLifecycle()
        self.actors = self.lifecycle.actors  # actor id -> ActorRecord
        self._handlers = {
            Registered: self._registered, Place: self._place, RequestLease: self._request_lease,
            CancelLease: self._cancel_lease, SendCreation: self._send_creation,
            CreationReported: self._creation_reported, KillWorker: self._kill_worker, AskToExit: self._ask_to_exit,
            Persist: self._persist, Publish: self._publish, Warn: self._warn, Answer: self._answer,
        }

    def _apply(self, actions: list) -> None:
        for action in actions:
            self._handlers[type(action)](action)

    def restore(self, records: list[ActorRecord], named: dict[tuple[str, str], bytes], next_rid: int) -> None:
        """A restarted GCS's recovered actors (runtime/gcs/recovery.py)."""
        self.lifecycle.restore(records, named, next_rid)

    # ------------------------------------------------------------------ events from the GCS server
    def register(self, actor_id: bytes, spec: tuple, info: dict) -> tuple:
        answer, actions = self.lifecycle.register(actor_id, spec, info)
        self._apply(actions)
        return answer

    def get_named(self, name: str, namespace: str) -> tuple | None:
        return self.lifecycle.get_named(name, namespace)

    def list_named(self, namespace: str | None) -> list[dict]:
        return self.lifecycle.list_named(namespace)

    def list(self) -> list[dict]:
        return [r.public() for r in self.actors.values()]

    def subscribe(self, actor_id: bytes, address: str) -> dict | None:
        record, added = self.lifecycle.subscribe(actor_id, address)
        if record is None:
            return None
        if added:
            self.gcs.persist.actor_subscriber(record, address)
        return record.public()

    def on_created(self, actor_id: bytes, worker_id: bytes, address: str, error_blob: bytes | None,
                   pid: int | None = None) -> None:
        error = None if error_blob is None else str(serialization.deserialize_bytes(error_blob)[0])
        self._apply(self.lifecycle.on_created(actor_id, worker_id, address, error, pid))

    def on_worker_died(self, actor_id: bytes, worker_id: bytes, reason: str, kind: str | None = None) -> None:
        """The actor's process died; ``kind`` is "oom" when the node's memory monitor killed it."""
        self._apply(self.lifecycle.on_worker_died(actor_id, worker_id, reason, kind))

    def on_node_died(self, node: dict) -> None:
        self._apply(self.lifecycle.on_node_died(node))

    def on_exiting(self, actor_id: bytes, reason: str | None = None) -> None:
        self._apply(self.lifecycle.on_exiting(actor_id, reason))

    def on_out_of_scope(self, actor_id: bytes) -> None:
        self._apply(self.lifecycle.on_out_of_scope(actor_id))

    def kill(self, actor_id: bytes, no_restart: bool, reason: str, done=None, cause: str | None = None) -> None:
        """Kill the actor's process; ``done()`` runs once its death (or restart) is published."""
        self._apply(self.lifecycle.kill(actor_id, no_restart, reason, done, cause))

    def on_job_finished(self, job_id: int) -> None:
        self._apply(self.lifecycle.on_job_finished(job_id))

    def mark_dead(self, record: ActorRecord, cause: str) -> None:
        """Another table decided the actor can never run (its placement group was removed)."""
        self._apply(self.lifecycle.mark_dead(record, cause))

    def schedule(self, record: ActorRecord) -> None:
        """Place the actor now: what held it (a placement group, GCS recovery, no node) is resolved."""
        self._place(Place(record))

    def warn(self, actor_id: bytes, text: str) -> None:
        record = self.actors.get(actor_id)
        if record is not None:
            self._apply(self.lifecycle.warn(record, text))

    # ------------------------------------------------------------------ actions
    def _registered(self, action: Registered) -> None:
        self.gcs.persist.actor_registered(action.record)
        self.gcs.events.actor_registered(action.record)

    def _place(self, action: Place) -> None:
        """Ask a node for the actor's worker: the node the placement policy picks, or the one a node
        manager spilled it to."""
        record, gcs = action.record, self.gcs
        if gcs.placement_groups.hold_actor(record):
            return  # it waits for its placement group to be created (runtime/gcs/placement_groups.py)
        if gcs.recovery.hold(record):
            return  # the GCS restarted: placement waits until the nodes checked in (runtime/gcs/recovery.py)
        node = action.node
        if node is None:
            node = gcs.pick_node(record.info.get("resources") or {}, record.info.get("strategy"),
                                 record.info.get("owner_node_id"))
        if node is None:
            self._apply(self.lifecycle.warn(record, f"Actor {record.info.get('class_name')}: no node is alive to "
                                                    "place the actor on; it will be created when a node joins"))
            gcs.pending_actors.append(record.actor_id)
            return
        self._apply(self.lifecycle.request_lease(record, node, action.hops))

    def _request_lease(self, action: RequestLease) -> None:
        record, node, gcs = action.record, action.node, self.gcs
        gcs.call(node["address"], "request_lease", gcs.loop.address, action.rid, record.info.get("resources") or {},
                 record.info.get("runtime_env"), record.info.get("strategy"), record.info.get("class_name"),
                 record.actor_id, action.can_restart, action.hops, None,
                 callback=lambda ok, value: self._on_lease(record, node, ok, value, action.hops))

    def _on_lease(self, record: ActorRecord, node: dict, ok: bool, value: Any, hops: int = 1) -> None:
        self._apply(self.lifecycle.on_lease_reply(record, node, ok, value, hops))

    def _cancel_lease(self, action: CancelLease) -> None:
        self.gcs.notify(action.node_manager, "cancel_lease_request", self.gcs.loop.address, action.rid)

    def _send_creation(self, action: SendCreation) -> None:
        record = action.record
        self.gcs.persist.actor_creation_sent(record)
        self.gcs.events.actor_creation_sent(record)
        self.gcs.loop.send(action.address, ("actor_create", record.spec, action.gpu_ids, action.resources,
                                            record.num_restarts, record.info.get("options") or {}))

    def _creation_reported(self, action: CreationReported) -> None:
        self.gcs.events.actor_created(action.record, action.error)

    def _kill_worker(self, action: KillWorker) -> None:
        self.gcs.notify(action.node_manager, "kill_worker", action.worker_id, action.reason)

    def _ask_to_exit(self, action: AskToExit) -> None:
        gcs, actor_id = self.gcs, action.record.actor_id
        gcs.loop.send(action.address, ("terminate_actor", action.cause))
        gcs.loop.call_later(gcs.config.actor_graceful_exit_timeout_s,
                            lambda: self._apply(self.lifecycle.exit_deadline_passed(actor_id, action.worker_id)))

    def _persist(self, action: Persist) -> None:
        self.gcs.persist.actor(action.record)

    def _publish(self, action: Publish) -> None:
        record = action.record
        self.gcs.persist.actor(record)  # every state change is published, so written through here
        self.gcs.events.actor_changed(record)
        info = record.public()
        for address in list(record.subscribers):
            self.gcs.loop.send(address, messages.actor_update(record.actor_id, info))

    def _warn(self, action: Warn) -> None:
        self.gcs.loop.send(action.owner, messages.warning(action.text))

    def _answer(self, action: Answer) -> None:
        for done in action.waiters:
            done()
