"""``@serve.deployment``, Deployment and Application (Ray Serve's API).

A Deployment is a user class or function plus its options; ``.bind(...)`` makes an Application,
a node of the graph ``serve.run`` deploys. Applications nested in bind's arguments (at any depth
in lists, tuples and dicts) are deployed too and reach the constructor as DeploymentHandles.
"""
from __future__ import annotations

import hashlib
import inspect
import warnings
from typing import Any, Callable

import cloudpickle
from juno.serve.config import DeploymentConfig, deployment_config_from_options
from juno.util import serialization

# The options @serve.deployment and .options() take besides name/version/route_prefix.
_CONFIG_OPTIONS = ("num_replicas", "max_ongoing_requests", "max_queued_requests", "user_config",
                   "autoscaling_config", "health_check_period_s", "health_check_timeout_s",
                   "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s", "ray_actor_options",
                   "placement_group_bundles", "placement_group_strategy", "max_concurrent_queries")
# Options whose change only reconfigures or rescales the live replicas (no roll).
_LIGHT_OPTIONS = ("num_replicas", "user_config", "autoscaling_config")


class Deployment:
    """A class or function with its Serve options; build an Application with ``.bind()``."""

    def __init__(self, func_or_class: Callable, name: str, options: dict, *, version: str | None = None,
                 route_prefix: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a deployment name must be a non-empty string, got {name!r}")
        if "#" in name or "/" in name:
            raise ValueError(f"deployment name {name!r} may not contain '#' or '/'")
        if version is not None and not isinstance(version, str):
            raise TypeError(f"version must be a string, got {type(version).__name__}")
        self.func_or_class = func_or_class
        self._name = name
        self._options = dict(options)
        self._version = version
        self._route_prefix = route_prefix
        self._config = deployment_config_from_options(options)  # checked now, in the driver

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def config(self) -> DeploymentConfig:
        return self._config

    @property
    def num_replicas(self) -> int:
        return self._config.num_replicas

    @property
    def user_config(self) -> Any:
        return self._config.user_config

    @property
    def max_ongoing_requests(self) -> int:
        return self._config.max_ongoing_requests

    @property
    def ray_actor_options(self) -> dict:
        return dict(self._config.ray_actor_options)

    @property
    def route_prefix(self) -> str | None:
        return self._route_prefix

    def options(self, *, name: str | None = None, version: str | None = None, route_prefix: Any = ...,
                **options: Any) -> "Deployment":
        """A new Deployment with these options changed (the same names as ``@serve.deployment``)."""
        _check_option_names(options)
        merged = dict(self._options)
        if "num_replicas" in options and options["num_replicas"] is not None:
            merged.pop("autoscaling_config", None)
        if options.get("autoscaling_config") is not None:
            merged.pop("num_replicas", None)
        merged.update(options)
        if route_prefix is not ...:
            _warn_route_prefix()
        return Deployment(self.func_or_class, name or self._name, merged, version=version or self._version,
                          route_prefix=self._route_prefix if route_prefix is ... else route_prefix)

    def bind(self, *args: Any, **kwargs: Any) -> "Application":
        """An Application: this deployment with its constructor's arguments."""
        return Application(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"Deployment {self._name!r} cannot be called directly: build an application with "
                           f"{self._name}.bind(...) and deploy it with serve.run(...), then call it through the "
                           "returned handle (handle.remote(...))")

    def __repr__(self) -> str:
        return f"Deployment(name={self._name!r})"


class Application:
    """A bound deployment: the unit ``serve.run`` deploys (with every Application in its arguments)."""

    def __init__(self, deployment: Deployment, args: tuple, kwargs: dict) -> None:
        self._deployment = deployment
        self._args = args
        self._kwargs = kwargs

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def __repr__(self) -> str:
        return f"Application({self._deployment.name!r})"


def _check_option_names(options: dict) -> None:
    unknown = sorted(set(options) - set(_CONFIG_OPTIONS))
    if unknown:
        raise TypeError(f"unknown deployment option(s) {unknown}; allowed: "
                        f"{sorted(set(_CONFIG_OPTIONS) | {'name', 'version', 'route_prefix'})}")


def _warn_route_prefix() -> None:
    warnings.warn("route_prefix on a deployment is deprecated: pass serve.run(app, route_prefix=...)",
                  DeprecationWarning, stacklevel=3)


def deployment(_func_or_class: Callable | None = None, *, name: str | None = None, version: str | None = None,
               route_prefix: Any = ..., **options: Any) -> Any:
    """``@serve.deployment`` bare or with options, on a class or a function."""
    _check_option_names(options)
    if route_prefix is not ...:
        _warn_route_prefix()

    def wrap(func_or_class: Callable) -> Deployment:
        if not (inspect.isclass(func_or_class) or inspect.isfunction(func_or_class)
                or inspect.ismethod(func_or_class)):
            raise TypeError(f"@serve.deployment decorates a class or a function, got {type(func_or_class).__name__}")
        return Deployment(func_or_class, name or func_or_class.__name__, options, version=version,
                          route_prefix=None if route_prefix is ... else route_prefix)

    if _func_or_class is not None:
        if not callable(_func_or_class):
            raise TypeError("@serve.deployment takes keyword options only, e.g. @serve.deployment(num_replicas=2)")
        return wrap(_func_or_class)
    return wrap


# ------------------------------------------------------------------ building an application for the controller
def build_application(app: Application, app_name: str) -> tuple[str, list[dict]]:
    """(ingress deployment name, one dict per deployment) for ``controller.deploy_application``.

    Nested Applications become DeploymentHandles to their deployment in this application. Two
    different bound deployments with the same name are an error naming it."""
    from juno.serve.handle import DeploymentHandle

    if not isinstance(app, Application):
        expects = "`serve.run` expects an `Application` returned by `Deployment.bind()`"  # Ray's words
        if isinstance(app, Deployment):
            raise TypeError(f"{expects}, got the Deployment {app.name!r}: pass {app.name}.bind(...) "
                            "(with its constructor's arguments, if any)")
        if inspect.isclass(app) or inspect.isfunction(app):
            kind = "class" if inspect.isclass(app) else "function"
            raise TypeError(f"{expects}, got the plain {kind} {app.__name__!r}: decorate it with "
                            f"@serve.deployment, then pass {app.__name__}.bind(...)")
        raise TypeError(f"{expects}, got {type(app).__name__}")
    seen: dict[str, Application] = {}
    built: list[dict] = []

    def replace(node: Application) -> DeploymentHandle:
        visit(node)
        return DeploymentHandle(node.deployment.name, app_name)

    def visit(node: Application) -> None:
        name = node.deployment.name
        if name in seen:
            if seen[name] is not node:
                raise ValueError(f"application {app_name!r} has two different deployments named {name!r}: "
                                 f"give one another name with .options(name=...)")
            return
        seen[name] = node
        args = _map_applications(node._args, replace)
        kwargs = _map_applications(node._kwargs, replace)
        built.append(deployment_info(node.deployment, args, kwargs))

    visit(app)
    return app.deployment.name, built


def _map_applications(value: Any, fn: Callable[[Application], Any]) -> Any:
    """``value`` with every Application in it (at any depth in lists, tuples and dicts) replaced by ``fn(app)``."""
    if isinstance(value, Application):
        return fn(value)
    if isinstance(value, list):
        return [_map_applications(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_applications(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_applications(v, fn) for k, v in value.items()}
    return value


def graph_deployments(app: Application) -> dict[str, Deployment]:
    """Every deployment of the graph by name, the ingress first (what ``serve build`` lists)."""
    found: dict[str, Deployment] = {}

    def visit(node: Application) -> Application:
        if node.deployment.name not in found:
            found[node.deployment.name] = node.deployment
            _map_applications((node._args, node._kwargs), visit)
        return node

    visit(app)
    return found


def rebind(app: Application, change: Callable[[Deployment], Deployment]) -> Application:
    """A copy of the graph with each deployment replaced by ``change(deployment)`` (a config file's
    options); a node bound once and used in several places stays one node."""
    done: dict[int, Application] = {}

    def visit(node: Application) -> Application:
        if id(node) not in done:
            done[id(node)] = Application(change(node.deployment), _map_applications(node._args, visit),
                                         _map_applications(node._kwargs, visit))
        return done[id(node)]

    return visit(app)


def deployment_info(dep: Deployment, args: tuple, kwargs: dict) -> dict:
    """The plain dict the controller keeps for one deployment, with its code version: a hash of
    what a change to needs new replicas (code, constructor arguments, resources), so the
    controller can tell a roll from a reconfigure or a rescale."""
    serialized = serialization.dumps_code(dep.func_or_class)  # tracebacks keep the user's file and lines
    config = dep.config.to_dict()
    heavy = {k: v for k, v in config.items() if k not in _LIGHT_OPTIONS}
    digest = hashlib.sha1()
    if dep.version is not None:
        digest.update(b"version:" + dep.version.encode())
    else:
        digest.update(serialized)
        digest.update(cloudpickle.dumps((args, kwargs)))
    digest.update(repr(sorted(heavy.items())).encode())
    return {"name": dep.name, "serialized_def": serialized, "init_args": tuple(args), "init_kwargs": dict(kwargs),
            "config": config, "code_version": digest.hexdigest()[:16],
            "is_function": not inspect.isclass(dep.func_or_class), "route_prefix": dep.route_prefix,
            "stream": _streams_over_http(dep.func_or_class)}


def _streams_over_http(func_or_class: Callable) -> bool:
    """Whether HTTP requests to this deployment answer with a stream (a generator ``__call__``): computed
    here in the driver, since the controller never unpickles user code; its route carries it to the proxy."""
    try:
        from juno.serve.http.bridge import streams
    except ImportError:  # no HTTP extra installed: nothing is served over HTTP
        return False
    return streams(func_or_class)
