"""``Algorithm``: RLlib's algorithm base, a Tune ``Trainable``.

``setup`` turns the config into an env creator, checks the env's spaces, plans the actors against the
cluster's resources, and builds the learner group and the env runner group. ``step()`` runs the
algorithm's ``training_step()`` (which samples with ``self.env_runner_group`` and updates with
``self.learner_group``) and lays out RLlib's result dict. An algorithm subclass provides
``get_default_config()``, ``module_class``, ``learner_class`` and ``training_step()``.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
import warnings
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import torch

import juno
from juno.air.checkpoint import Checkpoint
from juno.air.validation import ResourcesUnavailableError, check_resources_fit
from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.callbacks.callbacks import CallbackSet
from juno.rl.core.learner_group import LearnerGroup
from juno.rl.core.rl_module import RLModuleSpec
from juno.rl.env.env_context import EnvContext
from juno.rl.env.env_creation import check_spaces, env_creator_for, env_name, make_env
from juno.rl.env.env_runner_group import EnvRunnerGroup
from juno.rl.progress import RLProgress, summarize_config
from juno.rl.utils.metrics import EpisodeStats, build_result, summarize_episodes
from juno.rl.utils.metrics_logger import MetricsLogger, merge_metrics
from juno.rl.utils.resources import plan_env_runners
from juno.tune.trainable.trainable import Trainable

_STATE_FILE = "algorithm_state.pkl"
_META_FILE = "rllib_checkpoint.json"


class AlgorithmCheckpoint(Checkpoint):
    """What ``save()`` returns: a Checkpoint that also reads as RLlib's ``TrainingResult``
    (``algo.save().checkpoint.path``) and as a path (``os.fspath``), as older code expects."""

    @property
    def checkpoint(self) -> "AlgorithmCheckpoint":
        return self

    def __fspath__(self) -> str:
        return self.path


class Algorithm(Trainable):
    module_class: type | None = None
    learner_class: type | None = None
    supported_action_spaces: tuple = (gym.spaces.Discrete, gym.spaces.Box)
    requires_bounded_actions = False

    @classmethod
    def get_default_config(cls) -> AlgorithmConfig:
        return AlgorithmConfig(cls)

    def __init__(self, config: AlgorithmConfig | dict | None = None, env: Any = None, logger_creator: Any = None,
                 **kwargs: Any) -> None:
        self._algo_config = self._as_config(config, env)
        self._view: RLProgress | None = None  # opened by the first train()
        super().__init__({}, **kwargs)

    @classmethod
    def _as_config(cls, config: Any, env: Any) -> AlgorithmConfig:
        if config is None:
            config = cls.get_default_config()
        elif isinstance(config, dict):  # the older dict form, and Tune's trial configs
            config = cls.get_default_config().update_from_dict(config)
        elif isinstance(config, AlgorithmConfig):
            config = config.copy()
        else:
            raise TypeError(f"{cls.__name__}(config=...) takes an AlgorithmConfig or a dict, got "
                            f"{type(config).__name__}.")
        if env is not None:
            config.env = env
        if config.algo_class is None or not issubclass(cls, config.algo_class):
            config.algo_class = cls
        config.validate()
        return config

    # ------------------------------------------------------------------ setup
    def setup(self, _config: dict, **_kwargs: Any) -> None:
        config = self.config = self._algo_config
        if self.module_class is None or self.learner_class is None:
            raise TypeError(f"{type(self).__name__} must set module_class and learner_class.")
        if config.seed is not None:
            random.seed(config.seed)
            np.random.seed(config.seed)
            torch.manual_seed(config.seed)
        self._env_creator = env_creator_for(config.env)
        self.env_name = env_name(config.env)
        observation_space, action_space = config.observation_space, config.action_space
        if observation_space is None or action_space is None:
            probe = make_env(self._env_creator, EnvContext(config.env_config, 0, 0, config.num_env_runners),
                             self.env_name)
            observation_space = observation_space or probe.observation_space
            action_space = action_space or probe.action_space
            probe.close()
        check_spaces(type(self).__name__, self.env_name, observation_space, action_space,
                     self.supported_action_spaces, self.requires_bounded_actions)
        self.observation_space, self.action_space = observation_space, action_space
        self.module_spec = RLModuleSpec(self.module_class, observation_space, action_space, config.model_config,
                                        seed=config.seed)
        self.callbacks = CallbackSet.from_config(config)
        self.metrics = MetricsLogger()  # the driver's hooks log here; its values go to the result's top level
        self._env_runner_metrics = MetricsLogger()  # what the runners' hooks logged, under result["env_runners"]
        self._eval_metrics = MetricsLogger()
        num_runners = self._plan_resources()
        self.learner_group = LearnerGroup(config, self.learner_class, self.module_spec)
        try:
            self.env_runner_group = EnvRunnerGroup(config, self._env_creator, self.module_spec, num_runners)
        except BaseException:
            self.learner_group.stop()
            raise
        self.env_runner_group.on_recreated = self._runners_recreated(is_evaluation=False)
        self.eval_env_runner_group: EnvRunnerGroup | None = None
        self._episode_stats = EpisodeStats(config.metrics_num_episodes_for_smoothing)
        self._inference_module = None
        self._inference_version = -1
        self._steps_offset = 0
        self.env_runner_group.sync_weights(self.learner_group.get_weights(), 0)
        try:
            self.callbacks("on_algorithm_init", algorithm=self, metrics_logger=self.metrics)
        except BaseException:  # the user's hook failed: the actors started for this algorithm go too
            self.cleanup()
            raise

    def _runners_recreated(self, is_evaluation: bool) -> Any:
        def hook(group: EnvRunnerGroup, indices: list[int]) -> None:
            self.callbacks("on_env_runners_recreated", algorithm=self, env_runner_group=group,
                           env_runner_indices=indices, is_evaluation=is_evaluation)
        return hook

    def _plan_resources(self) -> int:
        """Check GPUs and CPUs before any actor exists; fewer runners on a small local cluster."""
        config = self.config
        if config.num_env_runners == 0 and config.num_learners == 0 and not config.learner_gpus:
            return 0
        if not juno.is_initialized():
            juno.init(ignore_reinit_error=True)
        nodes = [n for n in juno.nodes() if n.get("Alive", True)]
        if config.num_learners > 1:  # each learner actor on some node, or the group would wait forever
            try:
                check_resources_fit([{"CPU": config.num_cpus_per_learner, "GPU": config.learner_gpus}]
                                    * config.num_learners, "PACK", nodes, unit="learner")
            except ResourcesUnavailableError as e:  # its advice names Train's settings: give RL's instead
                facts = str(e).split(" Use fewer")[0]
                raise ResourcesUnavailableError(
                    f"learners(num_learners={config.num_learners}, num_cpus_per_learner={config.num_cpus_per_learner}"
                    f", num_gpus_per_learner={config.learner_gpus}) can never be placed on this cluster. {facts} "
                    "Lower num_learners or the resources per learner, or add nodes.") from None
        runners, warning = plan_env_runners(config, juno.cluster_resources(), juno.available_resources(), len(nodes))
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=4)
        return runners

    @property
    def global_env_steps(self) -> int:
        return self._steps_offset + self.env_runner_group.num_env_steps_sampled

    # ------------------------------------------------------------------ one iteration
    def train(self) -> dict:
        """One iteration (``step()`` with Tune's bookkeeping), shown live (``juno.rl.progress``); an
        interrupt leaves the algorithm usable."""
        if self._view is None:
            self._view = RLProgress(type(self).__name__, summarize_config(self.config))
        self._view.begin()
        try:
            result = super().train()
        except BaseException as e:
            self._view.fail(e)  # a KeyboardInterrupt only notes the interrupt; the view stays open
            raise
        self._view.on_result(result)
        return result

    def training_step(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.training_step() must sample, update the learner, sync "
                                  "the weights and return the learner's metrics.")

    def step(self) -> dict:
        config = self.config
        started = time.perf_counter()
        steps_before = self.global_env_steps
        while True:
            learner_metrics = self.training_step() or {}
            sampled = self.global_env_steps - steps_before
            elapsed = time.perf_counter() - started
            if sampled >= config.min_sample_timesteps_per_iteration and \
                    (not config.min_time_s_per_iteration or elapsed >= config.min_time_s_per_iteration):
                break
        metrics = self.env_runner_group.pop_metrics()
        count = self._episode_stats.add(metrics)
        for m in metrics:
            self._env_runner_metrics.log_records(m.get("custom_metrics", ()))
        elapsed = time.perf_counter() - started
        iteration = self.iteration + 1
        result = build_result(
            env_runner_stats=self._episode_stats.summary(count), learner_metrics=learner_metrics,
            iteration=iteration, time_this_iter_s=elapsed, time_total_s=self._time_total + elapsed,
            steps_sampled_this_iter=self.global_env_steps - steps_before, steps_sampled_lifetime=self.global_env_steps,
            steps_trained_lifetime=self.learner_group.num_env_steps_trained,
            sample_time_s=sum(m["sample_time_s"] for m in metrics))
        merge_metrics(result["env_runners"], self._env_runner_metrics.reduce())
        merge_metrics(result, self.metrics.reduce())
        if config.evaluation_interval and iteration % config.evaluation_interval == 0:
            result["evaluation"] = self.evaluate()
        self.callbacks("on_train_result", algorithm=self, metrics_logger=self.metrics, result=result)
        return result

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict:
        """Greedy episodes (``evaluation_duration`` episodes or timesteps) on the evaluation runners,
        or in the driver; returns ``{"env_runners": {"episode_return_mean": ...}, ...}``."""
        config = self.config
        self.callbacks("on_evaluate_start", algorithm=self, metrics_logger=self.metrics)
        if self.eval_env_runner_group is None:
            eval_config = config.copy()
            if config.evaluation_config:
                eval_config.update_from_dict(config.evaluation_config)
            eval_config.explore = False
            eval_config.num_env_runners = config.evaluation_num_env_runners
            count = 0
            if eval_config.num_env_runners:
                count, warning = plan_env_runners(eval_config, juno.cluster_resources(), juno.available_resources(),
                                                  len(juno.nodes()))
                if warning:
                    warnings.warn("evaluation: " + warning, UserWarning, stacklevel=2)
            self.eval_env_runner_group = EnvRunnerGroup(eval_config, self._env_creator, self.module_spec, count)
            self.eval_env_runner_group.on_recreated = self._runners_recreated(is_evaluation=True)
        self.eval_env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)
        duration = 10 if config.evaluation_duration == "auto" else config.evaluation_duration
        by_episodes = config.evaluation_duration_unit == "episodes"
        metrics = self.eval_env_runner_group.sample_episodes(
            num_episodes=duration if by_episodes else None, num_timesteps=None if by_episodes else duration,
            explore=bool(config.evaluation_config and config.evaluation_config.get("explore")))
        stats = summarize_episodes(metrics)
        for m in metrics:
            self._eval_metrics.log_records(m.get("custom_metrics", ()))
        merge_metrics(stats, self._eval_metrics.reduce())
        older = {"episode_reward_mean": stats["episode_return_mean"], "episode_reward_min":
                 stats["episode_return_min"], "episode_reward_max": stats["episode_return_max"],
                 "episode_len_mean": stats["episode_len_mean"], "episodes_this_iter": stats["num_episodes"]}
        out = {"env_runners": stats, **older, "evaluation": {"env_runners": stats, **older}}
        self.callbacks("on_evaluate_end", algorithm=self, metrics_logger=self.metrics, evaluation_metrics=out)
        return out

    # ------------------------------------------------------------------ acting with the trained policy
    def get_module(self, module_id: str = "default_policy") -> Any:
        """The RLModule on the CPU with the learner's current weights."""
        version = self.learner_group.version
        if self._inference_module is None:
            self._inference_module = RLModuleSpec(self.module_class, self.observation_space, self.action_space,
                                                  self.config.model_config).build()
            self._inference_module.eval()
        if version != self._inference_version:
            self._inference_module.set_state(self.learner_group.get_weights())
            self._inference_version = version
        return self._inference_module

    def compute_actions(self, observations: Any, explore: bool | None = None, **_kwargs: Any) -> Any:
        """Actions for a batch of observations (an array ``[B, ...]``), or for a dict of them (the
        older multi-agent form: a dict of actions comes back)."""
        if isinstance(observations, dict):
            keys = list(observations)
            actions = self.compute_actions(np.stack([np.asarray(observations[k]) for k in keys]), explore)
            return {k: a for k, a in zip(keys, actions)}
        obs = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
        module = self.get_module()
        with torch.no_grad():
            tensor = torch.from_numpy(obs)
            out = module.forward_exploration(tensor, self.global_env_steps) if explore \
                else module.forward_inference(tensor)
        actions = out["actions"].detach().cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Discrete):
            return actions.astype(np.int64).reshape(len(obs))
        space = self.action_space
        actions = actions.astype(np.float32).reshape(len(obs), -1)
        actions = np.clip(actions, space.low.reshape(-1), space.high.reshape(-1))
        return actions.reshape((len(obs),) + space.shape)

    def compute_single_action(self, observation: Any = None, state: Any = None, *, explore: bool | None = None,
                              policy_id: str = "default_policy", full_fetch: bool = False,
                              **_kwargs: Any) -> Any:
        """The older form: one observation in, one action out (greedy unless ``explore=True``)."""
        if observation is None:
            raise ValueError("compute_single_action(observation) needs an observation.")
        action = self.compute_actions(np.asarray(observation, dtype=np.float32)[None], explore=bool(explore))[0]
        action = int(action) if isinstance(self.action_space, gym.spaces.Discrete) else action
        return (action, [], {}) if full_fetch or state is not None else action

    def get_policy(self, policy_id: str = "default_policy") -> "Policy":
        return Policy(self)

    def get_weights(self, policies: Any = None) -> dict:
        return {"default_policy": self.learner_group.get_weights()}

    def set_weights(self, weights: dict) -> None:
        """Set the learner's weights (``{"default_policy": state}`` or the state itself) and the runners'."""
        state = weights.get("default_policy", weights)
        self.learner_group.set_weights(state)
        self.env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """Writes the algorithm's state and its config into ``checkpoint_dir``."""
        state = {"algo_class": type(self), "config": self.config, "env_creator": self._env_creator,
                 "learner": self.learner_group.get_state(), "iteration": self.iteration,
                 "time_total_s": self._time_total, "env_steps_sampled": self.global_env_steps,
                 "env_steps_trained": self.learner_group.num_env_steps_trained,
                 "episodes": (list(self._episode_stats.returns), list(self._episode_stats.lengths))}
        os.makedirs(checkpoint_dir, exist_ok=True)
        with open(os.path.join(checkpoint_dir, _STATE_FILE), "wb") as f:
            cloudpickle.dump(state, f)
        with open(os.path.join(checkpoint_dir, _META_FILE), "w") as f:
            json.dump({"type": "Algorithm", "checkpoint_version": "juno-1", "algorithm": type(self).__name__,
                       "env": self.env_name}, f)

    def load_checkpoint(self, checkpoint: dict | str | None) -> None:
        state = _read_state(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
        if not state:
            raise ValueError(f"{type(self).__name__}.load_checkpoint: no algorithm state in {checkpoint!r}.")
        self.learner_group.set_state(state["learner"])
        self._iteration = state["iteration"]
        self._time_total = state["time_total_s"]
        self._steps_offset = state["env_steps_sampled"] - self.env_runner_group.num_env_steps_sampled
        self.learner_group.num_env_steps_trained = state["env_steps_trained"]
        self._episode_stats.returns.extend(state["episodes"][0])
        self._episode_stats.lengths.extend(state["episodes"][1])
        self.env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)
        self.callbacks("on_checkpoint_loaded", algorithm=self)

    def save(self, checkpoint_dir: str | None = None) -> AlgorithmCheckpoint:
        """A checkpoint directory (a new temporary one unless given) readable by ``from_checkpoint``."""
        directory = os.fspath(checkpoint_dir) if checkpoint_dir is not None else \
            tempfile.mkdtemp(prefix=f"juno_{type(self).__name__}_")
        self.save_checkpoint(directory)
        return AlgorithmCheckpoint(directory)

    def save_to_path(self, path: str | None = None) -> str:
        return self.save(path).path

    def restore(self, checkpoint: Any) -> None:
        """From ``save()``'s checkpoint or its directory."""
        self.load_checkpoint(_checkpoint_path(checkpoint))

    restore_from_path = restore

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, **_kwargs: Any) -> "Algorithm":
        """A new algorithm of the saved class and config, in the saved state (no config needed)."""
        path = _checkpoint_path(checkpoint)
        state = _read_state(path)
        config = state["config"]
        if isinstance(config.env, str) and state.get("env_creator") is not None:
            from juno.tune.registry import register_env, registered_env_creator

            try:
                env_creator_for(config.env)
            except ValueError:  # a registered name this process does not know yet
                if registered_env_creator(config.env) is None:
                    register_env(config.env, state["env_creator"])
        algo = state["algo_class"](config=config)
        algo.load_checkpoint(state)
        return algo

    # ------------------------------------------------------------------ stopping
    def cleanup(self) -> None:
        if self._view is not None:
            self._view.finish()
        for group in (getattr(self, "env_runner_group", None), getattr(self, "eval_env_runner_group", None)):
            if group is not None:
                group.stop()
        if getattr(self, "learner_group", None) is not None:
            self.learner_group.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={getattr(self, 'env_name', None)!r}, iteration={self.iteration})"


