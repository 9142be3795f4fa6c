"""A cluster of several nodes on this machine, for tests and experiments (Ray's ``cluster_utils``).

Every node is a real node manager process with its own object store and workers,
joined to one GCS over TCP, exactly as ``juno start --address`` would add it; so
killing a node here (``remove_node(node, allow_graceful=False)``) is a real node
failure that the cluster must survive::

    from juno.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2, resources={"pool": 1})
    cluster.wait_for_nodes()
    juno.init(address=cluster.address)
    ...
    cluster.remove_node(worker, allow_graceful=False)
    cluster.shutdown()

The cluster's processes die with the process that made it, even if it crashes.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
from typing import Any

from juno.cluster.probe import GcsProbe
from juno.config import Config
from juno.cluster.local_cluster import (forget_cluster_token, new_session, read_session_token, start_gcs,
                                        start_gcs_and_head, start_node, stop_processes)

_NODE_ARGS = {"num_cpus", "num_gpus", "resources", "object_store_memory"}


def _start_node_args(node_args: dict) -> dict:
    """``add_node``'s arguments checked, with this helper's defaults (1 CPU, a 128 MiB store: nodes
    share this machine), as local_cluster.start_node takes them."""
    unknown = set(node_args) - _NODE_ARGS
    if unknown:
        raise TypeError(f"add_node() got unexpected arguments {sorted(unknown)}; it takes {sorted(_NODE_ARGS)}")
    return {"num_cpus": node_args.get("num_cpus", 1), "num_gpus": node_args.get("num_gpus"),
            "resources": node_args.get("resources"),
            "object_store_memory": node_args.get("object_store_memory") or 128 << 20}


class ClusterNode:
    """One node manager process of a :class:`Cluster`."""

    def __init__(self, process: subprocess.Popen, info: dict, head: bool):
        self.process = process
        self.info = info
        self.head = head

    @property
    def node_id(self) -> str:
        return self.info["node_id"]

    unique_id = node_id  # Ray's name

    @property
    def address(self) -> str:
        return self.info["address"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def __repr__(self) -> str:
        return f"ClusterNode({'head, ' if self.head else ''}node_id={self.node_id[:12]}, pid={self.pid})"


class Cluster:
    """A GCS and node managers on this machine; ``add_node``/``remove_node`` grow and shrink it."""

    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict | None = None, shutdown_at_exit: bool = True,
                 _system_config: dict | None = None):
        if connect and not initialize_head:
            raise ValueError("Cluster(connect=True) needs initialize_head=True: a driver attaches to a node.")
        self.config = Config.from_env(_system_config)
        self.session_name, self.session_dir = new_session()
        self.gcs_process: subprocess.Popen | None = None
        self.gcs_address: str | None = None
        self.head_node: ClusterNode | None = None
        self.worker_nodes: list[ClusterNode] = []
        self._removed: list[ClusterNode] = []
        self._connected = False
        self._probe: GcsProbe | None = None
        try:
            if initialize_head:  # the head node starts beside the GCS (local_cluster.start_gcs_and_head)
                gcs_proc, self.gcs_address, head_proc, head_info = start_gcs_and_head(
                    self.session_name, self.session_dir, self.config, owner_pid=os.getpid(),
                    **_start_node_args(head_node_args or {}))
            else:
                gcs_proc, self.gcs_address = start_gcs(self.session_dir, self.config, owner_pid=os.getpid())
        except BaseException:
            shutil.rmtree(self.session_dir, ignore_errors=True)
            raise
        self.gcs_process = gcs_proc
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            try:
                self._added(ClusterNode(head_proc, head_info, head=True), wait=True)
                if connect:
                    self.connect()
            except BaseException:
                self.shutdown()  # a head that failed to start must not leave the GCS running
                raise

    # ------------------------------------------------------------------ addresses
    @property
    def address(self) -> str:
        """'host:port' of the GCS, for ``juno.init(address=...)`` and ``juno start --address``."""
        return self.gcs_address.replace("tcp://", "")

    def list_all_nodes(self) -> list[ClusterNode]:
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    # ------------------------------------------------------------------ nodes
    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Start a node manager. The first node added is the head node.

        Takes ``num_cpus`` (default 1, not the machine's count: nodes share this
        machine), ``num_gpus``, ``resources`` and ``object_store_memory``
        (default 128 MiB)."""
        kwargs = _start_node_args(node_args)
        head = self.head_node is None
        proc, info = start_node(self.session_name, self.session_dir, self.gcs_address, self.config,
                                owner_pid=os.getpid(), head=head, **kwargs)
        return self._added(ClusterNode(proc, info, head), wait)

    def _added(self, node: ClusterNode, wait: bool) -> ClusterNode:
        """Keep a started node; ``wait``: until the GCS sees it alive."""
        if node.head:
            self.head_node = node
        else:
            self.worker_nodes.append(node)
        if wait:
            self._wait_until(lambda alive: node.node_id in alive, 30, f"node {node.node_id[:12]} to register")
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop a node: SIGTERM and a clean exit, or (``allow_graceful=False``) SIGKILL of
        the node manager and its workers at once, the way a machine dies."""
        if node is self.head_node:
            self.head_node = None
        elif node in self.worker_nodes:
            self.worker_nodes.remove(node)
        else:
            raise ValueError(f"{node!r} is not a node of this cluster (or was removed already)")
        if allow_graceful:
            stop_processes([node.process], self.config.shutdown_grace_s)
        else:
            _kill_process_group(node.process)
        self._removed.append(node)
        shutil.rmtree(node.info.get("store_dir", ""), ignore_errors=True)

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until the GCS sees exactly the nodes added and not removed as alive (a removed
        node killed with ``allow_graceful=False`` counts once the GCS has declared it dead).

        Raises TimeoutError after ``timeout`` seconds, RuntimeError at once if a node's process
        exited or the GCS is gone."""
        if timeout <= 0:
            raise ValueError(f"wait_for_nodes(timeout=...) must be positive, got {timeout!r}")
        expected = {n.node_id for n in self.list_all_nodes()}
        self._wait_until(lambda alive: expected == alive, timeout, f"the GCS to see {len(expected)} live nodes")

    def alive_node_ids(self, timeout: float = 10) -> set[str]:
        """Ids of the nodes the GCS considers alive now."""
        if self.gcs_process is None:
            raise RuntimeError("this Cluster was shut down")
        if self._probe is None:
            self._probe = GcsProbe(self.gcs_address)
        return {n["node_id"] for n in self._probe.call_gcs("get_nodes", timeout=timeout) if n.get("alive")}

    def _wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        alive: set[str] = set()
        while True:
            self._check_processes(what)
            left = deadline - time.monotonic()
            try:
                alive = self.alive_node_ids(timeout=max(0.5, min(left, 10)))
            except TimeoutError:
                self._check_processes(what)
                alive = set()
            if predicate(alive):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        raise TimeoutError(f"Timed out after {timeout:g} s waiting for {what}; the GCS sees alive: "
                           f"{sorted(n[:12] for n in alive)}; expected: "
                           f"{sorted(n.node_id[:12] for n in self.list_all_nodes())}. Node logs are in "
                           f"{os.path.join(self.session_dir, 'logs')}")

    def _check_processes(self, what: str) -> None:
        """Fail fast, with the reason, when waiting is pointless: the GCS or a node exited."""
        logs = os.path.join(self.session_dir, "logs")
        if self.gcs_process is None:
            raise RuntimeError(f"cannot wait for {what}: this Cluster was shut down")
        if self.gcs_process.poll() is not None:
            raise RuntimeError(f"cannot wait for {what}: the GCS exited with code {self.gcs_process.returncode} "
                               f"(see {os.path.join(logs, 'gcs.log')})")
        for node in self.list_all_nodes():
            if not node.alive():
                raise RuntimeError(f"cannot wait for {what}: node {node.node_id[:12]} (pid {node.pid}) exited "
                                   f"with code {node.process.returncode}; see "
                                   f"{os.path.join(logs, 'node-' + node.node_id[:8] + '.log')}")

    # ------------------------------------------------------------------ the GCS
    def kill_gcs(self) -> None:
        """SIGKILL the GCS, the way its machine dies; nodes, workers and drivers keep running
        (and keep trying the GCS: see ``restart_gcs``)."""
        if self.gcs_process is None:
            raise RuntimeError("this Cluster was shut down")
        self.gcs_process.kill()
        self.gcs_process.wait(10)

    def restart_gcs(self) -> None:
        """Start the GCS again on the same port with the same session folder (what
        ``python -m juno.gcs --host H --port P --session-dir S`` does); it recovers the cluster
        from its storage, and nodes and drivers reconnect (runtime/gcs/recovery.py)."""
        if self.gcs_process is None:
            raise RuntimeError("this Cluster was shut down")
        if self.gcs_process.poll() is None:
            raise RuntimeError("the GCS is still running; call kill_gcs() first")
        host, port = self.address.rsplit(":", 1)
        self.gcs_process, address = start_gcs(self.session_dir, self.config, host=host, port=int(port),
                                              owner_pid=os.getpid())
        assert address == self.gcs_address, (address, self.gcs_address)

    # ------------------------------------------------------------------ drivers
    def connect(self, namespace: str | None = None, **init_args: Any):
        """``juno.init(address=this cluster)`` from this process."""
        import juno

        context = juno.init(address=self.address, namespace=namespace, **init_args)
        self._connected = True
        return context

    def shutdown(self) -> None:
        """Disconnect this process's driver and stop every node and the GCS; leaves nothing behind."""
        if self._connected:
            import juno

            if juno.is_initialized():
                juno.shutdown()
            self._connected = False
        for node in list(self.worker_nodes) + ([self.head_node] if self.head_node else []):
            self.remove_node(node, allow_graceful=True)
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        if self.gcs_process is not None:
            stop_processes([self.gcs_process], self.config.shutdown_grace_s)
            self.gcs_process = None
        for node in self._removed:
            shutil.rmtree(node.info.get("store_dir", ""), ignore_errors=True)
        if self.gcs_address is not None:  # the token stored for local clients goes with the cluster
            forget_cluster_token(self.gcs_address, read_session_token(self.session_dir))
        shutil.rmtree(self.session_dir, ignore_errors=True)
        atexit.unregister(self.shutdown)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def _kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL a node manager and every worker it started (they share its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
