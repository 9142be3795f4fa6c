"""The dashboard's part of the ``juno`` command.

    juno start --head [--include-dashboard true|false] [--dashboard-host IP] [--dashboard-port P]
    juno dashboard [--address HOST:PORT] [--host IP] [--port P]   serve it in the foreground
    juno status                                                   names the URL a cluster registered

The dashboard of ``juno start --head`` is a process of the cluster (``python -m
juno.dashboard --session-dir ...``), so ``juno stop`` stops it with the rest.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from juno.cli.commands import PROG, CliError

INCLUDE_CHOICES = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def add_start_arguments(s: argparse.ArgumentParser) -> None:
    """``juno start``'s dashboard flags (used with --head)."""
    s.add_argument("--include-dashboard", default="true", type=str.lower, choices=sorted(INCLUDE_CHOICES),
                   metavar="{true,false}", help="with --head: start the dashboard (default true)")
    s.add_argument("--dashboard-host", default="127.0.0.1", metavar="IP",
                   help="with --head: the address the dashboard listens on (default 127.0.0.1: this machine only; "
                        "0.0.0.0: every interface)")
    s.add_argument("--dashboard-port", type=int, default=None, metavar="PORT",
                   help="with --head: the dashboard's port (default 8265, or a free one if that is taken; a port "
                        "given here must be free)")


def add_parser(sub) -> None:
    d = sub.add_parser("dashboard", help="serve a cluster's dashboard in the foreground",
                       description="Serve the dashboard (page and state API) of the cluster at --address (else "
                                   "$JUNO_ADDRESS, else the one `juno start --head` started here) until Ctrl-C. "
                                   "The page asks for the cluster token (`juno token`).")
    d.add_argument("--address", metavar="HOST:PORT", help="GCS address of the cluster")
    d.add_argument("--host", default="127.0.0.1", metavar="IP",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0: every interface)")
    d.add_argument("--port", type=int, default=None,
                   help="port to listen on (default 8265, or a free one if that is taken)")
    d.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="how long to wait for the cluster to answer (default 10)")
    d.set_defaults(func=cmd_dashboard)


def check_host(host: str, flag: str) -> str:
    """The dashboard's own check (juno.dashboard.__main__.check_host), as a CliError (exit 2)."""
    from juno.dashboard.__main__ import DashboardError, check_host as check_dashboard_host

    try:
        return check_dashboard_host(host, flag)
    except DashboardError as e:
        raise CliError(str(e), 2) from None


def check_start_args(args: argparse.Namespace) -> None:
    """Before anything starts: the dashboard flags make sense, and a port asked for is free."""
    from juno.dashboard.launch import DashboardStartError, pick_port

    args.include_dashboard = INCLUDE_CHOICES[args.include_dashboard]
    if not args.include_dashboard:
        return
    args.dashboard_host = check_host(args.dashboard_host, "--dashboard-host")
    if args.dashboard_port is not None:
        try:
            pick_port(args.dashboard_host, args.dashboard_port)
        except DashboardStartError as e:
            raise CliError(f"{e} (--dashboard-port)") from None


def start_for_head(args: argparse.Namespace, cluster, config) -> str | None:
    """Start the new cluster's dashboard and return its URL; a failure is a warning (the cluster runs)."""
    from juno.dashboard import launch

    if not args.include_dashboard:
        return None
    try:
        dashboard = launch.start(cluster.gcs_address, cluster.session_dir, cluster.token, host=args.dashboard_host,
                                 port=args.dashboard_port, gcs_pid=cluster.procs[0].pid, wait=True,
                                 timeout=config.process_start_timeout_s)
    except launch.DashboardStartError as e:
        print(f"{PROG}: warning: {e}; the cluster runs without it (`juno dashboard` serves one).",
              file=sys.stderr, flush=True)
        return None
    if dashboard.moved_from:
        print(f"Port {dashboard.moved_from} is in use: the dashboard listens on port "
              f"{dashboard.url.rpartition(':')[2]} instead.")
    if not ipaddress.ip_address(args.dashboard_host).is_loopback:
        print(f"{PROG}: warning: the dashboard listens on {args.dashboard_host}, reachable from other machines; "
              "it asks for the cluster token, but plain HTTP is not encrypted (prefer an SSH tunnel).",
              file=sys.stderr, flush=True)
    return dashboard.url


def url_lines(url: str, address: str) -> list[str]:
    return [f"Dashboard: {url}",
            f"    it asks for the cluster token: open {url}/?token=<token> with the token "
            f"`juno token --address {address}` prints"]


def cmd_dashboard(args: argparse.Namespace) -> int:
    from juno.cli.commands import resolve_gcs_address
    from juno.dashboard import __main__ as dashboard_main

    gcs_address, _ = resolve_gcs_address(args.address)
    argv = ["--gcs-address", gcs_address.replace("tcp://", ""), "--host", args.host, "--no-replace",
            "--timeout", str(args.timeout)]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    try:
        return dashboard_main.serve(dashboard_main.parse_args(argv), announce=lambda line: print(line, flush=True))
    except dashboard_main.DashboardError as e:
        raise CliError(str(e), 2) from None


def status_line(probe, timeout: float) -> str | None:
    """``Dashboard: URL`` of the cluster behind ``probe``, if one registered."""
    from juno.dashboard.launch import registered_url

    url = registered_url(lambda *a: probe.call_gcs(*a, timeout=timeout))
    return f"Dashboard: {url}" if url else None
