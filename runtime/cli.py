"""The ``juno`` command: start, stop and inspect clusters on this machine.

    juno start --head [--port 6379] [--num-cpus N] [--num-gpus N] [--resources JSON]
                      [--object-store-memory BYTES] [--block]
    juno start --address HOST:PORT [--num-cpus N] ...   add a node to a running cluster
    juno stop [--force] [--address HOST:PORT | --session-dir DIR]
    juno status [--address HOST:PORT]
    juno list|summary|memory|timeline ...   the state API (runtime/state_cli.py)
    juno microbenchmark [args...]
    juno --version

Processes started here are detached (own session, no owner pid): they outlive
the command. ``juno stop`` finds them again by their command lines
(``-m juno.gcs``, ``-m juno.node``, ``-m juno.worker``).
"""
from __future__ import annotations

import argparse
import errno
import glob
import ipaddress
import json
import math
import os
import shutil
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import psutil

from juno import local_cluster
from juno.store.shm import SHM_ROOT

PROG = "juno"
DEFAULT_PORT = 6379
# `juno stop` leaves alone leftover folders younger than this whose processes it did not
# stop: a cluster that is starting right now has its folders before its processes.
LEFTOVER_MIN_AGE_S = 60.0
ROLES = {"juno.gcs": "GCS", "juno.node": "node manager", "juno.worker": "worker"}


