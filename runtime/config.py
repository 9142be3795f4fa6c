"""Every tunable of the runtime in one place.

Processes read the same Config: the driver builds it from defaults, the
``JUNO_<NAME>`` environment and ``juno.init(_system_config=...)``, and hands it
to the processes it starts through the ``JUNO_SYSTEM_CONFIG`` variable, so tests
shrink timeouts through the exact object the runtime uses.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any


@dataclasses.dataclass
class Config:
    # Objects at most this big travel inline with messages; larger ones go to shared memory.
    max_inline_object_bytes: int = 100 * 1024
    # A function or class whose pickled code (with what it captures) is bigger than this is
    # exported with a warning; bigger than the error size it is refused (Ray's 10 MB / 100 MB).
    function_size_warn_bytes: int = 10 ** 7
    function_size_error_bytes: int = 10 ** 8
    # How long a process waits for a child process to report it is ready.
    process_start_timeout_s: float = 30.0
    # Timeout of one control-plane request (GCS, node manager) before it is an error.
    rpc_timeout_s: float = 30.0
    # A leased worker is kept this long after its last task before going back to the node.
    lease_idle_s: float = 0.005
    # Tasks pushed to one leased worker before waiting for results (hides round trips).
    max_tasks_in_flight_per_worker: int = 4
    # Upper bound of lease requests one scheduling key keeps pending at the node.
    max_pending_lease_requests: int = 4
    # Workers started when a node comes up (None: one per CPU).
    num_prestart_workers: int | None = None
    # New workers are forked from a per-node template process that has imported what a worker
    # imports (runtime/worker/zygote.py), not started from scratch; off (JUNO_WORKER_FORK_SERVER=0)
    # spawns every worker with `python -m juno.worker`. Linux only.
    worker_fork_server: bool = True
    # Idle workers above the CPU count are stopped after this long.
    idle_worker_kill_s: float = 60.0
    # How often the node manager reports its available resources to the GCS, at most.
    resource_report_interval_s: float = 0.05
    # Node managers heartbeat the GCS this often (with their available resources); a node
    # silent for node_death_timeout_s is declared dead, and its work is retried elsewhere.
    heartbeat_interval_s: float = 0.5
    node_death_timeout_s: float = 5.0
    # Lineage reconstruction (runtime/owner/object_recovery.py): an owner keeps the specs of finished tasks whose
    # results live in a node's store (to re-run them if that node dies) up to this many bytes;
    # beyond it the oldest are dropped, and their objects cannot be rebuilt.
    lineage_max_bytes: int = 256 << 20
    # Objects between nodes (runtime/store/transfer.py): a node manager pulls an object from the
    # node holding it in chunks of this many bytes, this many in flight at once.
    object_transfer_chunk_bytes: int = 8 << 20
    object_transfer_chunks_in_flight: int = 4
    # Nodes on one machine copy objects straight from each other's shared memory (one memcpy)
    # instead of sending chunks over a socket; off forces the socket path that separate machines use.
    object_transfer_same_machine: bool = True
    # A pull fails (ObjectFetchTimedOutError) when the source node sends nothing for this long,
    # and in any case after object_pull_timeout_s; readers wait that long for their node manager.
    object_transfer_timeout_s: float = 30.0
    object_pull_timeout_s: float = 600.0
    # Placement groups (runtime/gcs/placement_groups.py): how often the GCS retries placing pending groups
    # (only when the cluster changed since the last try), and how long a ready() poll waits at the GCS.
    placement_group_retry_interval_s: float = 0.1
    placement_group_wait_poll_s: float = 5.0
    # Where the GCS keeps its tables (runtime/gcs/storage.py): "sqlite" (survives a GCS restart) or "memory".
    gcs_storage: str = "sqlite"
    # Security (runtime/comm/auth.py, runtime/comm/transport.py): a frame larger than this is refused (the peer that
    # sent it is disconnected; a sender gets MessageTooLargeError first). Ray's gRPC limit is the same.
    max_message_bytes: int = 512 << 20
    # Drivers and workers ride out a GCS restart: a GCS request unanswered this long (the GCS is down
    # and was not restarted in time) fails with GcsUnavailableError (runtime/gcs/client.py).
    gcs_reconnect_timeout_s: float = 60.0
    # A notebook kernel's local cluster waits this long after the kernel is gone for a restarted
    # kernel to attach again (runtime/cluster/kernel_cluster.py) before it stops; 0: it stops at once.
    kernel_cluster_linger_s: float = 60.0
    # How often a process checks that the process it belongs to is still alive.
    parent_check_interval_s: float = 0.5
    # Grace period for processes to exit on shutdown before they are killed.
    shutdown_grace_s: float = 3.0
    # An actor whose handles are all gone is asked to exit gracefully; one still there after this
    # long (a call that never returns, a thread that blocks the exit) is killed.
    actor_graceful_exit_timeout_s: float = 30.0
    # Worker output lines are flushed to the driver at least this often.
    log_flush_interval_s: float = 0.02
    # Bytes of spilled and fallback objects a node may keep on disk (0: as much as the disk has).
    object_spilling_limit_bytes: int = 0
    # Warn when a task or actor waits this long for resources no node has.
    infeasible_warning: bool = True
    # Out-of-memory prevention (runtime/node/memory_monitor.py). How often each node manager
    # checks memory; 0 turns the monitor off.
    memory_monitor_interval_s: float = 0.25
    # Above this fraction of the node's memory limit, one task or actor worker is killed per check.
    memory_usage_threshold: float = 0.95
    # A task or actor that declared memory= is killed once its worker holds more than the request
    # plus max(this fraction of it, memory_request_margin_bytes).
    memory_request_margin_fraction: float = 0.05
    memory_request_margin_bytes: int = 0
    # The node's memory limit in bytes (0: the cgroup limit, else the machine's memory). When set,
    # usage counts the node's own processes only, so tests can force the threshold.
    node_memory_limit_bytes: int = 0
    # Observability (runtime/observability/task_events.py, runtime/gcs/events.py, juno.util.state).
    # Task state transitions are reported to the GCS; off saves a little per task.
    enable_task_events: bool = True
    # Task attempts the GCS keeps; the oldest are dropped first (and counted).
    task_events_max: int = 10000
    # Processes send their buffered task events this often, or sooner once this many are buffered.
    task_events_report_interval_s: float = 0.1
    task_events_report_batch: int = 1000
    # Actor state changes the GCS keeps (oldest dropped first).
    actor_events_max: int = 10000
    # Record where each ObjectRef was created (`juno memory`, list_objects' call_site); costs a
    # stack walk per put and per task call, so off by default as in Ray.
    record_ref_creation_sites: bool = False

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, overrides: dict[str, Any] | None = None) -> "Config":
        """Defaults, then JUNO_SYSTEM_CONFIG (set by a parent), then JUNO_<NAME>, then overrides."""
        values: dict[str, Any] = {}
        raw = os.environ.get("JUNO_SYSTEM_CONFIG")
        if raw:
            values.update(json.loads(raw))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, field in fields.items():
            env = os.environ.get("JUNO_" + name.upper())
            if env is not None:
                values[name] = _parse(env, field.default)
        for name, value in (overrides or {}).items():
            if name not in fields:
                raise ValueError(
                    f"Unknown _system_config key {name!r}; valid keys: {', '.join(sorted(fields))}"
                )
            values[name] = value
        return cls(**{k: v for k, v in values.items() if k in fields})


def _parse(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    try:
        return json.loads(text)
    except ValueError:
        return text