class Policy:
    """The older ``algo.get_policy()``: acting and weights of the algorithm's one policy."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self.observation_space = algorithm.observation_space
        self.action_space = algorithm.action_space

    @property
    def model(self) -> Any:
        return self.algorithm.get_module()

    def compute_single_action(self, obs: Any = None, state: Any = None, *, explore: bool | None = None,
                              **_kwargs: Any) -> tuple:
        return self.algorithm.compute_single_action(obs, explore=explore), [], {}

    def compute_actions(self, obs_batch: Any, *, explore: bool | None = None, **_kwargs: Any) -> tuple:
        return self.algorithm.compute_actions(obs_batch, explore=explore), [], {}

    def get_weights(self) -> dict:
        return self.algorithm.learner_group.get_weights()

    def set_weights(self, weights: dict) -> None:
        self.algorithm.set_weights(weights)


def _checkpoint_path(checkpoint: Any) -> str:
    if isinstance(checkpoint, Checkpoint):
        return checkpoint.path
    inner = getattr(checkpoint, "checkpoint", None)  # RLlib's TrainingResult
    if isinstance(inner, Checkpoint):
        return inner.path
    return os.fspath(checkpoint)


def _read_state(path: str | os.PathLike) -> dict:
    file = os.path.join(os.fspath(path), _STATE_FILE)
    if not os.path.exists(file):
        raise FileNotFoundError(f"{os.fspath(path)!r} is not an algorithm checkpoint (no {_STATE_FILE}); pass the "
                                "directory algo.save() returned.")
    with open(file, "rb") as f:
        return cloudpickle.load(f)
