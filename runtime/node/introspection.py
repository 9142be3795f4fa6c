"""What a node manager tells the state API about its processes (``juno list workers``,
and the core workers ``juno list objects`` / ``juno memory`` ask for their references)."""
from __future__ import annotations

import time


def exit_type(worker, reason: str) -> str:
    """Ray's WorkerExitType for a worker that is gone."""
    code = worker.proc.returncode
    if worker.kill_reason:
        return "INTENDED_SYSTEM_EXIT" if "idle" in worker.kill_reason else "INTENDED_USER_EXIT"
    return "INTENDED_SYSTEM_EXIT" if code == 0 else "SYSTEM_ERROR"


def worker_row(manager, worker, alive: bool, reason: str | None = None) -> dict:
    lease = manager.leases.get(worker.lease_id) if worker.lease_id is not None else None
    return {
        "worker_id": worker.worker_id, "is_alive": alive, "worker_type": "WORKER",
        "exit_type": None if alive else exit_type(worker, reason or ""),
        "exit_detail": None if alive else reason, "node_id": manager.node_id,
        "ip": manager.node.get("ip", "127.0.0.1"), "pid": worker.pid, "address": worker.address,
        "actor_id": worker.actor_id, "leased": lease is not None,
        "lease_owner": lease.owner if lease is not None else None,
        "end_time": None if alive else time.time(),
    }


def list_workers(manager) -> list[dict]:
    rows = [worker_row(manager, w, True) for w in manager.pool.workers.values() if w.registered]
    rows.extend(manager.exited_workers)
    for address, info in manager.driver_info.items():
        alive = address in manager.drivers
        rows.append({
            "worker_id": info.get("worker_id"), "is_alive": alive, "worker_type": "DRIVER",
            "exit_type": None if alive else "INTENDED_USER_EXIT", "exit_detail": None,
            "node_id": manager.node_id, "ip": manager.node.get("ip", "127.0.0.1"), "pid": info["pid"],
            "address": address, "actor_id": None, "leased": False, "lease_owner": None,
            "job_id": info.get("job_id"), "start_time": info.get("start_time"), "end_time": info.get("end_time"),
        })
    return rows
