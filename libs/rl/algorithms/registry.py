"""Algorithms by name, for ``Tuner("PPO", ...)`` and checkpoints: a lazy table name -> "module:Class",
imported only when asked for (so ``import juno.tune`` does not import torch).

Adding an algorithm: put it in ``juno/rl/algorithms/<name>/`` with an ``Algorithm`` subclass and its
``AlgorithmConfig`` subclass, then add a row here.
"""
from __future__ import annotations

import importlib

ALGORITHMS: dict[str, str] = {
    "PPO": "juno.rl.algorithms.ppo.ppo:PPO",
    "DQN": "juno.rl.algorithms.dqn.dqn:DQN",
    "SAC": "juno.rl.algorithms.sac.sac:SAC",
}


def get_algorithm_class(name: str) -> type:
    """The algorithm class registered as ``name``."""
    if name not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}.")
    module_name, _, class_name = ALGORITHMS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f"Algorithm {name!r} could not be imported from {module_name}: {e}") from e
    return getattr(module, class_name)


def register_algorithm(name: str, path: str) -> None:
    """Add an algorithm to the table: ``register_algorithm("MyAlgo", "my_pkg.my_algo:MyAlgo")``."""
    if ":" not in path:
        raise ValueError(f"register_algorithm({name!r}, {path!r}): the path is 'module:ClassName'.")
    ALGORITHMS[name] = path
