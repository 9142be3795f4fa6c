"""``RLModule``: the torch network an algorithm acts and learns with.

Env runners call ``forward_exploration`` (or ``forward_inference`` when not exploring) on batched
observations; what it returns beside ``"actions"`` becomes batch columns. The learner calls
``forward_train``. Weights travel as ``get_state()``: the state dict as numpy arrays on the CPU.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class RLModule(nn.Module):
    """Subclass and implement the three forwards. ``model_config`` holds ``fcnet_hiddens``,
    ``fcnet_activation`` ... (see ``juno.rl.core.catalog``)."""

    def __init__(self, observation_space: Any, action_space: Any, model_config: dict | None = None) -> None:
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.model_config = dict(model_config or {})

    def forward_inference(self, obs: torch.Tensor) -> dict:
        """Greedy actions for a batch of observations: ``{"actions": Tensor}``."""
        raise NotImplementedError(f"{type(self).__name__}.forward_inference(obs) must return {{'actions': ...}}.")

    def forward_exploration(self, obs: torch.Tensor, t: int) -> dict:
        """Exploring actions (``t``: global env steps, for schedules) and extras to keep per step."""
        raise NotImplementedError(f"{type(self).__name__}.forward_exploration(obs, t) must return "
                                  "{'actions': ..., **extras}.")

    def forward_train(self, batch: dict) -> dict:
        """What the algorithm's loss needs."""
        raise NotImplementedError(f"{type(self).__name__}.forward_train(batch) must be implemented.")

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def set_state(self, state: dict) -> None:
        device = next(self.parameters(), torch.empty(0)).device
        # A copy: arrays read from the object store are read-only views.
        self.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in state.items()})


class RLModuleSpec:
    """How to build a module (RLlib's ``RLModuleSpec``): picklable, so runners and learner actors
    build their own copy. ``seed`` seeds torch first, so every copy starts from the same weights."""

    def __init__(self, module_class: type, observation_space: Any = None, action_space: Any = None,
                 model_config: dict | None = None, seed: int | None = None) -> None:
        self.module_class = module_class
        self.observation_space = observation_space
        self.action_space = action_space
        self.model_config = dict(model_config or {})
        self.seed = seed

    def build(self) -> RLModule:
        if self.seed is not None:
            torch.manual_seed(self.seed)
        return self.module_class(self.observation_space, self.action_space, self.model_config)
