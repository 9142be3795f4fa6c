"""``LearnerGroup``: where the learner runs. ``num_learners=0``: in the driver; 1 or more: in one
learner actor holding ``num_gpus_per_learner`` GPUs (Juno sets its ``CUDA_VISIBLE_DEVICES``).

Several learners would mean data-parallel updates, which Juno RL does not do yet: more than one is
run as one learner, with a warning naming the numbers.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import juno
from juno.rl.core.learner import cpu_threads, set_cpu_threads
from juno.rl.core.rl_module import RLModuleSpec

LEARNER_CALL_TIMEOUT_S = 600.0


class LearnerHost:
    """The learner actor's class: builds the learner from its spec in the actor's process."""

    def __init__(self, config: Any, learner_class: type, module_spec: RLModuleSpec) -> None:
        set_cpu_threads(config.num_cpus_per_learner)
        self.learner = learner_class(config, module_spec.build())

    def update(self, batch: dict, timestep: int) -> dict:
        return self.learner.update(batch, timestep)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.learner, method)(*args)


class LearnerGroup:
    def __init__(self, config: Any, learner_class: type, module_spec: RLModuleSpec) -> None:
        self.config = config
        self.num_env_steps_trained = 0
        self.version = 0  # bumped whenever the weights may have changed
        self._actor = None
        self._local = None
        if config.num_learners > 1:
            warnings.warn(f"num_learners={config.num_learners}: Juno RL runs one learner (data-parallel learners "
                          "are not implemented yet); using 1 learner actor.", UserWarning, stacklevel=3)
        if config.num_learners == 0:
            self._local = learner_class(config, module_spec.build())
        else:
            host = juno.remote(LearnerHost).options(num_cpus=config.num_cpus_per_learner,
                                                    num_gpus=config.learner_gpus)
            self._actor = host.remote(config, learner_class, module_spec)

    @property
    def is_local(self) -> bool:
        return self._local is not None

    @property
    def learner(self) -> Any:
        """The learner object when it runs in the driver (None in an actor)."""
        return self._local

    def _call(self, method: str, *args: Any) -> Any:
        if self._local is not None:
            return getattr(self._local, method)(*args)
        return juno.get(self._actor.call.remote(method, *args), timeout=LEARNER_CALL_TIMEOUT_S)

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict[str, float]:
        """One training step's updates; counts the batch's env steps as trained."""
        rewards = batch.get("rewards")
        self.num_env_steps_trained += int(np.asarray(rewards).size) if rewards is not None else 0
        self.version += 1
        if self._local is not None:
            with cpu_threads(self.config.num_cpus_per_learner):
                return self._local.update(batch, timestep)
        return juno.get(self._actor.update.remote(batch, timestep), timeout=LEARNER_CALL_TIMEOUT_S)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self._call("get_weights")

    def set_weights(self, weights: dict) -> None:
        self.version += 1
        self._call("set_weights", weights)

    def get_state(self) -> dict:
        return self._call("get_state")

    def set_state(self, state: dict) -> None:
        self.version += 1
        self._call("set_state", state)

    def stop(self) -> None:
        if self._actor is not None:
            juno.kill(self._actor)
            self._actor = None
