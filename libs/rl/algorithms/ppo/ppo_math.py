"""PPO's math with no processes and no modules: GAE over the env runners' time-major batch, the clipped
surrogate loss, the adaptive KL coefficient. Pure functions of arrays and tensors, so each is tested
against numbers worked out by hand (tests/unit/rl/test_ppo_math.py)."""
from __future__ import annotations

import numpy as np
import torch


def compute_gae(rewards: np.ndarray, values: np.ndarray, next_values: np.ndarray, terminateds: np.ndarray,
                truncateds: np.ndarray, gamma: float, lambda_: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a time-major [T, N] fragment; returns (advantages,
    value_targets), both [T, N] float32.

    ``next_values[t]`` is V(next_obs[t]), the true next observation: it bootstraps the return where an
    episode was truncated and at the fragment's last step (the episode goes on in the next sample), but
    not where it terminated (no future reward). An episode's end (either kind) stops the accumulation,
    so advantages never leak from one episode into the next one of the same env."""
    rewards = np.asarray(rewards, dtype=np.float32)
    if rewards.ndim != 2:
        raise ValueError(f"compute_gae expects time-major [T, N] arrays; rewards has shape {rewards.shape}")
    not_terminated = 1.0 - np.asarray(terminateds, dtype=np.float32)
    not_done = not_terminated * (1.0 - np.asarray(truncateds, dtype=np.float32))
    deltas = rewards + gamma * np.asarray(next_values, np.float32) * not_terminated - values
    advantages = np.empty_like(rewards)
    running = np.zeros(rewards.shape[1], dtype=np.float32)
    decay = np.float32(gamma * lambda_)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + decay * not_done[t] * running
        advantages[t] = running
    return advantages, (advantages + values).astype(np.float32)


def standardize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the whole train batch (RLlib standardizes advantages once per batch)."""
    return (x - x.mean()) / (x.std(unbiased=False) + eps)


def explained_variance(targets: torch.Tensor, predictions: torch.Tensor) -> float:
    """1 - Var(targets - predictions) / Var(targets): 1 is a perfect critic, 0 one that predicts the mean;
    floored at -1 as RLlib does so one bad batch does not swamp a chart."""
    var_targets = torch.var(targets, unbiased=False)
    if float(var_targets) == 0.0:
        return 0.0
    return max(-1.0, float(1.0 - torch.var(targets - predictions, unbiased=False) / var_targets))


def ppo_surrogate_loss(*, logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                       values: torch.Tensor | None, value_targets: torch.Tensor | None, entropy: torch.Tensor,
                       kl: torch.Tensor | None, clip_param: float, vf_clip_param: float, vf_loss_coeff: float,
                       entropy_coeff: float, kl_coeff: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's total loss for one minibatch, and its parts (as detached tensors, so the caller reads them
    without a numpy round trip per minibatch).

    The policy term is the clipped surrogate: min(r * A, clip(r, 1 - eps, 1 + eps) * A) with r the
    probability ratio. The value term is the squared error clipped at ``vf_clip_param`` (RLlib's form: it
    caps one outlier's weight, it does not clip the value's change). ``values=None`` means no critic;
    ``kl=None`` no KL penalty."""
    ratio = torch.exp(logp - old_logp)
    surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1.0 - clip_param, 1.0 + clip_param))
    policy_loss = -surrogate.mean()
    mean_entropy = entropy.mean()
    total = policy_loss - entropy_coeff * mean_entropy
    zero = torch.zeros((), dtype=logp.dtype)
    vf_loss = vf_loss_unclipped = zero
    if values is not None:
        vf_loss_unclipped = (values - value_targets).pow(2)
        vf_loss = torch.clamp(vf_loss_unclipped, 0.0, vf_clip_param).mean()
        vf_loss_unclipped = vf_loss_unclipped.mean()
        total = total + vf_loss_coeff * vf_loss
    mean_kl = zero
    if kl is not None:
        mean_kl = kl.mean()
        if kl_coeff > 0.0:
            total = total + kl_coeff * mean_kl
    stats = {"policy_loss": policy_loss.detach(), "vf_loss": vf_loss.detach(),
             "vf_loss_unclipped": vf_loss_unclipped.detach(), "entropy": mean_entropy.detach(),
             "mean_kl_loss": mean_kl.detach(), "total_loss": total.detach()}
    return total, stats


def update_kl_coeff(kl_coeff: float, mean_kl: float, kl_target: float) -> float:
    """RLlib's adaptive KL penalty: grow the coefficient by half when the policy moved more than twice the
    target, halve it when it moved less than half the target, keep it otherwise."""
    if mean_kl > 2.0 * kl_target:
        return kl_coeff * 1.5
    if mean_kl < 0.5 * kl_target:
        return kl_coeff * 0.5
    return kl_coeff


def merge_fragments(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One time-major batch from the runners' fragments, keeping what GAE needs to know.

    Fragments of the same length sit side by side (their envs become more columns). Fragments of
    different lengths are laid end to end as one long column each env, with the last step of every
    fragment marked truncated: GAE then bootstraps there from ``next_obs`` and stops, exactly what it
    does at a fragment's end."""
    if not batches:
        raise ValueError("merge_fragments needs at least one batch")
    if len(batches) == 1:
        return batches[0]
    lengths = {len(b["rewards"]) for b in batches}
    if len(lengths) == 1:
        return {key: np.concatenate([b[key] for b in batches], axis=1) for key in batches[0]}
    columns: dict[str, list[np.ndarray]] = {key: [] for key in batches[0]}
    for batch in batches:
        ends = np.zeros_like(batch["truncateds"])
        ends[-1] = True
        for key in columns:
            value = (batch[key] | ends) if key == "truncateds" else batch[key]
            # [T, N, ...] -> [N * T, 1, ...]: env by env, each env's steps in time order
            columns[key].append(np.swapaxes(value, 0, 1).reshape((-1, 1) + value.shape[2:]))
    return {key: np.concatenate(parts, axis=0) for key, parts in columns.items()}
