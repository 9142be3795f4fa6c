"""ConcurrencyLimiter: at most N trials of a searcher running at once (Ray's)."""
from __future__ import annotations

import copy

from juno.tune.search.searcher import Searcher

__all__ = ["ConcurrencyLimiter"]


class ConcurrencyLimiter(Searcher):
    """Wraps a searcher so that ``suggest`` returns None while ``max_concurrent`` of its trials are
    live. With ``batch=True`` it waits for the whole batch to finish, then tells the searcher all
    its results at once (good for searchers that learn in rounds)."""

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False):
        if not isinstance(searcher, Searcher):
            raise TypeError(f"ConcurrencyLimiter wraps a Searcher, got {type(searcher).__name__}; "
                            f"BasicVariantGenerator takes max_concurrent itself")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        self.searcher = searcher
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live_trials: set = set()
        self.num_unfinished_live_trials = 0
        self.cached_results: dict = {}
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        accepted = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return accepted

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str):
        if trial_id in self.live_trials:
            raise ValueError(f"trial id {trial_id!r} was suggested already; every trial needs a new id")
        if len(self.live_trials) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.live_trials:
            return
        self.num_unfinished_live_trials -= 1
        if not self.batch:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            self.live_trials.discard(trial_id)
            return
        self.cached_results[trial_id] = (result, error)
        if self.num_unfinished_live_trials > 0:
            return
        for done_id, (done_result, done_error) in self.cached_results.items():
            self.searcher.on_trial_complete(done_id, result=done_result, error=done_error)
            self.live_trials.discard(done_id)
        self.cached_results = {}
        self.num_unfinished_live_trials = 0

    def add_evaluated_point(self, parameters, value, error=False, pruned=False, intermediate_values=None):
        return self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    def get_state(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return {"limiter": copy.deepcopy(state), "searcher": self.searcher.get_state()}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state["limiter"])
        self.searcher.set_state(state["searcher"])
