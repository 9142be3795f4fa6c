"""The node manager: one per node, owner of its resources, workers and store.

It grants worker leases to callers (tasks) and to the GCS (actors), lends a
blocked worker's CPUs out, notices worker deaths at once (SIGCHLD) and tells
whoever held the lease, reports available resources to the GCS, and cleans up
everything it started when it stops.
"""
from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import time
from typing import Any

from juno.config import Config
from juno.node.resources import NodeResources
from juno.node.scheduler import LeaseRequest, LeaseScheduler
from juno.node.worker_pool import WorkerPool
from juno.proc_util import pid_alive
from juno.rpc import DEFER, Reply, RpcNode
from juno.store.shm import SharedMemoryStore
from juno.transport import EventLoop, short_ipc_path

logger = logging.getLogger(__name__)

class Lease:
    __slots__ = ("lease_id", "worker_id", "owner", "allocation", "actor_id")

    def __init__(self, lease_id, worker_id, owner, allocation, actor_id):
        self.lease_id = lease_id
        self.worker_id = worker_id
        self.owner = owner
        self.allocation = allocation
        self.actor_id = actor_id


class NodeManager(RpcNode):
    def __init__(self, *, node_id: str, session_dir: str, gcs_address: str, resources: dict,
                 gpu_ids: list[int], config: Config, owner_pid: int | None, store_dir: str,
                 object_store_memory: int, is_head: bool):
        self.node_id = node_id
        self.session_dir = session_dir
        self.gcs_address = gcs_address
        self.config = config
        self.owner_pid = owner_pid
        socket_dir = os.path.join(session_dir, "sock")
        os.makedirs(socket_dir, exist_ok=True)
        self.log_dir = os.path.join(session_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.loop = EventLoop(short_ipc_path(socket_dir, f"nm-{node_id[:12]}"), name="juno-node")
        self.address = self.loop.address
        self.install_rpc(self.loop)
        self.resources = NodeResources(resources, gpu_ids)
        self.store = SharedMemoryStore(store_dir)
        self.store.create_dir()
        self.node = {
            "node_id": node_id, "address": self.address, "socket_dir": socket_dir, "store_dir": store_dir,
            "ip": "127.0.0.1", "hostname": os.uname().nodename, "resources": self.resources.total,
            "pid": os.getpid(), "session_dir": session_dir, "object_store_memory": object_store_memory,
            "is_head": is_head, "gpu_ids": list(gpu_ids),
        }
        self.pool = WorkerPool(session_dir=session_dir, node=self.node, gcs_address=gcs_address,
                               config_env=config.to_env(), log_dir=self.log_dir)
        self.scheduler = LeaseScheduler(self.resources, node_id)
        self.leases: dict[int, Lease] = {}
        self._lease_ids = itertools.count(1)
        self.drivers: dict[str, int] = {}
        self._report_scheduled = False
        self._stopping = False
        num_cpus = int(self.resources.total.get("CPU", 0))
        self.num_prestart = config.num_prestart_workers if config.num_prestart_workers is not None else num_cpus
        self._install_sigchld()

    # ------------------------------------------------------------------ lifecycle
    def start(self, on_ready) -> None:
        def registered(ok: bool, value: Any) -> None:
            if not ok:
                raise SystemExit(f"could not register with the GCS: {value}")
            for _ in range(self.num_prestart):
                self.pool.start_worker(None)
            on_ready()

        self.call(self.gcs_address, "register_node", self.node, callback=registered)
        self.loop.call_later(self.config.parent_check_interval_s, self._check_parents)
        self.loop.call_later(1.0, self._reap_idle)

    def _install_sigchld(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.shutdown())

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
        self.loop.stop()

    def cleanup(self) -> None:
        """After the loop stopped: stop workers and remove the store."""
        self.pool.stop_all(self.config.shutdown_grace_s)
        self.store.remove_dir()
        if self.owner_pid:
            # A private cluster: its driver may have died without unlinking its socket.
            shutil.rmtree(os.path.join(self.session_dir, "sock"), ignore_errors=True)

    def _check_parents(self) -> None:
        if self.owner_pid and not pid_alive(self.owner_pid):
            logger.warning("the process that started this node (%s) is gone; stopping", self.owner_pid)
            self.shutdown()
            return
        for address, pid in list(self.drivers.items()):
            if not pid_alive(pid):
                self._owner_gone(address)
        self.loop.call_later(self.config.parent_check_interval_s, self._check_parents)

    # ------------------------------------------------------------------ registration
    def rpc_register_worker(self, reply: Reply, worker_id: bytes, address: str, pid: int):
        worker = self.pool.on_registered(worker_id, address)
        if worker is None:
            return False
        self._schedule()
        return True

    def rpc_register_driver(self, reply: Reply, address: str, pid: int, job_id: int):
        self.drivers[address] = pid
        return self.node

    def rpc_unregister_driver(self, reply: Reply, address: str):
        self._owner_gone(address)
        return True

    def rpc_get_resources(self, reply: Reply):
        return {"total": self.resources.total, "available": self._available()}

    def rpc_get_node_info(self, reply: Reply):
        return self.node

    def rpc_shutdown(self, reply: Reply):
        reply.send(True)
        self.shutdown()
        return DEFER

    # ------------------------------------------------------------------ leases
    def rpc_request_lease(self, reply: Reply, owner: str, rid: int, resources: dict, runtime_env, strategy,
                          name: str, actor_id: bytes | None = None):
        self.scheduler.add(LeaseRequest(owner, rid, resources, runtime_env, strategy, name, reply, actor_id))
        self._schedule()
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
        self._schedule()
        return None

    def _schedule(self) -> None:
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
            self.leases[lease_id] = Lease(lease_id, worker.worker_id, req.owner, allocation, req.actor_id)
            worker.lease_id = lease_id
            worker.actor_id = req.actor_id
            req.reply.send((lease_id, worker.address, worker.worker_id, list(allocation.gpu_ids),
                            allocation.resources.to_dict(), self.address))
        for req, text in decisions.warnings:
            if req.actor_id is not None:
                self.notify(self.gcs_address, "actor_warning", req.actor_id, text)
            else:
                self.loop.send(req.owner, ("warning", text))
        for req, error in decisions.failures:
            req.reply.fail(error)
        for _key, runtime_env in decisions.starts:
            try:
                pool.start_worker(runtime_env)
            except OSError as e:
                logger.error("could not start a worker: %s", e)
        if decisions.grants:
            self._report_resources_soon()

    # ------------------------------------------------------------------ blocked workers
    def rpc_worker_blocked(self, reply: Reply, worker_id: bytes):
        lease = self._lease_of(worker_id)
        if lease is not None:
            self.resources.release_cpus(lease.allocation)
            self._schedule()
            self._report_resources_soon()

    def rpc_worker_unblocked(self, reply: Reply, worker_id: bytes):
        lease = self._lease_of(worker_id)
        if lease is not None:
            self.resources.reacquire_cpus(lease.allocation)
            self._report_resources_soon()

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
            lease = self.leases.pop(worker.lease_id, None) if worker.lease_id is not None else None
            if lease is not None:
                self.resources.release(lease.allocation)
                if lease.actor_id is not None:
                    self.notify(self.gcs_address, "actor_worker_died", lease.actor_id, worker.worker_id, reason)
                else:
                    self.loop.send(lease.owner, ("lease_worker_died", lease.lease_id, worker.worker_id, reason))
            if worker.address:
                self._owner_gone(worker.address)
                self.loop.disconnect(worker.address)
            self._report_resources_soon()
        if not self._stopping:
            self._schedule()

    def _owner_gone(self, address: str) -> None:
        """A driver or worker that held leases is gone: reclaim what it held."""
        self.drivers.pop(address, None)
        self.scheduler.drop_owner(address)
        for lease in [l for l in self.leases.values() if l.owner == address and l.actor_id is None]:
            worker = self.pool.workers.get(lease.worker_id)
            if worker is not None:
                self.pool.kill(worker, "the process that leased this worker exited")

    def _reap_idle(self) -> None:
        for worker in self.pool.surplus_idle(self.num_prestart, self.config.idle_worker_kill_s):
            self.pool.kill(worker, "idle worker stopped", signal.SIGTERM)
        self.loop.call_later(1.0, self._reap_idle)

    # ------------------------------------------------------------------ resource reports
    def _available(self) -> dict:
        return {k: v for k, v in self.resources.available.items() if v > 0}

    def _report_resources_soon(self) -> None:
        if self._report_scheduled:
            return
        self._report_scheduled = True
        self.loop.call_later(self.config.resource_report_interval_s, self._report_resources)

    def _report_resources(self) -> None:
        self._report_scheduled = False
        self.notify(self.gcs_address, "report_resources", self.node_id, self._available(), time.time())
