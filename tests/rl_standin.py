"""A stand-in algorithm for juno.rl's core tests: a linear policy, a REINFORCE-like learner step
(enough to change the weights every iteration), and the contract's training_step. Not a product.

Pickled by value so that env runner and learner actors (whose sys.path lacks tests/) can load it.
"""
from __future__ import annotations

import sys

import cloudpickle
import gymnasium as gym
import numpy as np
import torch

from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.core.catalog import TorchCategorical, TorchDiagGaussian, action_dim, flat_dim
from juno.rl.core.learner import Learner
from juno.rl.core.rl_module import RLModule
from juno.rl.utils.batch import concat_env_batches, flatten_time_major
from juno.rl.utils.sentinel import NotProvided


class StandInModule(RLModule):
    def __init__(self, observation_space, action_space, model_config=None):
        super().__init__(observation_space, action_space, model_config)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out = action_dim(action_space) * (1 if self.discrete else 2)
        self.net = torch.nn.Linear(flat_dim(observation_space), out)

    def _dist(self, obs):
        inputs = self.net(obs)
        return TorchCategorical(inputs) if self.discrete else TorchDiagGaussian(inputs)

    def forward_inference(self, obs):
        return {"actions": self._dist(obs).deterministic_sample()}

    def forward_exploration(self, obs, t):
        dist = self._dist(obs)
        actions = dist.sample()
        return {"actions": actions, "action_logp": dist.logp(actions)}

    def forward_train(self, batch):
        return {"logp": self._dist(batch["obs"]).logp(batch.get("actions_raw", batch["actions"]))}


class StandInLearner(Learner):
    def update(self, batch, timestep):
        tensors = self.to_tensors(flatten_time_major(batch))
        logp = self.module.forward_train(tensors)["logp"]
        loss = -(logp * (tensors["rewards"] - tensors["rewards"].mean())).mean() - 0.01 * logp.mean()
        norm = self.apply_gradients(loss)
        return {"total_loss": loss.item(), "gradients_default_optimizer_global_norm": norm}


class StandInConfig(AlgorithmConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class or StandIn)
        self.train_batch_size = 200
        self.rollout_fragment_length = "auto"
        self.step_size_hint = 1

    def training(self, *, step_size_hint=NotProvided, **kwargs):
        if step_size_hint is not NotProvided:
            self.step_size_hint = step_size_hint
        return super().training(**kwargs)


class StandIn(Algorithm):
    module_class = StandInModule
    learner_class = StandInLearner

    @classmethod
    def get_default_config(cls):
        return StandInConfig(cls)

    def training_step(self):
        batches, _ = self.env_runner_group.sample()
        metrics = self.learner_group.update(concat_env_batches(batches), self.global_env_steps)
        self.env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)
        return metrics


class BoxOnly(StandIn):
    supported_action_spaces = (gym.spaces.Box,)


class CrashOnceEnv(gym.Env):
    """CartPole that kills its process on one step, once in all runners: the marker file says it already did."""

    def __init__(self, config):
        self.inner = gym.make("CartPole-v1")
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space
        self.marker = config["marker"]
        self.crash_at = config.get("crash_at", 30)
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        return self.inner.reset(seed=seed)

    def step(self, action):
        self.steps += 1
        import os
        if self.steps == self.crash_at:
            try:  # created atomically: of the runners that get here together, one crashes
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return self.inner.step(action)


class RaisingEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, config=None):
        self.where = (config or {}).get("where", "step")

    def reset(self, *, seed=None, options=None):
        if self.where == "reset":
            raise ZeroDivisionError("reset went wrong")
        return np.zeros(3, np.float32), {}

    def step(self, action):
        raise ZeroDivisionError("step went wrong")


cloudpickle.register_pickle_by_value(sys.modules[__name__])
