"""Starting the dashboard process of a cluster, and finding the one a cluster registered.

``juno start --head`` starts it and waits for its URL (the CLI prints it);
``juno.init()`` starts it without waiting (its URL is known up front: the port is
picked here), so a notebook's first cell does not pay for a second Python
process's start-up. Either way it is ``python -m juno.dashboard`` with the
cluster's session folder on its command line, which is how ``juno stop`` finds it.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

from juno.cluster.local_cluster import port_free, read_ready_line, spawn_process, stop_processes

logger = logging.getLogger("juno")

DEFAULT_PORT = 8265
KV_NAMESPACE = "dashboard"
KV_KEY = b"url"
START_TIMEOUT_S = 30.0


class DashboardStartError(RuntimeError):
    """The dashboard could not start; the message says why (from its log) and what to do."""


@dataclass
class DashboardProcess:
    proc: subprocess.Popen
    url: str
    log_path: str
    moved_from: int | None = None  # DEFAULT_PORT, when it was taken and no port was asked for


def busy_port_message(host: str, port: int) -> str:
    return (f"the dashboard port {port} on {host} is already in use (another dashboard, a Ray dashboard, or "
            "another program). Pick another port, or leave the port out to use any free one.")


def pick_port(host: str, port: int | None) -> tuple[int, bool]:
    """(the port to start the dashboard on, whether the process may move to another one if it is
    taken by then). ``port`` given: it, which must be free (DashboardStartError); else
    DEFAULT_PORT, or a free one when that is taken."""
    bind_host = "0.0.0.0" if host == "0.0.0.0" else host
    if port is not None:
        if not 0 < port < 65536:
            raise DashboardStartError(f"the dashboard port must be between 1 and 65535, got {port}.")
        if not port_free(bind_host, port):
            raise DashboardStartError(busy_port_message(host, port))
        return port, False
    if port_free(bind_host, DEFAULT_PORT):
        return DEFAULT_PORT, True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((bind_host, 0))
        return s.getsockname()[1], True


def command(gcs_address: str, *, host: str, port: int | None, session_dir: str | None, any_port: bool = False,
            gcs_pid: int | None = None, owner_pid: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "juno.dashboard", "--gcs-address", gcs_address.replace("tcp://", ""),
           "--host", host]
    if port is not None:
        cmd += ["--port", str(port)]
    if any_port:
        cmd.append("--any-port-if-busy")
    if session_dir:
        cmd += ["--session-dir", session_dir]
    if gcs_pid:
        cmd += ["--gcs-pid", str(gcs_pid)]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
    return cmd


def start(gcs_address: str, session_dir: str, token: str | None, *, host: str = "127.0.0.1",
          port: int | None = None, gcs_pid: int | None = None, owner_pid: int | None = None,
          wait: bool = True, timeout: float = START_TIMEOUT_S) -> DashboardProcess:
    """Start the dashboard of the cluster at ``gcs_address``, its log in the session's logs/.

    ``wait``: return once it serves (its URL is the one it reports). Otherwise return at once
    with the URL it will have (the port is picked here); a thread logs a warning if it fails."""
    chosen, any_port = pick_port(host, port)
    cmd = command(gcs_address, host=host, port=chosen, session_dir=session_dir, any_port=any_port,
                  gcs_pid=gcs_pid, owner_pid=owner_pid)
    log_path = os.path.join(session_dir, "logs", "dashboard.log")
    proc, r = spawn_process(cmd, log_path=log_path, token=token)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "localhost") else host
    dashboard = DashboardProcess(proc, f"http://{shown_host}:{chosen}", log_path,
                                 moved_from=DEFAULT_PORT if port is None and chosen != DEFAULT_PORT else None)
    if wait:
        try:
            dashboard.url = _read_ready(r, proc, timeout, log_path)
        finally:
            os.close(r)
        return dashboard

    def watch() -> None:
        try:
            url = _read_ready(r, proc, timeout, log_path)
            if url != dashboard.url:
                dashboard.url = url
                logger.info("the dashboard moved to %s (its port was taken)", url)
        except DashboardStartError as e:
            if proc.poll() is None or proc.returncode not in (-15, -9):  # not stopped by shutdown()
                logger.warning("%s", e)
        finally:
            os.close(r)

    threading.Thread(target=watch, name="juno-dashboard-start", daemon=True).start()
    return dashboard


def _read_ready(fd: int, proc: subprocess.Popen, timeout: float, log_path: str) -> str:
    try:
        return read_ready_line(fd, timeout, proc, "dashboard", log_path)
    except (TimeoutError, RuntimeError) as e:
        raise DashboardStartError(str(e)) from None


def stop(dashboard: DashboardProcess | None, grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``: the dashboard leaves nothing behind."""
    stop_processes(processes(dashboard), grace_s)


def processes(dashboard: DashboardProcess | None) -> list[subprocess.Popen]:
    """The dashboard's process as a list, to stop it together with its cluster's."""
    return [dashboard.proc] if dashboard is not None else []


def registered_url(call_gcs) -> str | None:
    """The URL the cluster's dashboard registered, asking with ``call_gcs(method, *args)``; None if
    there is none or the GCS cannot say."""
    try:
        value = call_gcs("kv_get", KV_NAMESPACE, KV_KEY)
    except Exception:  # noqa: BLE001 - an old GCS, a timeout: no dashboard to show
        return None
    return value.decode() if isinstance(value, bytes) and value else None


# ============================================================================ juno.init()
def check_init_args(include_dashboard, dashboard_host, dashboard_port) -> None:
    """juno.init()'s dashboard arguments, checked before a cluster starts (a port asked for must be free)."""
    if include_dashboard not in (None, True, False):
        raise TypeError(f"init(include_dashboard=...) must be None, True or False, got {include_dashboard!r}")
    if include_dashboard is False:
        return
    if dashboard_port is not None:
        if isinstance(dashboard_port, bool) or not isinstance(dashboard_port, int):
            raise TypeError(f"init(dashboard_port=...) must be a port number, got {dashboard_port!r}")
        try:
            pick_port(dashboard_host or "127.0.0.1", dashboard_port)
        except DashboardStartError as e:
            raise ValueError(f"init(dashboard_port={dashboard_port}): {e}") from None


def start_for_init(cluster, include_dashboard, dashboard_host, dashboard_port) -> DashboardProcess | None:
    """The dashboard of a cluster juno.init() just started, started in the background (None if not
    wanted). It belongs to the driver (``--owner-pid``: `juno stop` leaves it alone) and follows the
    GCS (a notebook kernel's cluster outlives the kernel; so does its dashboard)."""
    if include_dashboard is False:
        return None
    try:
        dashboard = start(cluster.gcs_address, cluster.session_dir, cluster.token,
                          host=dashboard_host or "127.0.0.1", port=dashboard_port, gcs_pid=cluster.procs[0].pid,
                          owner_pid=os.getpid(), wait=False)
    except (DashboardStartError, OSError) as e:
        logger.warning("the dashboard did not start: %s", e)
        return None
    if dashboard.moved_from:
        logger.info("port %d is in use; the dashboard listens at %s instead", dashboard.moved_from, dashboard.url)
    return dashboard


def context_url(url: str | None) -> str | None:
    """The form Ray's ``RayContext.dashboard_url`` has: ``host:port``, no scheme."""
    return url.split("://", 1)[-1] if url else None
