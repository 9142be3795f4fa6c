"""Validation of the options users pass to ``@remote(...)`` and ``.options(...)``.

Mistyped or out-of-range options are the most common first error with Ray's
API, so each check names the option, the bad value and what is allowed, and
unknown names suggest the closest valid one. Rules follow Ray's behaviour.
"""

from __future__ import annotations

import difflib
import math
import os
import types
from typing import Any, Callable, Mapping

from juno.util.scheduling_strategies import (
    DEFAULT_SCHEDULING_STRATEGY, SPREAD_SCHEDULING_STRATEGY,
    NodeAffinitySchedulingStrategy, NodeLabelSchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

__all__ = [
    "TASK_DEFAULTS", "ACTOR_DEFAULTS", "ACTOR_METHOD_DEFAULTS",
    "TASK_OPTION_NAMES", "ACTOR_OPTION_NAMES", "ACTOR_METHOD_OPTION_NAMES",
    "ACTOR_DEFAULT_SCHEDULING_CPUS", "ACTOR_DEFAULT_LIFETIME_CPUS",
    "DEFAULT_MAX_CONCURRENCY_SYNC", "DEFAULT_MAX_CONCURRENCY_ASYNC",
    "validate_task_options", "validate_actor_options", "validate_actor_method_options",
    "validate_runtime_env", "merge_runtime_envs", "resolve_actor_cpus",
    "default_max_concurrency",
]

# --------------------------------------------------------------------------- #
# Defaults
# --------------------------------------------------------------------------- #

# Ray schedules an actor that asked for no resources with 1 CPU (so it cannot
# land on a zero-CPU node) but holds 0 CPUs while it lives (so any number of
# idle actors fit). If any resource is requested, num_cpus defaults to 1 for both.
ACTOR_DEFAULT_SCHEDULING_CPUS = 1
ACTOR_DEFAULT_LIFETIME_CPUS = 0
DEFAULT_MAX_CONCURRENCY_SYNC = 1
DEFAULT_MAX_CONCURRENCY_ASYNC = 1000

TASK_DEFAULTS: Mapping[str, Any] = types.MappingProxyType({
    "num_cpus": 1, "num_gpus": 0, "memory": 0, "object_store_memory": None,
    "resources": None, "accelerator_type": None, "num_returns": 1,
    "max_retries": 3, "retry_exceptions": False, "runtime_env": None,
    "scheduling_strategy": DEFAULT_SCHEDULING_STRATEGY, "name": None,
    "max_calls": 0, "placement_group": "default", "placement_group_bundle_index": -1,
    "placement_group_capture_child_tasks": None, "_metadata": None,
    "label_selector": None,
})

ACTOR_DEFAULTS: Mapping[str, Any] = types.MappingProxyType({
    # None = "default": 1 CPU to schedule, 0 CPUs held for the actor's lifetime
    # (see resolve_actor_cpus).
    "num_cpus": None, "num_gpus": 0, "memory": 0, "object_store_memory": None,
    "resources": None, "accelerator_type": None, "max_restarts": 0,
    "max_task_retries": 0,
    # None = 1 for sync actors, 1000 for async actors (default_max_concurrency).
    "max_concurrency": None, "concurrency_groups": None, "max_pending_calls": -1,
    "name": None, "namespace": None, "lifetime": None, "get_if_exists": False,
    "runtime_env": None, "scheduling_strategy": DEFAULT_SCHEDULING_STRATEGY,
    "placement_group": "default", "placement_group_bundle_index": -1,
    "placement_group_capture_child_tasks": None, "_metadata": None,
    "label_selector": None,
})

# None for max_task_retries / retry_exceptions = inherit from the actor.
ACTOR_METHOD_DEFAULTS: Mapping[str, Any] = types.MappingProxyType({
    "num_returns": 1, "concurrency_group": None, "max_task_retries": None,
    "retry_exceptions": None, "name": None, "_metadata": None,
})

_RESOURCE_OPTIONS = ("num_cpus", "num_gpus", "memory", "object_store_memory",
                     "resources", "accelerator_type")
_PG_OPTIONS = ("placement_group", "placement_group_bundle_index",
               "placement_group_capture_child_tasks")
_COMMON = _RESOURCE_OPTIONS + ("runtime_env", "scheduling_strategy", "name") + \
    _PG_OPTIONS + ("_metadata", "label_selector")

TASK_OPTION_NAMES = frozenset(_COMMON + ("num_returns", "max_retries",
                                         "retry_exceptions", "max_calls"))
ACTOR_OPTION_NAMES = frozenset(_COMMON + (
    "max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups",
    "max_pending_calls", "namespace", "lifetime", "get_if_exists"))
ACTOR_METHOD_OPTION_NAMES = frozenset((
    "num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
    "name", "_metadata"))

_KIND_NAMES = {"task": TASK_OPTION_NAMES, "actor": ACTOR_OPTION_NAMES,
               "actor method": ACTOR_METHOD_OPTION_NAMES}


def resolve_actor_cpus(options: Mapping[str, Any]) -> tuple[float, float]:
    """Return (CPUs needed to place the actor, CPUs held while it lives), as Ray does."""
    num_cpus = options.get("num_cpus")
    if num_cpus is not None:
        return (num_cpus, num_cpus)
    # memory/object_store_memory do not count as "asking for resources" (as in Ray).
    specified = bool(options.get("num_gpus")) or bool(options.get("resources")) \
        or options.get("accelerator_type") is not None
    if specified:
        return (1, 1)
    return (ACTOR_DEFAULT_SCHEDULING_CPUS, ACTOR_DEFAULT_LIFETIME_CPUS)


def default_max_concurrency(is_async: bool) -> int:
    """max_concurrency used when the user gave none: 1 sync, 1000 async."""
    return DEFAULT_MAX_CONCURRENCY_ASYNC if is_async else DEFAULT_MAX_CONCURRENCY_SYNC


# --------------------------------------------------------------------------- #
# Value checks: each takes (name, value, kind) and returns the normalized value
# --------------------------------------------------------------------------- #

def _fail(kind: str, name: str, value: Any, allowed: str, exc: type = ValueError):
    raise exc(f"Invalid value for {kind} option '{name}': {value!r}. "
              f"'{name}' must be {allowed}.")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(allowed_extra: str = "", *, precision: bool = False,
            whole_above_one: bool = False) -> Callable:
    """A non-negative number check, optionally with Ray's resource quantity rules."""
    def check(name: str, v: Any, kind: str) -> Any:
        allowed = "a non-negative number" + allowed_extra
        if not _is_number(v):
            _fail(kind, name, v, allowed, TypeError)
        if not math.isfinite(v) or v < 0:
            _fail(kind, name, v, allowed)
        if whole_above_one and v > 1 and not float(v).is_integer():
            _fail(kind, name, v, "a whole number when greater than 1 (fractions are "
                  "only allowed between 0 and 1)")
        if precision and abs(v * 10000 - round(v * 10000)) > 1e-6:
            _fail(kind, name, v, "a multiple of 0.0001 (resource quantities have at "
                  "most 4 decimal places)")
        return v
    return check


def _int_at_least(lo: int, note: str = "") -> Callable:
    def check(name: str, v: Any, kind: str) -> int:
        allowed = f"an int >= {lo}{note}"
        if isinstance(v, bool) or not isinstance(v, int):
            _fail(kind, name, v, allowed, TypeError)
        if v < lo:
            _fail(kind, name, v, allowed)
        return v
    return check


def _check_bool(name: str, v: Any, kind: str) -> bool:
    if not isinstance(v, bool):
        _fail(kind, name, v, "True or False", TypeError)
    return v


def _check_str(name: str, v: Any, kind: str) -> str:
    if not isinstance(v, str):
        _fail(kind, name, v, "a string", TypeError)
    return v


def _check_nonempty_str(name: str, v: Any, kind: str) -> str:
    if not isinstance(v, str):
        _fail(kind, name, v, "a non-empty string", TypeError)
    if not v:
        _fail(kind, name, v, "a non-empty string")
    return v


def _check_resources(name: str, v: Any, kind: str) -> dict:
    allowed = "a dict mapping custom resource names to non-negative numbers"
    if not isinstance(v, Mapping):
        _fail(kind, name, v, allowed, TypeError)
    quantity = _number(precision=True)
    out = {}
    for res, qty in v.items():
        if not isinstance(res, str) or not res:
            _fail(kind, name, v, allowed + f" (bad resource name {res!r})", TypeError)
        if res in ("CPU", "GPU"):
            raise ValueError(f"Invalid {kind} option 'resources': {dict(v)!r}. Use the "
                             f"'num_cpus' and 'num_gpus' options instead of 'CPU' and "
                             f"'GPU' in 'resources'.")
        if res in ("memory", "object_store_memory"):
            raise ValueError(f"Invalid {kind} option 'resources': {dict(v)!r}. Use the "
                             f"'{res}' option instead of putting '{res}' in 'resources'.")
        out[res] = quantity(f"resources[{res!r}]", qty, kind)
    return out


def _check_num_returns(name: str, v: Any, kind: str) -> Any:
    allowed = 'a non-negative int, "streaming" or "dynamic"'
    if isinstance(v, str):
        if v not in ("streaming", "dynamic"):
            _fail(kind, name, v, allowed)
        return v
    return _int_at_least(0, ', "streaming" or "dynamic"')(name, v, kind)


def _check_retry_exceptions(name: str, v: Any, kind: str) -> Any:
    allowed = "a bool or a list/tuple of exception classes"
    if isinstance(v, bool):
        return v
    if not isinstance(v, (list, tuple)):
        _fail(kind, name, v, allowed, TypeError)
    for item in v:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            _fail(kind, name, v, allowed + f" ({item!r} is not an exception class)",
                  TypeError)
    return tuple(v)


def _check_concurrency_groups(name: str, v: Any, kind: str) -> dict:
    allowed = "a dict mapping group names to an int max concurrency >= 1"
    if not isinstance(v, Mapping):
        _fail(kind, name, v, allowed, TypeError)
    out = {}
    for group, limit in v.items():
        if not isinstance(group, str) or not group:
            _fail(kind, name, v, allowed + f" (bad group name {group!r})", TypeError)
        out[group] = _int_at_least(1)(f"concurrency_groups[{group!r}]", limit, kind)
    return out


def _check_lifetime(name: str, v: Any, kind: str) -> str:
    if v not in ("detached", "non_detached"):
        _fail(kind, name, v, 'None, "detached" or "non_detached"')
    return v


def _check_runtime_env(name: str, v: Any, kind: str) -> dict:
    return validate_runtime_env(v)


def _check_strategy(name: str, v: Any, kind: str) -> Any:
    if isinstance(v, str):
        if v not in (DEFAULT_SCHEDULING_STRATEGY, SPREAD_SCHEDULING_STRATEGY):
            _fail(kind, name, v, 'None, "DEFAULT", "SPREAD" or a strategy object from '
                  "juno.util.scheduling_strategies")
        return v
    if not isinstance(v, (NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy,
                          NodeLabelSchedulingStrategy)):
        _fail(kind, name, v, 'None, "DEFAULT", "SPREAD", NodeAffinitySchedulingStrategy, '
              "PlacementGroupSchedulingStrategy or NodeLabelSchedulingStrategy", TypeError)
    return v


def _check_placement_group(name: str, v: Any, kind: str) -> Any:
    if isinstance(v, str) and v != "default":
        _fail(kind, name, v, 'None, "default" or a placement group')
    return v


def _check_dict(name: str, v: Any, kind: str) -> dict:
    if not isinstance(v, Mapping):
        _fail(kind, name, v, "a dict", TypeError)
    return dict(v)


def _check_label_selector(name: str, v: Any, kind: str) -> dict:
    allowed = "a dict mapping label names to string values"
    if not isinstance(v, Mapping):
        _fail(kind, name, v, allowed, TypeError)
    for key, val in v.items():
        if not isinstance(key, str) or not isinstance(val, str):
            _fail(kind, name, v, allowed + f" (bad entry {key!r}: {val!r})", TypeError)
    return dict(v)


_CHECKS: dict[str, Callable] = {
    "num_cpus": _number(precision=True),
    "num_gpus": _number(precision=True, whole_above_one=True),
    "memory": _number(" (bytes)"),
    "object_store_memory": _number(" (bytes)"),
    "resources": _check_resources,
    "accelerator_type": _check_str,
    "num_returns": _check_num_returns,
    "max_retries": _int_at_least(-1, " (-1 retries forever)"),
    "retry_exceptions": _check_retry_exceptions,
    "max_calls": _int_at_least(0, " (0 means no limit)"),
    "max_restarts": _int_at_least(-1, " (-1 restarts forever)"),
    "max_task_retries": _int_at_least(-1, " (-1 retries forever)"),
    "max_concurrency": _int_at_least(1),
    "concurrency_groups": _check_concurrency_groups,
    "concurrency_group": _check_nonempty_str,
    "max_pending_calls": _int_at_least(-1, " (-1 means no limit)"),
    "name": _check_nonempty_str,
    "namespace": _check_nonempty_str,
    "lifetime": _check_lifetime,
    "get_if_exists": _check_bool,
    "runtime_env": _check_runtime_env,
    "scheduling_strategy": _check_strategy,
    "placement_group": _check_placement_group,
    "placement_group_bundle_index": _int_at_least(-1, " (-1 means any bundle)"),
    "placement_group_capture_child_tasks": _check_bool,
    "_metadata": _check_dict,
    "label_selector": _check_label_selector,
}


def _unknown(kind: str, name: Any) -> None:
    valid = _KIND_NAMES[kind]
    if not isinstance(name, str):
        raise TypeError(f"Option names must be strings, got {name!r}.")
    msg = f"Invalid option {name!r} for {kind}s."
    owners = [k for k, names in _KIND_NAMES.items() if name in names]
    if owners:
        msg += f" It is only valid for {' and '.join(k + 's' for k in owners)}."
    else:
        close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
        if close:
            msg += f" Did you mean {close[0]!r}?"
    msg += f" Valid {kind} options: {', '.join(sorted(valid))}."
    raise ValueError(msg)


def _validate(options: Mapping[str, Any], kind: str) -> dict:
    if not isinstance(options, Mapping):
        raise TypeError(f"{kind} options must be a dict, got {type(options).__name__}.")
    valid = _KIND_NAMES[kind]
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name not in valid:
            _unknown(kind, name)
        # None always means "not set: use the default".
        out[name] = None if value is None else _CHECKS[name](name, value, kind)
    return out


def _check_placement_group_conflict(merged: Mapping[str, Any], kind: str) -> None:
    pg = merged.get("placement_group", "default")
    if pg not in ("default", None) and merged.get("scheduling_strategy") is not None:
        raise ValueError(f"Invalid {kind} options: 'placement_group' and "
                         "'scheduling_strategy' cannot both be set. Pass "
                         "scheduling_strategy=PlacementGroupSchedulingStrategy(pg) instead "
                         "of the legacy 'placement_group' option.")


def validate_task_options(options: Mapping[str, Any], *, in_options: bool,
                          defaults: Mapping[str, Any] | None = None) -> dict:
    """Check options for a remote function and return a normalized copy.

    ``in_options`` is True for ``.options(...)`` (where ``max_calls`` is not
    allowed, as in Ray). ``defaults`` are the ``@remote`` options being
    overridden; they are only used for checks spanning several options.
    """
    out = _validate(options, "task")
    if in_options and "max_calls" in out:
        raise ValueError("Setting 'max_calls' is not supported in '.options()'; set it "
                         "in @remote(max_calls=...).")
    _check_placement_group_conflict({**(defaults or {}), **out}, "task")
    return out


def validate_actor_options(options: Mapping[str, Any], *, in_options: bool,
                           defaults: Mapping[str, Any] | None = None) -> dict:
    """Check options for an actor class and return a normalized copy.

    ``in_options`` is True for ``.options(...)`` (where ``concurrency_groups``
    is not allowed, as in Ray). ``defaults`` are the ``@remote`` options being
    overridden; they are only used for checks spanning several options, such
    as ``get_if_exists`` needing a ``name``.
    """
    out = _validate(options, "actor")
    if in_options and "concurrency_groups" in out:
        raise ValueError("Setting 'concurrency_groups' is not supported in '.options()'; "
                         "set it in @remote(concurrency_groups=...).")
    merged = {**(defaults or {}), **out}
    if merged.get("get_if_exists") and not merged.get("name"):
        raise ValueError("The actor option 'get_if_exists' requires 'name': an actor can "
                         "only be looked up by name. Pass name=... as well.")
    _check_placement_group_conflict(merged, "actor")
    return out


def validate_actor_method_options(options: Mapping[str, Any]) -> dict:
    """Check options for an actor method (``@method`` or ``.options``)."""
    return _validate(options, "actor method")


# --------------------------------------------------------------------------- #
# runtime_env
# --------------------------------------------------------------------------- #

_ENV_SUPPORTED = ("env_vars", "working_dir", "py_modules", "config")
_ENV_NEEDS_INSTALL = ("pip", "conda", "uv", "container", "image_uri")
_ENV_SUPPORT_NOTE = ("Juno only supports 'env_vars', 'working_dir' and 'py_modules' "
                     "(plus 'config') in runtime_env on this runtime.")


def _local_path(field: str, value: Any) -> str:
    if isinstance(value, types.ModuleType):
        file = getattr(value, "__file__", None)
        if not file:
            raise ValueError(f"runtime_env['{field}']: module {value.__name__!r} has no "
                             "file on disk to ship.")
        return os.path.dirname(file) if hasattr(value, "__path__") else file
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"runtime_env['{field}'] entries must be local paths (str), got "
                        f"{value!r} ({type(value).__name__}).")
    path = os.fspath(value)
    if "://" in path:
        raise ValueError(f"runtime_env['{field}'] = {path!r}: remote URIs are not "
                         "supported; pass a local path.")
    return os.path.abspath(os.path.expanduser(path))


