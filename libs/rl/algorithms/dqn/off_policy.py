"""What DQN and SAC share: the replay settings of their configs, and the training step
(sample -> replay buffer -> ``training_intensity``-many updates -> weights out).

The loop reads top to bottom: each env runner's time-major batch becomes n-step transitions in the
buffer; once ``num_steps_sampled_before_learning_starts`` env steps were sampled, updates run at the
ratio ``training_intensity`` (env steps trained per env step sampled; None: one update per sample
round, RLlib's native ratio); new priorities go back to a prioritized buffer; the runners get the
learner's weights once per round that trained.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.utils.replay_buffers import NStepTransitions, make_replay_buffer
from juno.rl.utils.sentinel import NotProvided


class OffPolicyConfig(AlgorithmConfig):
    """The replay and target-network settings of DQN and SAC (each sets its own defaults)."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class)
        self.replay_buffer_config: dict = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 50000,
                                           "alpha": 0.6, "beta": 0.4}
        self.num_steps_sampled_before_learning_starts = 1000
        self.training_intensity: float | None = None
        self.n_step = 1
        self.target_network_update_freq = 500
        self.tau = 1.0
        self.rollout_fragment_length = 4
        self.min_sample_timesteps_per_iteration = 1000

    def training(self, *, replay_buffer_config: dict = NotProvided,
                 num_steps_sampled_before_learning_starts: int = NotProvided,
                 training_intensity: float | None = NotProvided, n_step: int = NotProvided,
                 target_network_update_freq: int = NotProvided, tau: float = NotProvided,
                 **kwargs: Any) -> "OffPolicyConfig":
        if replay_buffer_config is not NotProvided:
            if not isinstance(replay_buffer_config, dict):
                raise TypeError("training(replay_buffer_config=...) must be a dict such as "
                                "{'type': 'PrioritizedEpisodeReplayBuffer', 'capacity': 50000}, got "
                                f"{type(replay_buffer_config).__name__}.")
            replay_buffer_config = {**self.replay_buffer_config, **replay_buffer_config}
        learning_starts = kwargs.pop("learning_starts", NotProvided)  # the older name
        if num_steps_sampled_before_learning_starts is NotProvided:
            num_steps_sampled_before_learning_starts = learning_starts
        super().training(**kwargs)
        return self._apply("training", dict(
            replay_buffer_config=replay_buffer_config,
            num_steps_sampled_before_learning_starts=num_steps_sampled_before_learning_starts,
            training_intensity=training_intensity, n_step=n_step,
            target_network_update_freq=target_network_update_freq, tau=tau))

    def _training_keywords(self) -> list[str]:
        return sorted(set(super()._training_keywords()) | {"learning_starts"})

    def validate(self) -> None:
        super().validate()

        def need(ok: bool, field: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{type(self).__name__}.{field}={getattr(self, field)!r}: {allowed}.")

        def is_int(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        need(is_int(self.n_step) and self.n_step >= 1, "n_step", "an int >= 1")
        need(is_int(self.num_steps_sampled_before_learning_starts)
             and self.num_steps_sampled_before_learning_starts >= 0,
             "num_steps_sampled_before_learning_starts", "an int >= 0")
        need(self.training_intensity is None or (isinstance(self.training_intensity, (int, float))
                                                 and self.training_intensity > 0),
             "training_intensity", "None or a positive number (env steps trained per env step sampled)")
        need(is_int(self.target_network_update_freq) and self.target_network_update_freq >= 0,
             "target_network_update_freq", "an int >= 0 (env steps between target updates; 0: every update)")
        need(isinstance(self.tau, (int, float)) and 0 < self.tau <= 1, "tau", "a number in (0, 1]")
        make_replay_buffer(self.replay_buffer_config)  # raises naming a bad type or key


def polyak_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target (tau=1: a hard copy)."""
    with torch.no_grad():
        targets, sources = list(target.parameters()), list(source.parameters())
        if tau >= 1.0:
            torch._foreach_copy_(targets, sources)
        else:
            torch._foreach_lerp_(targets, sources, tau)  # one fused op over every tensor


class TargetNetworkSchedule:
    """When the target network moves: every ``update_freq`` env steps (0: after every update)."""

    def __init__(self, update_freq: int) -> None:
        self.update_freq = int(update_freq)
        self.last_update_timestep = 0
        self.num_updates = 0

    def due(self, timestep: int) -> bool:
        if timestep - self.last_update_timestep >= self.update_freq:
            self.last_update_timestep = timestep
            self.num_updates += 1
            return True
        return False

    def get_state(self) -> dict:
        return {"last_update_timestep": self.last_update_timestep, "num_updates": self.num_updates}

    def set_state(self, state: dict) -> None:
        self.last_update_timestep, self.num_updates = state["last_update_timestep"], state["num_updates"]


class UpdateCredit:
    """How many learner updates a sample round earns: ``training_intensity`` env steps trained per
    env step sampled, each update training ``train_batch_size`` steps; fractions carry over."""

    def __init__(self, training_intensity: float | None, train_batch_size: int) -> None:
        self.per_step = None if training_intensity is None else training_intensity / train_batch_size
        self.credit = 0.0

    def earn(self, sampled_steps: int) -> int:
        if self.per_step is None:
            return 1
        self.credit += sampled_steps * self.per_step
        updates = int(self.credit)
        self.credit -= updates
        return updates


class OffPolicyTrainingStep:
    """Mixed into DQN and SAC (``Algorithm`` subclasses): the replay buffer and ``training_step``."""

    def _off_policy_state(self) -> None:
        config = self.config
        if not hasattr(self, "replay_buffer"):
            self.replay_buffer = make_replay_buffer(config.replay_buffer_config)
            self._replay_rng = np.random.default_rng(config.seed)
            self._update_credit = UpdateCredit(config.training_intensity, config.total_train_batch_size)
            self._num_env_steps_added = 0
            self._n_step = NStepTransitions(config.n_step, config.gamma)

    def training_step(self) -> dict:
        self._off_policy_state()
        config = self.config
        batches, _ = self.env_runner_group.sample()
        sampled = 0
        for runner, batch in enumerate(batches):
            transitions = self._n_step(runner, batch)
            self.replay_buffer.add(transitions)
            sampled += len(transitions["rewards"])
        self._num_env_steps_added += sampled
        if self._num_env_steps_added < config.num_steps_sampled_before_learning_starts:
            return {}
        metrics: dict[str, Any] = {}
        num_updates = self._update_credit.earn(sampled)
        for _ in range(num_updates):
            replay = self.replay_buffer.sample(config.total_train_batch_size, self._replay_rng)
            indexes = replay.pop("batch_indexes")
            metrics = dict(self.learner_group.update(replay, self.global_env_steps))
            td_error = metrics.pop("td_error", None)
            if td_error is not None:
                self.replay_buffer.update_priorities(indexes, td_error)
        if num_updates:
            self.env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)
            metrics["num_updates"] = num_updates
        metrics["replay_buffer_size"] = len(self.replay_buffer)
        return metrics
