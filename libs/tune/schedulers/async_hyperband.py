"""Asynchronous successive halving (ASHA, Li et al. 2018): stop a trial at a rung unless it is in the top 1/rf.

Each bracket has rungs at ``grace_period * rf**(k + s)`` up to ``max_t``. When a trial's time
reaches a rung it has not been judged at, it is compared with the results recorded at that rung so
far: below the ``(1 - 1/rf)`` quantile it stops, otherwise it goes on; either way its result joins
the rung. Nothing waits for slower trials, so no trial is ever paused.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .trial_scheduler import FIFOScheduler, TrialScheduler, check_mode

logger = logging.getLogger(__name__)


class AsyncHyperBandScheduler(FIFOScheduler):
    """Ray's AsyncHyperBandScheduler (``ASHAScheduler``): early stopping by asynchronous successive halving.

    ``seed`` (not in Ray, which draws from numpy's global state) makes the bracket each trial joins
    reproducible when ``brackets > 1``; left None it is drawn from numpy's global state, so
    ``np.random.seed`` works as in Ray.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: float = 100, grace_period: float = 1, reduction_factor: float = 4, brackets: int = 1,
                 stop_last_trials: bool = True, *, seed: int | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if not max_t > 0:
            raise ValueError(f"{name}: max_t must be positive, got {max_t!r}.")
        if not grace_period > 0:
            raise ValueError(f"{name}: grace_period must be positive, got {grace_period!r}.")
        if grace_period > max_t:
            raise ValueError(f"{name}: grace_period ({grace_period}) must be <= max_t ({max_t}).")
        if not reduction_factor > 1:
            raise ValueError(f"{name}: reduction_factor must be > 1, got {reduction_factor!r}.")
        if not (isinstance(brackets, int) and brackets > 0):
            raise ValueError(f"{name}: brackets must be a positive int, got {brackets!r}.")
        check_mode(name, mode)
        self._metric, self._mode = metric, mode
        self._time_attr = time_attr
        self._max_t = max_t
        self._reduction_factor = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s, stop_last_trials)
                          for s in range(brackets)]
        self._trial_info: dict[str, _Bracket] = {}  # trial_id -> its bracket
        self._num_stopped = 0
        self._rng = np.random.default_rng(seed if seed is not None else np.random.randint(2**31))

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Join a bracket, favouring brackets with more rungs (a softmax over their sizes, as Ray does)."""
        sizes = np.array([len(b.rungs) for b in self._brackets], dtype=float)
        weights = np.exp(sizes - sizes.max())
        index = int(self._rng.choice(len(self._brackets), p=weights / weights.sum()))
        self._trial_info[trial.trial_id] = self._brackets[index]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if not self._usable_result(trial, result, self._time_attr):
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            bracket = self._bracket_of(trial)
            action = bracket.on_result(trial.trial_id, result[self._time_attr], self._metric_op * result[self._metric])
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        """A finished trial's last result still counts at the rung it reached."""
        if trial.trial_id in self._trial_info and self._usable_result(trial, result, self._time_attr):
            self._trial_info[trial.trial_id].on_result(
                trial.trial_id, result[self._time_attr], self._metric_op * result[self._metric])
        self._trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._trial_info.pop(trial.trial_id, None)

    def _bracket_of(self, trial: Any) -> "_Bracket":
        if trial.trial_id not in self._trial_info:  # a trial restored without on_trial_add
            self.on_trial_add(None, trial)
        return self._trial_info[trial.trial_id]

    def debug_string(self) -> str:
        lines = [f"Using AsyncHyperBand: num_stopped={self._num_stopped}"]
        lines += [b.debug_str() for b in self._brackets]
        return "\n".join(lines)


class _Bracket:
    """One bracket's rungs: ``(milestone, {trial_id: score})``, the highest milestone first."""

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int, stop_last_trials: bool) -> None:
        self.rf = reduction_factor
        self.stop_last_trials = stop_last_trials
        milestones = []
        k = 0
        while min_t * reduction_factor ** (k + s) <= max_t * (1 + 1e-9):  # tolerance: float powers
            milestones.append(min_t * reduction_factor ** (k + s))
            k += 1
        self.rungs: list[tuple[float, dict[str, float]]] = [(m, {}) for m in reversed(milestones)]

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        """The score a trial must reach to go on: the (1 - 1/rf) quantile of those recorded at the rung."""
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, trial_id: str, cur_iter: float, cur_score: float) -> str:
        """Judge the trial at the highest rung it has reached and not yet been judged at."""
        action = TrialScheduler.CONTINUE
        for milestone, recorded in self.rungs:
            if cur_iter >= milestone and trial_id in recorded and not self.stop_last_trials:
                break  # already judged here and let through: it goes on
            if cur_iter < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and cur_score < cutoff:
                action = TrialScheduler.STOP
            recorded[trial_id] = cur_score
            break
        return action

    def debug_str(self) -> str:
        rungs = ", ".join(f"Iter {milestone:.3f}: {self.cutoff(recorded)}" for milestone, recorded in self.rungs)
        return f"Bracket: {rungs}"


ASHAScheduler = AsyncHyperBandScheduler
