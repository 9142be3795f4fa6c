"""SAC with RLlib's defaults: twin Q, polyak-averaged target critics (tau=5e-3, every update),
automatic entropy tuning (target_entropy="auto": -action_dim). Box actions only."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.dqn.off_policy import OffPolicyConfig, OffPolicyTrainingStep
from juno.rl.algorithms.sac.sac_learner import SACLearner
from juno.rl.algorithms.sac.sac_rl_module import SACRLModule
from juno.rl.utils.sentinel import NotProvided

# The older optimization_config's names.
_OPTIMIZATION_KEYS = {"actor_learning_rate": "actor_lr", "critic_learning_rate": "critic_lr",
                      "entropy_learning_rate": "alpha_lr"}


def _hiddens_of(model: Any, name: str) -> list | None:
    if model in (None, NotProvided):
        return None
    if not isinstance(model, dict):
        raise TypeError(f"training({name}=...) must be a dict such as {{'fcnet_hiddens': [256, 256]}}, "
                        f"got {type(model).__name__}.")
    return model.get("fcnet_hiddens")


class SACConfig(OffPolicyConfig):
    """``SACConfig().environment("Pendulum-v1").training(initial_alpha=0.2).build()``."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class or SAC)
        self.twin_q = True
        self.tau = 5e-3
        self.initial_alpha = 1.0
        self.target_entropy: Any = "auto"
        self.actor_lr = 3e-4
        self.critic_lr = 3e-4
        self.alpha_lr = 3e-4
        self.lr = 3e-4  # unused: SAC's three optimizers take actor_lr, critic_lr, alpha_lr
        self.train_batch_size = 256
        self.num_steps_sampled_before_learning_starts = 1500
        self.target_network_update_freq = 0
        self.rollout_fragment_length = 1
        self.min_sample_timesteps_per_iteration = 100
        self.replay_buffer_config = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": int(1e6),
                                     "alpha": 0.6, "beta": 0.4}
        self.model = {**self.model, "fcnet_activation": "relu"}
        self.policy_hiddens: list | None = None
        self.q_hiddens: list | None = None

    def training(self, *, twin_q: bool = NotProvided, initial_alpha: float = NotProvided,
                 target_entropy: Any = NotProvided, actor_lr: float = NotProvided, critic_lr: float = NotProvided,
                 alpha_lr: float = NotProvided, optimization_config: dict = NotProvided,
                 policy_model_config: dict = NotProvided, q_model_config: dict = NotProvided,
                 **kwargs: Any) -> "SACConfig":
        given = dict(twin_q=twin_q, initial_alpha=initial_alpha, target_entropy=target_entropy, actor_lr=actor_lr,
                     critic_lr=critic_lr, alpha_lr=alpha_lr)
        if optimization_config is not NotProvided:
            unknown = sorted(set(optimization_config) - set(_OPTIMIZATION_KEYS))
            if unknown:
                raise ValueError(f"optimization_config has unknown keys {unknown}: it takes "
                                 f"{sorted(_OPTIMIZATION_KEYS)}.")
            for old, new in _OPTIMIZATION_KEYS.items():
                if old in optimization_config and given[new] is NotProvided:
                    given[new] = optimization_config[old]
        for name, model, field in (("policy_model_config", policy_model_config, "policy_hiddens"),
                                   ("q_model_config", q_model_config, "q_hiddens")):
            hiddens = _hiddens_of(model, name)
            if hiddens is not None:
                given[field] = list(hiddens)
        super().training(**kwargs)
        return self._apply("training", given)

    @property
    def model_config(self) -> dict:
        return {**super().model_config, "twin_q": self.twin_q, "policy_hiddens": self.policy_hiddens,
                "q_hiddens": self.q_hiddens}

    def validate(self) -> None:
        super().validate()
        for field in ("actor_lr", "critic_lr", "alpha_lr", "initial_alpha"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"SACConfig.{field}={value!r}: a positive number.")
        if not (self.target_entropy in ("auto", None) or isinstance(self.target_entropy, (int, float))):
            raise ValueError(f"SACConfig.target_entropy={self.target_entropy!r}: 'auto' (-action_dim) or a number.")


class SAC(OffPolicyTrainingStep, Algorithm):
    module_class = SACRLModule
    learner_class = SACLearner
    supported_action_spaces = (gym.spaces.Box,)
    requires_bounded_actions = True  # the tanh squashes into [low, high]

    @classmethod
    def get_default_config(cls) -> SACConfig:
        return SACConfig(cls)
