"""The actor table's decisions, apart from the GCS's sockets (runtime/gcs/actor_manager.py is the shell).

States follow Ray: PENDING_CREATION -> ALIVE -> (RESTARTING -> ALIVE)* -> DEAD. Each event
(a registration, a lease answer, a creation report, a worker's or node's death, a kill, the
owner dropping every handle, a job's end) updates the records and returns the actions the
shell carries out, in order: place the actor, send a lease request, tell a worker to create
it, kill a worker, publish or persist a state, answer callers. No sockets, threads or clocks,
so every path is tested directly (tests/unit/test_actor_lifecycle.py).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from juno.owner.task_spec import TaskSpec

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

    def can_restart(self) -> bool:
        """Whether the restart budget (``max_restarts``, -1: no limit) allows one more restart."""
        max_restarts = self.info.get("max_restarts", 0)
        return max_restarts == -1 or self.num_restarts < max_restarts

    def public(self) -> dict:
        return {
            "actor_id": self.actor_id, "state": self.state, "address": self.address,
            "num_restarts": self.num_restarts, "death_cause": self.death_cause, "last_death": self.last_death,
            "name": self.info.get("name"), "namespace": self.info.get("namespace"),
            "class_name": self.info.get("class_name"), "node_id": self.node_id,
            "job_id": self.info.get("job_id"), "detached": self.info.get("detached", False),
            "pid": self.info.get("pid"), "meta": self.info.get("meta"),
        }


# ---------------------------------------------------------------------- actions (the shell carries them out)
@dataclass(frozen=True)
class Registered:
    """Write the new actor's spec row and log its creation task."""
    record: ActorRecord


@dataclass(frozen=True)
class Place:
    """Find the actor a node (``node``: the one a node manager spilled it to) unless something holds it,
    then ask ``ActorLifecycle.request_lease``. ``hops`` > 0 tells the node to queue it rather than spill."""
    record: ActorRecord
    node: dict | None = None
    hops: int = 1


@dataclass(frozen=True)
class RequestLease:
    """Ask ``node`` for a worker for the actor; its answer goes to ``ActorLifecycle.on_lease_reply``."""
    record: ActorRecord
    node: dict
    rid: int
    can_restart: bool  # the node's memory monitor kills restartable actors first
    hops: int


@dataclass(frozen=True)
class CancelLease:
    node_manager: str
    rid: int


@dataclass(frozen=True)
class SendCreation:
    """Tell the leased worker at ``address`` to create the actor (and record that it was told)."""
    record: ActorRecord
    address: str
    gpu_ids: list
    resources: dict


@dataclass(frozen=True)
class CreationReported:
    """Log the end of the creation task: ``error`` is the constructor's exception, or None."""
    record: ActorRecord
    error: str | None


@dataclass(frozen=True)
class KillWorker:
    node_manager: str
    worker_id: bytes
    reason: str


@dataclass(frozen=True)
class AskToExit:
    """Ask the live actor to exit gracefully; after the grace period call
    ``ActorLifecycle.exit_deadline_passed(actor_id, worker_id)``."""
    record: ActorRecord
    address: str
    worker_id: bytes | None
    cause: str


@dataclass(frozen=True)
class Persist:
    """Write the actor's state row (no state change to publish)."""
    record: ActorRecord


@dataclass(frozen=True)
class Publish:
    """A new state: write it, log it and tell every subscriber."""
    record: ActorRecord


@dataclass(frozen=True)
class Warn:
    owner: str
    text: str


@dataclass(frozen=True)
class Answer:
    """Answer callers waiting on the actor's death (``kill`` waiters)."""
    waiters: tuple


