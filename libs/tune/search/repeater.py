"""Repeater: run every suggested config ``repeat`` times and report the mean (Ray's)."""
from __future__ import annotations

import copy

import numpy as np

from juno.tune.search.searcher import Searcher

__all__ = ["Repeater", "TRIAL_INDEX"]

TRIAL_INDEX = "__trial_index__"


class _TrialGroup:
    """The trials that share one suggested config, and their scores as they finish."""

    def __init__(self, primary_trial_id: str, config: dict, max_trials: int):
        self.primary_trial_id = primary_trial_id
        self.config = config
        self.max_trials = max_trials
        self.scores: dict = {primary_trial_id: None}

    def add(self, trial_id: str):
        self.scores[trial_id] = None

    def full(self) -> bool:
        return len(self.scores) >= self.max_trials

    def finished(self) -> bool:
        return self.full() and all(score is not None for score in self.scores.values())


class Repeater(Searcher):
    """Each config the wrapped searcher suggests runs ``repeat`` times (with ``set_index``, the
    config gets ``"__trial_index__"`` 0..repeat-1, e.g. to pick a fold); once all repeats are done
    the searcher learns the mean of their metric, under the first trial's id. Use num_samples as a
    multiple of ``repeat``."""

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True):
        if not isinstance(searcher, Searcher):
            raise TypeError(f"Repeater wraps a Searcher, got {type(searcher).__name__}")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
        self.searcher = searcher
        self.repeat = repeat
        self._set_index = set_index
        self._groups: list = []
        self._trial_id_to_group: dict = {}
        self._current_group: _TrialGroup | None = None
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        accepted = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return accepted

    def suggest(self, trial_id: str):
        if self._current_group is None or self._current_group.full():
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self._current_group = _TrialGroup(trial_id, copy.deepcopy(config), self.repeat)
            self._groups.append(self._current_group)
            index = 0
        else:
            index = len(self._current_group.scores)
            self._current_group.add(trial_id)
        self._trial_id_to_group[trial_id] = self._current_group
        config = copy.deepcopy(self._current_group.config)
        if self._set_index:
            config[TRIAL_INDEX] = index
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        group = self._trial_id_to_group.get(trial_id)
        if group is None:
            return
        metric = self.searcher.metric
        score = result.get(metric) if result and metric in result else np.nan
        group.scores[trial_id] = score
        if group.finished():
            scores = np.asarray(list(group.scores.values()), dtype=float)
            mean = float(np.nanmean(scores)) if not np.all(np.isnan(scores)) else float("nan")
            self.searcher.on_trial_complete(group.primary_trial_id, result={metric: mean}, error=error)

    def add_evaluated_point(self, parameters, value, error=False, pruned=False, intermediate_values=None):
        return self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    def get_state(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return {"repeater": copy.deepcopy(state), "searcher": self.searcher.get_state()}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state["repeater"])
        self.searcher.set_state(state["searcher"])
