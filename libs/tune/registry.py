"""Ray's ``ray.tune.registry``: names for envs (``register_env``, which RL's env runners look up) and
for trainables (``register_trainable``, which ``Tuner("name", ...)`` looks up)."""
from __future__ import annotations

from typing import Callable

from juno.tune.trainable.function import get_trainable_cls, register_trainable

_ENVS: dict[str, Callable] = {}


def register_env(name: str, env_creator: Callable) -> None:
    """``env_creator(env_config) -> env``; RL configs then take ``environment(name, env_config={...})``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_env needs a name (a non-empty str), got {name!r}.")
    if not callable(env_creator):
        raise TypeError(f"register_env({name!r}, ...) needs a callable env_creator(env_config) -> env, got "
                        f"{type(env_creator).__name__}.")
    _ENVS[name] = env_creator


def registered_env_creator(name: str) -> Callable | None:
    """The creator registered under ``name`` in this process, or None."""
    return _ENVS.get(name)


def registered_env_names() -> list[str]:
    return sorted(_ENVS)


__all__ = ["get_trainable_cls", "register_env", "register_trainable", "registered_env_creator",
           "registered_env_names"]
