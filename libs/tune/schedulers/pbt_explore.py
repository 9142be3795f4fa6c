"""PBT's explore step: new hyperparameters from a top trial's, by resampling or perturbing each mutated one.

``hyperparam_mutations`` maps a config key to where its values come from: a list (or a
``tune.choice`` Categorical) of allowed values, a search space Domain (``tune.uniform(...)``...),
a function of no arguments, or a nested dict of the same. Search space objects are duck-typed
(``.sample(random_state=...)``, ``.lower``/``.upper``, ``.categories``) so any Domain of
``juno.tune.search.sample`` or Ray's shape works.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Callable

import numpy as np


def is_domain(value: Any) -> bool:
    return callable(getattr(value, "sample", None)) and not isinstance(value, (list, tuple, dict))


def is_sample_from(value: Any) -> bool:
    """``tune.sample_from`` (a Domain wrapping a function of the config): PBT cannot resample it alone."""
    return is_domain(value) and (type(value).__name__ == "Function" or hasattr(value, "func"))


def allowed_values(space: Any) -> list | None:
    """The list of allowed values of a list, tuple or Categorical space; None for other spaces."""
    if isinstance(space, (list, tuple)):
        return list(space)
    categories = getattr(space, "categories", None) if is_domain(space) else None
    return list(categories) if categories is not None else None


def check_mutations(mutations: dict, where: str = "hyperparam_mutations") -> None:
    """Fail at construction on a mutation PBT cannot use, naming its key."""
    if not isinstance(mutations, dict):
        raise TypeError(f"{where} must be a dict of config key -> list, search space or function, "
                        f"got {type(mutations).__name__}.")
    for key, space in mutations.items():
        name = f"{where}[{key!r}]"
        if isinstance(space, dict):
            check_mutations(space, name)
        elif is_sample_from(space):
            raise ValueError(f"{name} is a tune.sample_from(...): PBT cannot resample it on its own. Use a list, a "
                             "search space such as tune.uniform(...)/tune.choice(...), or a function of no arguments.")
        elif allowed_values(space) is not None:
            if not allowed_values(space):
                raise ValueError(f"{name} is an empty list: give the values PBT may choose from.")
        elif not (is_domain(space) or callable(space)):
            raise TypeError(f"{name} must be a list, a dict, a search space (tune.uniform(...), ...) or a callable, "
                            f"got {type(space).__name__}.")


def sample_space(space: Any, rng: np.random.Generator) -> Any:
    """One value drawn from a mutation's space."""
    values = allowed_values(space)
    if values is not None:
        return values[int(rng.integers(len(values)))]
    if is_domain(space):
        value = space.sample(random_state=int(rng.integers(2**31)))
        if isinstance(value, (list, tuple, np.ndarray)) and len(value) == 1:
            value = value[0]
        return value.item() if isinstance(value, np.generic) else value
    return space()


def fill_config(config: dict, key: str, space: Any, rng: np.random.Generator) -> None:
    """Give ``config[key]`` a starting value drawn from ``space`` (a mutation absent from the param_space)."""
    if isinstance(space, dict):
        config[key] = {}
        for sub_key, sub_space in space.items():
            fill_config(config[key], sub_key, sub_space, rng)
    else:
        config[key] = sample_space(space, rng)


def _clip(value: Any, space: Any) -> Any:
    """Keep a perturbed value inside a numeric Domain's bounds (Ray lets it leave them)."""
    lower, upper = getattr(space, "lower", None), getattr(space, "upper", None)
    if lower is not None and value < lower:
        return type(value)(lower)
    if upper is not None and value > upper:
        return type(value)(upper)
    return value


def explore(config: dict, mutations: dict, resample_probability: float, perturbation_factors: tuple,
            custom_explore_fn: Callable[[dict], dict] | None, rng: np.random.Generator) -> tuple[dict, dict]:
    """(new config, operations): each mutated key resampled with ``resample_probability``, else perturbed.

    Lists and choices move one step left or right (a value not in the list is resampled);
    numbers are multiplied by one of ``perturbation_factors`` and kept within a Domain's bounds;
    an int stays an int. ``custom_explore_fn(new_config)`` post-processes the result.
    """
    new_config = copy.deepcopy(config)
    operations: dict[str, Any] = {}
    for key, space in mutations.items():
        if isinstance(space, dict):
            new_config[key], operations[key] = explore(config.get(key, {}), space, resample_probability,
                                                       perturbation_factors, None, rng)
            continue
        values = allowed_values(space)
        if values is not None:
            if rng.random() < resample_probability or config.get(key) not in values:
                new_config[key] = sample_space(values, rng)
                operations[key] = "resample"
            else:
                shift = -1 if rng.random() < 0.5 else 1
                old = values.index(config[key])
                new = min(max(old + shift, 0), len(values) - 1)
                new_config[key] = values[new]
                operations[key] = f"shift {'left' if shift < 0 else 'right'}{' (noop)' if new == old else ''}"
            continue
        if key not in config or rng.random() < resample_probability:
            new_config[key] = sample_space(space, rng)
            operations[key] = "resample"
        else:
            factor = perturbation_factors[int(rng.integers(len(perturbation_factors)))]
            new_config[key] = config[key] * factor
            operations[key] = f"* {factor}"
        if isinstance(config.get(key), int) and not isinstance(config.get(key), bool):
            new_config[key] = int(new_config[key])
        if is_domain(space):
            new_config[key] = _clip(new_config[key], space)
    if custom_explore_fn is not None:
        new_config = custom_explore_fn(new_config)
        if not isinstance(new_config, dict):
            raise ValueError(f"custom_explore_fn must return the new config dict, it returned {new_config!r}.")
    return new_config, operations


def mutated_params(config: dict, mutations: dict) -> dict:
    """The part of ``config`` that PBT mutates (for logs)."""
    out = {}
    for key, space in mutations.items():
        if key in config:
            out[key] = mutated_params(config[key], space) if isinstance(space, dict) else config[key]
    return out


def _clean(value: Any) -> str:
    """Tags name directories: floats to 4 decimals, other characters outside [a-zA-Z0-9_-] become "_"."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", str(value)).strip("_")


def _flatten(params: dict, prefix: tuple = ()) -> dict[tuple, Any]:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix + (key,)))
        else:
            flat[prefix + (key,)] = value
    return flat


def perturbed_tag(orig_tag: str, config: dict, mutations: dict) -> str:
    """``"3_lr=0.0100@perturbed[lr=0.0120]"``: the trial's first tag and its mutated values now."""
    flat = _flatten(mutated_params(config, mutations))
    params = ",".join(f"{_clean(path[-1])}={_clean(value)}" for path, value in sorted(flat.items()))
    return f"{orig_tag}@perturbed[{params}]"


def summarize_changes(old: dict, new: dict, operations: dict, indent: int = 0) -> str:
    """One line per mutated key, ``lr : 0.01 --- (* 1.2) --> 0.012``; nested dicts indented."""
    lines = []
    for key, old_value in old.items():
        pad = "    " * indent
        if isinstance(old_value, dict):
            lines.append(f"{pad}{key} :")
            lines.append(summarize_changes(old_value, new.get(key, {}), operations.get(key, {}), indent + 1))
        else:
            op = operations.get(key)
            arrow = f"--- ({op}) -->" if op else "----->"
            value = new.get(key)
            shown = f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else repr(value)
            lines.append(f"{pad}{key} : {old_value!r} {arrow} {shown}")
    return "\n".join(lines)