class CliError(Exception):
    """A problem the user can fix: printed as one line on stderr, no traceback."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# ============================================================================ entry point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "microbenchmark":  # every other argument belongs to the benchmark
        return _microbenchmark(argv[1:])
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (argparse printed them)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from juno import __version__

    p = argparse.ArgumentParser(
        prog=PROG, description="Start, stop and inspect Juno clusters on this machine.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("start", help="start a cluster (--head) or add a node to one (--address)",
                       description="Start the head of a new cluster (--head), or add a node to a running "
                                   "cluster (--address). The processes run in the background and outlive "
                                   "this command; `juno stop` stops them.")
    role = s.add_mutually_exclusive_group()
    role.add_argument("--head", action="store_true", help="start a new cluster: its GCS and a head node")
    role.add_argument("--address", metavar="HOST:PORT", help="add a node to the cluster at this GCS address")
    s.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"GCS port of a new cluster (default {DEFAULT_PORT}; 0 picks a free one)")
    s.add_argument("--node-ip-address", "--host", dest="host", default="127.0.0.1", metavar="IP",
                   help="address the GCS listens on (loopback only; default 127.0.0.1)")
    s.add_argument("--num-cpus", type=float, default=None, metavar="N", help="CPUs of this node (default: all)")
    s.add_argument("--num-gpus", type=float, default=None, metavar="N", help="GPUs of this node (default: detected)")
    s.add_argument("--resources", default=None, metavar="JSON",
                   help="custom resources of this node as a JSON object, e.g. '{\"accel\": 2}'")
    s.add_argument("--object-store-memory", type=int, default=None, metavar="BYTES",
                   help="capacity of this node's shared-memory object store")
    s.add_argument("--block", action="store_true",
                   help="stay in the foreground until the processes exit; Ctrl-C or SIGTERM stops them")
    s.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="with --address: how long to wait for the cluster to answer (default 10)")
    s.set_defaults(func=cmd_start)

    st = sub.add_parser("stop", help="stop Juno processes on this machine",
                        description="Stop every Juno process (GCS, node managers, workers) of this user on this "
                                    "machine, or only one cluster's with --address / --session-dir; then remove "
                                    "what they left in /dev/shm and the session folders.")
    which = st.add_mutually_exclusive_group()
    which.add_argument("--address", metavar="HOST:PORT", help="stop only the cluster with this GCS address")
    which.add_argument("--session-dir", metavar="DIR", help="stop only the cluster with this session folder")
    st.add_argument("--force", action="store_true", help="SIGKILL at once instead of SIGTERM first")
    st.add_argument("--grace-period", type=float, default=10.0, metavar="S",
                    help="seconds between SIGTERM and SIGKILL (default 10)")
    st.set_defaults(func=cmd_stop)

    ss = sub.add_parser("status", help="show the nodes and resources of a cluster",
                        description="Show a cluster's nodes, resources and jobs. The cluster is the one at "
                                    "--address, else $JUNO_ADDRESS, else the one `juno start --head` started "
                                    "on this machine.")
    ss.add_argument("--address", metavar="HOST:PORT", help="GCS address of the cluster")
    ss.add_argument("--timeout", type=float, default=5.0, metavar="S",
                    help="how long to wait for the cluster to answer (default 5)")
    ss.set_defaults(func=cmd_status)

    from juno import state_cli  # list, summary, memory, timeline

    state_cli.add_parsers(sub, sys.modules[__name__])

    mb = sub.add_parser("microbenchmark", add_help=False,
                        help="Ray's microbenchmark rows measured on Juno (see `juno microbenchmark --help`)")
    mb.add_argument("args", nargs=argparse.REMAINDER)
    mb.set_defaults(func=lambda a: _microbenchmark(a.args))
    return p


def _microbenchmark(argv: list[str]) -> int:
    from juno import microbenchmark

    try:
        return int(microbenchmark.main(argv) or 0)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)


# ============================================================================ start
def cmd_start(args: argparse.Namespace) -> int:
    from juno.config import Config

    if not args.head and not args.address:
        raise CliError("say which: `juno start --head` starts a new cluster, "
                       "`juno start --address HOST:PORT` adds a node to a running one.", 2)
    resources = parse_resources(args.resources)
    _check_count("--num-cpus", args.num_cpus)
    _check_count("--num-gpus", args.num_gpus, whole=True)
    if args.object_store_memory is not None and args.object_store_memory <= 0:
        raise CliError(f"--object-store-memory must be a positive number of bytes, got {args.object_store_memory}.", 2)
    host = _check_host(args.host)
    config = Config.from_env()
    if args.head:
        return _start_head(args, host, resources, config)
    return _start_worker_node(args, resources, config)


def parse_resources(text: str | None) -> dict[str, float]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"--resources must be a JSON object such as '{{\"accel\": 2}}'; "
                       f"{text!r} is not valid JSON ({e.msg} at character {e.pos}).", 2) from None
    if not isinstance(value, dict):
        raise CliError(f"--resources must be a JSON object of name -> quantity such as '{{\"accel\": 2}}', "
                       f"got a JSON {type(value).__name__}.", 2)
    out: dict[str, float] = {}
    for name, qty in value.items():
        if name in ("CPU", "GPU"):
            raise CliError(f"use --num-{name.lower()}s instead of {name!r} in --resources.", 2)
        if isinstance(qty, bool) or not isinstance(qty, (int, float)) or not math.isfinite(qty) or qty < 0:
            raise CliError(f"--resources: the quantity of {name!r} must be a non-negative number, got {qty!r}.", 2)
        out[name] = float(qty)
    return out


def _check_count(flag: str, value: float | None, whole: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise CliError(f"{flag} must be a non-negative number, got {value:g}.", 2)
    if whole and value != int(value):
        raise CliError(f"{flag} must be a whole number, got {value:g}.", 2)


def _check_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise CliError(f"--node-ip-address must be an IPv4 address such as 127.0.0.1, got {host!r}.", 2) from None
    if ip.version != 4 or not ip.is_loopback:
        raise CliError(f"Juno listens on loopback addresses only (127.x.x.x), not {host}: ports reachable from "
                       "other machines need the cluster token, which is not implemented yet, and an "
                       "unauthenticated port would let anyone on the network run code as you.", 2)
    return host


def _check_port_free(host: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, got {port}.", 2)
    if port == 0:
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ does: TIME_WAIT is not busy
    try:
        sock.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise _port_busy(host, port) from None
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror}.") from None
    finally:
        sock.close()


def _port_busy(host: str, port: int) -> CliError:
    return CliError(f"port {port} on {host} is already in use (another Juno or Ray cluster, or another "
                    f"program). Pick another one with --port, e.g. `juno start --head --port {port + 1}`, "
                    "or stop the cluster that holds it (`juno stop`).")


def _start_head(args: argparse.Namespace, host: str, resources: dict, config) -> int:
    _check_port_free(host, args.port)
    try:
        cluster = local_cluster.start_local_cluster(
            config, num_cpus=args.num_cpus, num_gpus=args.num_gpus, resources=resources,
            object_store_memory=args.object_store_memory, owner_pid=None, port=args.port, host=host,
            detach=True)
    except (RuntimeError, TimeoutError, OSError) as e:
        if "Address already in use" in str(e):
            raise _port_busy(host, args.port) from None
        raise CliError(f"could not start the cluster: {e}") from None
    address = cluster.gcs_address.replace("tcp://", "")
    local_cluster.write_current_cluster(address)
    node = cluster.nodes[0]
    print(f"Started a Juno cluster: GCS at {address}, head node {node['node_id'][:12]} "
          f"({format_resources(node['resources'])}).")
    print(f"Session folder and logs: {cluster.session_dir}")
    print()
    print("To connect to this cluster from Python on this machine:")
    print("    import juno")
    print('    juno.init(address="auto")')
    print(f'or  juno.init(address="{address}")   (or set JUNO_ADDRESS={address})')
    print("To add another node on this machine:")
    print(f"    juno start --address {address}")
    print("To see the cluster:")
    print("    juno status")
    print("To stop it:")
    print(f"    juno stop            (every Juno process on this machine; only this cluster: "
          f"juno stop --address {address})")
    sys.stdout.flush()
    if not args.block:
        return 0

    def stop() -> None:
        _stop_session(cluster.session_dir, grace_s=_stop_grace(config), force=False, quiet=True)
        if local_cluster.read_current_cluster() == address:
            local_cluster.clear_current_cluster()

    return _block([("GCS", cluster.procs[0]), ("head node manager", cluster.procs[1])], stop)


def _start_worker_node(args: argparse.Namespace, resources: dict, config) -> int:
    from juno.cluster_probe import gcs_request

    try:
        gcs_address = local_cluster.normalize_address(args.address)
    except ValueError as e:
        raise CliError(str(e), 2) from None
    shown = gcs_address.replace("tcp://", "")
    try:
        info = gcs_request(gcs_address, "cluster_info", timeout=args.timeout)
    except TimeoutError:
        raise CliError(f"no Juno cluster answered at {shown} within {args.timeout:g} s; is it running? "
                       "(`juno start --head` starts one)") from None
    session_dir = info["session_dir"]
    if not os.path.isdir(session_dir):
        raise CliError(f"the cluster at {shown} runs on another machine (its session folder {session_dir} is "
                       "not here); nodes on other machines are not supported yet.")
    try:
        proc, node = local_cluster.start_node(
            os.path.basename(session_dir), session_dir, gcs_address, config, num_cpus=args.num_cpus,
            num_gpus=args.num_gpus, resources=resources, object_store_memory=args.object_store_memory,
            owner_pid=None, head=False, detach=True)
    except (RuntimeError, TimeoutError, OSError) as e:
        raise CliError(f"could not start the node: {e}") from None
    print(f"Added node {node['node_id'][:12]} ({format_resources(node['resources'])}) "
          f"to the Juno cluster at {shown}.")
    print("`juno status` shows the cluster; `juno stop` stops it.")
    sys.stdout.flush()
    if not args.block:
        return 0

    def stop() -> None:
        targets = [p for p in scan_processes() if p.proc.pid == proc.pid
                   or (p.role == "worker" and p.parent_pid == proc.pid)]
        terminate(targets, _stop_grace(config), force=False)
        shutil.rmtree(node["store_dir"], ignore_errors=True)

    return _block([("node manager", proc)], stop)


def _stop_grace(config) -> float:
    return config.shutdown_grace_s + 5.0  # a node manager itself waits shutdown_grace_s for its workers


def _block(procs: list[tuple[str, Any]], stop: Callable[[], None]) -> int:
    """Stay until a process exits or a signal comes; then stop them all."""
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    print("Running in the foreground (--block): Ctrl-C stops the cluster.", flush=True)
    died: list[str] = []
    while not received and not died:
        died = [f"the {name} (pid {p.pid}) exited with code {p.returncode}" for name, p in procs
                if p.poll() is not None]
        if not died:
            time.sleep(0.2)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    stop()
    for _, p in procs:
        try:
            p.wait(5)
        except Exception:  # noqa: BLE001 - reaped or gone
            pass
    if died:
        print(f"{PROG}: error: {'; '.join(died)}; stopped the rest.", file=sys.stderr)
        return 1
    print("Stopped.", flush=True)
    return 0


# ============================================================================ stop
@dataclass
class JunoProcess:
    proc: psutil.Process
    role: str
    cmdline: tuple[str, ...] = ()
    parent_pid: int | None = None

    def arg(self, name: str) -> str | None:
        """The value after ``name`` on the command line."""
        cmd = self.cmdline
        for i in range(len(cmd) - 1):
            if cmd[i] == name:
                return cmd[i + 1]
        return None

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
    for p in psutil.process_iter(["cmdline", "uids", "ppid", "status"]):
        try:
            info = p.info
            uids = info.get("uids")
            if p.pid == me or uids is None or uids.real != uid or info.get("status") == psutil.STATUS_ZOMBIE:
                continue
            cmdline = info.get("cmdline") or []
            role = _role(cmdline)
            if role:
                found.append(JunoProcess(p, role, tuple(cmdline), info.get("ppid")))
        except psutil.Error:
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def terminate(targets: list[JunoProcess], grace_s: float, force: bool) -> list[JunoProcess]:
    """SIGTERM (or SIGKILL with force), SIGKILL what is left after ``grace_s``; returns the survivors."""
    def send(items: Iterable[JunoProcess], sig: int) -> None:
        for t in items:
            try:
                t.proc.send_signal(sig)
            except psutil.Error:
                pass

    def wait(items: list[JunoProcess], timeout: float) -> list[JunoProcess]:
        deadline = time.monotonic() + timeout
        left = [t for t in items if _alive(t.proc)]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [t for t in left if _alive(t.proc)]
        return left

    if not targets:
        return []
    if force:
        send(targets, signal.SIGKILL)
        return wait(targets, 5.0)
    send(targets, signal.SIGTERM)
    left = wait(targets, grace_s)
    if left:
        send(left, signal.SIGKILL)
        left = wait(left, 5.0)
    return left


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
        counts[p.role] = counts.get(p.role, 0) + 1
    parts = []
    for role in ROLES.values():
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
        code = _stop_session(args.session_dir, grace_s=args.grace_period, force=args.force)
        _clear_current_if(None)
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
    return _stop_all(args.grace_period, args.force)


def _session_of_address(address: str) -> tuple[str | None, str]:
    """The session folder of the cluster at ``address``: asked of its GCS, else found by the GCS's port."""
    from juno.cluster_probe import gcs_request

    try:
        gcs_address = local_cluster.normalize_address(address)
    except ValueError as e:
        raise CliError(str(e), 2) from None
    shown = gcs_address.replace("tcp://", "")
    try:
        return gcs_request(gcs_address, "cluster_info", timeout=3.0)["session_dir"], shown
    except (TimeoutError, KeyError, TypeError):
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


