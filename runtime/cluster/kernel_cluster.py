"""A notebook kernel's local cluster outlives a kernel restart.

``juno.init()`` in a Jupyter kernel starts a local cluster as anywhere else, but
records it under the kernel's id (the connection file Jupyter keeps across
restarts), and the cluster's GCS, rather than stopping the moment the kernel
process is gone, waits ``kernel_cluster_linger_s`` for a kernel to claim it.
A restarted kernel's ``juno.init()`` finds the record and attaches: detached
actors, named actors and whatever else lives in the cluster are still there (the
old kernel's job ended with it, so its non-detached actors and objects are gone,
as after any driver exit). A kernel shut down for good leaves a cluster that stops
by itself once the linger time is over. ``juno.shutdown()`` stops it at once.
"""
from __future__ import annotations

import json
import os
import sys

from juno.cluster.local_cluster import TEMP_ROOT
from juno.cluster.processes import pid_alive, terminate

RECORDS = os.path.join(TEMP_ROOT, "kernels")


def kernel_key() -> str | None:
    """This kernel's id (from its connection file), or None outside a Jupyter kernel."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # noqa: BLE001 - not a kernel process after all
        return None
    if not name.endswith(".json"):
        return None
    key = name[: -len(".json")]
    return key if key.replace("-", "").replace("_", "").isalnum() else None


def _path(key: str) -> str:
    return os.path.join(RECORDS, f"{key}.json")


def read(key: str) -> dict | None:
    try:
        with open(_path(key)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("gcs_address") else None


def write(key: str, cluster, extra_pids: list[int] = ()) -> dict:
    """Record ``cluster`` (a local_cluster.ClusterProcesses) as this kernel's and return the record;
    drop records of clusters that are gone (their kernels never came back). ``extra_pids``: more
    processes of the cluster (its dashboard) that a restarted kernel's shutdown must stop too."""
    os.makedirs(RECORDS, mode=0o700, exist_ok=True)
    _prune()
    record = {"gcs_address": cluster.gcs_address, "session_dir": cluster.session_dir,
              "cluster_pids": [p.pid for p in cluster.procs],
              "pids": [p.pid for p in cluster.procs] + list(extra_pids),
              "store_dirs": [n["store_dir"] for n in cluster.nodes]}
    tmp = f"{_path(key)}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, _path(key))
    return record


def cluster_alive(record: dict | None) -> bool:
    """Whether the recorded cluster's own processes (GCS, node managers) all still run. Its
    dashboard is not asked: a dashboard that exited (it gives up on a GCS that does not answer
    for a while, which a loaded machine can cause) must not cost the kernel its cluster."""
    pids = record.get("cluster_pids") if record else None
    return bool(pids) and all(isinstance(pid, int) and pid_alive(pid) for pid in pids)


def _prune() -> None:
    try:
        names = os.listdir(RECORDS)
    except OSError:
        return
    for name in names:
        if name.endswith(".json"):
            record = read(name[: -len(".json")])
            pids = record.get("pids", []) if record else []
            if not any(isinstance(pid, int) and pid_alive(pid) for pid in pids):
                forget(name[: -len(".json")])


def forget(key: str) -> None:
    try:
        os.unlink(_path(key))
    except OSError:
        pass


def stop(record: dict, grace_s: float) -> None:
    """Stop a recorded cluster this process attached to (it has no Popen handles for it)."""
    import shutil

    import psutil

    procs = []
    for pid in reversed([pid for pid in record.get("pids", []) if isinstance(pid, int)]):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass  # already gone
    terminate(procs, grace_s)
    for path in [record.get("session_dir"), *record.get("store_dirs", [])]:
        if isinstance(path, str) and path:
            shutil.rmtree(path, ignore_errors=True)

