"""DQN's epsilon schedule, from RLlib's two config forms.

The new stack writes ``epsilon=[(0, 1.0), (10000, 0.05)]``: (timestep, value) points joined by
straight lines, the last value held after the last point. The older stack writes
``exploration_config={"type": "EpsilonGreedy", "initial_epsilon", "final_epsilon", "epsilon_timesteps"}``.
"""
from __future__ import annotations

import numpy as np


class PiecewiseSchedule:
    """A value that moves linearly between (timestep, value) points, held flat past both ends."""

    def __init__(self, points) -> None:
        if isinstance(points, (int, float)) and not isinstance(points, bool):
            points = [(0, float(points))]
        try:
            points = sorted((int(t), float(v)) for t, v in points)
        except (TypeError, ValueError):
            raise ValueError(f"A schedule is a number or a list of (timestep, value) pairs such as "
                             f"[(0, 1.0), (10000, 0.05)]; got {points!r}.") from None
        if not points:
            raise ValueError("A schedule needs at least one (timestep, value) point.")
        self.points = points
        self._times = np.array([t for t, _ in points], dtype=np.float64)
        self._values = np.array([v for _, v in points], dtype=np.float64)

    def value(self, timestep: int) -> float:
        return float(np.interp(timestep, self._times, self._values))


def epsilon_schedule(epsilon, exploration_config: dict | None = None) -> PiecewiseSchedule:
    """The schedule DQN explores with: the older exploration_config, when it is given, else ``epsilon``."""
    config = dict(exploration_config or {})
    if config:
        kind = config.pop("type", "EpsilonGreedy")
        kind = kind.__name__ if isinstance(kind, type) else str(kind).rsplit(".", 1)[-1]
        if kind != "EpsilonGreedy":
            raise ValueError(f"DQN explores with EpsilonGreedy only; exploration_config asks for {kind!r}.")
        unknown = sorted(set(config) - {"initial_epsilon", "final_epsilon", "epsilon_timesteps",
                                        "warmup_timesteps"})
        if unknown:
            raise ValueError(f"exploration_config has unknown keys {unknown}: EpsilonGreedy takes initial_epsilon, "
                             "final_epsilon, epsilon_timesteps and warmup_timesteps.")
        initial, final = config.get("initial_epsilon", 1.0), config.get("final_epsilon", 0.05)
        warmup = int(config.get("warmup_timesteps", 0))
        return PiecewiseSchedule([(0, initial), (warmup, initial),
                                  (warmup + int(config.get("epsilon_timesteps", 10000)), final)])
    return PiecewiseSchedule(epsilon)
