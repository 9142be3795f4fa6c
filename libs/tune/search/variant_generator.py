"""Turning a param_space into trial configs: grid expansion, sampling, sample_from resolution, tags.

Pure functions over plain dicts. A spec is ``{"config": param_space}`` as in Ray, so that a
``sample_from`` function reads the other values of its trial as ``spec.config.x``. Paths are
tuples of keys (``("config", "model", "lr")``); list items are addressed by their index.
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import re
from typing import Any, Iterator

from juno.tune.search.sample import Categorical, Domain, as_rng

logger = logging.getLogger(__name__)

Path = tuple

__all__ = [
    "generate_variants", "preset_variants", "parse_spec_vars", "has_unresolved_values", "count_variants",
    "format_vars", "experiment_tag", "flatten_resolved_vars", "flatten_dict", "unflatten_dict",
    "assign_value", "get_value", "key_path", "merge_dicts",
]


def key_path(path: Path) -> str:
    """How a path reads in an error: ``model/layers/0`` (the leading "config" dropped)."""
    if path and path[0] == "config":
        path = path[1:]
    return "/".join(str(p) for p in path) or "<param_space>"


def _sort_key(path: Path):
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in path)


def _grid_values(value: dict, path: Path) -> list:
    if len(value) != 1:
        others = sorted(str(k) for k in value if k != "grid_search")
        raise ValueError(f"{key_path(path)}: a grid_search dict must hold only the key 'grid_search', "
                         f"also found {others}; write tune.grid_search([...]) as the whole value")
    values = value["grid_search"]
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{key_path(path)}: grid_search needs a list of values, got {type(values).__name__} "
                         f"{values!r}; write tune.grid_search([v1, v2, ...])")
    if not values:
        raise ValueError(f"{key_path(path)}: grid_search needs at least one value, got an empty list")
    return list(values)


def _is_grid(value) -> bool:
    return isinstance(value, dict) and "grid_search" in value


def has_unresolved_values(value) -> bool:
    """Whether a config still holds a Domain or a grid_search anywhere."""
    if isinstance(value, Domain) or _is_grid(value):
        return True
    if isinstance(value, dict):
        return any(has_unresolved_values(v) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(has_unresolved_values(v) for v in value)
    return False


def parse_spec_vars(spec) -> tuple[list, list, list]:
    """(resolved, domain_vars, grid_vars): lists of (path, value), the last two sorted by path.

    Raises ValueError naming the key for what cannot be sampled: a search space inside a tuple or
    set, a malformed grid_search.
    """
    resolved, domains, grids = [], [], []

    def walk(value, path):
        if isinstance(value, Domain):
            if value.is_grid():
                grids.append((path, value))
            else:
                domains.append((path, value))
        elif _is_grid(value):
            grids.append((path, Categorical(_grid_values(value, path)).grid()))
        elif isinstance(value, dict) and has_unresolved_values(value):
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, list) and has_unresolved_values(value):
            for i, v in enumerate(value):
                walk(v, path + (i,))
        elif isinstance(value, (tuple, set, frozenset)) and has_unresolved_values(value):
            raise ValueError(f"{key_path(path)}: a search space inside a {type(value).__name__} cannot be "
                             f"sampled; use a list instead")
        else:
            resolved.append((path, value))

    walk(spec, ())
    domains.sort(key=lambda pv: _sort_key(pv[0]))
    grids.sort(key=lambda pv: _sort_key(pv[0]))
    return resolved, domains, grids


def get_value(spec, path: Path):
    for key in path:
        spec = spec[key]
    return spec


def assign_value(spec, path: Path, value):
    for key in path[:-1]:
        spec = spec[key]
    spec[path[-1]] = value


class _Unresolved(Exception):
    """A sample_from read a value that is not sampled yet; resolution tries it again later."""

    def __init__(self, path: Path):
        super().__init__(key_path(path))
        self.path = path


def _guard(value, path: Path):
    if isinstance(value, Domain) or _is_grid(value):
        raise _Unresolved(path)
    if isinstance(value, dict):
        return _SpecView(value, path)
    if isinstance(value, list):
        return [_guard(v, path + (i,)) for i, v in enumerate(value)]
    return value


class _SpecView(dict):
    """What a sample_from function receives: ``spec.config.x`` and ``spec["config"]["x"]`` both
    work; reading a value not sampled yet defers the function until it is."""

    def __init__(self, data: dict, path: Path = ()):
        super().__init__(data)
        self._path = path

    def __getitem__(self, key):
        return _guard(dict.__getitem__(self, key), self._path + (key,))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __getattr__(self, name):
        if name.startswith("__") or name not in self:
            raise AttributeError(f"the spec has no key {name!r} at {key_path(self._path + (name,))}")
        return self[name]

    def values(self):
        return [self[k] for k in self]

    def items(self):
        return [(k, self[k]) for k in self]


def _resolve_domains(spec, domain_vars: list, rng, allow_fail: bool = False) -> tuple[dict, list]:
    """Sample every Domain into ``spec`` (in place): plain ones first, then sample_from functions in
    passes until each has what it reads. Returns (resolved {path: value}, still unresolved)."""
    resolved = {}
    pending = []
    for path, domain in domain_vars:
        if domain.is_function():
            pending.append((path, domain))
        else:
            value = domain.sample(random_state=rng)
            assign_value(spec, path, value)
            resolved[path] = value
    blocked: dict = {}
    while pending:
        still, blocked = [], {}
        for path, domain in pending:
            try:
                value = domain.sample(_SpecView(spec), random_state=rng)
            except _Unresolved as missing:
                still.append((path, domain))
                blocked[path] = missing.path
                continue
            except Exception as exc:
                raise ValueError(f"{key_path(path)}: sample_from({domain.domain_str}) raised "
                                 f"{type(exc).__name__}: {exc}") from exc
            assign_value(spec, path, value)
            resolved[path] = value
        if len(still) == len(pending):
            break
        pending = still
    if pending and not allow_fail:
        reads = ", ".join(f"{key_path(p)} reads {key_path(blocked[p])}" for p, _ in pending)
        raise ValueError(f"sample_from values that depend on each other in a cycle (or on a value that is "
                         f"never sampled) cannot be resolved: {reads}")
    return resolved, pending


def _grid_product(spec, grid_vars: list) -> Iterator[dict]:
    """Every combination of the grid axes, the first axis (by path) changing fastest, as Ray."""
    axes = [domain.categories for _, domain in grid_vars]
    for combo in itertools.product(*reversed(axes)):
        variant = copy.deepcopy(spec)
        for (path, _), value in zip(grid_vars, reversed(combo)):
            assign_value(variant, path, copy.deepcopy(value))
        yield variant


def generate_variants(unresolved_spec: dict, constant_grid_search: bool = False,
                      random_state=None) -> Iterator[tuple[dict, dict]]:
    """Yield (resolved_vars, spec) for every grid combination of ``unresolved_spec``, each with its
    Domains sampled: one pass of num_samples. ``resolved_vars`` maps each sampled or grid path to
    its value. With ``constant_grid_search`` the random values are drawn once for the whole grid."""
    yield from _generate(unresolved_spec, constant_grid_search, as_rng(random_state))


def _generate(spec, constant_grid_search: bool, rng) -> Iterator[tuple[dict, dict]]:
    spec = copy.deepcopy(spec)
    _, domain_vars, grid_vars = parse_spec_vars(spec)
    if not domain_vars and not grid_vars:
        yield {}, spec
        return
    fixed, to_resolve = {}, domain_vars
    if constant_grid_search:
        fixed, to_resolve = _resolve_domains(spec, domain_vars, rng, allow_fail=True)
    for grid_spec in _grid_product(spec, grid_vars):
        sampled, _ = _resolve_domains(grid_spec, to_resolve, rng)
        # A grid value or a sample_from result may itself hold a search space: expand it too.
        for inner, final in _generate(grid_spec, constant_grid_search, rng):
            resolved = {path: get_value(final, path) for path, _ in grid_vars}
            resolved.update(fixed)
            resolved.update(sampled)
            resolved.update(inner)
            yield resolved, final


def _apply_point(spec: dict, point: dict, warn: bool = True) -> dict:
    """Lay a partial config over ``spec["config"]`` (in place); returns {path: value} it fixed."""
    fixed = {}

    def overlay(target: dict, values: dict, path: Path):
        if not isinstance(values, dict):
            raise ValueError(f"points_to_evaluate: each point must be a dict of param_space keys, got {values!r}")
        for key, value in values.items():
            if not isinstance(target, dict) or key not in target:
                raise ValueError(f"points_to_evaluate: the key {key_path(path + (key,))} is not in the "
                                 f"param_space; every point must use the param_space's keys")
            current = target[key]
            if isinstance(value, dict) and isinstance(current, dict) and not _is_grid(current):
                overlay(current, value, path + (key,))
                continue
            domain = Categorical(_grid_values(current, path + (key,))) if _is_grid(current) else current
            if warn and isinstance(domain, Domain) and not domain.is_function() and not domain.is_valid(value):
                logger.warning("points_to_evaluate: %r is outside the values of %s: %s",
                               value, key_path(path + (key,)), domain.domain_str)
            target[key] = copy.deepcopy(value)
            fixed[path + (key,)] = value

    overlay(spec["config"], point, ("config",))
    return fixed


def preset_variants(unresolved_spec: dict, point: dict, constant_grid_search: bool = False,
                    random_state=None) -> Iterator[tuple[dict, dict]]:
    """Variants of ``unresolved_spec`` with the values of ``point`` (a partial config) fixed; what
    ``point`` leaves out is sampled or expanded as usual. The fixed values count as resolved."""
    spec = copy.deepcopy(unresolved_spec)
    fixed = _apply_point(spec, point)
    for resolved, variant in _generate(spec, constant_grid_search, as_rng(random_state)):
        yield {**fixed, **resolved}, variant


def _grid_count(spec) -> int:
    """How many variants one pass over ``spec`` makes (grid values holding grids count theirs)."""
    count = 1
    for _, domain in parse_spec_vars(spec)[2]:
        count *= sum(_grid_count(value) for value in domain.categories)
    return count


def count_variants(spec: dict, points: list | None = None, num_samples: int = 1) -> int:
    """Trials a BasicVariantGenerator makes: each point uses one of ``num_samples`` (times the grid
    axes it leaves open), the rest repeat the whole grid. Raises ValueError for a point whose keys
    are not in the spec."""
    total = 0
    for point in points or []:
        with_point = copy.deepcopy(spec)
        _apply_point(with_point, point, warn=False)
        total += _grid_count(with_point)
        num_samples -= 1
    return total + max(num_samples, 0) * _grid_count(spec)


def merge_dicts(base: dict, override: dict) -> dict:
    """A deep copy of ``base`` with ``override``'s values laid over it, nested dicts merged."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not _is_grid(merged[key]):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _clean_value(value: Any) -> str:
    """A value as it may stand in a directory name (Ray's rule: floats to 4 decimals)."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}"
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", str(value)).strip("_")


def format_vars(resolved_vars: dict) -> str:
    """``lr=0.0100,momentum=0.9000``: each resolved path's last key and its value, sorted by path."""
    items = sorted(resolved_vars.items(), key=lambda kv: _sort_key(kv[0]))
    return ",".join(f"{_clean_value(path[-1])}={_clean_value(value)}" for path, value in items)


