"""``juno stop``: find the Juno processes of this machine by their command lines and stop them.

A bare ``juno stop`` stops the clusters `juno start` started with this temp folder (their session
folders are under TEMP_ROOT, which follows $TMPDIR), never one started with another: a test run
or a second user session beside this one keeps its clusters.

A GCS, node manager or worker is recognised by ``-m juno.gcs`` / ``-m juno.node`` /
``-m juno.worker`` / ``-m juno.dashboard`` on its command line, and its cluster by ``--session-dir`` (workers
carry theirs in their environment). Stopping is SIGTERM, a grace period, then SIGKILL;
then the stores in /dev/shm and the session folders of what was stopped are removed.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import Iterable

import psutil

from juno.cluster import local_cluster
from juno.cluster import processes
from juno.comm.auth import ClusterAuthError
from juno.cli.commands import PROG, CliError
from juno.store.shm import SHM_ROOT

# `juno stop` leaves alone leftover folders younger than this whose processes it did not
# stop: a cluster that is starting right now has its folders before its processes.
LEFTOVER_MIN_AGE_S = 60.0
ROLES = {"juno.gcs": "GCS", "juno.node": "node manager", "juno.worker": "worker", "juno.dashboard": "dashboard"}


@dataclass
class JunoProcess:
    proc: psutil.Process
    role: str
    cmdline: tuple[str, ...] = ()
    parent_pid: int | None = None
    name: str = ""  # the process name (Linux's comm), read when found: a stopped process has none

    def arg(self, name: str) -> str | None:
        """The value after ``name`` on the command line."""
        cmd = self.cmdline
        for i in range(len(cmd) - 1):
            if cmd[i] == name:
                return cmd[i + 1]
        return None

    @property
    def label(self) -> str:
        """The role as `juno stop` reports it: a node's worker fork server counts apart from its workers
        (they share its command line, not its process name)."""
        if self.role == "worker" and self.name == processes.FORK_SERVER_PROCESS_NAME:
            return "worker fork server"
        return self.role

    def worker_session_dir(self) -> str | None:
        try:
            info = self.proc.environ().get("JUNO_WORKER_INFO")
            return json.loads(info).get("session_dir") if info else None
        except (psutil.Error, ValueError, AttributeError):
            return None


def _role(cmdline: list[str]) -> str | None:
    for i in range(len(cmdline) - 1):
        if cmdline[i] == "-m" and cmdline[i + 1] in ROLES:
            return ROLES[cmdline[i + 1]]
    return None


def scan_processes() -> list[JunoProcess]:
    """Every live Juno runtime process of this user on this machine."""
    found = []
    uid, me = os.getuid(), os.getpid()
    for p in psutil.process_iter(["cmdline", "uids", "ppid", "status", "name"]):
        try:
            info = p.info
            uids = info.get("uids")
            if p.pid == me or uids is None or uids.real != uid or info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            cmdline = info.get("cmdline") or []
            role = _role(cmdline)
            if role:
                found.append(JunoProcess(p, role, tuple(cmdline), info.get("ppid"), info.get("name") or ""))
        except psutil.Error:
            continue
    return found


def terminate(targets: list[JunoProcess], grace_s: float, force: bool) -> list[JunoProcess]:
    """SIGTERM (or SIGKILL with force), SIGKILL what is left after ``grace_s``; returns the survivors."""
    survivors = processes.terminate([t.proc for t in targets], grace_s, force)
    return [t for t in targets if t.proc in survivors]


def _norm(path: str | None) -> str | None:
    return os.path.normpath(path) if path else None


def session_processes(session_dir: str, procs: list[JunoProcess] | None = None) -> list[JunoProcess]:
    """The GCS, node managers and workers of the cluster whose session folder is ``session_dir``."""
    session_dir = _norm(session_dir)
    procs = scan_processes() if procs is None else procs
    owners = {p.proc.pid for p in procs if p.role != "worker" and _norm(p.arg("--session-dir")) == session_dir}
    out = []
    for p in procs:
        if p.proc.pid in owners:
            out.append(p)
        elif p.role == "worker" and (p.parent_pid in owners or _norm(p.worker_session_dir()) == session_dir):
            out.append(p)
    return out


def _summary(stopped: list[JunoProcess]) -> str:
    counts: dict[str, int] = {}
    for p in stopped:
        counts[p.label] = counts.get(p.label, 0) + 1
    parts = []
    for role in (*ROLES.values(), "worker fork server"):
        n = counts.get(role, 0)
        if n:
            parts.append(f"{n} {role}{'' if n == 1 or role == 'GCS' else 's'}")
    return ", ".join(parts)


def _session_dirs_of(procs: list[JunoProcess]) -> set[str]:
    dirs = set()
    for p in procs:
        d = _norm(p.arg("--session-dir")) or _norm(p.worker_session_dir())
        if d:
            dirs.add(d)
    return dirs


def _store_dirs_of_session(session_dir: str) -> list[str]:
    return glob.glob(os.path.join(SHM_ROOT, f"juno-{os.path.basename(session_dir)}-*"))


def _remove(paths: Iterable[str]) -> int:
    n = 0
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            n += not os.path.exists(path)
    return n


def _stop_session(session_dir: str, *, grace_s: float, force: bool, quiet: bool = False) -> int:
    """Stop one cluster's processes and remove its folders."""
    session_dir = _norm(session_dir) or ""
    targets = session_processes(session_dir)
    survivors = terminate(targets, grace_s, force)
    stores = _remove(_store_dirs_of_session(session_dir)) if not survivors else 0
    ours = session_dir.startswith(local_cluster.TEMP_ROOT + os.sep)  # never remove a folder outside TEMP_ROOT
    sessions = _remove([session_dir]) if not survivors and ours else 0
    if quiet:
        return 1 if survivors else 0
    name = os.path.basename(session_dir)
    if targets:
        print(f"Stopped {_summary([t for t in targets if t not in survivors])} of cluster {name}.")
    else:
        print(f"No Juno processes of cluster {name} were running.")
    if stores or sessions:
        print(f"Removed {stores} shared-memory store folder(s) and {sessions} session folder(s).")
    return _report_survivors(survivors)


