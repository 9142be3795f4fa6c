"""RLlib's algorithms: the base classes here, each algorithm in its own subpackage (``ppo``, ``dqn``,
``sac``), found by name through ``registry``. ``from juno.rl.algorithms import PPO, PPOConfig`` works
too: the names are imported when first used."""
from __future__ import annotations

import importlib
from typing import Any

from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.algorithms.registry import ALGORITHMS, get_algorithm_class


def __getattr__(name: str) -> Any:
    if name in ALGORITHMS:
        return get_algorithm_class(name)
    if name.endswith("Config") and name[:-len("Config")] in ALGORITHMS:
        algo = name[:-len("Config")]
        return getattr(importlib.import_module(ALGORITHMS[algo].partition(":")[0]), name)
    raise AttributeError(f"module 'juno.rl.algorithms' has no attribute {name!r}")


__all__ = ["Algorithm", "AlgorithmConfig"]
