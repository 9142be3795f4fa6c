"""The Global Control Service: the cluster's tables, one process per cluster.

Nodes (via NodeTable: heartbeats, death, the cluster view), jobs, actors (via
ActorManager), function exports and a small KV store.
"""
from __future__ import annotations

import itertools
import logging
import os
import signal
import time
from typing import Any

from juno.config import Config
from juno.ids import job_hex
from juno.gcs.actor_manager import ActorManager
from juno.gcs.events import GcsEvents
from juno.gcs.failure_relay import FailureRelay
from juno.gcs.library_runs import LibraryRunTable
from juno.gcs.node_table import NodeTable
from juno.gcs.placement_groups import PlacementGroupManager
from juno.gcs.recovery import GcsPersistence, GcsRecovery
from juno.gcs.storage import open_storage
from juno.node.cluster_policy import FAIL, ClusterPolicy
from juno.cluster.processes import pid_alive, watch_lifeline
from juno.comm.rpc import DEFER, Reply, RpcNode
from juno.comm.transport import EventLoop

logger = logging.getLogger(__name__)
GOODBYE_DRAIN_S = 0.05  # after SIGTERM: how long the GCS still answers the goodbyes of nodes stopping with it


class GcsServer(RpcNode):
    def __init__(self, *, bind: str, session_dir: str, config: Config, owner_pid: int | None,
                 owner_linger_s: float = 0.0):
        self.config = config
        self.session_dir = session_dir
        self.owner_pid = owner_pid
        # A notebook kernel's cluster (runtime/cluster/kernel_cluster.py) waits this long after its owner is
        # gone for a restarted kernel to claim it (rpc_claim_cluster) before it stops.
        self.owner_linger_s = owner_linger_s
        self._owner_gone_at: float | None = None
        self.abandoned = False  # stopping because the owner died (and nobody claimed the cluster)
        self.loop = EventLoop(bind, name="juno-gcs", max_message_bytes=config.max_message_bytes)
        self.address = self.loop.address
        self.install_rpc(self.loop)
        # Tables that must survive a GCS restart are written through to this (put/delete/load).
        self.storage = open_storage(config.gcs_storage, session_dir)
        self.persist = GcsPersistence(self.storage)  # one call per table change (runtime/gcs/recovery.py)
        self.recovery = GcsRecovery(self)  # a restarted GCS reads its tables back and settles with the nodes
        self.epoch = os.urandom(8).hex()  # this incarnation: clients notice a restart by its change
        self.node_table = NodeTable(config.node_death_timeout_s)
        self.nodes = self.node_table.nodes  # node id -> node info (alive or dead)
        # Called with the node's info when a node is declared dead (actors, placement groups...).
        self.node_death_listeners: list = []
        # Where actors go (runtime/node/cluster_policy.py); nodes report resources within ~50 ms.
        self.placement = ClusterPolicy(pending_ttl_s=max(0.5, 2 * config.heartbeat_interval_s))
        self.jobs: dict[int, dict] = {}
        self._job_ids = itertools.count(1)
        self.kv: dict[tuple[str, bytes], bytes] = {}
        self.events = GcsEvents(config)  # task and actor events (state API, timeline)
        self.library_runs = LibraryRunTable()  # juno.util.progress runs (dashboard "Libraries")
        self.actors = ActorManager(self)
        self.pending_actors: list[bytes] = []
        self.placement_groups = PlacementGroupManager(self)  # runtime/gcs/placement_groups.py
        self.failures = FailureRelay(self)  # process and node deaths made cluster-wide
        # The one-way messages the GCS answers; its requests are its rpc_ methods (rpc_methods).
        self.loop.serve(self.failures.messages())
        self.recovery.recover()  # what a previous GCS of this session wrote (nothing on a fresh start)
        self.start_time = time.time()
        # Stopping with its nodes (juno.shutdown signals them all at once), the GCS still answers the
        # nodes' goodbyes for a moment: each node waits for that answer (NodeManager.shutdown).
        signal.signal(signal.SIGTERM, lambda *_: self.loop.call_soon(self.loop.call_later, GOODBYE_DRAIN_S,
                                                                      self.loop.stop))
        self.loop.call_later(config.parent_check_interval_s, self._check_owner)
        self.loop.call_later(config.heartbeat_interval_s, self._check_heartbeats)

    def watch_owner(self, lifeline_fd: int | None) -> None:
        """Stop with the process that started this cluster: at once when its lifeline pipe reads
        EOF (processes.owner_lifeline), else when the owner pid check (every
        parent_check_interval_s) finds it gone: a process the owner forked keeps the pipe open."""
        if lifeline_fd is not None:
            watch_lifeline(self.loop, lifeline_fd, self._owner_gone)

    def _check_owner(self) -> None:
        if self.owner_pid and not pid_alive(self.owner_pid) and self._owner_gone():
            return
        for job_id, job in self.jobs.items():
            if job["is_dead"] or not job.get("pid") or job.get("remote_driver"):
                continue
            if not pid_alive(job["pid"]):
                self.finish_job(job_id)
        self.loop.call_later(self.config.parent_check_interval_s, self._check_owner)

    def _owner_gone(self) -> bool:
        """The owner died: stop (True), or for a kernel's cluster wait ``owner_linger_s`` for a
        restarted kernel to claim it first (False until the time is up)."""
        now = time.monotonic()
        if self._owner_gone_at is None and self.owner_linger_s > 0:
            self._owner_gone_at = now
            logger.info("the process that started this cluster (%s) is gone; waiting %g s for another "
                        "to claim it", self.owner_pid, self.owner_linger_s)
        if self._owner_gone_at is not None and now - self._owner_gone_at < self.owner_linger_s:
            return False
        if not self.abandoned:
            logger.warning("the process that started this cluster (%s) is gone; stopping", self.owner_pid)
        self.abandoned = True  # python -m juno.gcs then removes what the owner would have
        self.loop.stop()
        return True

    def rpc_claim_cluster(self, reply: Reply, pid: int):
        """A restarted notebook kernel takes over the cluster its previous process started."""
        if not self.owner_linger_s:
            return False
        self.owner_pid = pid
        self._owner_gone_at = None
        logger.info("process %s claimed this cluster", pid)
        return True

    # ------------------------------------------------------------------ nodes
    def rpc_register_node(self, reply: Reply, info: dict):
        old = self.nodes.get(info["node_id"])
        if old is not None and not old["alive"]:
            # Declared dead (it was silent too long): its work has moved on; it must not come back.
            return False
        hosted = info.pop("hosted_actors", None)  # a node registering again after a GCS restart
        self.persist.node(self.node_table.register(info))
        logger.info("node %s registered (%s)", info["node_id"][:12], info["address"])
        self.recovery.node_registered(info["node_id"], hosted)
        self.placement_groups.on_node_registered(info)
        pending, self.pending_actors = self.pending_actors, []
        for actor_id in pending:
            record = self.actors.actors.get(actor_id)
            if record is not None:
                self.actors.schedule(record)
        return True

    def rpc_report_resources(self, reply: Reply, node_id: str, available: dict, ts: float):
        self.node_table.report_resources(node_id, available)
        return None

    def rpc_node_heartbeat(self, reply: Reply, node_id: str, available: dict, demand: list, seen_version: int,
                           object_store: dict | None = None):
        """(view version, cluster view or None if unchanged), or UNKNOWN_NODE: register again.
        ``object_store``: the node's store usage, sent only when it changed."""
        return self.node_table.heartbeat(node_id, available, demand, seen_version, object_store)

    def rpc_get_cluster_view(self, reply: Reply):
        return (self.node_table.version, self.node_table.view())

    def rpc_unregister_node(self, reply: Reply, node_id: str, reason: str = "the node was stopped"):
        self._node_died(node_id, reason)
        return True

    def _check_heartbeats(self) -> None:
        timeout = self.config.node_death_timeout_s
        for node_id in self.node_table.expired():
            self._node_died(node_id, f"the node sent no heartbeat for {timeout:g} s (its machine or node "
                                     "manager process died, or it is overloaded)")
        self.loop.call_later(self.config.heartbeat_interval_s, self._check_heartbeats)

    def _node_died(self, node_id: str, reason: str) -> None:
        node = self.node_table.mark_dead(node_id, reason)
        if node is None:
            return
        logger.warning("node %s is dead: %s", node_id[:12], reason)
        for listener in self.node_death_listeners:
            try:
                listener(node)
            except Exception:  # noqa: BLE001 - one table's failure must not stop the others
                logger.exception("handling the death of node %s failed", node_id[:12])

    def rpc_get_nodes(self, reply: Reply):
        return [{k: v for k, v in n.items() if k != "last_heartbeat"} for n in self.nodes.values()]

    def pick_node(self, resources: dict, strategy: Any, home: str | None = None) -> dict | None:
        """The live node an actor goes to (runtime/node/cluster_policy.py; ``home``: its owner's
        node, preferred when it fits), or None when no node is alive. An actor no node can run,
        or one with hard affinity to a dead node, goes to a node that queues it with a warning
        or fails it with ActorUnschedulableError."""
        alive = {n["node_id"]: n for n in self.node_table.alive()}
        if not alive:
            return None
        decision, value = self.placement.choose(alive, resources, strategy, home=home)
        node = alive.get(value) if decision != FAIL else None
        if node is None:
            node = alive.get(home) or next(iter(alive.values()))
        else:
            self.placement.note_placed(node["node_id"], resources, alive)
        return node

    # ------------------------------------------------------------------ jobs
    def rpc_register_job(self, reply: Reply, driver_address: str, pid: int, namespace: str, entrypoint: str,
                         remote_driver: bool = False, config: dict | None = None):
        """``config``: what the driver's JobConfig says of the job (metadata, runtime_env,
        default_actor_lifetime), kept in the job's record."""
        for job in self.jobs.values():  # sent again across a GCS restart: the same job
            if job["driver_address"] == driver_address and job["pid"] == pid and not job["is_dead"]:
                return job["job_id"]
        job_id = next(self._job_ids)
        self.jobs[job_id] = {"job_id": job_id, "driver_address": driver_address, "pid": pid,
                             "namespace": namespace, "entrypoint": entrypoint, "start_time": time.time(),
                             "end_time": None, "is_dead": False, "remote_driver": remote_driver,
                             **(config or {})}
        self.persist.job(self.jobs[job_id])
        return job_id

    def rpc_job_finished(self, reply: Reply, job_id: int):
        self.finish_job(job_id)
        return True

    def finish_job(self, job_id: int) -> None:
        """The job's driver finished or is gone: its non-detached actors and placement groups go too."""
        job = self.jobs.get(job_id)
        if job is None or job["is_dead"]:
            return
        job["is_dead"] = True
        job["end_time"] = time.time()
        self.persist.job(job)
        self.actors.on_job_finished(job_id)
        self.placement_groups.on_job_finished(job_id)
        self.library_runs.on_job_finished(job_hex(job_id))

    def continue_ids(self, request_id: int, job_id: int) -> None:
        """A restarted GCS hands out request and job ids from these on, past its previous
        incarnation's (runtime/gcs/recovery.py)."""
        self._requests.start_ids_at(request_id)
        self._job_ids = itertools.count(job_id)

    def rpc_get_jobs(self, reply: Reply):
        return list(self.jobs.values())

    def rpc_get_job(self, reply: Reply, job_id: int):
        return self.jobs.get(job_id)

    # ------------------------------------------------------------------ kv
    def rpc_kv_put(self, reply: Reply, namespace: str, key: bytes, value: bytes, overwrite: bool = True):
        k = (namespace, key)
        if not overwrite and k in self.kv:
            return False
        self.kv[k] = value
        self.persist.kv_put(namespace, key, value)
        return True

    def rpc_kv_get(self, reply: Reply, namespace: str, key: bytes):
        return self.kv.get((namespace, key))

    def rpc_kv_del(self, reply: Reply, namespace: str, key: bytes):
        if self.kv.pop((namespace, key), None) is None:
            return False
        self.persist.kv_delete(namespace, key)
        return True

    def rpc_kv_keys(self, reply: Reply, namespace: str, prefix: bytes):
        return [k for ns, k in self.kv if ns == namespace and k.startswith(prefix)]

    def rpc_kv_exists(self, reply: Reply, namespace: str, key: bytes):
        return (namespace, key) in self.kv

    # ------------------------------------------------------------------ placement groups
    def rpc_placement_group(self, reply: Reply, op: str, *args: Any):
        """create, remove, get, get_named, table, wait_ready (runtime/gcs/placement_groups.py)."""
        return self.placement_groups.handle(reply, op, *args)

    # ------------------------------------------------------------------ actors
    def rpc_register_actor(self, reply: Reply, actor_id: bytes, spec: tuple, info: dict):
        return self.actors.register(actor_id, spec, info)

    def rpc_subscribe_actor(self, reply: Reply, actor_id: bytes, address: str):
        return self.actors.subscribe(actor_id, address)

    def rpc_get_named_actor(self, reply: Reply, name: str, namespace: str):
        return self.actors.get_named(name, namespace)

    def rpc_list_named_actors(self, reply: Reply, namespace: str | None):
        return self.actors.list_named(namespace)

    def rpc_list_actors(self, reply: Reply):
        return self.actors.list()

    def rpc_kill_actor(self, reply: Reply, actor_id: bytes, no_restart: bool, force: bool = False,
                       reason: str = "juno.kill() was called"):
        self.actors.kill(actor_id, no_restart, reason, done=lambda: reply.send(True))
        return DEFER

    def rpc_actor_created(self, reply: Reply, actor_id: bytes, worker_id: bytes, address: str,
                          error_blob: bytes | None, pid: int | None = None):
        self.actors.on_created(actor_id, worker_id, address, error_blob, pid)

    def rpc_actor_worker_died(self, reply: Reply, actor_id: bytes, worker_id: bytes, reason: str,
                              kind: str | None = None):
        self.actors.on_worker_died(actor_id, worker_id, reason, kind)

    def rpc_actor_exiting(self, reply: Reply, actor_id: bytes, reason: str | None = None):
        self.actors.on_exiting(actor_id, reason)

    def rpc_actor_out_of_scope(self, reply: Reply, actor_id: bytes):
        self.actors.on_out_of_scope(actor_id)

    def rpc_actor_warning(self, reply: Reply, actor_id: bytes, text: str):
        self.actors.warn(actor_id, text)

    # ------------------------------------------------------------------ events (state API)
    def rpc_report_task_events(self, reply: Reply, header: tuple, blob: bytes, new_by_job: dict):
        self.events.report(header, blob, new_by_job)

    def rpc_get_task_events(self, reply: Reply, job_id: int | None = None):
        return self.events.task_snapshot(job_id)

    def rpc_task_summary(self, reply: Reply, limit: int = 100):
        """Task counts by state and function, cumulative finished/failed totals and the newest
        ``limit`` running and failed records (the dashboard polls this; runtime/gcs/task_summary.py)."""
        dead = [job_id for job_id, job in self.jobs.items() if job["is_dead"]]
        return self.events.task_summary(max(0, int(limit)), dead)

    def rpc_get_actor_events(self, reply: Reply, actor_id: bytes | None = None):
        return self.events.actor_events(actor_id)

    def rpc_state_actors(self, reply: Reply):
        """The actor table with what the state API shows (resources, runtime env, state changes)."""
        return self.events.actor_table(self.actors.actors.values())

    # ------------------------------------------------------------------ library runs
    def rpc_library_run_publish(self, reply: Reply, run: dict):
        """A snapshot of a juno.util.progress run (runtime/gcs/library_runs.py)."""
        return self.library_runs.publish(run)

    def rpc_library_runs(self, reply: Reply, kind: str | None = None, series: bool = True):
        return self.library_runs.runs(kind, series)

    # ------------------------------------------------------------------ cluster
    def rpc_gcs_epoch(self, reply: Reply):
        """This incarnation's id: a client whose calls go unanswered asks it to notice a restart."""
        return self.epoch

    def rpc_cluster_info(self, reply: Reply):
        return {"session_dir": self.session_dir, "gcs_address": self.address, "start_time": self.start_time,
                "pid": os.getpid()}

    def rpc_shutdown(self, reply: Reply):
        reply.send(True)
        self.loop.stop()