def _report_survivors(survivors: list[JunoProcess]) -> int:
    if not survivors:
        return 0
    pids = ", ".join(str(s.proc.pid) for s in survivors)
    print(f"{PROG}: error: could not stop {len(survivors)} process(es) (pid {pids}).", file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    if args.grace_period < 0:
        raise CliError("--grace-period must be a non-negative number of seconds.", 2)
    if args.session_dir:
        # The GCS's address, from its command line, before it goes: another process may take its
        # port soon after, so "is anything listening there" cannot tell afterwards.
        gcs = [p for p in session_processes(_norm(args.session_dir) or "") if p.role == "GCS"]
        addresses = [f"{p.arg('--host')}:{p.arg('--port')}" for p in gcs if p.arg("--port") not in (None, "0")]
        code = _stop_session(args.session_dir, grace_s=args.grace_period, force=args.force)
        for address in addresses or [None]:
            _clear_current_if(address)
        return code
    if args.address:
        session_dir, address = _session_of_address(args.address)
        if session_dir is None:
            print(f"No Juno cluster is running at {address}; nothing to stop.")
            _clear_current_if(address)
            return 0
        code = _stop_session(session_dir, grace_s=args.grace_period, force=args.force)
        _clear_current_if(address)
        return code
    return _stop_all(args.grace_period, args.force, everything=args.all)


def _session_of_address(address: str) -> tuple[str | None, str]:
    """The session folder of the cluster at ``address``: asked of its GCS, else found by the GCS's port."""
    from juno.cluster.probe import gcs_request

    try:
        gcs_address = local_cluster.normalize_address(address)
    except ValueError as e:
        raise CliError(str(e), 2) from None
    shown = gcs_address.replace("tcp://", "")
    try:
        return gcs_request(gcs_address, "cluster_info", timeout=3.0)["session_dir"], shown
    except (TimeoutError, KeyError, TypeError, ClusterAuthError):  # no token here: find it by port
        pass
    host, _, port = shown.rpartition(":")
    for p in scan_processes():  # the GCS is alive but does not answer (stuck): find it by its port
        if p.role == "GCS" and p.arg("--port") == port and p.arg("--host") in (host, "localhost"):
            return p.arg("--session-dir"), shown
    return None, shown


def _clear_current_if(address: str | None) -> None:
    """Forget the recorded cluster if it is ``address``, or (address None) if nothing listens there any more."""
    current = local_cluster.read_current_cluster()
    if current is None:
        return
    current = current.replace("tcp://", "")
    if address is not None:
        if current == address:
            local_cluster.clear_current_cluster()
    elif not _listening(current):
        local_cluster.clear_current_cluster()


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def started_by_juno_start(procs: list[JunoProcess], temp_root: str) -> list[JunoProcess]:
    """The processes `juno start` started with this temp folder (a GCS or node manager with no owner
    pid, whose session folder is under ``temp_root``: the private clusters of juno.init() and
    cluster_utils have an owner, and a cluster started with another $TMPDIR, such as a test run's,
    is someone else's) and the workers of those node managers."""
    roots = [p for p in juno_start_roots(procs) if _under(p.arg("--session-dir"), temp_root)]
    root_pids = {p.proc.pid for p in roots}
    root_sessions = {_norm(p.arg("--session-dir")) for p in roots}
    live_pids = {p.proc.pid for p in procs}
    workers = [p for p in procs if p.role == "worker" and (
        p.parent_pid in root_pids
        # orphaned by a node manager that is gone: still part of this cluster
        or (p.parent_pid not in live_pids and _norm(p.worker_session_dir()) in root_sessions))]
    return roots + workers


def juno_start_roots(procs: list[JunoProcess]) -> list[JunoProcess]:
    """The GCSes and node managers with no owner pid: what `juno start` started, with any temp folder."""
    return [p for p in procs if p.role != "worker" and p.arg("--owner-pid") is None]


def _under(path: str | None, root: str) -> bool:
    return bool(path) and (_norm(path) + os.sep).startswith(_norm(root) + os.sep)


def _stop_all(grace_s: float, force: bool, everything: bool = False) -> int:
    everyone = scan_processes()
    targets = everyone if everything else started_by_juno_start(everyone, local_cluster.TEMP_ROOT)
    killed_sessions = _session_dirs_of(targets)
    others = set() if everything else _session_dirs_of(juno_start_roots(everyone)) - killed_sessions
    survivors = terminate(targets, grace_s, force)
    _clear_current_if(None)  # the recorded cluster, if it was one of these (or is gone anyway)
    # Leftovers: folders of the clusters just stopped, and older ones nobody uses any more.
    in_use = _session_dirs_of(scan_processes())
    in_use_names = {os.path.basename(d) for d in in_use}
    uid, now = os.getuid(), time.time()

    def removable(path: str, name: str, ours: bool) -> bool:
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or name in in_use_names:
            return False
        return ours or now - st.st_mtime > LEFTOVER_MIN_AGE_S

    killed_names = {os.path.basename(d) for d in killed_sessions}
    stores = []
    for path in glob.glob(os.path.join(SHM_ROOT, "juno-*")):
        name = os.path.basename(path)[len("juno-"):].rsplit("-", 1)[0]
        if removable(path, name, name in killed_names):
            stores.append(path)
    sessions = []
    if os.path.isdir(local_cluster.TEMP_ROOT):
        for name in os.listdir(local_cluster.TEMP_ROOT):
            path = os.path.join(local_cluster.TEMP_ROOT, name)
            if removable(path, name, name in killed_names):
                sessions.append(path)
    n_stores, n_sessions = _remove(stores), _remove(sessions)
    n_stores += _remove_node_leftovers([t for t in targets if t not in survivors])
    if targets:
        print(f"Stopped {_summary([t for t in targets if t not in survivors])}.")
    else:
        print("No Juno processes were running.")
    if others:
        print(f"Left alone {len(others)} cluster(s) that `juno start` started with another temp folder "
              f"(not under {local_cluster.TEMP_ROOT}: another $TMPDIR, a test run's); "
              "`juno stop --address HOST:PORT` or `juno stop --all` stops them.")
    if n_stores or n_sessions:
        print(f"Removed {n_stores} shared-memory store folder(s) and {n_sessions} session folder(s).")
    return _report_survivors(survivors)


def _remove_node_leftovers(stopped: list[JunoProcess]) -> int:
    """The store folder and socket of each stopped node manager, where its cluster lives on
    (a node `juno start --address` added to a cluster that juno.init() started, killed with --force)."""
    n = 0
    for p in stopped:
        if p.role != "node manager":
            continue
        store_dir, session_dir, node_id = p.arg("--store-dir"), p.arg("--session-dir"), p.arg("--node-id")
        if store_dir and store_dir.startswith(os.path.join(SHM_ROOT, "juno-")) and os.path.isdir(store_dir):
            n += _remove([store_dir])
        if session_dir and node_id:
            try:
                os.unlink(os.path.join(session_dir, "sock", f"nm-{node_id[:12]}"))
            except OSError:
                pass
    return n