# ---------------------------------------------------------------------- the decisions
class ActorLifecycle:
    def __init__(self):
        self.actors: dict[bytes, ActorRecord] = {}
        self.named: dict[tuple[str, str], bytes] = {}
        self._rids = itertools.count(1)

    def restore(self, records: list[ActorRecord], named: dict[tuple[str, str], bytes], next_rid: int) -> None:
        """A restarted GCS's recovered table (runtime/gcs/recovery.py); lease request ids continue at
        ``next_rid``, past the previous incarnation's, whose answers may still arrive."""
        for record in records:
            self.actors[record.actor_id] = record
        self.named.update(named)
        self._rids = itertools.count(next_rid)

    # ------------------------------------------------------------------ registration and queries
    def register(self, actor_id: bytes, spec: tuple, info: dict) -> tuple[tuple, list]:
        """The answer to the caller and the actions; a live actor's name in the same namespace is a
        ValueError unless ``get_if_exists``."""
        if actor_id in self.actors:  # the caller sent it again across a GCS restart (runtime/gcs/client.py)
            return ("created", actor_id, self.actors[actor_id].info.get("meta")), []
        name, namespace = info.get("name"), info.get("namespace") or ""
        if name:
            existing = self.named.get((namespace, name))
            if existing is not None and self.actors[existing].state != DEAD:
                if info.get("get_if_exists"):
                    return ("existing", existing, self.actors[existing].info.get("meta")), []
                raise ValueError(
                    f"An actor named {name!r} already exists in namespace {namespace!r}. Use "
                    "get_if_exists=True to reuse it, juno.get_actor(name) to get a handle, or pick "
                    "another name.")
        record = ActorRecord(actor_id, spec, info)
        self.actors[actor_id] = record
        if name:
            self.named[(namespace, name)] = actor_id
        return ("created", actor_id, info.get("meta")), [Registered(record), Place(record)]

    def get_named(self, name: str, namespace: str) -> tuple | None:
        actor_id = self.named.get((namespace, name))
        if actor_id is None or self.actors[actor_id].state == DEAD:
            return None
        return (actor_id, self.actors[actor_id].info.get("meta"))

    def list_named(self, namespace: str | None) -> list[dict]:
        return [{"name": name, "namespace": ns} for (ns, name), actor_id in self.named.items()
                if self.actors[actor_id].state != DEAD and (namespace is None or ns == namespace)]

    def subscribe(self, actor_id: bytes, address: str) -> tuple[ActorRecord | None, bool]:
        """The record (None: unknown actor) and whether ``address`` is a new subscriber."""
        record = self.actors.get(actor_id)
        if record is None or address in record.subscribers:
            return record, False
        record.subscribers.add(address)
        return record, True

    # ------------------------------------------------------------------ placement
    def request_lease(self, record: ActorRecord, node: dict, hops: int) -> list:
        """The shell found ``node`` for a Place action: ask it for a worker."""
        rid = next(self._rids)
        record.pending_request = (node["address"], rid)
        return [Persist(record), RequestLease(record, node, rid, record.can_restart(), hops)]

    def on_lease_reply(self, record: ActorRecord, node: dict, ok: bool, value: Any, hops: int) -> list:
        """``value``: a lease (lease id, worker address, worker id, gpu ids, resources, node manager),
        ("spillback", node id, address), or None (cancelled); ``ok`` False: the node failed it."""
        record.pending_request = None
        if ok and value is not None and value[0] == "spillback":  # that node sent it on to another
            if record.state == DEAD:
                return []
            return [Place(record, {"node_id": value[1], "address": value[2]}, hops + 1)]
        if record.state == DEAD:
            if ok and value is not None:
                return [KillWorker(node["address"], value[2], "the actor was killed before it started")]
            return []
        if not ok:
            return self.mark_dead(record, f"the actor could not be scheduled: {value}")
        if value is None:
            return []
        _lease_id, address, worker_id, gpu_ids, resources, node_manager = value
        record.worker_id = worker_id
        record.node_id = node["node_id"]
        record.node_manager = node_manager
        return [SendCreation(record, address, gpu_ids, resources)]

    def on_created(self, actor_id: bytes, worker_id: bytes, address: str, error: str | None,
                   pid: int | None = None) -> list:
        """The worker ran the constructor: ``error`` is what it raised, or None."""
        record = self.actors.get(actor_id)
        if record is None or record.worker_id != worker_id:
            return []
        if pid:
            record.info["pid"] = pid
        if error is not None:
            record.no_restart = True
            return [CreationReported(record, error),
                    *self.mark_dead(record, f"its constructor raised an exception:\n{error}"),
                    KillWorker(record.node_manager, worker_id, "the actor's constructor failed")]
        if record.state == DEAD:
            return [KillWorker(record.node_manager, worker_id, "the actor was killed")]
        record.state = ALIVE
        record.address = address
        return [CreationReported(record, None), Publish(record)]

    # ------------------------------------------------------------------ death and restarts
    def on_worker_died(self, actor_id: bytes, worker_id: bytes, reason: str, kind: str | None = None) -> list:
        """The actor's process died: it restarts while its budget lasts, else it is DEAD with the
        cause. ``kind`` is "oom" when the node's memory monitor killed it."""
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD or record.worker_id != worker_id:
            return []
        actions: list = []
        record.address = None
        max_restarts = record.info.get("max_restarts", 0)
        restarts = not record.no_restart and record.can_restart()
        if kind == "oom":
            actions += self.warn(record, f"Actor {record.info.get('class_name')} was killed due to memory use: "
                                         f"{reason}. " + (
                f"Restarting it (restart {record.num_restarts + 1} of "
                f"{'infinite' if max_restarts == -1 else max_restarts})." if restarts
                else "It will not restart (max_restarts exhausted)."))
            reason = f"it was killed due to memory use: {reason}"
        record.last_death = reason
        if record.no_restart:
            actions += self.mark_dead(record, record.death_cause or reason)
        elif restarts:
            record.num_restarts += 1
            record.state = RESTARTING
            actions += [Publish(record), Place(record)]
        else:
            suffix = f" (it was restarted {record.num_restarts} times, max_restarts={max_restarts})" \
                if max_restarts else ""
            actions += self.mark_dead(record, f"{reason}{suffix}")
        waiters, record.kill_waiters = record.kill_waiters, []
        if waiters:
            actions.append(Answer(tuple(waiters)))
        return actions

    def on_node_died(self, node: dict) -> list:
        """A node died: its actors restart elsewhere (max_restarts) or die, with a cause naming the
        node; actors whose lease request was waiting on that node are placed again."""
        node_id, address = node["node_id"], node["address"]
        reason = f"the node it ran on ({node_id[:12]}) died: {node.get('death_reason') or 'unknown cause'}"
        actions: list = []
        for record in list(self.actors.values()):
            if record.state == DEAD:
                continue
            if record.pending_request is not None and record.pending_request[0] == address:
                record.pending_request = None  # the lease request died with the node
                actions.append(Place(record))
            elif record.node_id == node_id and record.worker_id is not None:
                actions += self.on_worker_died(record.actor_id, record.worker_id, reason, "node_died")
                record.worker_id = None  # a late report of that worker's death must not count again
        return actions

    def on_exiting(self, actor_id: bytes, reason: str | None = None) -> list:
        """The actor is about to exit on purpose (exit_actor(), __ray_terminate__): no restart."""
        record = self.actors.get(actor_id)
        if record is None:
            return []
        record.no_restart = True
        if not record.death_cause:  # going out of scope came first: that is why it exits
            record.death_cause = reason or "The actor exited intentionally by calling exit_actor()."
        return [Persist(record)]

    def on_out_of_scope(self, actor_id: bytes) -> list:
        """Its owner reports that no handle to it is left anywhere. As in Ray it stops for good: a
        live actor is asked to exit gracefully (calls that reached it run first, its exit handlers
        run) and killed if still there after the grace period; one not created yet is killed.
        Detached actors are never counted, so never collected."""
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD or record.info.get("detached"):
            return []
        if record.state != ALIVE or not record.address:
            return self.kill(actor_id, True, "all references to the actor were removed", cause=OUT_OF_SCOPE)
        record.no_restart = True
        record.death_cause = OUT_OF_SCOPE
        return [Persist(record), AskToExit(record, record.address, record.worker_id, OUT_OF_SCOPE)]

    def exit_deadline_passed(self, actor_id: bytes, worker_id: bytes | None) -> list:
        """The grace period of an AskToExit is over: kill that worker if the actor is still on it."""
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD or record.worker_id != worker_id or not record.node_manager:
            return []
        return [KillWorker(record.node_manager, worker_id,
                           "the actor did not exit within actor_graceful_exit_timeout_s of being asked to")]

    def kill(self, actor_id: bytes, no_restart: bool, reason: str, waiter: Any = None,
             cause: str | None = None) -> list:
        """Kill the actor's process; ``waiter`` is answered (Answer) once its death (or restart) is
        published, so a caller that waits never reaches the killed incarnation again. ``cause``:
        the death cause to show, when it is not "The actor was killed: {reason}"."""
        done = (waiter,) if waiter is not None else ()
        record = self.actors.get(actor_id)
        if record is None or record.state == DEAD:
            return [Answer(done)] if done else []
        actions: list = []
        if no_restart:
            record.no_restart = True
            record.death_cause = cause or f"The actor was killed: {reason}."
            actions.append(Persist(record))
        if record.pending_request is not None:
            address, rid = record.pending_request
            record.pending_request = None
            actions.append(CancelLease(address, rid))
            actions += self.mark_dead(record, record.death_cause or f"The actor was killed: {reason}.")
        elif record.node_manager and record.worker_id:
            record.kill_waiters.extend(done)
            actions.append(KillWorker(record.node_manager, record.worker_id, f"The actor was killed: {reason}."))
            return actions
        elif no_restart:
            actions += self.mark_dead(record, record.death_cause)
        if done:
            actions.append(Answer(done))
        return actions

    def on_job_finished(self, job_id: int) -> list:
        """The job's driver finished: its actors die, except detached ones."""
        actions: list = []
        for record in list(self.actors.values()):
            if record.info.get("job_id") == job_id and not record.info.get("detached") and record.state != DEAD:
                actions += self.kill(record.actor_id, True, "its job (driver) finished")
        return actions

    def mark_dead(self, record: ActorRecord, cause: str) -> list:
        record.state = DEAD
        record.death_cause = cause
        record.address = None
        return [Publish(record)]

    def warn(self, record: ActorRecord, text: str) -> list:
        owner = record.info.get("owner")
        return [Warn(owner, text)] if owner else []
