"""The result dict of one training iteration, in RLlib's current keys and the older ones.

Pure: ``EpisodeStats`` keeps the last episodes' returns and lengths; ``build_result`` lays out the
dict from the iteration's figures.
"""
from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np


class EpisodeStats:
    """Returns and lengths of the last ``window`` episodes (``metrics_num_episodes_for_smoothing``)."""

    def __init__(self, window: int = 100) -> None:
        self.returns: collections.deque = collections.deque(maxlen=window)
        self.lengths: collections.deque = collections.deque(maxlen=window)
        self.num_episodes_lifetime = 0

    def add(self, metrics_list: list[dict]) -> int:
        """Add the episodes ended in these samples; returns how many."""
        count = 0
        for metrics in metrics_list:
            self.returns.extend(metrics["episode_returns"])
            self.lengths.extend(metrics["episode_lengths"])
            count += len(metrics["episode_returns"])
        self.num_episodes_lifetime += count
        return count

    def summary(self, num_episodes: int) -> dict:
        nan = float("nan")
        returns = list(self.returns)
        return {
            "episode_return_mean": float(np.mean(returns)) if returns else nan,
            "episode_return_min": float(np.min(returns)) if returns else nan,
            "episode_return_max": float(np.max(returns)) if returns else nan,
            "episode_len_mean": float(np.mean(self.lengths)) if self.lengths else nan,
            "num_episodes": num_episodes,
            "num_episodes_lifetime": self.num_episodes_lifetime,
        }


def summarize_episodes(metrics_list: list[dict]) -> dict:
    """Stats over exactly these samples' episodes (evaluation)."""
    stats = EpisodeStats(window=10**9)
    count = stats.add(metrics_list)
    out = stats.summary(count)
    out["num_env_steps"] = sum(m["num_env_steps"] for m in metrics_list)
    return out


def build_result(*, env_runner_stats: dict, learner_metrics: dict, iteration: int, time_this_iter_s: float,
                 time_total_s: float, steps_sampled_this_iter: int, steps_sampled_lifetime: int,
                 steps_trained_lifetime: int, sample_time_s: float) -> dict[str, Any]:
    """RLlib's result: ``env_runners``/``learners`` sections and the older top-level keys."""
    env_runners = dict(env_runner_stats)
    env_runners["num_env_steps_sampled"] = steps_sampled_this_iter
    env_runners["num_env_steps_sampled_lifetime"] = steps_sampled_lifetime
    env_runners["sample"] = sample_time_s
    throughput = steps_sampled_this_iter / time_this_iter_s if time_this_iter_s > 0 else 0.0
    learner_metrics = {k: _plain(v) for k, v in learner_metrics.items()}
    return {
        "env_runners": env_runners,
        "learners": {"default_policy": learner_metrics},
        "num_env_steps_sampled_lifetime": steps_sampled_lifetime,
        "num_env_steps_trained_lifetime": steps_trained_lifetime,
        "num_env_steps_sampled_per_second": throughput,
        "training_iteration": iteration,
        "time_this_iter_s": time_this_iter_s,
        "time_total_s": time_total_s,
        # the older keys (RLlib before 2.10), which many tutorials read
        "episode_reward_mean": env_runners["episode_return_mean"],
        "episode_reward_min": env_runners["episode_return_min"],
        "episode_reward_max": env_runners["episode_return_max"],
        "episode_len_mean": env_runners["episode_len_mean"],
        "episodes_this_iter": env_runners["num_episodes"],
        "timesteps_total": steps_sampled_lifetime,
        "num_env_steps_sampled": steps_sampled_lifetime,
        "num_env_steps_trained": steps_trained_lifetime,
        "info": {"learner": {"default_policy": {"learner_stats": learner_metrics}}},
    }


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars as Python numbers (results are pickled and shown)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return value
    return value
