"""Refusing (or warning about) a function or class whose pickled code is huge.

Code is exported by value, with everything its closure captures: a big array a
function refers to travels with the code, is stored in the GCS and loaded by every
worker. Ray warns past 10 MB and refuses past 100 MB, saying to ``put`` the value
instead; Juno does the same (``function_size_warn_bytes``/``function_size_error_bytes``
in the config) and names the captured values that make up the bulk.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import cloudpickle

from juno.observability.task_events import user_frame

_MIB = 1 << 20
_NAMES_SHOWN = 3


def check_export_size(blob: bytes, obj: Any, kind: str, name: str, config) -> None:
    """Warn when ``blob`` (the pickled ``obj``) is past the warning size, refuse it past the error size."""
    size = len(blob)
    if size <= config.function_size_warn_bytes:
        return
    what = f"The {kind} {name}"
    captured = _largest_captured(obj)
    culprits = (f" The largest values it captures: {captured}." if captured
                else " Check that its definition is not capturing a large array or other object in scope.")
    fix = (" Put large values in the object store with juno.put() and pass the ref as an argument "
           "(or juno.get() it inside), so they are stored once instead of with the code.")
    if size > config.function_size_error_bytes:
        raise ValueError(f"{what} is too large to export ({size / _MIB:.1f} MiB > function_size_error_bytes="
                         f"{config.function_size_error_bytes / _MIB:.1f} MiB).{culprits}{fix}")
    warnings.warn(f"{what} is very large ({size / _MIB:.1f} MiB; warned past function_size_warn_bytes="
                  f"{config.function_size_warn_bytes / _MIB:.1f} MiB).{culprits}{fix}", UserWarning,
                  stacklevel=user_frame(1)[1] + 1)  # the user's call: warned once per call site


def _largest_captured(obj: Any) -> str:
    """"name (size)" of the biggest values ``obj``'s code refers to (closure cells, globals,
    class attributes), largest first; only computed once the code is known to be big."""
    values: dict[str, Any] = {}
    functions = [obj]
    if inspect.isclass(obj):
        for klass in obj.__mro__[:-1]:
            for attr, value in vars(klass).items():
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                if inspect.isfunction(value):
                    functions.append(value)
                elif not attr.startswith("__"):
                    values.setdefault(attr, value)
        functions = functions[1:]
    for fn in functions:
        try:
            closure = inspect.getclosurevars(fn)
        except TypeError:
            continue
        for table in (closure.nonlocals, closure.globals):
            for key, value in table.items():
                if not (inspect.ismodule(value) or inspect.isfunction(value) or inspect.isclass(value)):
                    values.setdefault(key, value)
    sizes = []
    for key, value in values.items():
        try:
            sizes.append((len(cloudpickle.dumps(value, protocol=5)), key))
        except Exception:  # noqa: BLE001 - unpicklable values fail the export itself, with their own error
            continue
    sizes.sort(reverse=True)
    return ", ".join(f"{key} ({size / _MIB:.1f} MiB)" for size, key in sizes[:_NAMES_SHOWN] if size >= _MIB)
