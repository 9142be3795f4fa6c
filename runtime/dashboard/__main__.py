"""The dashboard process: ``python -m juno.dashboard --gcs-address A [--host H] [--port P]``.

Serves the state API and the page for one cluster (runtime/dashboard/server.py),
publishes its URL in the GCS KV (namespace "dashboard", key b"url") so that
``juno status``, ``juno.init(address=...)`` and others find it, and exits when
the cluster is gone for good: its GCS process died (``--gcs-pid``, on this
machine), its session folder was removed (``juno stop``), or the GCS has not
answered for ``--gone-after-s``. ``juno start --head`` and ``juno.init()`` start
it (runtime/dashboard/launch.py); ``juno dashboard`` runs the same code in the
foreground.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import os
import signal
import socket
import sys
import time

from juno.dashboard.launch import DEFAULT_PORT, KV_KEY, KV_NAMESPACE

POLL_S = 2.0
GONE_AFTER_S = 20.0

logger = logging.getLogger("juno.dashboard")


class DashboardError(Exception):
    """A problem the user can fix (a busy port, no cluster there): one line, exit code 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m juno.dashboard",
                                description="Serve the Juno dashboard (page and state API) of one cluster.")
    p.add_argument("--gcs-address", required=True, metavar="HOST:PORT", help="the cluster's GCS address")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=None,
                   help=f"port to listen on (default {DEFAULT_PORT}, or a free one if that is taken); a port "
                        "given here must be free")
    p.add_argument("--any-port-if-busy", action="store_true",
                   help="if --port is taken, listen on a free port instead of failing")
    p.add_argument("--session-dir", default=None, help="the cluster's session folder: once it is gone, so is the "
                                                      "dashboard")
    p.add_argument("--gcs-pid", type=int, default=None, help="the GCS's pid on this machine: the dashboard exits "
                                                             "with it")
    p.add_argument("--owner-pid", type=int, default=None,
                   help="the driver whose private cluster this is (juno.init); `juno stop` without --all leaves "
                        "such a dashboard to its driver")
    p.add_argument("--no-replace", action="store_true",
                   help="do not replace a URL another dashboard of the cluster registered (`juno dashboard`)")
    p.add_argument("--timeout", type=float, default=10.0, help="how long to wait for the cluster to answer")
    p.add_argument("--gone-after-s", type=float, default=GONE_AFTER_S,
                   help=f"exit once the GCS has not answered for this long (default {GONE_AFTER_S:g})")
    return p.parse_args(argv)


def check_host(host: str, flag: str = "--host") -> str:
    """The IPv4 address to listen on ('localhost' -> 127.0.0.1; 0.0.0.0: every interface)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise DashboardError(f"{flag} must be an IPv4 address such as 127.0.0.1 or 0.0.0.0, got {host!r}.") from None
    if ip.version != 4:
        raise DashboardError(f"{flag} must be an IPv4 address, got {host} (IPv6 is not supported).")
    return str(ip)


def bind(host: str, port: int | None, fallback: bool) -> tuple[list[socket.socket], int, str | None]:
    """Listening sockets on ``host``: ``port`` (default DEFAULT_PORT). A busy port fails unless it was
    not asked for (or ``fallback``): then a free one, and a note saying so."""
    from tornado.netutil import bind_sockets

    wanted = DEFAULT_PORT if port is None else port
    if not 0 <= wanted <= 65535:
        raise DashboardError(f"--port must be between 0 and 65535, got {wanted}.")
    try:
        socks = bind_sockets(wanted, address=host, family=socket.AF_INET)
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            raise DashboardError(f"cannot listen on {host}: no interface of this machine has that address "
                                 "(`hostname -I` lists them).") from None
        if e.errno != errno.EADDRINUSE:
            raise DashboardError(f"cannot listen on {host}:{wanted}: {e.strerror}.") from None
        if port is not None and not fallback:
            raise DashboardError(f"the dashboard port {wanted} on {host} is already in use (another dashboard, "
                                 "a Ray dashboard, or another program). Pick another one (--dashboard-port / "
                                 "--port), or leave the port out to use any free one.") from None
        socks = bind_sockets(0, address=host, family=socket.AF_INET)
        chosen = socks[0].getsockname()[1]
        return socks, chosen, f"port {wanted} is in use; the dashboard listens on port {chosen} instead"
    return socks, socks[0].getsockname()[1], None


def public_url(host: str, port: int, gcs_address: str) -> str:
    """The URL others use: the listening address, or for 0.0.0.0 this machine's address toward the GCS."""
    if ipaddress.ip_address(host).is_unspecified:
        from juno.cluster.probe import local_ip_toward

        host = local_ip_toward(gcs_address)
    return f"http://{host}:{port}"


class Watchdog:
    """Decides when the cluster is gone for good (see the module docstring)."""

    def __init__(self, probe, session_dir: str | None, gcs_pid: int | None, gone_after_s: float):
        self.probe = probe
        self.session_dir = session_dir
        self.gcs_pid = gcs_pid
        self.gone_after_s = gone_after_s
        self.last_answer = time.monotonic()

    def gone(self) -> str | None:
        """Why the cluster is gone, or None while it lives (blocking: run off the IOLoop)."""
        from juno.cluster.processes import pid_alive

        if self.gcs_pid is not None and not pid_alive(self.gcs_pid):
            return f"the GCS (pid {self.gcs_pid}) exited"
        if self.session_dir is not None and not os.path.isdir(self.session_dir):
            return f"the cluster's session folder {self.session_dir} was removed"
        try:
            info = self.probe.call_gcs("cluster_info", timeout=POLL_S)
        except Exception as e:  # noqa: BLE001 - a timeout, or a refusal: the cluster is not answering
            silent = time.monotonic() - self.last_answer
            if silent >= self.gone_after_s:
                return f"the GCS has not answered for {silent:.0f} s ({e})"
            return None
        self.last_answer = time.monotonic()
        if self.session_dir and os.path.normpath(info.get("session_dir", "")) != os.path.normpath(self.session_dir):
            return "another cluster now answers at the GCS address"
        return None


