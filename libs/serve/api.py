"""Serve's driver-side API: run, start, status, delete, shutdown and the handle getters.

Everything here talks to the one controller actor (found by name, so a later driver on the same
cluster finds the Serve an earlier one started); the decisions are the controller's.
"""
from __future__ import annotations

import ipaddress
import time
import warnings
from typing import Any

import juno
from juno.serve import progress
from juno.serve.config import HTTPOptions
from juno.serve.controller import CONTROLLER_NAME, SERVE_NAMESPACE, ServeController
from juno.serve.deployment import Application, build_application
from juno.serve.handle import DeploymentHandle, shutdown_routers
from juno.serve.replica import ReplicaContext, current_context
from juno.serve.schema import ApplicationStatus, DeploymentStatus, ServeStatus
from juno.util import notebook
from juno.widgets.live import kernel_shell

DEFAULT_RUN_TIMEOUT_S = 120.0
CONTROL_CALL_TIMEOUT_S = 60.0
_PROXY_LOCATIONS = ("EveryNode", "HeadOnly", "Disabled")


def _connect() -> None:
    if not juno.is_initialized():
        juno.init()


def _controller(create: bool = False, http_options: dict | None = None) -> Any:
    """The controller's handle; with ``create``, started if there is none."""
    _connect()
    try:
        return juno.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        if not create:
            return None
    return juno.remote(ServeController).options(
        name=CONTROLLER_NAME, namespace=SERVE_NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_restarts=0).remote(http_options or HTTPOptions().to_dict())


def _call(ref: Any, timeout_s: float = CONTROL_CALL_TIMEOUT_S) -> Any:
    return juno.get(ref, timeout=timeout_s)


def start(http_options: dict | HTTPOptions | None = None, proxy_location: str | None = "EveryNode",
          detached: bool = True, **kwargs: Any) -> None:
    """Start Serve's controller on the connected cluster (``run`` does it implicitly).

    ``http_options``: host (127.0.0.1 by default: loopback only), port (8000; 0 picks a free one),
    request_timeout_s, max_body_bytes. A Serve already running keeps its options."""
    if kwargs:
        raise TypeError(f"serve.start got unexpected argument(s) {sorted(kwargs)}")
    if proxy_location not in _PROXY_LOCATIONS and proxy_location is not None:
        raise ValueError(f"proxy_location must be one of {list(_PROXY_LOCATIONS)}, got {proxy_location!r}")
    options = HTTPOptions.from_value(http_options).to_dict()
    if not _is_loopback(options["host"]):
        warnings.warn(f"Serve's HTTP proxies will listen on {options['host']}:{options['port']}, reachable from "
                      "the network: no cluster token protects that port, so anyone who can reach this machine can "
                      "call your applications (the default host 127.0.0.1 keeps it local)", UserWarning, stacklevel=2)
    options["proxy_location"] = proxy_location or "EveryNode"
    controller = _controller(create=True, http_options=options)
    _call(controller.get_http_options.remote())  # the controller is up (and its loop running)
    _call(controller.get_http_address.remote())  # and its proxies serve (or it says why not)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: the proxy binds whatever it resolves to
        return False


