"""Starting and stopping the processes of a cluster on this machine.

Used by ``juno.init()`` (a private cluster that dies with the driver) and by
``juno start`` (a daemon cluster that outlives the CLI). Each process reports
readiness with one line on a pipe, so start-up never polls or sleeps.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from juno.config import Config
from juno.store.shm import store_dir_for

# Not "juno": a folder of that name on sys.path would shadow the package (namespace import).
TEMP_ROOT = os.path.join(tempfile.gettempdir(), "juno-clusters")
# Where `juno start` records the address of the cluster it started, for init(address="auto");
# $JUNO_CLUSTER_FILE overrides it (tests use a private file so they never race each other).
CURRENT_CLUSTER_FILE = os.path.join(TEMP_ROOT, "juno_current_cluster")
CLUSTER_FILE_ENV = "JUNO_CLUSTER_FILE"


@dataclass
class ClusterProcesses:
    session_name: str
    session_dir: str
    gcs_address: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)


def new_session() -> tuple[str, str]:
    name = f"s{time.strftime('%m%d%H%M%S')}{secrets.token_hex(3)}"
    session_dir = os.path.join(TEMP_ROOT, name)
    os.makedirs(os.path.join(session_dir, "logs"), exist_ok=True)
    os.makedirs(os.path.join(session_dir, "sock"), exist_ok=True)
    return name, session_dir


def _start(cmd: list[str], *, log_path: str, config: Config, detach: bool, what: str) -> tuple[subprocess.Popen, str]:
    r, w = os.pipe()
    env = os.environ.copy()
    env["JUNO_READY_FD"] = str(w)
    env["JUNO_SYSTEM_CONFIG"] = config.to_env()
    log = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=(w,), start_new_session=True, close_fds=True)
    finally:
        log.close()
        os.close(w)
    try:
        line = _read_line(r, config.process_start_timeout_s, proc, what, log_path)
    finally:
        os.close(r)
    return proc, line


def _read_line(fd: int, timeout: float, proc: subprocess.Popen, what: str, log_path: str) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            proc.wait(5)
            raise TimeoutError(f"The {what} did not start within {timeout:.0f} s; see {log_path}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc.wait(5)
            raise RuntimeError(f"The {what} exited during start-up (code {proc.returncode}); "
                               f"its log {log_path} ends with:\n{_tail(log_path)}")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def start_gcs(session_dir: str, config: Config, *, host: str = "127.0.0.1", port: int = 0,
              owner_pid: int | None = None, detach: bool = False) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "juno.gcs", "--host", host, "--port", str(port), "--session-dir", session_dir]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
    return _start(cmd, log_path=os.path.join(session_dir, "logs", "gcs.log"), config=config,
                  detach=detach, what="GCS")


def start_node(session_name: str, session_dir: str, gcs_address: str, config: Config, *,
               num_cpus: float | None = None, num_gpus: float | None = None, resources: dict | None = None,
               object_store_memory: int | None = None, owner_pid: int | None = None, head: bool = False,
               detach: bool = False) -> tuple[subprocess.Popen, dict]:
    node_id = secrets.token_hex(14)
    store_dir = store_dir_for(session_name, node_id[:8])
    cmd = [sys.executable, "-m", "juno.node", "--node-id", node_id, "--session-dir", session_dir,
           "--gcs-address", gcs_address, "--store-dir", store_dir, "--resources", json.dumps(resources or {})]
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        cmd += ["--num-gpus", str(num_gpus)]
    if object_store_memory:
        cmd += ["--object-store-memory", str(int(object_store_memory))]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
    if head:
        cmd.append("--head")
    try:
        proc, line = _start(cmd, log_path=os.path.join(session_dir, "logs", f"node-{node_id[:8]}.log"),
                            config=config, detach=detach, what="node manager")
    except BaseException:
        # It may have created its store before failing: leave nothing in /dev/shm.
        shutil.rmtree(store_dir, ignore_errors=True)
        raise
    return proc, json.loads(line)


def start_local_cluster(config: Config, *, num_cpus=None, num_gpus=None, resources=None,
                        object_store_memory=None, owner_pid: int | None = None, port: int = 0,
                        host: str = "127.0.0.1", detach: bool = False) -> ClusterProcesses:
    name, session_dir = new_session()
    gcs_proc, gcs_address = start_gcs(session_dir, config, host=host, port=port, owner_pid=owner_pid,
                                      detach=detach)
    cluster = ClusterProcesses(name, session_dir, gcs_address, [gcs_proc])
    try:
        node_proc, node = start_node(name, session_dir, gcs_address, config, num_cpus=num_cpus, num_gpus=num_gpus,
                                     resources=resources, object_store_memory=object_store_memory,
                                     owner_pid=owner_pid, head=True, detach=detach)
    except BaseException:
        stop_processes(cluster.procs, config.shutdown_grace_s)
        shutil.rmtree(session_dir, ignore_errors=True)
        raise
    cluster.procs.append(node_proc)
    cluster.nodes.append(node)
    return cluster


def stop_processes(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL: nothing is left behind."""
    for proc in reversed(procs):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in reversed(procs):
        try:
            proc.wait(max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def current_cluster_file() -> str:
    """The file naming the cluster `juno start` started: $JUNO_CLUSTER_FILE, else the default."""
    return os.environ.get(CLUSTER_FILE_ENV) or CURRENT_CLUSTER_FILE


def write_current_cluster(gcs_address: str) -> None:
    path = current_cluster_file()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(gcs_address)
    os.replace(tmp, path)  # readers never see a half-written address


def read_current_cluster() -> str | None:
    try:
        with open(current_cluster_file()) as f:
            return f.read().strip() or None
    except OSError:
        return None


def clear_current_cluster() -> None:
    try:
        os.unlink(current_cluster_file())
    except OSError:
        pass


def normalize_address(address: str) -> str:
    """'host:port' or 'tcp://host:port' -> 'tcp://host:port'."""
    if address.startswith("tcp://"):
        return address
    if address.startswith("juno://") or address.startswith("ray://"):
        address = address.split("://", 1)[1]
    if ":" not in address:
        raise ValueError(f"Cluster address {address!r} must look like 'host:port'.")
    return "tcp://" + address
