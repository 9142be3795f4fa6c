"""``EnvRunnerGroup``: the env runner actors (or the driver's local runner) of an algorithm.

``sample()`` asks every runner at once and gathers what comes back within ``sample_timeout_s``; a
runner whose process died (or that timed out) is replaced and the iteration goes on with the others.
``sync_weights()`` puts the weights in the object store once and passes the one ref to every runner.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any, Callable

import juno
from juno.exceptions import ActorDiedError, GetTimeoutError, RayActorError, WorkerCrashedError
from juno.rl.core.rl_module import RLModuleSpec
from juno.rl.core.learner import cpu_threads
from juno.rl.env.env_runner import EnvRunner, RemoteEnvRunner

logger = logging.getLogger("juno.rl")
_RUNNER_LOST = (ActorDiedError, RayActorError, WorkerCrashedError, GetTimeoutError)


class EnvRunnerGroup:
    def __init__(self, config: Any, env_creator: Callable, module_spec: RLModuleSpec,
                 num_env_runners: int | None = None) -> None:
        self.config = config
        self._creator = env_creator
        self._spec = module_spec
        count = config.num_env_runners if num_env_runners is None else num_env_runners
        self.local_env_runner: EnvRunner | None = None
        self._actors: dict[int, Any] = {}
        self._weights: tuple[Any, int] | None = None
        self.num_restarts = 0
        self.num_env_steps_sampled = 0
        self._metrics: list[dict] = []
        self.on_recreated: Callable[["EnvRunnerGroup", list[int]], None] | None = None  # the algorithm's hook
        if count == 0:
            self.local_env_runner = EnvRunner(config, env_creator, module_spec, 0)
        else:
            self._actors = {i: self._start(i) for i in range(1, count + 1)}
            self._wait_ready(list(self._actors))

    # ------------------------------------------------------------------ actors
    def _start(self, index: int) -> Any:
        runner = juno.remote(RemoteEnvRunner).options(num_cpus=self.config.num_cpus_per_env_runner,
                                                      num_gpus=self.config.num_gpus_per_env_runner)
        return runner.remote(self.config, self._creator, self._spec, index)

    def _wait_ready(self, indices: list[int]) -> None:
        """Every runner answers, or the constructor's error (an env that cannot be made) is raised."""
        timeout = self.config.env_runner_restore_timeout_s
        for index in indices:
            try:
                juno.get(self._actors[index].ping.remote(), timeout=timeout)
            except GetTimeoutError:
                self.stop()
                raise TimeoutError(f"Env runner {index} did not start within {timeout:g} s "
                                   "(fault_tolerance(env_runner_restore_timeout_s=...)).") from None
            except RayActorError as e:
                self.stop()
                raise RuntimeError(f"Env runner {index} could not start: {e}") from None

    def _replace(self, index: int, error: BaseException) -> None:
        config = self.config
        if not config.restart_failed_env_runners or self.num_restarts >= config.max_num_env_runner_restarts:
            if config.ignore_env_runner_failures:
                logger.warning("Env runner %d failed and is dropped: %s", index, error)
                self._actors.pop(index, None)
                return
            raise RuntimeError(f"Env runner {index} failed ({type(error).__name__}: {error}); restarting is off "
                               "or the restarts ran out (fault_tolerance(restart_failed_env_runners=True, "
                               "max_num_env_runner_restarts=...)).") from error
        try:
            juno.kill(self._actors[index])
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        self.num_restarts += 1
        warnings.warn(f"Env runner {index} failed ({type(error).__name__}); starting a new one "
                      f"(restart {self.num_restarts}). This iteration goes on with the other runners.",
                      UserWarning, stacklevel=3)
        self._actors[index] = self._start(index)
        self._wait_ready([index])
        if self._weights is not None:
            self._actors[index].set_weights.remote(*self._weights)
        if self.on_recreated is not None:
            self.on_recreated(self, [index])

    # ------------------------------------------------------------------ sampling
    @property
    def num_env_runners(self) -> int:
        return len(self._actors)

    @property
    def num_healthy_env_runners(self) -> int:
        return len(self._actors)

    def sample(self, num_env_steps: int | None = None, explore: bool | None = None) -> tuple[list[dict], list[dict]]:
        """One batch per runner, sampled in parallel (``num_env_steps`` spread over the runners),
        and each runner's metrics."""
        if self.local_env_runner is not None:
            with cpu_threads(1):
                batch, metrics = self.local_env_runner.sample(num_env_steps, explore)
            return self._record([batch], [metrics])
        per_runner = None if num_env_steps is None else max(1, math.ceil(num_env_steps / len(self._actors)))
        refs = {i: actor.sample.remote(per_runner, explore) for i, actor in self._actors.items()}
        deadline = time.monotonic() + self.config.sample_timeout_s
        batches, metrics, failed = [], [], []
        try:
            for index, ref in refs.items():
                try:
                    batch, m = juno.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                except _RUNNER_LOST as e:
                    failed.append((index, e))
                    continue
                batches.append(batch)
                metrics.append(m)
        except KeyboardInterrupt:  # Ctrl-C in a script: the runners stop sampling now, not at the fragment's end
            for ref in refs.values():
                try:
                    juno.cancel(ref)
                except Exception:  # noqa: BLE001 - finished or gone already
                    pass
            raise
        for index, error in failed:
            self._replace(index, error)
        if not batches:
            raise RuntimeError(f"Every env runner failed in this sample: {failed[0][1]}")
        return self._record(batches, metrics)

    def _record(self, batches: list[dict], metrics: list[dict]) -> tuple[list[dict], list[dict]]:
        self.num_env_steps_sampled += sum(m["num_env_steps"] for m in metrics)
        self._metrics.extend(metrics)
        return batches, metrics

    def pop_metrics(self) -> list[dict]:
        """The metrics of every sample since the last call (the algorithm's iteration drains them)."""
        metrics, self._metrics = self._metrics, []
        return metrics

    def sample_episodes(self, num_episodes: int | None = None, num_timesteps: int | None = None,
                        explore: bool = False) -> list[dict]:
        """Fresh episodes on every runner (the total spread over them): for evaluation."""
        if self.local_env_runner is not None:
            return [self.local_env_runner.sample_episodes(num_episodes, num_timesteps, explore)]
        n = len(self._actors)
        per = (lambda total: None if total is None else max(1, math.ceil(total / n)))
        refs = [a.sample_episodes.remote(per(num_episodes), per(num_timesteps), explore) for a in self._actors.values()]
        return juno.get(refs, timeout=max(self.config.sample_timeout_s, 600.0))

    # ------------------------------------------------------------------ weights
    def sync_weights(self, weights: dict, timestep: int = 0) -> None:
        """One ``juno.put``; every runner gets the ref (calls from here run in order, so each
        runner's next sample uses these weights)."""
        if self.local_env_runner is not None:
            self.local_env_runner.set_weights(weights, timestep)
            return
        ref = juno.put(weights)
        self._weights = (ref, timestep)
        for actor in self._actors.values():
            actor.set_weights.remote(ref, timestep)

    def get_weights(self, index: int | None = None) -> dict:
        if self.local_env_runner is not None:
            return self.local_env_runner.get_weights()
        actor = self._actors[index if index is not None else min(self._actors)]
        return juno.get(actor.get_weights.remote(), timeout=self.config.sample_timeout_s)

    def foreach_env_runner(self, fn_name: str, *args: Any) -> list[Any]:
        """Call a method of every runner (by name) and return the answers."""
        if self.local_env_runner is not None:
            return [getattr(self.local_env_runner, fn_name)(*args)]
        refs = [getattr(a, fn_name).remote(*args) for a in self._actors.values()]
        return juno.get(refs, timeout=self.config.sample_timeout_s)

    def stop(self) -> None:
        if self.local_env_runner is not None:
            self.local_env_runner.stop()
        for actor in self._actors.values():
            try:
                juno.kill(actor)
            except Exception:  # noqa: BLE001 - it may be dead already
                pass
        self._actors = {}
