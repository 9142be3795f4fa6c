"""Turning ``config.env`` into a creator, and checking an env's spaces against an algorithm.

The creator is resolved in the driver (where ``tune.register_env`` ran) and shipped to env runners,
so runner processes need no registry of their own.
"""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from juno.tune.registry import registered_env_creator, registered_env_names


class EnvError(RuntimeError):
    """An env failed in make/reset/step; the message names the env and the call."""


def env_name(env: Any) -> str:
    if isinstance(env, str):
        return env
    return getattr(env, "__name__", None) or type(env).__name__


class _GymMaker:
    """``gymnasium.make(id, **env_config)``, picklable."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id

    def __call__(self, env_config: dict) -> Any:
        return gym.make(self.env_id, **dict(env_config or {}))


def env_creator_for(env: Any) -> Callable[[dict], Any]:
    """The creator for a gymnasium id, a registered name, an Env class or a creator function."""
    if isinstance(env, str):
        creator = registered_env_creator(env)
        if creator is not None:
            return creator
        try:
            gym.spec(env)
        except Exception as e:  # noqa: BLE001 - gymnasium raises several kinds (NameNotFound, VersionNotFound ...)
            registered = registered_env_names()
            raise ValueError(
                f"Unknown env {env!r}: it is not a gymnasium id ({type(e).__name__}: {e}) and no env was registered "
                f"under that name. Register a creator with juno.tune.register_env({env!r}, lambda cfg: MyEnv(cfg))"
                f"{', or use one of: ' + ', '.join(registered) if registered else ''}.") from None
        return _GymMaker(env)
    if callable(env):
        return env
    raise TypeError(f"config.environment(env=...) takes a gymnasium id, a registered name, an Env class or a creator "
                    f"function; got {type(env).__name__}.")


def make_env(creator: Callable, env_config: dict, name: str) -> Any:
    try:
        env = creator(env_config)
    except Exception as e:  # noqa: BLE001 - re-raised with the env's name
        raise EnvError(f"Creating env {name!r} raised {type(e).__name__}: {e}") from e
    if not hasattr(env, "reset") or not hasattr(env, "step"):
        raise TypeError(f"The creator of env {name!r} returned {type(env).__name__}, not a gymnasium.Env "
                        "(with reset() and step()).")
    return env


def check_spaces(algo_name: str, name: str, observation_space: Any, action_space: Any,
                 action_spaces: tuple = (gym.spaces.Discrete, gym.spaces.Box), bounded_actions: bool = False) -> None:
    """Box observations and the algorithm's action spaces only; the error names algorithm, env and space."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"{algo_name} on env {name!r}: the observation space {observation_space} is not supported; "
                         "Juno RL takes Box observations (flattened for the MLP). Wrap the env (e.g. "
                         "gymnasium.wrappers.FlattenObservation) to give it a Box observation space.")
    if not isinstance(action_space, tuple(action_spaces)):
        allowed = " or ".join(s.__name__ for s in action_spaces)
        raise ValueError(f"{algo_name} on env {name!r}: the action space {action_space} is not supported; "
                         f"{algo_name} takes {allowed} action spaces.")
    if bounded_actions and isinstance(action_space, gym.spaces.Box) and \
            not np.all(np.isfinite(action_space.low) & np.isfinite(action_space.high)):
        raise ValueError(f"{algo_name} on env {name!r}: the action space {action_space} has infinite bounds; "
                         f"{algo_name} squashes actions into the bounds, so they must be finite.")
