"""Checking a remote call's arguments against the function's signature, at ``.remote()``.

A wrong call (a missing, extra or duplicate argument) raises TypeError where it is
made, as a local call would, instead of failing later inside a worker. The check is
on the submit hot path, so a signature is reduced once, at decoration time, to the
range of positional counts that always fit; only calls outside it (or with keyword
arguments, the first time their shape is seen) pay for ``inspect.Signature.bind``.

A signature travels in an actor's method table (through the GCS and inside pickled
handles) as plain data: ``(name, kind, has_default)`` per parameter, no annotations
or default values, which might not unpickle elsewhere.
"""
from __future__ import annotations

import inspect
from typing import Any

_P = inspect.Parameter
_KIND = type(_P.POSITIONAL_ONLY)
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_NO_FAST_PATH = (1, 0)  # an empty range: every call is bound
_MAX_SHAPES = 64  # fitting call shapes remembered per signature
_cache: dict[tuple, "CallSignature"] = {}


def parameters_of(fn: Any, *, skip_first: bool = False) -> tuple | None:
    """The plain-data parameters of ``fn`` (None when Python can't tell, e.g. some builtins)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if skip_first:
        if not params or params[0].kind not in _POSITIONAL:
            return None  # e.g. def method(*args): the instance is in args; nothing to check
        params = params[1:]
    return tuple((p.name, int(p.kind), p.default is not _P.empty) for p in params)


def signature_of(fn: Any, *, skip_first: bool = False) -> "CallSignature | None":
    params = parameters_of(fn, skip_first=skip_first)
    return None if params is None else CallSignature.from_parameters(params)


class CallSignature:
    """The arguments a remote function, constructor or method accepts."""

    __slots__ = ("params", "min_positional", "max_positional", "_bind", "_fitting_shapes")

    def __init__(self, params: tuple):
        self.params = params
        kinds = [_KIND(kind) for _, kind, _ in params]
        positional = [has_default for (_, _, has_default), kind in zip(params, kinds) if kind in _POSITIONAL]
        required_keyword = any(kind is _P.KEYWORD_ONLY and not has_default
                               for (_, _, has_default), kind in zip(params, kinds))
        if required_keyword:
            self.min_positional, self.max_positional = _NO_FAST_PATH
        else:
            self.min_positional = positional.count(False)
            self.max_positional = float("inf") if _P.VAR_POSITIONAL in kinds else len(positional)
        self._bind = None
        # Whether a call fits depends only on its shape (how many positional arguments,
        # which keywords): shapes with keywords that bound once are not bound again.
        self._fitting_shapes: set[tuple] = set()

    @staticmethod
    def from_parameters(params: tuple) -> "CallSignature":
        return shared_signature(params)

    def __reduce__(self):
        return shared_signature, (self.params,)

    def check(self, args: tuple, kwargs: dict, name: str, method: str = "") -> None:
        """Raise TypeError, naming ``name`` (or ``name.method``), when ``args``/``kwargs`` don't fit."""
        if not kwargs:
            if self.min_positional <= len(args) <= self.max_positional:
                return
            shape = None
        else:
            shape = (len(args), *kwargs)
            if shape in self._fitting_shapes:
                return
        if self._bind is None:
            self._bind = inspect.Signature([
                _P(pname, _KIND(kind), default=None if has_default else _P.empty)
                for pname, kind, has_default in self.params]).bind
        try:
            self._bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{name}.{method}() {e}" if method else f"{name}() {e}") from None
        if shape is not None and len(self._fitting_shapes) < _MAX_SHAPES:
            self._fitting_shapes.add(shape)


def shared_signature(params: tuple) -> CallSignature:
    """One shared instance per distinct signature (handles are rebuilt often)."""
    if type(params) is not tuple:  # a table that came back through JSON, say
        params = tuple(tuple(p) for p in params)
    sig = _cache.get(params)
    if sig is None:
        sig = _cache[params] = CallSignature(params)
    return sig
