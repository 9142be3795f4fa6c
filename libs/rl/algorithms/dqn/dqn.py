"""DQN (Mnih et al. 2015) with RLlib's defaults: double Q, dueling heads, prioritized replay,
n-step targets, an epsilon-greedy schedule over env steps. Discrete actions only."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.dqn.dqn_learner import DQNLearner
from juno.rl.algorithms.dqn.dqn_rl_module import DQNRLModule
from juno.rl.algorithms.dqn.exploration import epsilon_schedule
from juno.rl.algorithms.dqn.off_policy import OffPolicyConfig, OffPolicyTrainingStep
from juno.rl.utils.sentinel import NotProvided


class DQNConfig(OffPolicyConfig):
    """``DQNConfig().environment("CartPole-v1").training(lr=1e-3, n_step=3).build()``."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class or DQN)
        self.lr = 5e-4
        self.train_batch_size = 32
        self.grad_clip = 40.0
        self.double_q = True
        self.dueling = True
        self.noisy = False
        self.hiddens = [256]
        self.td_error_loss_fn = "huber"
        self.epsilon: Any = [(0, 1.0), (10000, 0.05)]
        self.exploration_config: dict = {}

    def training(self, *, double_q: bool = NotProvided, dueling: bool = NotProvided, noisy: bool = NotProvided,
                 hiddens: list = NotProvided, td_error_loss_fn: str = NotProvided, epsilon: Any = NotProvided,
                 **kwargs: Any) -> "DQNConfig":
        super().training(**kwargs)
        return self._apply("training", dict(double_q=double_q, dueling=dueling, noisy=noisy, hiddens=hiddens,
                                            td_error_loss_fn=td_error_loss_fn, epsilon=epsilon))

    def exploration(self, *, explore: bool = NotProvided, exploration_config: dict = NotProvided,
                    **_ignored: Any) -> "DQNConfig":
        """The older stack's ``exploration_config={"type": "EpsilonGreedy", "initial_epsilon": 1.0,
        "final_epsilon": 0.02, "epsilon_timesteps": 10000}``; it wins over ``epsilon``."""
        if exploration_config is not NotProvided:
            epsilon_schedule(None, exploration_config)  # raises naming a bad key now, not at build
        return self._apply("exploration", dict(explore=explore, exploration_config=exploration_config))

    @property
    def model_config(self) -> dict:
        """The base model settings plus what DQN's module reads: the head, dueling, the epsilon points."""
        return {**super().model_config, "hiddens": list(self.hiddens), "dueling": self.dueling,
                "epsilon": epsilon_schedule(self.epsilon, self.exploration_config).points}

    def validate(self) -> None:
        super().validate()
        if self.td_error_loss_fn not in ("huber", "mse"):
            raise ValueError(f"DQNConfig.td_error_loss_fn={self.td_error_loss_fn!r}: 'huber' or 'mse'.")
        if self.noisy:
            raise NotImplementedError("DQNConfig.noisy=True (noisy nets) is not implemented in Juno RL: leave "
                                      "noisy=False and explore with the epsilon schedule.")
        if not (isinstance(self.hiddens, (list, tuple)) and all(isinstance(h, int) and h > 0 for h in self.hiddens)):
            raise ValueError(f"DQNConfig.hiddens={self.hiddens!r}: a list of positive layer sizes for the Q head.")
        epsilon_schedule(self.epsilon, self.exploration_config)


class DQN(OffPolicyTrainingStep, Algorithm):
    module_class = DQNRLModule
    learner_class = DQNLearner
    supported_action_spaces = (gym.spaces.Discrete,)

    @classmethod
    def get_default_config(cls) -> DQNConfig:
        return DQNConfig(cls)
