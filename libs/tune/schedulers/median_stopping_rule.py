"""The median stopping rule (Golovin et al. 2017, Google Vizier): stop a trial that is worse than the median.

At time ``t`` past the grace period, a trial whose best result so far is strictly worse than the
median of the other trials' running averages (their results from the grace period up to ``t``)
stops. With too few other trials to compare against, it yields its slot to waiting trials.
"""
from __future__ import annotations

import collections
from typing import Any

import numpy as np

from .trial_scheduler import PAUSED, PENDING, FIFOScheduler, TrialScheduler, check_mode


class MedianStoppingRule(FIFOScheduler):
    """Ray's MedianStoppingRule: early stopping against the median of the running averages."""

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 grace_period: float = 60.0, min_samples_required: int = 3, min_time_slice: float = 0,
                 hard_stop: bool = True) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode)
        self._metric, self._mode = metric, mode
        self._time_attr = time_attr
        self._grace_period = grace_period
        self._min_samples_required = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        self._stopped_trials: set[str] = set()
        self._last_pause: dict[str, float] = {}  # trial_id -> time it last yielded
        self._results: dict[str, list[dict]] = collections.defaultdict(list)  # trial_id -> usable results

    def _better(self, a: float, b: float) -> float:
        return max(a, b) if self._mode == "max" else min(a, b)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if not self._usable_result(trial, result, self._time_attr):
            return TrialScheduler.CONTINUE
        trial_id = trial.trial_id
        if trial_id in self._stopped_trials:
            return TrialScheduler.CONTINUE  # paused by a soft stop and resumed: it runs on as under FIFO
        time = result[self._time_attr]
        self._results[trial_id].append(result)
        if time < self._grace_period:
            return TrialScheduler.CONTINUE
        others = [t for t in self._trials_beyond_time(time) if t != trial_id]
        means = [m for m in (self._running_mean(t, time) for t in others) if not np.isnan(m)]
        if len(means) < self._min_samples_required:
            return self._on_insufficient_samples(tune_controller, trial_id, time)
        median = float(np.median(means))
        best = self._best_result(trial_id)
        if self._better(median, best) != best:  # strictly worse than the median
            self._stopped_trials.add(trial_id)
            return TrialScheduler.STOP if self._hard_stop else TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if self._usable_result(trial, result, self._time_attr):
            results = self._results[trial.trial_id]
            if not results or results[-1][self._time_attr] != result[self._time_attr]:  # not seen yet
                results.append(result)

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped_trials)}."

    def _on_insufficient_samples(self, tune_controller: Any, trial_id: str, time: float) -> str:
        """Yield the slot to a waiting trial at most once per ``min_time_slice``; else go on."""
        due = time - self._last_pause.get(trial_id, float("-inf")) > self._min_time_slice
        waiting = any(t.status in (PENDING, PAUSED) for t in tune_controller.get_live_trials())
        if due and waiting:
            self._last_pause[trial_id] = time
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def _trials_beyond_time(self, time: float) -> list[str]:
        return [t for t, results in self._results.items() if results and results[-1][self._time_attr] >= time]

    def _running_mean(self, trial_id: str, time: float) -> float:
        scoped = [r[self._metric] for r in self._results[trial_id]
                  if self._grace_period <= r[self._time_attr] <= time]
        return float(np.mean(scoped)) if scoped else float("nan")

    def _best_result(self, trial_id: str) -> float:
        values = [r[self._metric] for r in self._results[trial_id]]
        return max(values) if self._mode == "max" else min(values)
