"""The ``juno serve`` commands (Ray's ``serve status|deploy|shutdown``), wired into runtime/cli/commands.py.

    juno serve status [--address HOST:PORT] [--name APP]      applications, deployments, replica states
    juno serve deploy module:app [--name APP] [--route-prefix /p] [--address HOST:PORT]
    juno serve shutdown [--address HOST:PORT] [-y]

Each connects to the cluster at --address (else $JUNO_ADDRESS, else the one `juno start --head`
recorded) as a driver and talks to its Serve controller. ``juno.serve`` is imported only inside
``deploy`` and ``shutdown``, so the rest of the CLI never pays for it.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from typing import Any, Mapping

from juno.cli.commands import PROG, CliError

CONTROLLER_NAME, SERVE_NAMESPACE = "SERVE_CONTROLLER", "serve"  # the contract's names (libs/serve)
NOT_RUNNING = "Serve is not running on the cluster at {address} (`juno serve deploy module:app` or serve.run starts it)"


def add_parser(sub) -> None:
    sv = sub.add_parser("serve", help="Serve applications: status, deploy, shutdown",
                        description="Inspect, deploy and shut down Juno Serve applications on a running cluster "
                                    "(Ray's `serve` command).")
    cmds = sv.add_subparsers(dest="serve_command", metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--address", metavar="HOST:PORT", help="GCS address of the cluster")
        p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                       help="how long to wait for the cluster and the Serve controller to answer (default 10)")

    st = cmds.add_parser("status", help="show applications, deployments and replica states",
                         description="Print Serve's status as YAML: the proxies, each application's status, message "
                                     "and route, its deployments and their replicas by state. Exit 1 when Serve "
                                     "is not running.")
    st.add_argument("--name", "-n", metavar="APP", help="only this application")
    common(st)
    st.set_defaults(func=cmd_status)

    dp = cmds.add_parser("deploy", help="deploy an application given as module:attribute",
                         description="Import the Application at IMPORT_PATH (module:attribute, e.g. my_app:app, "
                                     "looked up from the current folder too) and run it on the cluster with "
                                     "serve.run; returns when it is RUNNING. The module's code travels with it.")
    dp.add_argument("import_path", metavar="IMPORT_PATH", help="module:attribute of a bound application")
    dp.add_argument("--name", default="default", metavar="APP", help="the application's name (default 'default')")
    dp.add_argument("--route-prefix", default=None, metavar="PREFIX",
                    help="the HTTP route of the application (default: serve.run's, '/')")
    common(dp)
    dp.set_defaults(func=cmd_deploy)

    sd = cmds.add_parser("shutdown", help="delete every application and stop Serve",
                         description="Shut down Serve on the cluster: delete every application, stop the replicas, "
                                     "proxies and the controller.")
    sd.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    common(sd)
    sd.set_defaults(func=cmd_shutdown)
    sv.set_defaults(func=lambda _args: _usage(sv))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# ============================================================================ pure helpers
def plain(value: Any) -> Any:
    """The controller's status as plain dicts (dataclass objects of juno.serve.schema included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return getattr(value, "value", value) if type(value).__module__ != "builtins" else value


def status_document(status: Mapping[str, Any], routes: Mapping[str, Any] | None = None,
                    name: str | None = None) -> dict:
    """What ``juno serve status`` prints, in Ray's order: proxies, applications (each with its route
    when known), target_capacity; with ``name`` only that application (CliError if there is none)."""
    status = plain(status)
    apps = dict(status.get("applications") or {})
    by_app = {str(t.get("app")): prefix for prefix, t in ((routes or {}).get("routes") or {}).items()
              if isinstance(t, Mapping)}
    shown = {}
    for app_name, app in apps.items():
        app = dict(app)
        if "route_prefix" not in app and app_name in by_app:
            app = {"status": app.get("status"), "route_prefix": by_app[app_name],
                   **{k: v for k, v in app.items() if k != "status"}}
        shown[app_name] = app
    if name is not None:
        if name not in shown:
            raise CliError(f"there is no Serve application named {name!r} "
                           f"(applications: {', '.join(sorted(shown)) or 'none'})")
        return {name: shown[name]}
    return {"proxies": status.get("proxies") or {}, "applications": shown,
            "target_capacity": status.get("target_capacity")}