def run(target: Application, *, name: str = "default", route_prefix: str | None = "/", blocking: bool = False,
        logging_config: Any = None, _local_testing_mode: bool = False,
        _timeout_s: float = DEFAULT_RUN_TIMEOUT_S) -> DeploymentHandle:
    """Deploy ``target`` as application ``name`` (or update it in place) and wait until every
    deployment is HEALTHY; returns the ingress deployment's handle.

    A constructor that raises makes this raise RuntimeError with its traceback (the app is
    DEPLOY_FAILED); replicas that can never fit the cluster fail the same way, within seconds."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"the application name must be a non-empty string, got {name!r}")
    if isinstance(target, Application) and target.deployment.route_prefix is not None and route_prefix == "/":
        route_prefix = target.deployment.route_prefix  # the older per-deployment spelling
    ingress, infos = build_application(target, name)
    controller = _controller(create=True)
    _call(controller.deploy_application.remote(name, route_prefix, infos, ingress))
    if kernel_shell() is not None:  # the cell shows the applications live; a script calls progress.watch()
        progress.watch(name)
    _wait_for_app(controller, name, _timeout_s)
    if route_prefix is not None:
        _call(controller.wait_for_proxy_routes.remote(route_prefix))
    _claim_replica_output(controller, name, infos)
    handle = DeploymentHandle(ingress, name)
    if blocking:
        _block_until_interrupted(name)
    return handle


def _block_until_interrupted(name: str) -> None:
    """Ray's ``blocking=True``: serve until Ctrl-C (or a kernel interrupt), which ends the wait cleanly;
    the application keeps running until serve.delete or serve.shutdown."""
    try:
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print(f"serve.run: interrupted; application {name!r} keeps running (serve.delete({name!r}) or "
              "serve.shutdown() stops it)", flush=True)


def _claim_replica_output(controller: Any, app: str, infos: list[dict]) -> None:
    """In a notebook, the replicas' prints go under the cell that deployed them (the controller, not
    this process, created them). Replicas started later (autoscaling, replacements) print to the cell
    running at the time."""
    if kernel_shell() is None:
        return
    for info in infos:
        for replica in _call(controller.get_replicas.remote(app, info["name"]))["replicas"]:
            notebook.claim_actor_output(replica["actor"])


def _wait_for_app(controller: Any, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pause = 0.02
    while True:
        app = _call(controller.get_status.remote())["applications"].get(name)
        if app is None:
            raise RuntimeError(f"application {name!r} was deleted while it was being deployed")
        if app["status"] == ApplicationStatus.RUNNING:
            return
        if app["status"] == ApplicationStatus.DEPLOY_FAILED:
            raise RuntimeError(app["message"])
        if time.monotonic() >= deadline:
            waiting = {dep: d["status"] for dep, d in app["deployments"].items()
                       if d["status"] != DeploymentStatus.HEALTHY}
            raise TimeoutError(f"application {name!r} was not running after {timeout_s:g} s; deployments not "
                               f"ready: {waiting} (see serve.status() for their replicas)")
        time.sleep(pause)
        pause = min(0.2, pause * 1.5)


def status() -> ServeStatus:
    """Proxies, applications, their deployments and replica states (empty when Serve is not running)."""
    controller = _controller()
    if controller is None:
        return ServeStatus()
    return ServeStatus.from_dict(_call(controller.get_status.remote()))


def delete(name: str, _blocking: bool = True) -> None:
    """Delete application ``name``: its replicas finish their requests and stop, its route goes."""
    controller = _controller()
    if controller is None:
        return
    _call(controller.delete_application.remote(name))
    if not _blocking:
        return
    deadline = time.monotonic() + CONTROL_CALL_TIMEOUT_S
    while name in _call(controller.get_ingresses.remote()):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"application {name!r} was not deleted within {CONTROL_CALL_TIMEOUT_S:g} s")
        time.sleep(0.05)


def shutdown() -> None:
    """Stop every application, replica and proxy and the controller; a later ``run`` starts afresh."""
    shutdown_routers()
    if not juno.is_initialized():
        return
    controller = _controller()
    if controller is None:
        return
    try:
        _call(controller.shutdown.remote())
    finally:
        juno.kill(controller)
    deadline = time.monotonic() + CONTROL_CALL_TIMEOUT_S
    while _controller() is not None and time.monotonic() < deadline:  # its name is free for the next start
        time.sleep(0.05)


def get_app_handle(name: str) -> DeploymentHandle:
    """The ingress handle of a running application."""
    apps = _applications()
    if name not in apps:
        raise ValueError(f"Serve has no application named {name!r}; the applications are {sorted(apps)}")
    return DeploymentHandle(apps[name].ingress_name, name)


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> DeploymentHandle:
    """A handle to one deployment; ``app_name`` defaults to the current replica's application,
    or to the only application there is."""
    if app_name is None:
        ctx = current_context()
        if ctx is not None:
            app_name = ctx.app_name
        else:
            apps = sorted(_applications())
            if len(apps) != 1:
                raise ValueError(f"give app_name: Serve has {len(apps)} applications ({apps})")
            app_name = apps[0]
    current = ServeStatus.from_dict(_call(_require_controller().get_status.remote())).applications
    if app_name not in current:
        raise ValueError(f"Serve has no application named {app_name!r}; the applications are {sorted(current)}")
    if deployment_name not in current[app_name].deployments:
        raise ValueError(f"application {app_name!r} has no deployment {deployment_name!r}; its deployments are "
                         f"{sorted(current[app_name].deployments)}")
    return DeploymentHandle(deployment_name, app_name)


def get_replica_context() -> ReplicaContext:
    """The current replica's app name, deployment, replica id and user object (inside a replica)."""
    ctx = current_context()
    if ctx is None:
        raise RuntimeError("serve.get_replica_context() may only be called inside a deployment's replica "
                           "(its constructor or a method)")
    return ctx


def get_http_address() -> str:
    """Where the HTTP proxies listen, e.g. ``http://127.0.0.1:8000`` (the real port when 0 was given)."""
    return _call(_require_controller().get_http_address.remote())


class _AppInfo:
    def __init__(self, ingress_name: str) -> None:
        self.ingress_name = ingress_name


def _require_controller() -> Any:
    controller = _controller()
    if controller is None:
        raise RuntimeError("Serve is not running on this cluster: deploy an application with serve.run(...) first")
    return controller


def _applications() -> dict[str, _AppInfo]:
    routes_and_ingress = _call(_require_controller().get_ingresses.remote())
    return {name: _AppInfo(ingress) for name, ingress in routes_and_ingress.items()}
