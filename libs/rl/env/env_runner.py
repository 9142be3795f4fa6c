"""``EnvRunner``: a vector of envs and a copy of the module; ``sample()`` steps them and returns a
time-major batch.

The same class runs in the driver (``num_env_runners=0``) and as an actor. Envs keep going across
``sample()`` calls (episodes span fragments; with ``batch_mode="complete_episodes"`` they never do);
an env is reset as soon as it terminates or truncates, and ``next_obs`` keeps the episode's true final
observation. The config's callbacks run here too: the env and episode hooks, with the runner's own
``MetricsLogger`` (``self.metrics``), whose values go back with each sample's metrics.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from juno.rl.callbacks.callbacks import EPISODE_HOOKS, CallbackSet
from juno.rl.core.columns import Columns
from juno.rl.core.learner import set_cpu_threads
from juno.rl.core.rl_module import RLModuleSpec
from juno.rl.env.env_context import EnvContext
from juno.rl.env.env_creation import EnvError, env_name, make_env
from juno.rl.env.single_agent_episode import SingleAgentEpisode
from juno.rl.utils.metrics_logger import MetricsLogger


# complete_episodes: a sample that takes this many env steps (or 100 times the asked-for steps) is an
# env whose episodes never end.
_MAX_COMPLETE_EPISODES_STEPS = 1_000_000


class EnvRunner:
    def __init__(self, config: Any, env_creator: Callable, module_spec: RLModuleSpec, worker_index: int = 0,
                 num_envs: int | None = None) -> None:
        self.config = config
        self.worker_index = worker_index
        self.name = env_name(config.env)
        self.num_envs = num_envs or config.num_envs_per_env_runner
        self.fragment_length = config.get_rollout_fragment_length()
        seed = config.seed
        if seed is not None and worker_index > 0:  # the driver's runner shares the driver's seeded RNG
            torch.manual_seed(seed + worker_index)
        self.metrics = MetricsLogger(keep_records=True)
        self._callbacks = CallbackSet.from_config(config)
        context = EnvContext(config.env_config, worker_index, 0, config.num_env_runners)
        self.envs = []
        for i in range(self.num_envs):
            env_context = context.copy_with_overrides(vector_index=i)
            self.envs.append(make_env(env_creator, env_context, self.name))
            self._callbacks("on_environment_created", env_runner=self, metrics_logger=self.metrics,
                            env=self.envs[i], env_context=env_context)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.module = module_spec.build()
        self.module.eval()
        self.timestep = 0
        self._discrete = isinstance(self.action_space, gym.spaces.Discrete)
        # One episode per env while a callback has episode hooks; None: nobody looks, nothing is kept.
        self._episodes: list[SingleAgentEpisode | None] | None = \
            [None] * self.num_envs if self._callbacks.has(*EPISODE_HOOKS) else None
        self._obs = np.stack([self._reset(i, None if seed is None else seed + 1000 * worker_index + i)
                              for i in range(self.num_envs)])
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    # ------------------------------------------------------------------ env calls, with the env's name in errors
    def _reset(self, i: int, seed: int | None = None) -> np.ndarray:
        """Start env ``i``'s next episode (and its episode hooks)."""
        episode = None
        if self._episodes is not None:
            episode = self._episodes[i] = SingleAgentEpisode()
            self._episode_hook("on_episode_created", i)
        try:
            obs, info = self.envs[i].reset(seed=seed)
            if seed is not None:
                self.envs[i].action_space.seed(seed)
        except Exception as e:  # noqa: BLE001 - re-raised naming the env
            raise EnvError(f"Env {self.name!r} raised in reset(): {type(e).__name__}: {e}") from e
        if episode is not None:
            episode.add_env_reset(obs, info)
            self._episode_hook("on_episode_start", i)
        return self._flat(obs)

    def _episode_hook(self, hook: str, i: int) -> None:
        self._callbacks(hook, episode=self._episodes[i], env_runner=self, metrics_logger=self.metrics,
                        env=self.envs[i], env_index=int(i), rl_module=self.module)

    def _step_env(self, i: int, action: Any) -> tuple:
        try:
            return self.envs[i].step(action)
        except Exception as e:  # noqa: BLE001 - re-raised naming the env
            raise EnvError(f"Env {self.name!r} raised in step({action!r}): {type(e).__name__}: {e}") from e

    @staticmethod
    def _flat(obs: Any) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).reshape(-1)

    # ------------------------------------------------------------------ stepping
    def _step(self, explore: bool, envs: np.ndarray | None = None) -> tuple[dict, list[tuple[float, int]]]:
        """One step of every env (or of the envs ``envs``): the step's columns, one row per env stepped,
        and the episodes that ended."""
        envs = np.arange(self.num_envs) if envs is None else envs
        obs = self._obs[envs]
        with torch.no_grad():
            tensor = torch.from_numpy(obs)
            out = self.module.forward_exploration(tensor, self.timestep) if explore \
                else self.module.forward_inference(tensor)
        raw = out["actions"].detach().cpu().numpy()
        n = len(envs)
        if self._discrete:
            actions = raw.astype(np.int64).reshape(n)
            env_actions = actions
        else:
            raw = raw.astype(np.float32).reshape(n, -1)
            actions = np.clip(raw, self.action_space.low.reshape(-1), self.action_space.high.reshape(-1))
            env_actions = actions.reshape((n,) + self.action_space.shape)
        rewards = np.zeros(n, dtype=np.float32)
        terminateds = np.zeros(n, dtype=bool)
        truncateds = np.zeros(n, dtype=bool)
        next_obs = np.empty_like(obs)
        ended = []
        for row, i in enumerate(envs):
            o, r, term, trunc, info = self._step_env(i, env_actions[row])
            rewards[row], terminateds[row], truncateds[row] = r, term, trunc
            next_obs[row] = self._obs[i] = self._flat(o)
            self._returns[i] += r
            self._lengths[i] += 1
            if self._episodes is not None:
                self._episodes[i].add_env_step(o, env_actions[row], r, info, terminated=term, truncated=trunc)
                self._episode_hook("on_episode_step", i)
            if term or trunc:
                ended.append((float(self._returns[i]), int(self._lengths[i])))
                self._returns[i], self._lengths[i] = 0.0, 0
                if self._episodes is not None:
                    self._episode_hook("on_episode_end", i)
                self._obs[i] = self._reset(i)
        self.timestep += n
        step = {Columns.OBS: obs, Columns.ACTIONS: actions, Columns.REWARDS: rewards,
                Columns.TERMINATEDS: terminateds, Columns.TRUNCATEDS: truncateds, Columns.NEXT_OBS: next_obs}
        if not self._discrete:
            step[Columns.ACTIONS_RAW] = raw
        for key, value in out.items():
            if key != Columns.ACTIONS and key not in step:
                step[key] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        return step, ended

    def sample(self, num_env_steps: int | None = None, explore: bool | None = None) -> tuple[dict, dict]:
        """``T`` steps of every env (``T``: the fragment length, or ``num_env_steps`` spread over the
        envs): a time-major batch ``[T, N, ...]`` and the metrics of the episodes that ended. With
        ``batch_mode="complete_episodes"``: at least ``T * N`` steps, every env's episodes whole, in
        one column (``[sum of the envs' steps, 1, ...]``; see ``_sample_complete_episodes``)."""
        started = time.perf_counter()
        explore = self.config.explore if explore is None else explore
        steps = self.fragment_length if num_env_steps is None else max(1, math.ceil(num_env_steps / self.num_envs))
        returns, lengths = [], []
        if self.config.batch_mode == "complete_episodes":
            batch = self._sample_complete_episodes(steps * self.num_envs, explore, returns, lengths)
        else:
            columns: dict[str, list] = {}
            for _ in range(steps):
                step, ended = self._step(explore)
                for key, value in step.items():
                    columns.setdefault(key, []).append(value)
                for ret, length in ended:
                    returns.append(ret)
                    lengths.append(length)
            batch = {key: np.stack(values) for key, values in columns.items()}
        self._callbacks("on_sample_end", env_runner=self, metrics_logger=self.metrics, samples=batch)
        metrics = {"episode_returns": returns, "episode_lengths": lengths,
                   "num_env_steps": int(batch[Columns.REWARDS].size), "sample_time_s": time.perf_counter() - started,
                   "custom_metrics": self.metrics.pop_records()}
        return batch, metrics

    def _sample_complete_episodes(self, min_steps: int, explore: bool, returns: list, lengths: list) -> dict:
        """Step the envs until ``min_steps`` steps were taken in all, then each env until its episode
        ends (an env that ended is idle: its next episode starts with the next sample). No episode is
        cut across samples, and every env's column ends with its episode's last step, so GAE and
        n-step windows stop there. The envs' steps go end to end in one column, env by env, since
        their lengths differ: ``[sum of the envs' steps, 1, ...]``."""
        steps: list[dict] = []
        stepped: list[np.ndarray] = []  # the envs of each step's rows
        active = np.arange(self.num_envs)
        total, limit = 0, max(_MAX_COMPLETE_EPISODES_STEPS, 100 * min_steps)
        while len(active):
            step, ended = self._step(explore, active)
            steps.append(step)
            stepped.append(active)
            total += len(active)
            for ret, length in ended:
                returns.append(ret)
                lengths.append(length)
            if total >= min_steps:
                active = active[~(step[Columns.TERMINATEDS] | step[Columns.TRUNCATEDS])]
            if total > limit:
                raise EnvError(f"Env {self.name!r}: batch_mode='complete_episodes' waited {total} steps for "
                               "episodes to end; an env whose episodes do not end needs "
                               "batch_mode='truncate_episodes' (or a gymnasium TimeLimit wrapper).")
        order = np.argsort(np.concatenate(stepped), kind="stable")  # env by env, each env's steps in time order
        return {key: np.concatenate([step[key] for step in steps])[order][:, None] for key in steps[0]}

    def sample_episodes(self, num_episodes: int | None = None, num_timesteps: int | None = None,
                        explore: bool = False, max_steps: int = 1_000_000) -> dict:
        """Fresh episodes (every env reset first) until ``num_episodes`` ended or ``num_timesteps``
        steps were taken; for evaluation. Returns the same metrics as ``sample``."""
        started = time.perf_counter()
        self._obs = np.stack([self._reset(i) for i in range(self.num_envs)])
        self._returns[:], self._lengths[:] = 0.0, 0
        returns, lengths, steps = [], [], 0
        while steps < max_steps:
            _, ended = self._step(explore)
            steps += self.num_envs
            for ret, length in ended:
                returns.append(ret)
                lengths.append(length)
            if (num_episodes is not None and len(returns) >= num_episodes) or \
                    (num_timesteps is not None and steps >= num_timesteps):
                break
        if num_episodes is not None:
            returns, lengths = returns[:num_episodes], lengths[:num_episodes]
        return {"episode_returns": returns, "episode_lengths": lengths, "num_env_steps": steps,
                "sample_time_s": time.perf_counter() - started, "custom_metrics": self.metrics.pop_records()}

    # ------------------------------------------------------------------ weights and info
    def set_weights(self, weights: dict, timestep: int | None = None) -> None:
        self.module.set_state(weights)
        if timestep is not None:
            self.timestep = int(timestep)

    def get_weights(self) -> dict:
        return self.module.get_state()

    def get_spaces(self) -> tuple[Any, Any]:
        return self.observation_space, self.action_space

    def ping(self) -> str:
        return "ok"

    def stop(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


class RemoteEnvRunner(EnvRunner):
    """An env runner in an actor of its own: torch there uses the CPUs the actor holds, not a thread
    per core of the machine (the runners would crowd each other and the learner out)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        set_cpu_threads(config.num_cpus_per_env_runner)
        super().__init__(config, *args, **kwargs)