def serve(args: argparse.Namespace, *, announce=print) -> int:
    """Run the dashboard until the cluster is gone or a signal comes; DashboardError if it cannot start."""
    from juno.comm import auth
    from juno.cluster import local_cluster
    from juno.cluster.probe import GcsProbe
    from juno.dashboard.http_api import ServiceRegistry

    host = check_host(args.host)
    try:
        gcs_address = local_cluster.normalize_address(args.gcs_address)
    except ValueError as e:
        raise DashboardError(str(e)) from None
    shown = gcs_address.replace("tcp://", "")
    token = auth.resolve_token(gcs_address)[0]  # $JUNO_CLUSTER_TOKEN (set by the launcher), else stored here
    socks, port, note = bind(host, args.port, args.any_port_if_busy)
    probe = GcsProbe(gcs_address, token, "the cluster token")
    registry = ServiceRegistry(token=token, timeout=args.timeout)
    url = None
    try:
        try:
            info = probe.call_gcs("cluster_info", timeout=args.timeout)
        except TimeoutError:
            raise DashboardError(f"no Juno cluster answered at {shown} within {args.timeout:g} s; is it running? "
                                 "(`juno start --head` starts one)") from None
        session_dir = args.session_dir or (info.get("session_dir") if os.path.isdir(info.get("session_dir", ""))
                                           else None)
        url = public_url(host, port, gcs_address)
        try:
            if not registered(probe, url, replace=not args.no_replace):
                logger.info("another dashboard is registered for this cluster; this one is not")
        except Exception as e:  # noqa: BLE001 - serving matters more than being found
            logger.warning("could not publish this dashboard's URL in the cluster's KV store: %s", e)
        if note:
            announce(f"juno dashboard: {note}.")
        if not ipaddress.ip_address(host).is_loopback:
            announce(f"juno dashboard: warning: listening on {host}, reachable from other machines; requests "
                     "need the cluster token, but plain HTTP is not encrypted: prefer an SSH tunnel or a proxy "
                     "with HTTPS.")
        watchdog = Watchdog(probe, session_dir, args.gcs_pid, args.gone_after_s)
        reason = asyncio.run(_serve_until_gone(gcs_address, token, registry, socks, watchdog, url, shown, announce))
        announce(f"juno dashboard: stopped ({reason}).")
        # Stopped while the cluster lives on (Ctrl-C of `juno dashboard`): take the URL back. Not when the
        # cluster is gone, nor when a cluster's own dashboard (--gcs-pid) is terminated with it (juno stop,
        # juno.shutdown()): asking a GCS that is exiting would only delay the exit.
        if reason.startswith("signal") and (args.gcs_pid is None or reason != "signal SIGTERM"):
            unregister(probe, url)
        return 0
    finally:
        registry.close()
        probe.close()


async def _serve_until_gone(gcs_address: str, token: str, registry, socks, watchdog: Watchdog, url: str,
                            shown: str, announce) -> str:
    """Serve on ``socks`` until a signal comes or the watchdog says the cluster is gone; returns why."""
    import tornado.httpserver

    from juno.dashboard.server import make_app
    from juno.cluster.processes import report_ready

    loop = asyncio.get_running_loop()
    reasons: list[str] = []
    done = asyncio.Event()

    def stop(reason: str) -> None:
        reasons.append(reason)
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, f"signal {sig.name}")
    server = tornado.httpserver.HTTPServer(make_app(gcs_address, token, registry))
    server.add_sockets(socks)
    report_ready(url)
    announce(f"Juno dashboard of the cluster at {shown}: {url}  (log in with the cluster token: "
             f"`juno token --address {shown}`)")

    async def watch() -> None:
        while not done.is_set():
            await asyncio.sleep(POLL_S)
            reason = await loop.run_in_executor(None, watchdog.gone)
            if reason:
                stop(reason)

    watcher = asyncio.create_task(watch())
    await done.wait()
    watcher.cancel()
    server.stop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    return reasons[0]


def registered(probe, url: str, replace: bool) -> bool:
    """Publish ``url`` in the GCS KV; without ``replace``, only where no live dashboard is registered."""
    if not replace:
        current = probe.call_gcs("kv_get", KV_NAMESPACE, KV_KEY, timeout=5.0)
        if current and current.decode() != url and _answers(current.decode()):
            return False
    probe.call_gcs("kv_put", KV_NAMESPACE, KV_KEY, url.encode(), True, timeout=5.0)
    return True


def unregister(probe, url: str | None) -> None:
    """Remove our URL from the KV (not one another dashboard put there since)."""
    if not url:
        return
    try:
        if probe.call_gcs("kv_get", KV_NAMESPACE, KV_KEY, timeout=1.0) == url.encode():
            probe.call_gcs("kv_del", KV_NAMESPACE, KV_KEY, timeout=1.0)
    except Exception:  # noqa: BLE001 - the cluster is gone: nothing to remove
        pass


def _answers(url: str) -> bool:
    host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s dashboard %(name)s: %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    args = parse_args(argv)

    def announce(line: str) -> None:
        print(line, flush=True)

    try:
        return serve(args, announce=announce)
    except DashboardError as e:
        print(f"juno dashboard: error: {e}", file=sys.stderr, flush=True)
        return 2
    except ConnectionError as e:  # juno.comm.auth.ClusterAuthError: no token, or the wrong one
        print(f"juno dashboard: error: {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