def validate_runtime_env(env: Mapping[str, Any] | None) -> dict:
    """Check a runtime_env and return a normalized copy (paths made absolute).

    Juno runs tasks in the driver's own Python environment, so fields that
    install packages or containers are rejected rather than silently ignored.
    """
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise TypeError(f"runtime_env must be a dict, got {env!r} ({type(env).__name__}).")
    out: dict[str, Any] = {}
    for key, value in env.items():
        if key in _ENV_NEEDS_INSTALL:
            raise ValueError(f"runtime_env field {key!r} is not supported: {_ENV_SUPPORT_NOTE}"
                             " Install packages into the Python environment Juno runs in "
                             "instead.")
        if key not in _ENV_SUPPORTED:
            close = difflib.get_close_matches(str(key), _ENV_SUPPORTED, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"Unknown runtime_env field {key!r}.{hint} {_ENV_SUPPORT_NOTE}")
        if value is None:
            continue
        if key == "env_vars":
            if not isinstance(value, Mapping):
                raise TypeError("runtime_env['env_vars'] must be a dict of str -> str, got "
                                f"{value!r} ({type(value).__name__}).")
            for k, v in value.items():
                if not isinstance(k, str) or not k:
                    raise TypeError("runtime_env['env_vars'] names must be non-empty "
                                    f"strings, got {k!r}.")
                if not isinstance(v, str):
                    raise TypeError(f"runtime_env['env_vars'][{k!r}] must be a str, got "
                                    f"{v!r} ({type(v).__name__}); environment variable "
                                    f"values are strings, e.g. use {str(v)!r}.")
            out[key] = dict(value)
        elif key == "working_dir":
            path = _local_path(key, value)
            if not os.path.isdir(path):
                raise ValueError(f"runtime_env['working_dir'] = {value!r}: no such local "
                                 "directory" + (f" ({path})" if path != value else "") + ".")
            out[key] = path
        elif key == "py_modules":
            if not isinstance(value, (list, tuple)):
                raise TypeError("runtime_env['py_modules'] must be a list of local paths, "
                                f"got {value!r} ({type(value).__name__}).")
            paths = []
            for item in value:
                path = _local_path(key, item)
                if not os.path.exists(path):
                    raise ValueError(f"runtime_env['py_modules'] entry {item!r}: no such "
                                     f"local file or directory ({path}).")
                paths.append(path)
            out[key] = paths
        else:  # config
            if not isinstance(value, Mapping):
                raise TypeError(f"runtime_env['config'] must be a dict, got {value!r} "
                                f"({type(value).__name__}).")
            out[key] = dict(value)
    return out


def merge_runtime_envs(parent: Mapping[str, Any] | None,
                       child: Mapping[str, Any] | None) -> dict | None:
    """Combine a parent's runtime_env with a child task's/actor's own.

    Child fields replace the parent's, except ``env_vars``, which are merged
    key by key with the child winning. A child field set to None is treated
    as unset and keeps the parent's value.
    """
    if parent is None and child is None:
        return None
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v)
                           for k, v in (parent or {}).items()}
    for key, value in (child or {}).items():
        if value is None:
            continue
        if key == "env_vars":
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out
