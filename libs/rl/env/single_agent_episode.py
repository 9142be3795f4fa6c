"""``SingleAgentEpisode``: what the episode hooks of a callback see of one env's episode.

An env runner keeps one per env while some callback has episode hooks (none otherwise, so sampling
pays nothing for them). It holds what the runner has for that episode: the env's observations (the
reset's first), actions, rewards and infos, as the env gave them, and ``custom_data`` for user code.
"""
from __future__ import annotations

import time
import uuid
from typing import Any


def _pick(values: list, indices: Any) -> Any:
    """RLlib's ``get_*`` indexing: None for all, an int (``-1``: the latest), a slice or a list of ints."""
    if indices is None:
        return list(values)
    if isinstance(indices, slice):
        return values[indices]
    if isinstance(indices, (list, tuple)):
        return [values[i] for i in indices]
    return values[indices]


class SingleAgentEpisode:
    def __init__(self) -> None:
        self.id_ = uuid.uuid4().hex
        self.observations: list = []
        self.actions: list = []
        self.rewards: list = []
        self.infos: list = []
        self.is_terminated = False
        self.is_truncated = False
        self.custom_data: dict = {}
        self.t_started = 0
        self._started = time.perf_counter()

    def add_env_reset(self, observation: Any, info: Any = None) -> None:
        self.observations.append(observation)
        self.infos.append(info if info is not None else {})
        self._started = time.perf_counter()

    def add_env_step(self, observation: Any, action: Any, reward: float, info: Any = None, *,
                     terminated: bool = False, truncated: bool = False) -> None:
        self.observations.append(observation)
        self.actions.append(action)
        self.rewards.append(float(reward))
        self.infos.append(info if info is not None else {})
        self.is_terminated, self.is_truncated = bool(terminated), bool(truncated)

    @property
    def is_done(self) -> bool:
        return self.is_terminated or self.is_truncated

    @property
    def t(self) -> int:
        return self.t_started + len(self.rewards)

    def env_steps(self) -> int:
        return len(self.rewards)

    def agent_steps(self) -> int:
        return len(self.rewards)

    def __len__(self) -> int:
        return len(self.rewards)

    def get_return(self) -> float:
        return float(sum(self.rewards))

    def get_duration_s(self) -> float:
        return time.perf_counter() - self._started

    def get_observations(self, indices: Any = None) -> Any:
        return _pick(self.observations, indices)

    def get_actions(self, indices: Any = None) -> Any:
        return _pick(self.actions, indices)

    def get_rewards(self, indices: Any = None) -> Any:
        return _pick(self.rewards, indices)

    def get_infos(self, indices: Any = None) -> Any:
        return _pick(self.infos, indices)

    def __repr__(self) -> str:
        return (f"SingleAgentEpisode(id_={self.id_[:8]}, len={len(self)}, return={self.get_return():g}, "
                f"done={self.is_done})")
