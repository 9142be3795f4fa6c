"""DQN's module: an MLP encoder, then a Q head per action (dueling: value + advantage streams);
epsilon-greedy exploration on the global env step."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from juno.rl.algorithms.dqn.exploration import PiecewiseSchedule
from juno.rl.core.catalog import build_mlp, flat_dim, mlp_from_config
from juno.rl.core.rl_module import RLModule


def check_box_observations(observation_space: Any, algo: str) -> None:
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"{algo} needs a Box observation space (flattened for its MLP); the env has "
                        f"{observation_space}. Wrap the env (e.g. gymnasium.wrappers.FlattenObservation).")


class DQNRLModule(RLModule):
    """``model_config`` beside fcnet_hiddens/fcnet_activation: ``hiddens`` (the Q head's layers),
    ``dueling``, and ``epsilon`` (the schedule's (timestep, value) points)."""

    def __init__(self, observation_space: Any, action_space: Any, model_config: dict | None = None) -> None:
        super().__init__(observation_space, action_space, model_config)
        if not isinstance(action_space, gym.spaces.Discrete):
            raise TypeError(f"DQN needs a Discrete action space; the env has {action_space}. Use SAC or PPO for "
                            "continuous (Box) actions.")
        check_box_observations(observation_space, "DQN")
        config = self.model_config
        self.num_actions = int(action_space.n)
        hiddens = list(config.get("fcnet_hiddens", [256, 256]))
        self.encoder = mlp_from_config(flat_dim(observation_space), config)
        features = hiddens[-1] if hiddens else flat_dim(observation_space)
        head = list(config.get("hiddens", [256]))
        self.dueling = bool(config.get("dueling", True))
        if self.dueling:
            self.advantage = build_mlp(features, head, "relu", self.num_actions, out_gain=0.01)
            self.value = build_mlp(features, head, "relu", 1, out_gain=1.0)
        else:
            self.q_head = build_mlp(features, head, "relu", self.num_actions, out_gain=0.01)
        self.epsilon = PiecewiseSchedule(config.get("epsilon", [(0, 1.0), (10000, 0.05)]))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """[B, num_actions]; dueling: V + A - mean(A), so V and A are identifiable."""
        features = self.encoder(obs.reshape(obs.shape[0], -1).float())
        if not self.dueling:
            return self.q_head(features)
        advantages = self.advantage(features)
        return self.value(features) + advantages - advantages.mean(dim=-1, keepdim=True)

    def forward_inference(self, obs: torch.Tensor) -> dict:
        return {"actions": self.q_values(obs).argmax(dim=-1)}

    def forward_exploration(self, obs: torch.Tensor, t: int) -> dict:
        greedy = self.q_values(obs).argmax(dim=-1)
        explore = torch.rand(greedy.shape[0]) < self.epsilon.value(t)
        random_actions = torch.randint(0, self.num_actions, greedy.shape)
        return {"actions": torch.where(explore, random_actions, greedy)}

    def forward_train(self, batch: dict) -> dict:
        """Q of ``obs`` and of ``next_obs`` (for double Q's argmax) in one forward pass."""
        q = self.q_values(torch.cat([batch["obs"], batch["next_obs"]]))
        return {"q": q[: len(batch["obs"])], "q_next": q[len(batch["obs"]):]}
