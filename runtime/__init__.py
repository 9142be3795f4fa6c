"""Juno: Ray's API for tasks, actors and objects on a runtime of its own, built for notebooks.

``import juno as ray`` runs Ray Core code unchanged.
"""
from __future__ import annotations

import inspect as _inspect

from juno import exceptions, job_config  # noqa: F401 - juno.job_config, as ray.job_config
from juno.actor import ActorClass, ActorHandle, exit_actor, method
from juno.api import (JunoContext, RayContext, available_resources, cancel, cluster_resources, get, get_actor,
                      get_gpu_ids, get_runtime_context, init, is_initialized, kill, nodes, put, shutdown, wait)
from juno.object_ref import ObjectRef, ObjectRefGenerator
from juno.remote_function import RemoteFunction

__version__ = "0.1.0"


def remote(*args, **kwargs):
    """Make a function a remote task or a class an actor: ``@remote`` or ``@remote(num_cpus=2, ...)``."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@remote takes either no arguments or only keyword options, "
                        "e.g. @juno.remote or @juno.remote(num_gpus=1).")
    if not kwargs:  # Ray refuses @ray.remote() too: code that runs on Juno should run on Ray
        raise TypeError("@remote() with empty parentheses is not allowed (Ray refuses it too): write "
                        "@juno.remote without parentheses, or give options, e.g. @juno.remote(num_cpus=2).")

    def decorate(target):
        return _make_remote(target, kwargs)

    return decorate


def _make_remote(target, options: dict):
    if _inspect.isclass(target):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"@remote must decorate a function or a class, got {type(target).__name__}.")


class _Actor:
    """Namespace mirroring Ray's ``ray.actor`` helpers."""

    ActorClass = ActorClass
    ActorHandle = ActorHandle
    exit_actor = staticmethod(exit_actor)


actor = _Actor()


def timeline(filename: str | None = None):
    """Chrome-trace events of the tasks the cluster ran (Ray's ``ray.timeline``): the list of
    events, or written as JSON to ``filename``. Open the file in chrome://tracing or Perfetto."""
    from juno.util.state import timeline as _timeline

    return _timeline(filename)


def load_ipython_extension(ip) -> None:
    """``%load_ext juno``: the magics, output routing and interrupts (juno.kernel_ext)."""
    from juno.kernel_ext import load_ipython_extension as _load

    _load(ip)


def unload_ipython_extension(ip) -> None:
    from juno.kernel_ext import unload_ipython_extension as _unload

    _unload(ip)

__all__ = [
    "ActorClass", "ActorHandle", "JunoContext", "ObjectRef", "ObjectRefGenerator", "RayContext", "RemoteFunction",
    "actor", "available_resources", "cancel", "cluster_resources", "exceptions", "exit_actor", "get", "get_actor",
    "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method", "nodes", "put", "remote",
    "shutdown", "timeline", "wait",
]


# The libraries load on first use, as Ray's do: `import juno; juno.data.range(10)` works, and
# `import juno` stays fast for programs that never touch them.
_LIBRARIES = ("air", "data", "train", "tune")


def __getattr__(name: str):
    if name in _LIBRARIES:
        import importlib

        return importlib.import_module(f"juno.{name}")
    raise AttributeError(f"module 'juno' has no attribute {name!r}")
