"""SAC's module: a squashed Gaussian actor and twin Q critics Q(s, a) (actions scaled to [-1, 1]
for the critics' input)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from juno.rl.algorithms.dqn.dqn_rl_module import check_box_observations
from juno.rl.core.catalog import TorchSquashedGaussian, build_mlp, flat_dim
from juno.rl.core.rl_module import RLModule


class SACRLModule(RLModule):
    """``model_config``: ``fcnet_hiddens``/``fcnet_activation`` for every net; ``policy_hiddens`` and
    ``q_hiddens`` (the older policy_model_config/q_model_config) override per net; ``twin_q``."""

    def __init__(self, observation_space: Any, action_space: Any, model_config: dict | None = None) -> None:
        super().__init__(observation_space, action_space, model_config)
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"SAC needs a continuous (Box) action space; the env has {action_space}. Use DQN or "
                            "PPO for Discrete actions.")
        check_box_observations(observation_space, "SAC")
        config = self.model_config
        hiddens = list(config.get("fcnet_hiddens", [256, 256]))
        act = config.get("fcnet_activation", "relu")
        obs_dim, self.action_dim = flat_dim(observation_space), flat_dim(action_space)
        self.register_buffer("low", torch.as_tensor(np.asarray(action_space.low, np.float32).reshape(-1)))
        self.register_buffer("high", torch.as_tensor(np.asarray(action_space.high, np.float32).reshape(-1)))
        self.policy = build_mlp(obs_dim, list(config.get("policy_hiddens") or hiddens), act, 2 * self.action_dim,
                                out_gain=0.01)
        q_hiddens = list(config.get("q_hiddens") or hiddens)
        self.qf = build_mlp(obs_dim + self.action_dim, q_hiddens, act, 1)
        self.twin_q = bool(config.get("twin_q", True))
        self.qf_twin = build_mlp(obs_dim + self.action_dim, q_hiddens, act, 1) if self.twin_q else None

    def _flat(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.reshape(obs.shape[0], -1).float()

    def action_dist(self, obs: torch.Tensor) -> TorchSquashedGaussian:
        return TorchSquashedGaussian(self.policy(self._flat(obs)), self.low, self.high)

    def critics(self) -> list[torch.nn.Module]:
        return [self.qf, self.qf_twin] if self.twin_q else [self.qf]

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor, critics: list | None = None) -> list[torch.Tensor]:
        """Each critic's Q(s, a), [B] each; ``critics`` defaults to this module's (targets pass theirs)."""
        scaled = (actions.reshape(actions.shape[0], -1) - self.low) * 2.0 / (self.high - self.low) - 1.0
        inputs = torch.cat([self._flat(obs), scaled], dim=-1)
        return [q(inputs).squeeze(-1) for q in (critics or self.critics())]

    def forward_inference(self, obs: torch.Tensor) -> dict:
        return {"actions": self.action_dist(obs).deterministic_sample()}

    def forward_exploration(self, obs: torch.Tensor, t: int) -> dict:
        return {"actions": self.action_dist(obs).sample()}

    def forward_train(self, batch: dict) -> dict:
        """Reparameterised actions and log-probs at ``obs`` and ``next_obs`` (one actor pass for both)."""
        obs = batch["obs"]
        actions, logp = self.action_dist(torch.cat([obs, batch["next_obs"]])).rsample_with_logp()
        n = len(obs)
        return {"actions_new": actions[:n], "logp": logp[:n], "next_actions": actions[n:], "next_logp": logp[n:]}
