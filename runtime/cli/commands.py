"""The ``juno`` command: start, stop and inspect clusters on this machine.

    juno start --head [--port 6379] [--num-cpus N] [--num-gpus N] [--resources JSON]
                      [--object-store-memory BYTES] [--block]
                      [--include-dashboard true|false] [--dashboard-host IP] [--dashboard-port PORT]
    juno start --address HOST:PORT [--num-cpus N] ...   add a node to a running cluster
    juno token [--address HOST:PORT]                    the cluster token, to join from elsewhere
    juno stop [--force] [--address HOST:PORT | --session-dir DIR | --all]
    juno status [--address HOST:PORT]
    juno dashboard [--address HOST:PORT] [--host IP] [--port PORT]   (runtime/cli/dashboard.py)
    juno list|summary|memory|timeline ...   the state API (runtime/cli/state.py)
    juno serve status|deploy|shutdown ...   Serve applications (runtime/cli/serve.py)
    juno microbenchmark [args...]
    juno --version

Processes started here are detached (own session, no owner pid): they outlive
the command. ``juno stop`` finds them again by their command lines
(``-m juno.gcs``, ``-m juno.node``, ``-m juno.worker``, ``-m juno.dashboard``).
With ``--block`` the command owns them instead: they die with it, however it dies
(docs/cluster.md, "Fate sharing").
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from typing import Any, Callable


from juno.comm import auth
from juno.observability import cluster_status
from juno.cluster import local_cluster
from juno.comm.auth import ClusterAuthError
from juno.observability.cluster_status import format_resources

PROG = "juno"
DEFAULT_PORT = 6379


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
    except ClusterAuthError as e:  # no token, or one the cluster refused: the message says what to do
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
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
    s.add_argument("--node-ip-address", default=None, metavar="IP",
                   help="this node's address: its node manager and workers listen there (default 127.0.0.1, "
                        "ipc sockets, or with --address a GCS off loopback, this machine's address toward it; "
                        "an address other than loopback: TCP, reachable from the network, protected by the "
                        "cluster token)")
    s.add_argument("--host", default=None, metavar="IP",
                   help="with --head: the address the GCS listens on (default: --node-ip-address)")
    s.add_argument("--token", default=None, metavar="TOKEN",
                   help=f"the cluster token (default ${auth.TOKEN_ENV}; with --head, else a new one; with "
                        "--address, else the one stored on this machine for that address; other users see "
                        "command lines in `ps`: on a shared machine prefer the environment variable)")
    s.add_argument("--num-cpus", type=float, default=None, metavar="N", help="CPUs of this node (default: all)")
    s.add_argument("--num-gpus", type=float, default=None, metavar="N", help="GPUs of this node (default: detected)")
    s.add_argument("--resources", default=None, metavar="JSON",
                   help="custom resources of this node as a JSON object, e.g. '{\"accel\": 2}'")
    s.add_argument("--object-store-memory", type=int, default=None, metavar="BYTES",
                   help="capacity of this node's shared-memory object store")
    s.add_argument("--block", action="store_true",
                   help="stay in the foreground until the processes exit; Ctrl-C or SIGTERM stops them, "
                        "and they die with this command however it dies (kill -9 included)")
    s.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="with --address: how long to wait for the cluster to answer (default 10)")
    from juno.cli import dashboard as cli_dashboard

    cli_dashboard.add_start_arguments(s)
    s.set_defaults(func=cmd_start)

    st = sub.add_parser("stop", help="stop Juno processes on this machine",
                        description="Stop the node managers (and their workers) that `juno start` started on "
                                    "this machine with this temp folder ($TMPDIR), and the GCS if this machine "
                                    "runs it; or only one cluster's "
                                    "processes with --address / --session-dir; or every Juno process of this "
                                    "user with --all (clusters of juno.init() too). Then remove what they left "
                                    "in /dev/shm and the session folders.")
    which = st.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true",
                       help="also stop the private clusters of running juno.init() drivers and test clusters")
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

    from juno.cli import state as state_cli  # list, summary, memory, timeline

    state_cli.add_parsers(sub, sys.modules[__name__])

    tk = sub.add_parser("token", help="print the token of a cluster started on this machine",
                        description="Print the cluster token of the cluster at --address (else $JUNO_ADDRESS, "
                                    "else the one `juno start --head` started here), as this machine stores "
                                    "it, for joining from another machine: `juno start --address HOST:PORT "
                                    "--token TOKEN` or JUNO_CLUSTER_TOKEN=TOKEN. Keep it secret: it lets its "
                                    "holder run code on the cluster.")
    tk.add_argument("--address", metavar="HOST:PORT", help="GCS address of the cluster")
    tk.set_defaults(func=cmd_token)

    cli_dashboard.add_parser(sub)
    from juno.cli import serve as cli_serve  # imports juno.serve only when a command runs

    cli_serve.add_parser(sub)

    mb = sub.add_parser("microbenchmark", add_help=False,
                        help="Ray's microbenchmark rows measured on Juno (see `juno microbenchmark --help`)")
    mb.add_argument("args", nargs=argparse.REMAINDER)
    mb.set_defaults(func=lambda a: _microbenchmark(a.args))
    return p


def _microbenchmark(argv: list[str]) -> int:
    from juno.cli import microbenchmark

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
    args.node_ip_given = args.node_ip_address is not None
    args.node_ip_address = _check_host(args.node_ip_address or "127.0.0.1", "--node-ip-address")
    host = _check_host(args.host, "--host") if args.host else args.node_ip_address
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


def _check_host(host: str, flag: str) -> str:
    """An IPv4 address of this machine to listen on (CliError, exit 2, if it is not one)."""
    from juno.cluster.access import AddressError, check_listen_ip

    try:
        return check_listen_ip(host, flag)
    except AddressError as e:
        raise CliError(str(e), 2) from None


def _warn_if_reachable(what: str, ip: str) -> None:
    """Once started: say on stderr that a port off loopback is reachable from the network."""
    from juno.cluster.access import network_warning

    warning = network_warning(what, ip)
    if warning:
        print(f"{PROG}: {warning}", file=sys.stderr, flush=True)


def _check_port_free(host: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise CliError(f"--port must be between 0 and 65535, got {port}.", 2)
    if port == 0:
        return
    try:
        free = local_cluster.port_free(host, port)
    except OSError as e:
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror}.") from None
    if not free:
        raise _port_busy(host, port)


def _port_busy(host: str, port: int) -> CliError:
    return CliError(f"port {port} on {host} is already in use (another Juno or Ray cluster, or another "
                    f"program). Pick another one with --port, e.g. `juno start --head --port {port + 1}`, "
                    "or stop the cluster that holds it (`juno stop`).")


def _start_head(args: argparse.Namespace, host: str, resources: dict, config) -> int:
    from juno.cli import dashboard as cli_dashboard

    _check_port_free(host, args.port)
    cli_dashboard.check_start_args(args)
    token = auth.check_token(args.token, "--token") if args.token else auth.token_for_new_cluster()
    try:
        cluster = local_cluster.start_local_cluster(
            config, num_cpus=args.num_cpus, num_gpus=args.num_gpus, resources=resources,
            object_store_memory=args.object_store_memory, owner_pid=_owner_pid(args), port=args.port, host=host,
            token=token, node_ip_address=args.node_ip_address)
    except (RuntimeError, TimeoutError, OSError) as e:
        if "Address already in use" in str(e):
            raise _port_busy(host, args.port) from None
        raise CliError(f"could not start the cluster: {e}") from None
    address = cluster.gcs_address.replace("tcp://", "")
    local_cluster.write_current_cluster(address)
    dashboard_url = cli_dashboard.start_for_head(args, cluster, config)
    if host == args.node_ip_address:
        _warn_if_reachable("GCS and the head node", host)
    else:
        _warn_if_reachable("GCS", host)
        _warn_if_reachable("head node", args.node_ip_address)
    node = cluster.nodes[0]
    print(f"Started a Juno cluster: GCS at {address}, head node {node['node_id'][:12]} "
          f"({format_resources(node['resources'])}).")
    print(f"Session folder and logs: {cluster.session_dir}")
    for line in cli_dashboard.url_lines(dashboard_url, address) if dashboard_url else []:
        print(line)
    print()
    print("To connect to this cluster from Python on this machine:")
    print("    import juno")
    print('    juno.init(address="auto")')
    print(f'or  juno.init(address="{address}")   (or set JUNO_ADDRESS={address})')
    print("To add another node on this machine:")
    print(f"    juno start --address {address}")
    from juno.cluster.access import join_instructions

    for line in join_instructions(address, local_cluster.token_path(address)):
        print(line)
    print("To see the cluster:")
    print("    juno status")
    print("To stop it:")
    print(f"    juno stop            (what `juno start` started here with this $TMPDIR; only this cluster: "
          f"juno stop --address {address})")
    sys.stdout.flush()
    if not args.block:
        return 0

    def stop() -> None:
        from juno.cli.stop import _stop_session

        _stop_session(cluster.session_dir, grace_s=_stop_grace(config), force=False, quiet=True)
        if local_cluster.read_current_cluster() == address:
            local_cluster.clear_current_cluster()

    return _block([("GCS", cluster.procs[0]), ("head node manager", cluster.procs[1])], stop)


def _start_worker_node(args: argparse.Namespace, resources: dict, config) -> int:
    from juno.cluster.probe import gcs_request

    address = resolve_address(None)[0] if args.address == "auto" else args.address  # the recorded cluster
    try:
        gcs_address = local_cluster.normalize_address(address)
    except ValueError as e:
        raise CliError(str(e), 2) from None
    shown = gcs_address.replace("tcp://", "")
    if not args.node_ip_given:
        from juno.cluster.probe import local_ip_toward  # 127.0.0.1 for a GCS on loopback, else where it reaches us

        args.node_ip_address = _check_host(local_ip_toward(gcs_address), "--node-ip-address")
    token = auth.check_token(args.token, "--token") if args.token else None
    try:  # without --token, the probe finds it ($JUNO_CLUSTER_TOKEN, else stored here) or says it is missing
        info = gcs_request(gcs_address, "cluster_info", timeout=args.timeout, token=token, token_source="--token")
        token = token or auth.resolve_token(gcs_address)[0]
    except TimeoutError:
        raise CliError(f"no Juno cluster answered at {shown} within {args.timeout:g} s; is it running? "
                       "(`juno start --head` starts one)") from None
    # On another machine the head's session folder is not here: the node keeps its logs, sockets
    # and spill files in a folder of the same name in this machine's temp folder.
    session_dir = local_cluster.local_session_dir(info["session_dir"])
    try:
        proc, node = local_cluster.start_node(
            os.path.basename(session_dir), session_dir, gcs_address, config, num_cpus=args.num_cpus,
            num_gpus=args.num_gpus, resources=resources, object_store_memory=args.object_store_memory,
            owner_pid=_owner_pid(args), head=False, token=token, node_ip_address=args.node_ip_address)
    except (RuntimeError, TimeoutError, OSError) as e:
        raise CliError(f"could not start the node: {e}") from None
    _warn_if_reachable("node", args.node_ip_address)
    print(f"Added node {node['node_id'][:12]} ({format_resources(node['resources'])}) "
          f"to the Juno cluster at {shown}.")
    print("`juno status` shows the cluster; `juno stop` stops it.")
    sys.stdout.flush()
    if not args.block:
        return 0

    def stop() -> None:
        from juno.cli.stop import scan_processes, terminate

        targets = [p for p in scan_processes() if p.proc.pid == proc.pid
                   or (p.role == "worker" and p.parent_pid == proc.pid)]
        terminate(targets, _stop_grace(config), force=False)
        shutil.rmtree(node["store_dir"], ignore_errors=True)

    return _block([("node manager", proc)], stop)


def _owner_pid(args: argparse.Namespace) -> int | None:
    """With --block this command owns what it starts (they die with it, SIGKILL included);
    without, they are detached and outlive it."""
    return os.getpid() if args.block else None


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


def cmd_token(args: argparse.Namespace) -> int:
    gcs_address, _ = resolve_gcs_address(args.address)
    print(auth.resolve_token(gcs_address)[0])  # ClusterAuthError (exit 1) when there is none here
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from juno.cli import stop as cli_stop

    return cli_stop.cmd_stop(args)


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


def resolve_gcs_address(flag: str | None) -> tuple[str, str]:
    """(``tcp://host:port`` of the GCS, where the address came from), as :func:`resolve_address`
    finds it; a malformed address is a CliError that names its source."""
    address, source = resolve_address(flag)
    try:
        return local_cluster.normalize_address(address), source
    except ValueError as e:
        raise CliError(f"{e} (from {source})", 2) from None


def cmd_status(args: argparse.Namespace) -> int:
    from juno.cli import dashboard as cli_dashboard
    from juno.cluster.probe import GcsProbe

    gcs_address, source = resolve_gcs_address(args.address)
    shown = gcs_address.replace("tcp://", "")
    hint = ("`juno start --head` starts one" if source == "--address" else
            f"the address came from {source}; `juno start --head` starts a cluster")
    if local_cluster.connection_refused(gcs_address):  # say so now, not after the whole timeout
        raise CliError(f"nothing listens at {shown}: no Juno cluster runs there ({hint})")
    try:
        with GcsProbe(gcs_address) as probe:
            info = probe.call_gcs("cluster_info", timeout=args.timeout)
            nodes = probe.call_gcs("get_nodes", timeout=args.timeout)
            jobs = probe.call_gcs("get_jobs", timeout=args.timeout)
            pgs = _placement_groups(probe, args.timeout)
            # Heartbeats carry each node's store use; ask the nodes on this machine for a fresher figure.
            stores = {n["node_id"]: n["object_store"] for n in nodes if n.get("object_store")}
            stores.update(_local_store_stats(probe, nodes))
            dashboard = cli_dashboard.status_line(probe, min(args.timeout, 2.0))
    except TimeoutError:
        raise CliError(f"the Juno cluster at {shown} did not answer within {args.timeout:g} s; is it running? "
                       f"({hint})") from None
    print(cluster_status.render_status(shown, info, nodes, jobs, pgs, stores))
    if dashboard:
        print(dashboard)
    return 0


def _placement_groups(probe, timeout: float) -> Any:
    """The GCS's placement group table (runtime/gcs/placement_groups.py), or None where the GCS
    has none (it answers "no method"): status then shows no placement group section."""
    try:
        return probe.call_gcs("placement_group", "table", timeout=timeout)
    except TimeoutError:
        raise
    except Exception:  # noqa: BLE001 - RpcError: no such method or op
        return None


def _local_store_stats(probe, nodes: list[dict], timeout: float = 2.0) -> dict[str, dict]:
    """Object store use of the live nodes whose socket is on this machine (others: not shown)."""
    futures = {}
    for n in nodes:
        address = n.get("address") or ""
        if n.get("alive") and address.startswith("ipc://") and os.path.exists(address[len("ipc://"):]):
            futures[n["node_id"]] = probe.call_future(address, "get_resources")
    out = {}
    deadline = time.monotonic() + timeout
    for node_id, fut in futures.items():
        try:
            out[node_id] = fut.result(max(0.01, deadline - time.monotonic()))["object_store"]
        except Exception:  # noqa: BLE001 - a busy or dying node (or a timeout): its use is not shown
            fut.cancel()
    return out


if __name__ == "__main__":
    sys.exit(main())
