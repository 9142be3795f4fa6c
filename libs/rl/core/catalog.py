"""What algorithms' modules share: MLP stacks built from ``model_config`` and action distributions.

``model_config`` keys read here: ``fcnet_hiddens`` (layer sizes), ``fcnet_activation`` ("tanh",
"relu", "swish"/"silu", "elu", "linear").
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "elu": nn.ELU,
                "linear": None, None: None}


def activation(name: str | None) -> type | None:
    if name not in _ACTIVATIONS:
        raise ValueError(f"fcnet_activation={name!r}: use one of 'tanh', 'relu', 'swish', 'elu', 'linear'.")
    return _ACTIVATIONS[name]


def build_mlp(in_dim: int, hiddens: list[int], activation_name: str | None = "tanh", out_dim: int | None = None,
              out_gain: float = 1.0) -> nn.Sequential:
    """Linear layers of ``hiddens`` sizes with the activation between, then an optional linear
    output layer (orthogonal init; ``out_gain`` small for policy heads)."""
    act = activation(activation_name)
    layers: list[nn.Module] = []
    size = in_dim
    for h in hiddens:
        layer = nn.Linear(size, h)
        nn.init.orthogonal_(layer.weight, math.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers.append(layer)
        if act is not None:
            layers.append(act())
        size = h
    if out_dim is not None:
        layer = nn.Linear(size, out_dim)
        nn.init.orthogonal_(layer.weight, out_gain)
        nn.init.zeros_(layer.bias)
        layers.append(layer)
    return nn.Sequential(*layers)


def mlp_from_config(in_dim: int, model_config: dict, out_dim: int | None = None, out_gain: float = 1.0,
                    hiddens: list[int] | None = None) -> nn.Sequential:
    """``build_mlp`` with ``fcnet_hiddens``/``fcnet_activation`` from ``model_config``."""
    return build_mlp(in_dim, list(hiddens if hiddens is not None else model_config.get("fcnet_hiddens", [256, 256])),
                     model_config.get("fcnet_activation", "tanh"), out_dim, out_gain)


def flat_dim(space: Any) -> int:
    """Size of a Box space flattened to 1-D."""
    return int(np.prod(space.shape)) if space.shape else 1


def action_dim(space: Any) -> int:
    """Discrete: the number of actions (logits); Box: the flattened size."""
    return int(space.n) if hasattr(space, "n") else flat_dim(space)


class TorchCategorical:
    """A categorical over logits; ``deterministic_sample`` is the argmax.

    Written on normalized log-probabilities rather than ``torch.distributions.Categorical``, whose
    construction (argument checks, normalisation) cost a third of PPO's update on small nets."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        self.log_probs = logits - logits.logsumexp(dim=-1, keepdim=True)

    def sample(self) -> torch.Tensor:
        return torch.multinomial(self.log_probs.exp().reshape(-1, self.log_probs.shape[-1]), 1).reshape(
            self.log_probs.shape[:-1])

    def deterministic_sample(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_probs.exp() * self.log_probs).sum(-1)

    def kl(self, other: "TorchCategorical") -> torch.Tensor:
        return (self.log_probs.exp() * (self.log_probs - other.log_probs)).sum(-1)


class TorchDiagGaussian:
    """A diagonal Gaussian from ``inputs = [mean, log_std]`` on the last axis; ``log_std`` is clipped
    to ``[log_std_min, log_std_max]``."""

    def __init__(self, inputs: torch.Tensor, log_std_min: float = -20.0, log_std_max: float = 2.0) -> None:
        mean, log_std = inputs.chunk(2, dim=-1)
        self.mean = mean
        self.log_std = log_std.clamp(log_std_min, log_std_max)
        self.dist = torch.distributions.Normal(mean, self.log_std.exp())

    def sample(self) -> torch.Tensor:
        return self.dist.sample()

    def rsample(self) -> torch.Tensor:
        return self.dist.rsample()

    def deterministic_sample(self) -> torch.Tensor:
        return self.mean

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(actions).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self.dist.entropy().sum(-1)

    def kl(self, other: "TorchDiagGaussian") -> torch.Tensor:
        return torch.distributions.kl_divergence(self.dist, other.dist).sum(-1)


class TorchSquashedGaussian(TorchDiagGaussian):
    """A Gaussian squashed by tanh into ``[low, high]`` (SAC's policy); ``logp`` includes the tanh
    correction. ``rsample_with_logp`` gives reparameterised actions and their log-probabilities."""

    def __init__(self, inputs: torch.Tensor, low: Any = -1.0, high: Any = 1.0, log_std_min: float = -20.0,
                 log_std_max: float = 2.0) -> None:
        super().__init__(inputs, log_std_min, log_std_max)
        self.low = torch.as_tensor(low, dtype=inputs.dtype, device=inputs.device)
        self.high = torch.as_tensor(high, dtype=inputs.dtype, device=inputs.device)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(u) + 1.0) * 0.5 * (self.high - self.low)

    def _unsquash(self, a: torch.Tensor) -> torch.Tensor:
        y = (a - self.low) * 2.0 / (self.high - self.low) - 1.0
        return torch.atanh(y.clamp(-1 + 1e-6, 1 - 1e-6))

    def _logp_of_u(self, u: torch.Tensor) -> torch.Tensor:
        log_det = torch.log(0.5 * (self.high - self.low)) + 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))
        return (self.dist.log_prob(u) - log_det).sum(-1)

    def sample(self) -> torch.Tensor:
        return self._squash(self.dist.sample())

    def rsample(self) -> torch.Tensor:
        return self._squash(self.dist.rsample())

    def rsample_with_logp(self) -> tuple[torch.Tensor, torch.Tensor]:
        u = self.dist.rsample()
        return self._squash(u), self._logp_of_u(u)

    def deterministic_sample(self) -> torch.Tensor:
        return self._squash(self.mean)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        return self._logp_of_u(self._unsquash(actions))

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError("A squashed Gaussian has no closed-form entropy; use -logp of samples.")
