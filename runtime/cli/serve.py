"""The ``juno serve`` commands (Ray's ``serve status|deploy|build|shutdown``), wired into runtime/cli/commands.py.

    juno serve status [--address HOST:PORT] [--name APP]      applications, deployments, replica states
    juno serve deploy module:app [--name APP] [--route-prefix /p] [--address HOST:PORT]
    juno serve deploy config.yaml [--address HOST:PORT]       every application of a config file
    juno serve build module:app [module:app ...] [-o config.yaml]
    juno serve shutdown [--address HOST:PORT] [-y]

Each but ``build`` connects to the cluster at --address (else $JUNO_ADDRESS, else the one `juno start
--head` recorded) as a driver and talks to its Serve controller. ``juno.serve`` is imported only inside
``deploy``, ``build`` and ``shutdown``, so the rest of the CLI never pays for it; config files are read
and written by juno.serve.config_file.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Mapping

from juno.cli.commands import PROG, CliError

CONTROLLER_NAME, SERVE_NAMESPACE = "SERVE_CONTROLLER", "serve"  # the contract's names (libs/serve)
NOT_RUNNING = "Serve is not running on the cluster at {address} (`juno serve deploy module:app` or serve.run starts it)"


def add_parser(sub) -> None:
    sv = sub.add_parser("serve", help="Serve applications: status, deploy, build, shutdown",
                        description="Inspect, deploy (from module:app or a config file), build config files for and "
                                    "shut down Juno Serve applications on a running cluster (Ray's `serve` "
                                    "command).")
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

    dp = cmds.add_parser("deploy", help="deploy an application (module:attribute) or a config file",
                         description="Import the Application at IMPORT_PATH (module:attribute, e.g. my_app:app, "
                                     "looked up from the current folder too) and run it on the cluster with "
                                     "serve.run; returns when it is RUNNING. The module's code travels with it. "
                                     "Given a config file (.yaml, .yml or .json: Ray's proxy_location, "
                                     "http_options and applications, as `juno serve build` writes it), make "
                                     "Serve match the file: each application is imported (a bound application, "
                                     "or a builder function called with its args), its deployments get the "
                                     "file's options, and it is deployed or updated in place; applications "
                                     "the file does not name are deleted.")
    dp.add_argument("import_path", metavar="IMPORT_PATH_OR_CONFIG",
                    help="module:attribute of a bound application, or a config file (.yaml/.yml/.json)")
    dp.add_argument("--name", default=None, metavar="APP",
                    help="the application's name (default 'default'; not with a config file)")
    dp.add_argument("--route-prefix", default=None, metavar="PREFIX",
                    help="the HTTP route of the application (default: serve.run's, '/'; not with a config file)")
    common(dp)
    dp.set_defaults(func=cmd_deploy)

    bd = cmds.add_parser("build", help="write a config file for applications given as module:attribute",
                         description="Import each application (module:attribute) and write a Serve config file "
                                     "(YAML) listing its deployments with their current options, ready to edit "
                                     "and to deploy with `juno serve deploy FILE` (Ray's `serve build`). One "
                                     "application is named app1 on route '/'; several are app1, app2 ... on "
                                     "/app1, /app2 ... Needs no cluster.")
    bd.add_argument("import_paths", nargs="+", metavar="IMPORT_PATH", help="module:attribute of an application")
    bd.add_argument("-o", "--output-path", metavar="FILE", help="write the config here (default: print it)")
    bd.set_defaults(func=cmd_build)

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


def cmd_deploy(args: argparse.Namespace) -> int:
    from juno.serve import config_file

    if config_file.is_config_path(args.import_path):
        return _deploy_config_file(args)
    try:
        target = config_file.application_from(config_file.import_attr(args.import_path), {}, args.import_path)
    except config_file.ConfigFileError as e:
        raise CliError(str(e)) from None
    from juno import serve

    address = _connect(args)
    name = args.name or "default"
    kwargs = {"name": name}
    if args.route_prefix is not None:
        kwargs["route_prefix"] = args.route_prefix
    try:
        serve.run(target, blocking=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - the deployment's own error (a constructor that raised ...)
        raise CliError(f"application {name!r} failed to deploy on the cluster at {address}:\n{e}") from None
    route = f" at route {args.route_prefix!r}" if args.route_prefix else ""
    print(f"Deployed application {name!r}{route} on the cluster at {address}: RUNNING.")
    print(f"    {PROG} serve status --name {name}" + (f" --address {address}" if args.address else ""))
    return 0


def _deploy_config_file(args: argparse.Namespace) -> int:
    """``juno serve deploy config.yaml``: the whole file is checked and every application imported
    before the cluster is touched, so a mistake changes nothing."""
    from juno.serve import config_file

    if args.name is not None or args.route_prefix is not None:
        raise CliError("--name and --route-prefix apply to module:app; a config file gives each application's "
                       "name and route_prefix", 2)
    try:
        config = config_file.load_config_file(args.import_path)  # its errors name the file
    except config_file.ConfigFileError as e:
        raise CliError(str(e)) from None
    try:
        applications = config_file.load_applications(config)
    except config_file.ConfigFileError as e:
        raise CliError(f"{args.import_path}: {e}") from None
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    address = _connect(args)
    try:
        config_file.deploy_config(config, applications, report=lambda line: print(line, flush=True))
    except Exception as e:  # noqa: BLE001 - a deployment's own error, a route clash, a timeout: said, no traceback
        raise CliError(f"{e} (on the cluster at {address})") from None
    print(f"    {PROG} serve status" + (f" --address {address}" if args.address else ""))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from juno.serve import config_file

    try:
        document = config_file.build_config(args.import_paths)
        text = config_file.dump_config(document, header=f"Written by `{PROG} serve build "
                                                           f"{' '.join(args.import_paths)}`; deploy it with "
                                                           f"`{PROG} serve deploy FILE`.")
    except config_file.ConfigFileError as e:
        raise CliError(str(e)) from None
    if args.output_path is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output_path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise CliError(f"cannot write {args.output_path!r}: {e.strerror or e}") from None
    print(f"Wrote the config of {len(document['applications'])} application(s) to {args.output_path}.", file=sys.stderr)
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
