"""Transitions with n-step returns from an env runner's time-major batch.

For step t of env i the window runs m = min(n, steps to the episode's end, steps to the
fragment's end) steps: R = sum_{k<m} gamma^k r_{t+k}, and the target bootstraps from the true
next observation after step t+m-1 with discount gamma^m, unless that step terminated. A window
cut short by truncation or by the fragment's end still bootstraps (the episode goes on), only
over fewer steps; no transition ever mixes two episodes.

A fragment's end is not an episode's: :class:`NStepTransitions` keeps the last n-1 steps of each
runner's fragment until its next fragment comes, so windows run across fragments (with SAC's
one-step fragments, n_step would otherwise do nothing at all).
"""
from __future__ import annotations

import numpy as np

# The contract's columns a transition keeps; other extras of the runner (logp, ...) are on-policy only.
TRANSITION_COLUMNS = ("obs", "actions", "rewards", "next_obs", "terminateds", "truncateds")


def n_step_transitions(batch: dict[str, np.ndarray], n_step: int = 1, gamma: float = 0.99) -> dict[str, np.ndarray]:
    """Flatten a time-major batch ([T, N, ...]) into T*N transitions with n-step ``rewards``,
    ``next_obs``, ``terminateds`` and a ``discounts`` column (gamma^m), ready for a replay buffer."""
    _check_n_step(n_step)
    missing = [key for key in TRANSITION_COLUMNS if key not in batch]
    if missing:
        raise ValueError(f"An env runner batch needs the columns {list(TRANSITION_COLUMNS)}; missing {missing}.")
    rewards = np.asarray(batch["rewards"], dtype=np.float32)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be time-major [T, N]; got shape {rewards.shape}.")
    terminateds = np.asarray(batch["terminateds"], dtype=bool)
    done = terminateds | np.asarray(batch["truncateds"], dtype=bool)
    horizon, num_envs = rewards.shape
    next_obs = np.asarray(batch["next_obs"])

    returns = rewards.copy()
    last = np.arange(horizon)[:, None].repeat(num_envs, axis=1)  # the step each window ends on
    open_ = ~done.copy()  # windows that may still grow
    discount = np.full((horizon, num_envs), gamma, dtype=np.float32)
    for k in range(1, n_step):
        # A window starting at t may take step t+k if it is still open and t+k is inside the fragment.
        can_grow = open_[: horizon - k]
        if not can_grow.any():
            break
        returns[: horizon - k] += np.where(can_grow, gamma ** k * rewards[k:], 0.0)
        last[: horizon - k] = np.where(can_grow, np.arange(k, horizon)[:, None], last[: horizon - k])
        discount[: horizon - k] = np.where(can_grow, gamma ** (k + 1), discount[: horizon - k])
        open_[: horizon - k] &= ~done[k:]
        open_[horizon - k:] = False

    envs = np.arange(num_envs)[None, :].repeat(horizon, axis=0)
    out = {
        "obs": batch["obs"],
        "actions": batch["actions"],
        "rewards": returns,
        "next_obs": next_obs[last, envs],
        "terminateds": terminateds[last, envs],
        "truncateds": np.asarray(batch["truncateds"], dtype=bool)[last, envs],
        "discounts": discount,
    }
    return {key: np.asarray(value).reshape((horizon * num_envs,) + np.asarray(value).shape[2:])
            for key, value in out.items()}


def _check_n_step(n_step: object) -> None:
    if not isinstance(n_step, (int, np.integer)) or isinstance(n_step, bool) or n_step < 1:
        raise ValueError(f"n_step must be an int >= 1, got {n_step!r}.")


class NStepTransitions:
    """n-step transitions over a stream of fragments per runner: the last ``n_step - 1`` steps of a
    fragment wait for the runner's next one, so their windows can run on into it. The wait is
    checked: a next fragment that does not continue the held steps (a replaced runner, other
    envs) ends their windows where they stand, as a fragment's end did before."""

    def __init__(self, n_step: int = 1, gamma: float = 0.99) -> None:
        _check_n_step(n_step)
        self.n_step, self.gamma = int(n_step), float(gamma)
        self._held: dict[object, dict[str, np.ndarray]] = {}

    def __call__(self, runner: object, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The transitions whose windows are complete after ``runner``'s fragment ``batch`` ([T, N])."""
        if self.n_step == 1:
            return n_step_transitions(batch, 1, self.gamma)
        batch = {key: np.asarray(batch[key]) for key in TRANSITION_COLUMNS if key in batch}
        held = self._held.pop(runner, None)
        flushed = None
        if held is not None:
            if held["obs"].shape[1:] != batch["obs"].shape[1:]:
                flushed = n_step_transitions(held, self.n_step, self.gamma)  # not this runner's envs any more
            else:
                held = dict(held)
                continues = np.all((held["next_obs"][-1] == batch["obs"][0]).reshape(held["obs"].shape[1], -1), axis=1)
                held["truncateds"] = held["truncateds"].copy()
                held["truncateds"][-1] |= ~continues  # a broken stream ends the held windows where they are
                batch = {key: np.concatenate([held[key], batch[key]]) for key in batch}
        horizon, num_envs = batch["rewards"].shape[:2]
        ready = max(0, horizon - (self.n_step - 1))
        if np.all(batch["terminateds"][-1] | batch["truncateds"][-1]):
            ready = horizon  # every env's episode ended (complete_episodes): no window can run on
        if ready < horizon:
            self._held[runner] = {key: value[ready:] for key, value in batch.items()}
        out = n_step_transitions(batch, self.n_step, self.gamma)
        out = {key: value[: ready * num_envs] for key, value in out.items()}
        if flushed is not None:
            out = {key: np.concatenate([flushed[key], out[key]]) for key in out}
        return out