def _stop_all(grace_s: float, force: bool) -> int:
    targets = scan_processes()
    killed_sessions = _session_dirs_of(targets)
    survivors = terminate(targets, grace_s, force)
    local_cluster.clear_current_cluster()
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
    if targets:
        print(f"Stopped {_summary([t for t in targets if t not in survivors])}.")
    else:
        print("No Juno processes were running.")
    if n_stores or n_sessions:
        print(f"Removed {n_stores} shared-memory store folder(s) and {n_sessions} session folder(s).")
    return _report_survivors(survivors)


# ============================================================================ status
def resolve_address(flag: str | None) -> tuple[str, str]:
    """(address, where it came from): --address, else $JUNO_ADDRESS / $RAY_ADDRESS, else the
    cluster `juno start --head` recorded."""
    for address, source in ((flag, "--address"), (os.environ.get("JUNO_ADDRESS"), "JUNO_ADDRESS"),
                            (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS")):
        if address and address not in ("auto", "local"):
            return address, source
    recorded = local_cluster.read_current_cluster()
    if recorded:
        return recorded, local_cluster.current_cluster_file()
    raise CliError("no running Juno cluster found: no --address given, JUNO_ADDRESS is not set, and no cluster "
                   f"was started with `juno start --head` on this machine (nothing in "
                   f"{local_cluster.current_cluster_file()}).")


def cmd_status(args: argparse.Namespace) -> int:
    from juno.cluster_probe import GcsProbe

    address, source = resolve_address(args.address)
    try:
        gcs_address = local_cluster.normalize_address(address)
    except ValueError as e:
        raise CliError(f"{e} (from {source})", 2) from None
    shown = gcs_address.replace("tcp://", "")
    try:
        with GcsProbe(gcs_address) as probe:
            info = probe.call_gcs("cluster_info", timeout=args.timeout)
            nodes = probe.call_gcs("get_nodes", timeout=args.timeout)
            jobs = probe.call_gcs("get_jobs", timeout=args.timeout)
    except TimeoutError:
        hint = ("`juno start --head` starts one" if source == "--address" else
                f"the address came from {source}; `juno start --head` starts a cluster")
        raise CliError(f"the Juno cluster at {shown} did not answer within {args.timeout:g} s; is it running? "
                       f"({hint})") from None
    print(render_status(shown, info, nodes, jobs))
    return 0


def _num(v: float) -> str:
    text = f"{v:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _value(name: str, v: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{v / 2**30:.2f} GiB"
    return _num(v)


def _resource_names(resources: dict) -> list[str]:
    first = ["CPU", "GPU", "memory", "object_store_memory"]
    names = [n for n in first if n in resources]
    names += sorted(n for n in resources if n not in first and not n.startswith("node:"))
    return names


def format_resources(resources: dict) -> str:
    return ", ".join(f"{n} {_value(n, resources[n])}" for n in _resource_names(resources))


def _uptime(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def render_status(address: str, info: dict, nodes: list[dict], jobs: list[dict]) -> str:
    alive = [n for n in nodes if n.get("alive")]
    dead = len(nodes) - len(alive)
    lines = [f"Juno cluster at {address}",
             f"  session: {info.get('session_dir')}   up {_uptime(time.time() - info.get('start_time', time.time()))}",
             "",
             f"Nodes: {len(alive)} alive" + (f", {dead} dead" if dead else ""),
             ]
    ordered = sorted(nodes, key=lambda n: (not n.get("alive"), not n.get("is_head"), n.get("start_time", 0)))
    for n in ordered:
        flags = ["alive" if n.get("alive") else "dead"] + (["head"] if n.get("is_head") else [])
        lines.append(f"  node {n['node_id']}  {' '.join(flags)}  {n.get('ip', '127.0.0.1')}  "
                     f"pid {n.get('pid', '?')}  {n.get('address', '')}")
        if n.get("alive"):
            total, avail = n.get("resources", {}), n.get("available", {})
            parts = [f"{name} {_value(name, avail.get(name, 0.0))} / {_value(name, total[name])}"
                     for name in _resource_names(total)]
            lines.append("    available / total: " + ", ".join(parts))
    totals: dict[str, float] = {}
    avails: dict[str, float] = {}
    for n in alive:
        for k, v in n.get("resources", {}).items():
            totals[k] = totals.get(k, 0.0) + v
        for k, v in n.get("available", {}).items():
            avails[k] = avails.get(k, 0.0) + v
    lines += ["", "Cluster total (available / total):"]
    for name in _resource_names(totals):
        lines.append(f"  {name:<20} {_value(name, avails.get(name, 0.0))} / {_value(name, totals[name])}")
    running = sum(1 for j in jobs if not j.get("is_dead"))
    lines += ["", f"Jobs: {running} running, {len(jobs) - running} finished"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
