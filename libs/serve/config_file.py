"""Serve config files (Ray's ServeDeploySchema): what ``juno serve deploy config.yaml`` reads and
``juno serve build`` writes.

Three steps, kept apart so the first is tested without a cluster or user code: ``parse_config``
checks a document (a dict from YAML or JSON) and names the place of every error; ``load_applications``
imports each application's code (a bound Application, or a builder function called with ``args``) and
applies the file's per-deployment options; ``deploy_config`` makes Serve match the file, Ray's
declarative way: applications the file names are deployed or updated in place, the others deleted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import sys
from typing import Any, Callable, Iterable

from juno.serve.config import HTTPOptions, deployment_config_from_options
from juno.serve.controller.application_state import check_route_prefix
from juno.serve.deployment import Application, Deployment, graph_deployments, rebind

PROXY_LOCATIONS = ("EveryNode", "HeadOnly", "Disabled")
# What a deployment entry may set: the options of @serve.deployment that live in a DeploymentConfig.
DEPLOYMENT_OPTIONS = ("num_replicas", "max_ongoing_requests", "max_queued_requests", "user_config",
                      "autoscaling_config", "ray_actor_options", "health_check_period_s", "health_check_timeout_s",
                      "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s", "placement_group_bundles",
                      "placement_group_strategy", "max_concurrent_queries")
# Ray's fields that Juno reads but does not act on (a note says so, the file still deploys).
_IGNORED = ("logging_config",)
TOP_FIELDS = ("proxy_location", "http_options", "applications", "grpc_options", "target_capacity") + _IGNORED
APP_FIELDS = ("name", "route_prefix", "import_path", "args", "runtime_env", "deployments") + _IGNORED
DEPLOYMENT_FIELDS = ("name",) + DEPLOYMENT_OPTIONS + _IGNORED
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


class ConfigFileError(ValueError):
    """A config file that cannot be deployed as it is; the message says where and what to change."""


@dataclasses.dataclass
class DeploymentSchema:
    """One entry of an application's ``deployments:``: options for the graph's deployment of that name."""

    name: str
    options: dict  # only the options the file sets


@dataclasses.dataclass
class ServeApplicationSchema:
    name: str
    import_path: str
    route_prefix: str | None = "/"
    args: dict = dataclasses.field(default_factory=dict)
    runtime_env: dict = dataclasses.field(default_factory=dict)
    deployments: list[DeploymentSchema] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ServeDeploySchema:
    applications: list[ServeApplicationSchema]
    proxy_location: str | None = None  # None: not given (Serve's default, or the running Serve's)
    http_options: dict | None = None  # only the keys the file sets
    notes: list[str] = dataclasses.field(default_factory=list)  # fields read but not acted on


def is_config_path(path: str) -> bool:
    """Whether ``juno serve deploy PATH`` names a config file rather than module:attribute."""
    return path.lower().endswith(CONFIG_SUFFIXES)


# ============================================================================ reading and checking
def load_config_file(path: str) -> ServeDeploySchema:
    """Read and check a .yaml/.yml or .json config file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigFileError(f"cannot read the Serve config file {path!r}: {e.strerror or e}") from None
    if path.lower().endswith(".json"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigFileError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON: {e.msg}") from None
    else:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigFileError(f"{path}: {where}invalid YAML: {problem}") from None
    return parse_config(document, path)


def parse_config(document: Any, source: str = "the Serve config") -> ServeDeploySchema:
    """Check a config document (Ray's ServeDeploySchema as plain data); every error names its place."""
    if not isinstance(document, dict):
        raise ConfigFileError(f"{source}: a Serve config is a mapping with an 'applications:' list, got "
                              f"{_kind(document)}")
    _check_fields(document, TOP_FIELDS, f"{source}: the top level")
    if "applications" not in document:
        raise ConfigFileError(f"{source}: 'applications' is missing: list the applications to run "
                              "(each with import_path; an empty list deletes every application)")
    notes = []
    for field in ("grpc_options", "target_capacity", "logging_config"):
        if document.get(field) is not None:
            notes.append(f"{field} is not supported by Juno Serve yet and is ignored")
    proxy_location = document.get("proxy_location")
    if proxy_location is not None and proxy_location not in PROXY_LOCATIONS:
        raise ConfigFileError(f"{source}: proxy_location must be one of {list(PROXY_LOCATIONS)}, "
                              f"got {proxy_location!r}")
    http_options = document.get("http_options")
    if http_options is not None:
        try:
            HTTPOptions.from_value(http_options)
        except (TypeError, ValueError) as e:
            raise ConfigFileError(f"{source}: {e}") from None
        http_options = dict(http_options)
    apps = document["applications"]
    if not isinstance(apps, list):
        raise ConfigFileError(f"{source}: 'applications' must be a list, got {_kind(apps)}")
    parsed = [_parse_application(app, i, source, notes) for i, app in enumerate(apps)]
    _check_unique([a.name for a in parsed], "application name", source)
    _check_unique([a.route_prefix for a in parsed if a.route_prefix is not None], "route_prefix", source)
    return ServeDeploySchema(parsed, proxy_location, http_options, notes)


def _parse_application(app: Any, index: int, source: str, notes: list[str]) -> ServeApplicationSchema:
    where = f"{source}: applications[{index}]"
    if not isinstance(app, dict):
        raise ConfigFileError(f"{where} must be a mapping (name, route_prefix, import_path, ...), got {_kind(app)}")
    name = app.get("name", "default")
    if not isinstance(name, str) or not name:
        raise ConfigFileError(f"{where}: name must be a non-empty string, got {name!r}")
    where = f"{source}: application {name!r}"
    _check_fields(app, APP_FIELDS, where)
    import_path = app.get("import_path")
    if not isinstance(import_path, str) or not import_path:
        raise ConfigFileError(f"{where}: import_path is required: 'module:attribute' of a bound application "
                              "or of an application builder function")
    try:
        split_import_path(import_path)
        route_prefix = app.get("route_prefix", "/")
        check_route_prefix(route_prefix)
    except ValueError as e:
        raise ConfigFileError(f"{where}: {e}") from None
    args, runtime_env = app.get("args"), app.get("runtime_env")
    args, runtime_env = {} if args is None else args, {} if runtime_env is None else runtime_env
    for field, value in (("args", args), ("runtime_env", runtime_env)):
        if not isinstance(value, dict):
            raise ConfigFileError(f"{where}: {field} must be a mapping, got {_kind(value)}")
    if app.get("logging_config") is not None:
        notes.append(f"application {name!r}: logging_config is not supported by Juno Serve yet and is ignored")
    entries = app.get("deployments") or []
    if not isinstance(entries, list):
        raise ConfigFileError(f"{where}: deployments must be a list, got {_kind(entries)}")
    deployments = [_parse_deployment(entry, i, where) for i, entry in enumerate(entries)]
    _check_unique([d.name for d in deployments], "deployment name", where)
    return ServeApplicationSchema(name, import_path, route_prefix, dict(args), dict(runtime_env), deployments)


def _parse_deployment(entry: Any, index: int, where: str) -> DeploymentSchema:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry.get("name"):
        raise ConfigFileError(f"{where}: deployments[{index}] must be a mapping with a name (the deployment's, "
                              f"as in code) and its options, got {entry!r}")
    where = f"{where}, deployment {entry['name']!r}"
    _check_fields(entry, DEPLOYMENT_FIELDS, where)
    options = {k: v for k, v in entry.items() if k in DEPLOYMENT_OPTIONS}
    try:
        deployment_config_from_options(options)  # every value checked now, not when a replica starts
    except (TypeError, ValueError) as e:
        raise ConfigFileError(f"{where}: {e}") from None
    return DeploymentSchema(entry["name"], options)


def _check_fields(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise ConfigFileError(f"{where} has unknown field(s) {unknown}; allowed: {list(allowed)}")


def _check_unique(values: list, what: str, where: str) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigFileError(f"{where}: duplicate {what}(s) {repeated}: each must be unique")


def _kind(value: Any) -> str:
    return "nothing (an empty file?)" if value is None else f"a {type(value).__name__} ({value!r:.60})"


# ============================================================================ the user's code
def split_import_path(path: str) -> tuple[str, str]:
    """(module, attribute) of ``module:attribute`` or ``module.attribute`` (Ray's two spellings)."""
    if not isinstance(path, str):
        raise ValueError(f"an import path must be a string, got {type(path).__name__}")
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"an import path must be module:attribute or module.attribute (e.g. my_app:app), "
                         f"got {path!r}")
    return module, attr


def import_attr(path: str, search_dirs: Iterable[str] = ()) -> Any:
    """The object at ``path``, imported with ``search_dirs`` (and the current folder) on sys.path. The
    code of modules found there is pickled by value, so replicas need not find their files."""
    module_name, attr = split_import_path(path)
    dirs = _user_dirs(search_dirs)
    for d in reversed(dirs):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigFileError(f"import_path {path!r}: could not import module {module_name!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the user's module raised while it was imported
        raise ConfigFileError(f"import_path {path!r}: importing module {module_name!r} raised "
                              f"{type(e).__name__}: {e}") from None
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise ConfigFileError(f"import_path {path!r}: module {module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    file = os.path.abspath(getattr(module, "__file__", "") or "")
    if any(file.startswith(d + os.sep) for d in dirs):
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[module_name.partition(".")[0]])
    return value


def _user_dirs(search_dirs: Iterable[str]) -> list[str]:
    return [os.path.abspath(d) for d in (*search_dirs, os.getcwd())]


def code_version(app: ServeApplicationSchema) -> str:
    """A version for the deployments of a config's application that is the same in every process for the
    same code and file: its import path, args and runtime_env, and the source of the module (or whole
    package) the import path names, which is the code shipped by value. (The pickled code cannot serve:
    a class pickled by value carries a per-process id.) So deploying a file again rolls the replicas
    only when that code or these fields changed; a changed user_config or num_replicas alone
    reconfigures or rescales them (Ray's rule). Call it once the module is imported."""
    digest = hashlib.sha1(json.dumps([app.import_path, app.args, app.runtime_env], sort_keys=True,
                                     default=repr).encode())
    top = sys.modules.get(split_import_path(app.import_path)[0].partition(".")[0])
    for name, file in _source_files(top):
        try:
            with open(file, "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
        except OSError:
            digest.update(name.encode())
    return "config-" + digest.hexdigest()[:16]


def _source_files(module: Any) -> list[tuple[str, str]]:
    """(name within the module or package, path) of a module's file or of every .py file of a package,
    sorted; the names, not the paths, go into the version, so moving the project changes nothing."""
    if module is None:
        return []
    if not hasattr(module, "__path__"):
        file = getattr(module, "__file__", None)
        return [(os.path.basename(file), file)] if isinstance(file, str) else []
    files = []
    for root in module.__path__:
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = [d for d in subfolders if d != "__pycache__"]
            files.extend((os.path.relpath(os.path.join(folder, n), root), os.path.join(folder, n))
                         for n in names if n.endswith(".py"))
    return sorted(files)


def application_from(target: Any, args: dict, path: str) -> Application:
    """The Application an import path names: a bound one, or what a builder function returns for ``args``."""
    if isinstance(target, Application):
        if args:
            raise ConfigFileError(f"import_path {path!r} names a bound application, which takes no args; args "
                                  "are for an application builder (a function taking the args, returning "
                                  "MyDeployment.bind(...))")
        return target
    if isinstance(target, Deployment):
        raise ConfigFileError(f"import_path {path!r} names the deployment {target.name!r}, not an application: "
                              f"bind it first, e.g. `app = {target.name}.bind()`")
    if not inspect.isfunction(target):
        raise ConfigFileError(f"import_path {path!r} names a {type(target).__name__}, not a Serve application "
                              "or an application builder function")
    try:
        built = target(_builder_argument(target, args))
    except Exception as e:  # noqa: BLE001 - the user's builder failed: say which and why
        raise ConfigFileError(f"import_path {path!r}: the application builder {target.__name__}(args) raised "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(built, Application):
        raise ConfigFileError(f"import_path {path!r}: the application builder {target.__name__} returned "
                              f"{built!r:.60} ({type(built).__name__}), not an Application "
                              "(return MyDeployment.bind(...))")
    return built


def _builder_argument(builder: Callable, args: dict) -> Any:
    """``args``, or a pydantic model of them when the builder's parameter is annotated with one (as in Ray)."""
    try:
        params = list(inspect.signature(builder, eval_str=True).parameters.values())
    except (NameError, TypeError, ValueError):
        return args
    annotation = params[0].annotation if params else None
    if inspect.isclass(annotation) and hasattr(annotation, "model_validate"):
        return annotation.model_validate(args)
    return args


def load_applications(config: ServeDeploySchema) -> dict[str, Application]:
    """Each application of the file, imported and with the file's deployment options applied."""
    return {app.name: _load_application(app) for app in config.applications}


def _load_application(app: ServeApplicationSchema) -> Application:
    runtime_env = _absolute_paths(app.runtime_env)  # the controller, not this process, starts the replicas
    working_dir = runtime_env.get("working_dir")
    search = [working_dir] if isinstance(working_dir, str) else []
    try:
        application = application_from(import_attr(app.import_path, search), app.args, app.import_path)
    except ConfigFileError as e:
        raise ConfigFileError(f"application {app.name!r}: {e}") from None
    known = graph_deployments(application)
    missing = [d.name for d in app.deployments if d.name not in known]
    if missing:
        raise ConfigFileError(f"application {app.name!r}: the config sets options of deployment(s) {missing}, "
                              f"which the application does not have; its deployments are {sorted(known)}")
    overrides = {d.name: d.options for d in app.deployments}
    version = code_version(app)

    def change(dep: Deployment) -> Deployment:
        options = dict(overrides.get(dep.name, {}))
        if runtime_env:
            actor_options = dict(options.get("ray_actor_options", dep.ray_actor_options))
            actor_options["runtime_env"] = _merge_runtime_envs(runtime_env, actor_options.get("runtime_env"))
            options["ray_actor_options"] = actor_options
        return dep.options(version=dep.version or version, **options)

    try:
        return rebind(application, change)
    except (TypeError, ValueError) as e:
        raise ConfigFileError(f"application {app.name!r}: {e}") from None


def _absolute_paths(runtime_env: dict) -> dict:
    """``runtime_env`` with its local working_dir and py_modules made absolute (from the current folder)."""
    env = dict(runtime_env)

    def absolute(path: Any) -> Any:
        return os.path.abspath(path) if isinstance(path, str) and "://" not in path else path

    if "working_dir" in env:
        env["working_dir"] = absolute(env["working_dir"])
    if isinstance(env.get("py_modules"), list):
        env["py_modules"] = [absolute(p) for p in env["py_modules"]]
    return env


def _merge_runtime_envs(app_env: dict, deployment_env: dict | None) -> dict:
    """The application's runtime_env under the deployment's own (Ray's rule): the deployment's fields
    win, their env_vars are merged."""
    merged = {**app_env, **(deployment_env or {})}
    env_vars = {**(app_env.get("env_vars") or {}), **((deployment_env or {}).get("env_vars") or {})}
    if env_vars:
        merged["env_vars"] = env_vars
    return merged


# ============================================================================ serve build
def build_config(import_paths: list[str], search_dirs: Iterable[str] = ()) -> dict:
    """Ray's ``serve build``: a config document with each application's deployments and their current
    options. One application is 'app1' on '/'; several are app1, app2 ... on /app1, /app2 ..."""
    if not import_paths:
        raise ConfigFileError("give at least one import path (module:attribute of an application)")
    apps = []
    for i, path in enumerate(import_paths, start=1):
        application = application_from(import_attr(path, search_dirs), {}, path)
        apps.append({"name": f"app{i}", "route_prefix": "/" if len(import_paths) == 1 else f"/app{i}",
                     "import_path": path, "runtime_env": {},
                     "deployments": [deployment_document(d) for d in graph_deployments(application).values()]})
    return {"proxy_location": "EveryNode", "http_options": {"host": "127.0.0.1", "port": 8000},
            "applications": apps}


def deployment_document(dep: Deployment) -> dict:
    """A deployment's entry in a config file: its name and every option it has now."""
    config = dep.config.to_dict()
    doc: dict[str, Any] = {"name": dep.name}
    if config["autoscaling_config"] is not None:
        doc["autoscaling_config"] = {k: v for k, v in config["autoscaling_config"].items() if v is not None}
    else:
        doc["num_replicas"] = config["num_replicas"]
    for key in ("max_ongoing_requests", "max_queued_requests", "user_config", "ray_actor_options",
                "health_check_period_s", "health_check_timeout_s", "graceful_shutdown_wait_loop_s",
                "graceful_shutdown_timeout_s"):
        if config[key] is not None:
            doc[key] = config[key]
    if config["placement_group_bundles"] is not None:
        doc["placement_group_bundles"] = config["placement_group_bundles"]
        doc["placement_group_strategy"] = config["placement_group_strategy"]
    return doc


def dump_config(document: dict, header: str = "") -> str:
    """The document as YAML, in its own order; a value YAML cannot hold (a user_config object) is an error."""
    import yaml

    try:
        text = yaml.safe_dump(_plain(document), sort_keys=False, default_flow_style=False)
    except yaml.YAMLError as e:
        raise ConfigFileError(f"the config cannot be written as YAML: {e} (user_config and the other options "
                              "must be plain data: dicts, lists, strings, numbers, booleans)") from None
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ============================================================================ serve deploy
def deploy_config(config: ServeDeploySchema, applications: dict[str, Application], *,
                  report: Callable[[str], None] = print, timeout_s: float | None = None) -> None:
    """Make Serve on the connected cluster match the file: start it with the file's options, delete
    the applications the file does not name (first, so their route prefixes are free), then deploy or
    update in place each one it names, in order, each until RUNNING. ``report`` gets one line per step."""
    from juno.serve import api

    controller = api._controller()
    if controller is None:
        api.start(http_options=config.http_options, proxy_location=config.proxy_location or "EveryNode")
    else:
        running = api._call(controller.get_http_options.remote())
        wanted = dict(config.http_options or {})
        if config.proxy_location is not None:
            wanted["proxy_location"] = config.proxy_location
        differ = {k: v for k, v in wanted.items() if running.get(k) != v}
        if differ:
            report(f"note: Serve is already running with other options than the file's {differ}; they take "
                   "effect once Serve restarts (`juno serve shutdown`, then deploy again)")
    for name in sorted(set(api.status().applications) - set(applications)):
        api.delete(name)
        report(f"Deleted application {name!r} (not in the config).")
    kwargs = {} if timeout_s is None else {"_timeout_s": timeout_s}
    for app in config.applications:
        try:
            api.run(applications[app.name], name=app.name, route_prefix=app.route_prefix, **kwargs)
        except Exception as e:  # noqa: BLE001 - the deployment's own error (a constructor that raised ...)
            raise RuntimeError(f"application {app.name!r} failed to deploy: {e}") from None
        route = f"at route {app.route_prefix!r}" if app.route_prefix is not None else "(no HTTP route)"
        report(f"Deployed application {app.name!r} {route}: RUNNING.")
