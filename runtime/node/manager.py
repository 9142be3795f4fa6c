"""The node manager: one per node, owner of its resources, workers and store.

It grants worker leases to callers (tasks) and to the GCS (actors), lends a
blocked worker's CPUs out, notices worker deaths at once (SIGCHLD) and tells
whoever held the lease, reports available resources to the GCS, and cleans up
everything it started when it stops.
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import shutil
import signal
import time
from typing import Any

from juno.comm import messages
from juno.config import Config
from juno.gcs.node_table import MAX_DEMAND_REPORTED, UNKNOWN_NODE
from juno.node import introspection, log_tail
from juno.node import placement_group_bundles as bundles
from juno.node.death_relay import DeathRelay
from juno.node.memory_monitor import KIND_OOM, MemoryMonitor
from juno.node.resources import NodeResources
from juno.node.scheduler import LeaseRequest, LeaseScheduler
from juno.node.spillback import Spillback
from juno.node.store_janitor import StoreJanitor
from juno.node.worker_pool import WorkerPool
from juno.node.zygote import forkable, reap_orphans
from juno.cluster.processes import become_subreaper, pid_alive, watch_lifeline
from juno.comm.rpc import DEFER, Reply, RpcNode
from juno.store.object_store import ObjectStore
from juno.store.transfer import ObjectTransfer
from juno.comm.transport import EventLoop, listen_address

logger = logging.getLogger(__name__)
# A new node's first workers wait this long for its worker fork server (then they are spawned),
# checking every PRESTART_POLL_S.
PRESTART_FORK_WAIT_S = 3.0
PRESTART_POLL_S = 0.02
GOODBYE_TIMEOUT_S = 0.5  # how long a stopping node waits for the GCS to take its goodbye
_BATCHED_STORE_CALLS = frozenset({"unpin_objects", "delete_objects", "create_object", "pin_object", "seal_object"})

class Lease:
    __slots__ = ("lease_id", "worker_id", "owner", "allocation", "actor_id", "retriable", "name", "granted_at")

    def __init__(self, lease_id, worker_id, owner, allocation, actor_id, retriable=True, name=""):
        self.lease_id = lease_id
        self.worker_id = worker_id
        self.owner = owner
        self.allocation = allocation
        self.actor_id = actor_id
        self.retriable = retriable  # for the memory monitor's choice of victim
        self.name = name
        self.granted_at = time.monotonic()


class NodeManager(RpcNode):
    def __init__(self, *, node_id: str, session_dir: str, gcs_address: str, resources: dict,
                 gpu_ids: list[int], config: Config, owner_pid: int | None, store_dir: str,
                 object_store_memory: int, is_head: bool, node_ip: str = "127.0.0.1"):
        self.node_id = node_id
        self.session_dir = session_dir
        self.gcs_address = gcs_address
        self.config = config
        self.owner_pid = owner_pid
        socket_dir = os.path.join(session_dir, "sock")
        os.makedirs(socket_dir, mode=0o700, exist_ok=True)  # its permissions guard the ipc sockets
        self.log_dir = os.path.join(session_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.loop = EventLoop(listen_address(node_ip, socket_dir, f"nm-{node_id[:12]}"), name="juno-node",
                              max_message_bytes=config.max_message_bytes)
        self.address = self.loop.address
        self.install_rpc(self.loop)
        self.resources = NodeResources(resources, gpu_ids)
        spill_dir = os.path.join(session_dir, "spill", node_id[:12])
        # Before the store exists: whoever kills this process, the janitor removes the store after it.
        self.janitor = StoreJanitor([store_dir, spill_dir])
        self.store = ObjectStore(store_dir, object_store_memory, spill_dir=spill_dir,
                                 spill_limit_bytes=config.object_spilling_limit_bytes)
        self.node = {
            "node_id": node_id, "address": self.address, "socket_dir": socket_dir, "store_dir": store_dir,
            "ip": node_ip, "hostname": os.uname().nodename, "resources": self.resources.total,
            "pid": os.getpid(), "session_dir": session_dir, "object_store_memory": object_store_memory,
            "is_head": is_head, "gpu_ids": list(gpu_ids),
        }
        self.pool = WorkerPool(session_dir=session_dir, node=self.node, gcs_address=gcs_address,
                               config_env=config.to_env(), log_dir=self.log_dir)
        # Fork workers from a zygote (runtime/node/zygote.py): they are re-parented to this
        # process, which must be a subreaper to wait for them.
        self._subreaper = config.worker_fork_server and become_subreaper()
        if self._subreaper:
            self.pool.start_zygote()
        self.scheduler = LeaseScheduler(self.resources, node_id)
        self.spillback = Spillback(self)  # cross-node placement of lease requests
        self.bundles = bundles.BundleTable(self.resources)  # placement-group bundles (runtime/node/placement_group_bundles.py)
        self.leases: dict[int, Lease] = {}
        # Unique across nodes: an owner keys the leases it holds on every node by these ids.
        self._lease_ids = itertools.count(int.from_bytes(os.urandom(6), "little") << 16)
        self.drivers: dict[str, int] = {}
        self.watchers: dict[str, set[str]] = {}  # process address -> processes to tell when it dies
        self.recently_dead: collections.deque[str] = collections.deque(maxlen=1000)
        self.deaths = DeathRelay(self)  # process and node deaths, cluster-wide (runtime/node/death_relay.py)
        self.driver_info: dict[str, dict] = {}  # every driver that attached (state API)
        self.exited_workers: collections.deque = collections.deque(maxlen=1000)  # for `juno list workers`
        self._report_scheduled = False
        self._stopping = False
        # Every live node's address and resources, as of the last heartbeat reply (spill-back).
        self.cluster_view: dict[str, dict] = {}
        self.cluster_view_version = -1
        self._heartbeat_in_flight = False
        self._store_usage_sent: dict | None = None  # object store usage the GCS has (heartbeats)
        self.transfer = ObjectTransfer(self)  # objects to and from other nodes (runtime/store/transfer.py)
        # The one-way messages a node manager answers; its requests are its rpc_ methods (rpc_methods).
        self.loop.serve({**self.deaths.messages(), **self.transfer.messages()})
        num_cpus = int(self.resources.total.get("CPU", 0))
        self.num_prestart = config.num_prestart_workers if config.num_prestart_workers is not None else num_cpus
        self.memory_monitor = MemoryMonitor(config, lambda: self.pool.workers.values(),
                                            lambda worker: self._lease_of(worker.worker_id),
                                            lambda: [os.getpid(), *self.drivers.values()])
        self._fork_wait_until = 0.0  # set at registration: see _zygote_warming
        self._fork_wait_scheduled = False
        self._install_sigchld()

    # ------------------------------------------------------------------ lifecycle
    def start(self, on_ready) -> None:
        def registered(ok: bool, value: Any) -> None:
            if not ok:
                raise SystemExit(f"could not register with the GCS: {value}")
            if value is False:
                raise SystemExit("the GCS refused this node: it declared a node with this id dead")
            self._fork_wait_until = time.monotonic() + PRESTART_FORK_WAIT_S
            self._start_workers_when_forkable()
            on_ready()
            self.loop.call_later(self.config.heartbeat_interval_s, self._heartbeat)

        self.call(self.gcs_address, "register_node", self.node, callback=registered)
        self.loop.call_later(self.config.parent_check_interval_s, self._check_parents)
        self.loop.call_later(1.0, self._reap_idle)
        if self.config.memory_monitor_interval_s > 0:
            self.loop.call_later(self.config.memory_monitor_interval_s, self._check_memory)

    def _install_sigchld(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # A handler runs between two bytecodes of the main thread, possibly inside a send that holds the
        # loop's send lock: shutting down right there (it sends the GCS a goodbye) would deadlock the
        # node, which then died silent. The loop runs it instead, at once (the wakeup fd woke it).
        signal.signal(signal.SIGTERM, lambda *_: self.loop.call_soon(self.shutdown))

        def on_signal() -> None:
            try:
                os.read(r, 4096)
            except BlockingIOError:
                pass
            self._reap()

        self.loop.add_reader(r, on_signal)

    def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        # Tell the GCS now rather than let it wait for the heartbeat timeout, and stop once it has the
        # goodbye: one sent just as the loop closes its sockets can be lost on a busy machine. A GCS
        # that does not answer within GOODBYE_TIMEOUT_S is stopping too (juno.shutdown stops both).
        try:
            self.call(self.gcs_address, "unregister_node", self.node_id, "the node was stopped",
                      callback=lambda ok, value: self.loop.stop(), timeout=GOODBYE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the GCS may be gone already
            self.loop.stop()

    def cleanup(self) -> None:
        """After the loop stopped: stop workers and remove the store."""
        self.pool.stop_all(self.config.shutdown_grace_s)
        self.store.close()
        self.janitor.release()
        if self.owner_pid:
            # A private cluster: its driver may have died without unlinking its socket.
            shutil.rmtree(os.path.join(self.session_dir, "sock"), ignore_errors=True)

    def watch_owner(self, lifeline_fd: int | None) -> None:
        """Stop with the process that started this node: at once when its lifeline pipe reads EOF
        (processes.owner_lifeline), else when the owner pid check (every parent_check_interval_s)
        finds it gone (a kernel's cluster: the GCS; or a process the owner forked holds the pipe)."""
        if lifeline_fd is not None:
            watch_lifeline(self.loop, lifeline_fd, self._owner_gone_stop)

    def _owner_gone_stop(self, what: str | None = None) -> None:
        if not self._stopping:
            logger.warning("%s is gone; stopping", what or f"the process that started this node ({self.owner_pid})")
        self.shutdown()

    def _check_parents(self) -> None:
        if self.owner_pid and not pid_alive(self.owner_pid):
            self._owner_gone_stop()
            return
        if not os.path.isdir(self.session_dir):  # removed with its GCS when the cluster's owner died
            self._owner_gone_stop(f"the cluster's session folder {self.session_dir}")
            return
        for address, pid in list(self.drivers.items()):
            if not pid_alive(pid):
                self.owner_gone(address)
        self.loop.call_later(self.config.parent_check_interval_s, self._check_parents)

    # ------------------------------------------------------------------ registration
    def rpc_register_worker(self, reply: Reply, worker_id: bytes, address: str, pid: int):
        worker = self.pool.on_registered(worker_id, address)
        if worker is None:
            return False
        self.deaths.process_started(address, "worker")
        self.schedule()
        return True

    def rpc_register_driver(self, reply: Reply, address: str, pid: int, job_id: int,
                            worker_id: bytes | None = None):
        self.drivers[address] = pid
        self.driver_info[address] = {"pid": pid, "job_id": job_id, "worker_id": worker_id,
                                     "start_time": time.time(), "end_time": None}
        self.deaths.process_started(address, "driver")
        return self.node

    def rpc_list_workers(self, reply: Reply):
        """Live and recently exited workers and drivers of this node (the state API)."""
        return introspection.list_workers(self)

    def rpc_read_log(self, reply: Reply, key: str | int, tail_lines: int = 200, max_bytes: int = 1 << 20):
        """The tail of a worker's log, by worker id hex (a prefix will do) or pid (runtime/node/log_tail.py)."""
        return log_tail.read_log(self, key, tail_lines, max_bytes)

    def rpc_unregister_driver(self, reply: Reply, address: str):
        self.owner_gone(address)
        return True

    def rpc_get_resources(self, reply: Reply):
        return {"total": self.resources.total, "available": self.available_resources(),
                "object_store": {**self.store.stats(), **self.transfer.stats()}}

    # ------------------------------------------------------------------ object store
    def rpc_create_object(self, reply: Reply, object_id: bytes, size: int, creator: str, owner: str):
        return self.store.create(object_id, size, creator, owner)

    def rpc_seal_object(self, reply: Reply, object_id: bytes, pin_for: list = ()):
        """``pin_for``: holders that keep a pin once it is sealed (a writer about to read it back)."""
        self.store.seal(object_id, pin_for)

    def rpc_pin_object(self, reply: Reply, object_id: bytes, holder: str):
        location = self.store.pin(object_id, holder,
                                  on_sealed=lambda: reply.send(self.store.pin(object_id, holder)))
        if location == ("pending",):
            return DEFER
        return location

    def rpc_store_calls(self, reply: Reply, calls: list):
        """Several object-store calls in one message, in order (a client's queued unpins and deletes,
        then the create or pin it waits on); answers with the last one's answer."""
        result = None
        for method, args in calls:
            if method not in _BATCHED_STORE_CALLS:
                raise ValueError(f"store_calls cannot carry {method!r}")
            result = self.rpc_methods[method](self, reply, *args)
        return result

    def rpc_unpin_objects(self, reply: Reply, object_ids: list, holder: str):
        for object_id in object_ids:
            self.store.unpin(object_id, holder)

    def rpc_object_info(self, reply: Reply, object_ids: list):
        return [self.store.info(object_id) for object_id in object_ids]

    def rpc_delete_objects(self, reply: Reply, object_ids: list, node_id: str | None = None):
        """Free objects; ``node_id``: they live on that node (forwarded), else here. Copies other
        nodes pulled are freed too (ObjectTransfer forwards the delete)."""
        if node_id is not None and node_id != self.node_id:
            self.transfer.forward_delete(node_id, object_ids)
            return
        for object_id in object_ids:
            self.store.delete(object_id)

    def rpc_pull_object(self, reply: Reply, object_id: bytes, node_id: str, holder: str):
        """Pin a local copy of an object whose primary is on ``node_id``, pulling it first."""
        return self.transfer.pull(reply, object_id, node_id, holder)

    def rpc_transfer_begin(self, reply: Reply, object_id: bytes, puller_node_id: str, puller_host: str | None = None):
        return self.transfer.serve_begin(reply, object_id, puller_node_id, puller_host)

    def rpc_transfer_end(self, reply: Reply, object_id: bytes, puller_node_id: str):
        self.transfer.serve_end(object_id, puller_node_id)

    def rpc_get_node_info(self, reply: Reply):
        return self.node

    def rpc_placement_group_bundles(self, reply: Reply, op: str, pg_hex: str, arg):
        """The GCS reserves, commits, cancels or removes placement-group bundles here."""
        return bundles.handle(self, op, pg_hex, arg)

    def rpc_shutdown(self, reply: Reply):
        reply.send(True)
        self.shutdown()
        return DEFER

    # ------------------------------------------------------------------ leases
    def rpc_request_lease(self, reply: Reply, owner: str, rid: int, resources: dict, runtime_env, strategy,
                          name: str, actor_id: bytes | None = None, retriable: bool = True, hops: int = 0,
                          prefer: str | None = None):
        """Grant a worker lease, now or later; or answer ("spillback", node_id, address) to send
        the caller to another node (runtime/node/spillback.py). ``hops``: times it was spilled
        already; ``prefer``: the node holding its large arguments."""
        removed = self.bundles.removed_group(resources)
        if removed is not None:  # its placement group is gone: fail now rather than wait forever
            raise bundles.unschedulable(removed, self.bundles.removal_reasons.get(removed, ""), actor_id is not None)
        req = LeaseRequest(owner, rid, resources, runtime_env, strategy, name, reply, actor_id,
                           retriable=retriable, hops=hops, prefer=prefer)
        if (strategy is not None or prefer is not None or len(self.cluster_view) > 1) \
                and not self.spillback.place(req):
            return DEFER
        self.scheduler.add(req)
        self.schedule()
        return DEFER

    def rpc_cancel_lease_request(self, reply: Reply, owner: str, rid: int):
        req = self.scheduler.cancel(owner, rid)
        if req is not None:
            req.reply.send(None)
        return None

    def rpc_return_lease(self, reply: Reply, lease_id: int):
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return None
        self.resources.release(lease.allocation)
        worker = self.pool.workers.get(lease.worker_id)
        if worker is not None:
            self.pool.push_idle(worker)
        self.schedule()
        return None

    def schedule(self) -> None:
        """Carry out the scheduler's decisions: bind workers, warn, fail, start workers."""
        if not self.scheduler.requests:
            return
        pool = self.pool
        idle = {key: len(ids) for key, ids in pool.idle.items()}
        decisions = self.scheduler.schedule(idle, pool.starting, pool.failed_starts)
        for req, allocation in decisions.grants:
            worker = pool.pop_idle(req.env_key)
            if worker is None:  # died since it was counted: give the resources back, retry later
                self.resources.release(allocation)
                self.scheduler.requests.insert(0, req)
                continue
            lease_id = next(self._lease_ids)
            self.leases[lease_id] = Lease(lease_id, worker.worker_id, req.owner, allocation, req.actor_id,
                                          req.retriable, req.name)
            worker.lease_id = lease_id
            worker.actor_id = req.actor_id
            req.reply.send((lease_id, worker.address, worker.worker_id, list(allocation.gpu_ids),
                            allocation.resources.to_dict(), self.address))
        for req, text in decisions.warnings:
            if bundles.groups_in(req.resources):
                continue  # waits for its placement group's bundles (the group warns if it can't be made)
            if req.actor_id is not None:
                self.notify(self.gcs_address, "actor_warning", req.actor_id, text)
            else:
                self.loop.send(req.owner, messages.warning(text))
        for req, error in decisions.failures:
            req.reply.fail(error)
        for _key, runtime_env in decisions.starts:
            if forkable(runtime_env) and self._zygote_warming():
                self._start_workers_when_forkable()  # started (forked) in a moment: see there
                continue
            try:
                pool.start_worker(runtime_env)
            except OSError as e:
                logger.error("could not start a worker: %s", e)
        if decisions.grants:
            self.report_resources_soon()

    # ------------------------------------------------------------------ blocked workers
    def rpc_worker_blocked(self, reply: Reply, worker_id: bytes):
        lease = self._lease_of(worker_id)
        if lease is not None:
            self.resources.release_cpus(lease.allocation)
            self.schedule()
            self.report_resources_soon()

    def rpc_worker_unblocked(self, reply: Reply, worker_id: bytes):
        lease = self._lease_of(worker_id)
        if lease is not None:
            self.resources.reacquire_cpus(lease.allocation)
            self.report_resources_soon()

    def _lease_of(self, worker_id: bytes) -> Lease | None:
        worker = self.pool.workers.get(worker_id)
        if worker is None or worker.lease_id is None:
            return None
        return self.leases.get(worker.lease_id)

    def rpc_kill_worker(self, reply: Reply, worker_id: bytes, reason: str):
        worker = self.pool.workers.get(worker_id)
        if worker is not None:
            self.pool.kill(worker, reason)
        return None

    def rpc_kill_actor_worker(self, reply: Reply, actor_id: bytes, reason: str):
        for worker in self.pool.workers.values():
            if worker.actor_id == actor_id:
                self.pool.kill(worker, reason)
        return None

    # ------------------------------------------------------------------ deaths
    def _reap(self) -> None:
        for worker, reason in self.pool.reap():
            if worker.registered:
                self.exited_workers.append(introspection.worker_row(self, worker, False, reason))
            lease = self.leases.pop(worker.lease_id, None) if worker.lease_id is not None else None
            if lease is not None:
                self.resources.release(lease.allocation)
                if lease.actor_id is not None:
                    self.notify(self.gcs_address, "actor_worker_died", lease.actor_id, worker.worker_id, reason,
                                worker.kill_kind)
                else:
                    self.loop.send(lease.owner, ("lease_worker_died", lease.lease_id, worker.worker_id, reason,
                                                 worker.kill_kind))
            if worker.address:
                self.owner_gone(worker.address)
                self.loop.disconnect(worker.address)
            self.report_resources_soon()
        if self._subreaper:
            self._reap_adopted()
        if not self._stopping:
            self.schedule()

    def _reap_adopted(self) -> None:
        """As a subreaper this process adopts orphans of its workers' children: wait for them."""
        zygote = self.pool.zygote
        if zygote is not None and zygote.proc is not None:
            zygote.proc.poll()  # a dead zygote is reaped here, replaced at the next fork
        known = {worker.pid for worker in self.pool.workers.values()}
        known.update(p.pid for p in (zygote and zygote.proc, self.janitor.proc) if p is not None)
        reap_orphans(known)

    def owner_gone(self, address: str, local: bool = True) -> None:
        """A driver or worker that held leases is gone: reclaim what it held. ``local``: it ran
        on this node (the GCS relays its death to the other nodes), else another node's did."""
        if self.drivers.pop(address, None) is not None and address in self.driver_info:
            self.driver_info[address]["end_time"] = time.time()
        self.store.release_holder(address)
        self.scheduler.drop_owner(address)
        self._announce_death(address)
        if local:
            self.deaths.process_died(address)
        for lease in [l for l in self.leases.values() if l.owner == address and l.actor_id is None]:
            worker = self.pool.workers.get(lease.worker_id)
            if worker is not None:
                self.pool.kill(worker, "the process that leased this worker exited")

    # ------------------------------------------------------------------ process deaths
    def rpc_watch_process(self, reply: Reply, address: str, watcher: str):
        """Owners watch their borrowers and borrowers their owners: tell ``watcher`` when
        ``address`` dies, so objects never wait on a process that is gone."""
        if address in self.recently_dead:
            self.loop.send(watcher, ("process_died", address))
            return None
        known = address in self.drivers or any(w.address == address for w in self.pool.workers.values())
        if known:
            self.watchers.setdefault(address, set()).add(watcher)
        else:  # a process of another node (or not registered yet): its death comes through the GCS
            self.deaths.watch_remote(address, watcher)
        return None

    def _announce_death(self, address: str) -> None:
        self.recently_dead.append(address)
        for watcher in self.watchers.pop(address, ()):
            try:
                self.loop.send(watcher, ("process_died", address))
            except Exception:  # noqa: BLE001 - the watcher may be gone too
                pass
        for watched in self.watchers.values():
            watched.discard(address)

    def _check_memory(self) -> None:
        """The memory monitor's timer (runtime/node/memory_monitor.py): kill what it picks."""
        if self._stopping:
            return
        try:
            for kill in self.memory_monitor.check():
                worker = self.pool.workers.get(kill.worker_id)
                if worker is not None and worker.kill_reason is None:
                    logger.warning("out of memory (%s): %s", kill.policy, kill.reason)
                    self.pool.kill(worker, kill.reason, kind=KIND_OOM)
        except Exception:  # noqa: BLE001 - a failed sample must not stop the node
            logger.exception("the memory monitor failed")
        self.loop.call_later(self.config.memory_monitor_interval_s, self._check_memory)

    # ------------------------------------------------------------------ a new node's first workers
    def _zygote_warming(self) -> bool:
        """The worker fork server is still importing, and a new node waits for it a little longer:
        one Python start-up and import for all of the first workers, not one each competing with
        the zygote's own (on a small machine that made the first task slower, not faster)."""
        zygote = self.pool.zygote
        return zygote is not None and time.monotonic() < self._fork_wait_until and not zygote.poll_ready()

    def _start_workers_when_forkable(self) -> None:
        """Once the zygote is ready (or the wait is over): the prestarted workers (``num_prestart``,
        less those started for tasks meanwhile), then the workers waiting tasks need."""
        if self._stopping:
            return
        if self._zygote_warming():
            if not self._fork_wait_scheduled:
                self._fork_wait_scheduled = True
                self.loop.call_later(PRESTART_POLL_S, self._fork_wait_over)
            return
        for _ in range(self.num_prestart - len(self.pool.workers)):
            self.pool.start_worker(None)
        self.schedule()

    def _fork_wait_over(self) -> None:
        self._fork_wait_scheduled = False
        self._start_workers_when_forkable()

    def _reap_idle(self) -> None:
        for worker in self.pool.surplus_idle(self.num_prestart, self.config.idle_worker_kill_s):
            self.pool.kill(worker, "idle worker stopped", signal.SIGTERM)
        self.loop.call_later(1.0, self._reap_idle)

    # ------------------------------------------------------------------ resource reports
    def available_resources(self) -> dict:
        """What this node can grant now (resources with some left), as the GCS and spillback see it."""
        return {k: v for k, v in self.resources.available.items() if v > 0}

    def report_resources_soon(self) -> None:
        """Tell the GCS this node's availability within resource_report_interval_s (once per interval)."""
        if self._report_scheduled:
            return
        self._report_scheduled = True
        self.loop.call_later(self.config.resource_report_interval_s, self._report_resources)

    def _heartbeat(self) -> None:
        """Tell the GCS this node lives (with its resources and queued demand); learn the cluster."""
        if self._stopping:
            return
        self.loop.call_later(self.config.heartbeat_interval_s, self._heartbeat)
        if self._heartbeat_in_flight:
            return  # the GCS is slow or restarting: don't pile requests up
        self._heartbeat_in_flight = True
        demand = [dict(r.resources) for r in self.scheduler.requests[:MAX_DEMAND_REPORTED]]
        store = self.store
        usage = {"used": store.allocator.used, "total": store.capacity, "spilled": store.disk_bytes,
                 "num_objects": len(store.entries)}
        sent = None if usage == self._store_usage_sent else usage  # the GCS keeps the last one it got
        self._store_usage_sent = usage
        self.call(self.gcs_address, "node_heartbeat", self.node_id, self.available_resources(), demand,
                  self.cluster_view_version, sent, callback=self._on_heartbeat_reply,
                  timeout=max(1.0, self.config.node_death_timeout_s))

    def _on_heartbeat_reply(self, ok: bool, value: Any) -> None:
        self._heartbeat_in_flight = False
        if not ok or value == UNKNOWN_NODE:
            self._store_usage_sent = None  # it may not have arrived (or a new GCS lacks it): send again
        if not ok or self._stopping:
            return  # no answer: the GCS may be restarting; the next heartbeat tries again
        if value == UNKNOWN_NODE:
            self._register_again()
            return
        version, view = value
        if view is not None:
            self.cluster_view = view
            self.cluster_view_version = version
            self.transfer.on_cluster_view(view)
        if self.scheduler.requests:  # a node joined or freed resources: move queued requests there
            self.spillback.rebalance()

    def _register_again(self) -> None:
        """The GCS does not know this node: it restarted (register again, with what is in use now)
        or declared the node dead (then stop: its work was retried elsewhere)."""
        def done(ok: bool, value: Any) -> None:
            if ok and value is False:
                logger.error("the GCS declared this node dead; stopping")
                self.shutdown()

        # After a GCS restart: what this node hosts, so the GCS settles its tables (runtime/gcs/recovery.py).
        info = dict(self.node, available=self.available_resources(), hosted_actors={
            lease.actor_id: lease.worker_id for lease in self.leases.values() if lease.actor_id is not None})
        for address in self.drivers:  # the GCS's process directory starts empty after a restart
            self.deaths.process_started(address, "driver")
        for worker in self.pool.workers.values():
            if worker.address and worker.registered:
                self.deaths.process_started(worker.address, "worker")
        self.call(self.gcs_address, "register_node", info, callback=done)

    def _report_resources(self) -> None:
        self._report_scheduled = False
        self.notify(self.gcs_address, "report_resources", self.node_id, self.available_resources(), time.time())
