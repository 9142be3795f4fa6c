"""Synchronous HyperBand (Li et al. 2016): brackets of trials halved together at each milestone.

Trials join brackets in order; a bracket of ``n`` trials runs each to the milestone ``r``, pausing
those that get there first. When the last live trial of the bracket reaches it, the bracket is
halved: the best ``n / eta`` go on to ``r * eta`` (paused ones are resumed through
``choose_trial_to_run``), the others are stopped. A bracket with no halvings left runs its trials
to ``max_t``. Brackets of one band trade many short trials against few long ones.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from .trial_scheduler import PAUSED, PENDING, RUNNING, FIFOScheduler, TrialScheduler, check_mode

logger = logging.getLogger(__name__)


class HyperBandScheduler(FIFOScheduler):
    """Ray's HyperBandScheduler: stops and pauses trials so that brackets are halved synchronously."""

    _supports_buffered_results = False

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: int = 81, reduction_factor: float = 3, stop_last_trials: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        if not max_t > 0:
            raise ValueError(f"{name}: max_t must be positive, got {max_t!r}.")
        if not reduction_factor > 1:
            raise ValueError(f"{name}: reduction_factor must be > 1, got {reduction_factor!r}.")
        check_mode(name, mode)
        self._metric, self._mode = metric, mode
        self._time_attr = time_attr
        self._eta = reduction_factor
        self._max_t_attr = max_t
        self._s_max_1 = int(round(math.log(max_t) / math.log(reduction_factor))) + 1
        self._stop_last_trials = stop_last_trials
        self._hyperbands: list[list[_HyperBandBracket | None]] = [[]]
        self._trial_info: dict[str, tuple[_HyperBandBracket, int]] = {}  # trial_id -> (bracket, band index)
        self._current_bracket: _HyperBandBracket | None = None
        self._band_idx = 0
        self._num_stopped = 0

    def _bracket_size(self, s: int) -> int:
        """Trials in bracket ``s``: ceil(s_max_1 / (s + 1) * eta**s)."""
        return int(math.ceil(self._s_max_1 / (s + 1) * self._eta ** s))

    def _bracket_first_milestone(self, s: int) -> int:
        return int(self._max_t_attr * self._eta ** (-s))

    # ------------------------------------------------------------------ events
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Add to the current bracket; open the next bracket (or the next band) when it is full."""
        bracket = self._current_bracket
        if bracket is None or bracket.filled():
            bracket = None
            while bracket is None:
                band = self._hyperbands[self._band_idx]
                if len(band) == self._s_max_1:
                    self._hyperbands.append([])
                    self._band_idx += 1
                    band = self._hyperbands[self._band_idx]
                s = len(band)
                if self._bracket_first_milestone(s) == 0:
                    band.append(None)  # this bracket's first milestone rounds to 0: skip it
                    continue
                bracket = _HyperBandBracket(self._time_attr, self._bracket_size(s), self._bracket_first_milestone(s),
                                            self._max_t_attr, self._eta, s, self._stop_last_trials)
                band.append(bracket)
            self._current_bracket = bracket
        bracket.add_trial(trial.trial_id)
        self._trial_info[trial.trial_id] = (bracket, self._band_idx)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """CONTINUE below the bracket's milestone; at it, PAUSE until the bracket can be halved."""
        if not self._usable_result(trial, result, self._time_attr) or trial.trial_id not in self._trial_info:
            return TrialScheduler.CONTINUE
        bracket, _ = self._trial_info[trial.trial_id]
        if trial.trial_id not in bracket.live_trials:
            return TrialScheduler.CONTINUE
        bracket.update_trial_stats(trial.trial_id, result)
        if bracket.continue_trial(trial.trial_id):
            return TrialScheduler.CONTINUE
        return self._process_bracket(tune_controller, bracket, current=trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """A trial gone (finished, failed, stopped) leaves its bracket, which may then be halved."""
        if trial.trial_id not in self._trial_info:
            return
        bracket, _ = self._trial_info[trial.trial_id]
        bracket.cleanup_trial(trial.trial_id)
        if not bracket.is_being_processed:  # a finished bracket stops the trials still paused in it
            self._process_bracket(tune_controller, bracket, current=None)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_remove(tune_controller, trial)

    def _process_bracket(self, tune_controller: Any, bracket: "_HyperBandBracket", current: str | None) -> str:
        """Halve the bracket once all its live trials reached the milestone; the action for ``current``.

        Bad trials are stopped (``current`` by the returned STOP, others through the controller),
        good paused ones are queued for ``choose_trial_to_run``; ``current`` pauses while others
        are still short of the milestone.
        """
        action = TrialScheduler.PAUSE
        if not bracket.cur_iter_done():
            return action
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        bracket.is_being_processed = True  # stop_trial below may call back into on_trial_remove
        try:
            if bracket.finished():
                for trial_id in bracket.current_trials():
                    if trial_id in trials and trials[trial_id].status == PAUSED:
                        bracket.cleanup_trial(trial_id)
                        tune_controller.stop_trial(trials[trial_id])
                return TrialScheduler.STOP
            good, bad = bracket.successive_halving(self._metric, self._metric_op)
            self._num_stopped += len(bad)
            for trial_id in bad:
                bracket.cleanup_trial(trial_id)
                if trial_id == current:
                    action = TrialScheduler.STOP
                elif trial_id in trials and trials[trial_id].status in (PAUSED, RUNNING, PENDING):
                    tune_controller.stop_trial(trials[trial_id])
            for trial_id in good:
                if not bracket.continue_trial(trial_id):
                    continue
                if trial_id == current:
                    action = TrialScheduler.CONTINUE
                elif trial_id in trials and trials[trial_id].status == PAUSED:
                    bracket.trials_to_unpause.add(trial_id)
        finally:
            bracket.is_being_processed = False
        return action

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """Pending trials and paused trials promoted by a halving, the least complete bracket first."""
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        for band in self._hyperbands:
            for bracket in sorted((b for b in band if b is not None), key=lambda b: b.completion_percentage()):
                for trial_id in bracket.current_trials():
                    trial = trials.get(trial_id)
                    if trial is None:
                        continue
                    runnable = trial.status == PENDING or (
                        trial.status == PAUSED and trial_id in bracket.trials_to_unpause)
                    if runnable and tune_controller.has_resources_for_trial(trial):
                        bracket.trials_to_unpause.discard(trial_id)
                        return trial
        return None

    def debug_string(self) -> str:
        total = sum(len(band) for band in self._hyperbands)
        lines = [f"Using HyperBand: num_stopped={self._num_stopped} total_brackets={total}"]
        for i, band in enumerate(self._hyperbands):
            lines.append(f"Round #{i}:")
            lines += [f"  {bracket}" for bracket in band if bracket is not None]
        return "\n".join(lines)

    def state(self) -> dict:
        return {"num_brackets": sum(len(band) for band in self._hyperbands), "num_stopped": self._num_stopped}


class _HyperBandBracket:
    """One bracket: its live trials' latest results, the current milestone and the halvings left."""

    def __init__(self, time_attr: str, max_trials: int, init_t: int, max_t: int, eta: float, s: int,
                 stop_last_trials: bool) -> None:
        self.live_trials: dict[str, dict | None] = {}  # trial_id -> latest result (None before the first)
        self.all_trials: list[str] = []
        self._time_attr = time_attr
        self._n = self._n0 = max_trials
        self._r = self._r0 = init_t
        self._cumul_r = init_t  # the milestone the live trials run to now
        self._max_t = max_t
        self._eta = eta
        self._halves = s
        self._total_work = self._calculate_total_work(max_trials, init_t, s)
        self._completed_progress = 0.0
        self.stop_last_trials = stop_last_trials
        self.is_being_processed = False
        self.trials_to_unpause: set[str] = set()

    def add_trial(self, trial_id: str) -> None:
        assert not self.filled(), "cannot add a trial to a filled bracket"
        self.live_trials[trial_id] = None
        self.all_trials.append(trial_id)

    def _time(self, result: dict | None) -> float:
        return 0 if result is None else result[self._time_attr]

    def cur_iter_done(self) -> bool:
        return all(self._time(result) >= self._cumul_r for result in self.live_trials.values())

    def finished(self) -> bool:
        return self.stop_last_trials and self._halves == 0 and self.cur_iter_done()

    def current_trials(self) -> list[str]:
        return list(self.live_trials)

    def continue_trial(self, trial_id: str) -> bool:
        if not self.stop_last_trials and self._halves == 0:
            return True
        return self._time(self.live_trials[trial_id]) < self._cumul_r

    def filled(self) -> bool:
        """Full once it holds ``n`` live trials: new trials only join before the first halving."""
        return len(self.live_trials) == self._n

    def successive_halving(self, metric: str, metric_op: float) -> tuple[list[str], list[str]]:
        """(good, bad): the best ceil(n / eta) live trials go on to the next milestone."""
        if self._halves == 0 and not self.stop_last_trials:
            return list(self.live_trials), []
        assert self._halves > 0
        self._halves -= 1
        self._n = int(math.ceil(self._n / self._eta))
        self._r = int(min(self._r * self._eta, self._max_t))
        self._cumul_r = self._r
        ranked = sorted(self.live_trials, key=lambda t: metric_op * self.live_trials[t][metric])
        return ranked[-self._n:], ranked[:-self._n]

    def update_trial_stats(self, trial_id: str, result: dict) -> None:
        observed = self._time(result)
        self._completed_progress += observed - self._time(self.live_trials[trial_id])
        self.live_trials[trial_id] = result

    def cleanup_trial(self, trial_id: str) -> None:
        self.live_trials.pop(trial_id, None)
        self.trials_to_unpause.discard(trial_id)

    def completion_percentage(self) -> float:
        if self.finished():
            return 1.0
        return min(self._completed_progress / self._total_work, 1.0) if self._total_work else 0.0

    def _calculate_total_work(self, n: int, r: int, s: int) -> float:
        work, cumulative_r = 0, r
        for _ in range(s + 1):
            work += int(n) * int(r)
            n = int(math.ceil(n / self._eta))
            r = int(min(r * self._eta, self._max_t - cumulative_r))
        return work

    def __repr__(self) -> str:
        return (f"Bracket(n={self._n}, r={self._r}, completed={self.completion_percentage():.0%}, "
                f"live={len(self.live_trials)})")
