"""PPO's RLModule: a policy network and a value network (separate by default, one shared encoder with
``vf_share_layers``), for Discrete actions (a categorical over logits) and Box actions (a diagonal
Gaussian whose log std is either a network output or, with ``free_log_std``, one learned vector)."""
from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from juno.rl.core.catalog import TorchCategorical, TorchDiagGaussian, build_mlp, flat_dim, mlp_from_config
from juno.rl.core.rl_module import RLModule


class PPOTorchRLModule(RLModule):
    """The policy and value function PPO trains. ``forward_exploration`` returns the columns PPO's loss
    needs from sampling time: the action's log-probability and the distribution's inputs (for the KL).
    Final layers start small (policy) and unit (value): a near-uniform first policy keeps the first
    updates steady."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, model_config: dict | None = None):
        super().__init__(observation_space, action_space, model_config)
        config = self.model_config
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"PPO needs a Box observation space; got {observation_space}.")
        if isinstance(action_space, gym.spaces.Discrete):
            self.dist_class, pi_out, self.free_log_std = TorchCategorical, int(action_space.n), False
        elif isinstance(action_space, gym.spaces.Box):
            self.dist_class, act_dim = TorchDiagGaussian, flat_dim(action_space)
            self.free_log_std = bool(config.get("free_log_std", False))
            pi_out = act_dim if self.free_log_std else 2 * act_dim
            if self.free_log_std:
                self.log_std = nn.Parameter(torch.zeros(act_dim))
        else:
            raise ValueError(f"PPO supports Discrete and Box action spaces; got {action_space}.")
        obs_dim = flat_dim(observation_space)
        hiddens = list(config.get("fcnet_hiddens", [256, 256]))
        width = hiddens[-1] if hiddens else obs_dim
        self.pi_encoder = mlp_from_config(obs_dim, config)
        self.pi_head = build_mlp(width, [], None, pi_out, out_gain=0.01)
        self.vf_encoder = None if config.get("vf_share_layers", False) else mlp_from_config(obs_dim, config)
        self.vf_head = build_mlp(width, [], None, 1, out_gain=1.0)

    # --- the pieces ---------------------------------------------------------------------------------------------

    def dist_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """The policy head's output for encoded observations: logits, or means then log stds."""
        out = self.pi_head(features)
        if self.free_log_std:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out

    def compute_values(self, obs: torch.Tensor, pi_features: torch.Tensor | None = None) -> torch.Tensor:
        """V(obs) [B]; ``pi_features`` saves the shared encoder's second pass when the layers are shared."""
        if self.vf_encoder is not None:
            features = self.vf_encoder(obs)
        else:
            features = self.pi_encoder(obs) if pi_features is None else pi_features
        return self.vf_head(features).squeeze(-1)

    # --- the contract -------------------------------------------------------------------------------------------

    def forward_inference(self, obs: torch.Tensor) -> dict:
        return {"actions": self.dist_class(self.dist_inputs(self.pi_encoder(obs))).deterministic_sample()}

    def forward_exploration(self, obs: torch.Tensor, t: int = 0) -> dict:
        inputs = self.dist_inputs(self.pi_encoder(obs))
        dist = self.dist_class(inputs)
        actions = dist.sample()
        return {"actions": actions, "action_logp": dist.logp(actions), "action_dist_inputs": inputs}

    def forward_train(self, batch: dict) -> dict:
        obs = batch["obs"]
        features = self.pi_encoder(obs)
        return {"action_dist_inputs": self.dist_inputs(features), "vf_preds": self.compute_values(obs, features)}