def parse_import_path(path: str) -> tuple[str, str]:
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise CliError(f"IMPORT_PATH must be module:attribute (e.g. my_app:app), got {path!r}", 2)
    return module, attr


# ============================================================================ the cluster
def _connect(args: argparse.Namespace) -> str:
    """Attach this process to the cluster as a driver; the address shown in messages."""
    import juno
    from juno.cli.commands import resolve_gcs_address

    gcs_address, source = resolve_gcs_address(args.address)
    shown = gcs_address.replace("tcp://", "")
    try:
        juno.init(address=shown, log_to_driver=False)
    except (TimeoutError, ConnectionError, OSError) as e:
        raise CliError(f"could not connect to the Juno cluster at {shown} (from {source}): {e}") from None
    return shown


def _controller() -> Any:
    import juno

    try:
        return juno.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return None


def _ask(controller: Any, method: str, timeout: float) -> Any:
    import juno

    try:
        return juno.get(getattr(controller, method).remote(), timeout=timeout)
    except juno.exceptions.GetTimeoutError:
        raise CliError(f"the Serve controller did not answer {method}() within {timeout:g} s") from None


def cmd_status(args: argparse.Namespace) -> int:
    from juno.observability.state_schema import format_yaml

    address = _connect(args)
    controller = _controller()
    if controller is None:
        raise CliError(NOT_RUNNING.format(address=address))
    status = _ask(controller, "get_status", args.timeout)
    try:
        routes = _ask(controller, "get_routes", args.timeout)
    except CliError:
        routes = None  # the status is what matters; routes only add each application's prefix
    print(format_yaml(status_document(status, routes, args.name)))
    return 0


def _import_application(import_path: str) -> Any:
    """The object at module:attribute, imported with the current folder on sys.path; the module's code
    is pickled by value so replicas need not find the file."""
    module_name, attr = parse_import_path(import_path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise CliError(f"could not import {module_name!r} (from {import_path!r}): {e}") from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise CliError(f"module {module_name!r} has no attribute {attr!r} (from {import_path!r})")
        value = getattr(value, part)
    if os.path.abspath(getattr(module, "__file__", "") or "").startswith(os.getcwd() + os.sep):
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[module_name.partition(".")[0]])
    return value


def cmd_deploy(args: argparse.Namespace) -> int:
    target = _import_application(args.import_path)
    from juno import serve

    application = getattr(serve, "Application", None)
    if application is not None and not isinstance(target, application):
        hint = " (a deployment: bind it first, e.g. `app = MyDeployment.bind()`)" if hasattr(target, "bind") else ""
        raise CliError(f"{args.import_path} is a {type(target).__name__}, not a Serve application{hint}", 2)
    address = _connect(args)
    kwargs = {"name": args.name}
    if args.route_prefix is not None:
        kwargs["route_prefix"] = args.route_prefix
    try:
        serve.run(target, blocking=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - the deployment's own error (a constructor that raised ...)
        raise CliError(f"application {args.name!r} failed to deploy on the cluster at {address}:\n{e}") from None
    route = f" at route {args.route_prefix!r}" if args.route_prefix else ""
    print(f"Deployed application {args.name!r}{route} on the cluster at {address}: RUNNING.")
    print(f"    {PROG} serve status --name {args.name}" + (f" --address {address}" if args.address else ""))
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    address = _connect(args)
    if _controller() is None:
        print(f"{NOT_RUNNING.format(address=address)}: nothing to shut down.")
        return 0
    if not args.yes:
        try:
            answer = input(f"Shut down Serve on the cluster at {address}, deleting every application? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise CliError("not shut down (answer y, or pass -y)")
    from juno import serve

    serve.shutdown()
    print(f"Shut down Serve on the cluster at {address}.")
    return 0