def experiment_tag(index: int, resolved_vars: dict) -> str:
    """Ray's experiment_tag: ``3_lr=0.0100,momentum=0.9000`` (just ``3`` when nothing was sampled)."""
    return f"{index}_{format_vars(resolved_vars)}" if resolved_vars else str(index)


def flatten_resolved_vars(resolved_vars: dict) -> dict:
    """{("config", "a", "b"): v} -> {"a/b": v}: a trial's evaluated_params."""
    flat = {}
    for path, value in sorted(resolved_vars.items(), key=lambda kv: _sort_key(kv[0])):
        if path and path[0] == "config":
            path = path[1:]
        flat["/".join(str(p) for p in path)] = value
    return flat


def flatten_dict(dt: dict, delimiter: str = "/", prevent_delimiter: bool = False) -> dict:
    """{"a": {"b": 1}} -> {"a/b": 1} (non-empty nested dicts only)."""
    flat = {}

    def walk(value, prefix):
        for key, item in value.items():
            if prevent_delimiter and delimiter in str(key):
                raise ValueError(f"the key {key!r} holds the delimiter {delimiter!r}")
            name = f"{prefix}{delimiter}{key}" if prefix else str(key)
            if isinstance(item, dict) and item:
                walk(item, name)
            else:
                flat[name] = item

    walk(dt, "")
    return flat


def unflatten_dict(dt: dict, delimiter: str = "/") -> dict:
    """{"a/b": 1} -> {"a": {"b": 1}}."""
    nested: dict = {}
    for key, value in dt.items():
        parts = str(key).split(delimiter)
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return nested


def domains_by_name(space: dict, searcher: str) -> dict:
    """{"a/b": Domain} for the Domains of a param_space a searcher adapter converts. sample_from
    values are left out (Tune resolves them after the suggestion); a grid_search, or a Domain inside
    a list, raises ValueError naming the key."""
    _, domains, grids = parse_spec_vars({"config": space})
    if grids:
        raise ValueError(f"{key_path(grids[0][0])}: {searcher} cannot search a grid_search; use tune.choice([...])")
    named = {}
    for path, domain in domains:
        if any(isinstance(p, int) for p in path):
            raise ValueError(f"{key_path(path)}: {searcher} cannot search a value inside a list; use a dict")
        if not domain.is_function():
            named[key_path(path)] = domain
    return named
