"""What the Tune controller drives: a SearchAlgorithm hands out fully resolved trial configs.

Two kinds, as in Ray: ``BasicVariantGenerator`` (grid and random search) and ``SearchGenerator``,
which wraps any ``Searcher`` (OptunaSearch, a ConcurrencyLimiter, a user's own), lays its
suggestions over the param_space and counts num_samples. Both answer ``suggest(trial_id)`` with a
config, None (not now) or FINISHED, and ``suggestion(trial_id)`` with the trial's experiment_tag
and evaluated_params. ``create_search_algorithm`` is what the Tuner calls.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from juno.tune.search.searcher import Searcher, StateFiles, check_mode
from juno.tune.search.variant_generator import (
    experiment_tag, flatten_dict, flatten_resolved_vars, generate_variants, has_unresolved_values, key_path,
    merge_dicts, parse_spec_vars,
)

__all__ = ["SearchAlgorithm", "SearchGenerator", "Suggestion", "create_search_algorithm"]


@dataclass(frozen=True)
class Suggestion:
    """How a suggested trial is named: ``experiment_tag`` ("3_lr=0.0100,momentum=0.9000") and
    ``evaluated_params`` (the sampled values, flattened "a/b" keys)."""

    index: int
    experiment_tag: str
    evaluated_params: dict = field(default_factory=dict)


def _num_samples(spec: dict) -> int:
    num_samples = spec.get("num_samples", 1)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples == 0 or num_samples < -1:
        raise ValueError(f"num_samples must be an int >= 1 (or -1 for no limit), got {num_samples!r}")
    return num_samples


class SearchAlgorithm(StateFiles):
    """The controller's side of a search: the Searcher interface plus ``total_samples``,
    ``is_finished`` and ``suggestion``."""

    FINISHED = Searcher.FINISHED
    CKPT_FILE_TMPL = "search-alg-state-{}.pkl"

    def __init__(self):
        self._suggestions: dict = {}
        self._finished = False

    @property
    def metric(self):
        return None

    @property
    def mode(self):
        return None

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        """``config`` is the param_space; ``spec`` may carry ``num_samples`` (default 1, -1 = no limit)."""
        raise NotImplementedError

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False

    def suggest(self, trial_id: str):
        raise NotImplementedError

    def suggestion(self, trial_id: str) -> Suggestion:
        """The tag and evaluated params of a trial this algorithm suggested."""
        try:
            return self._suggestions[trial_id]
        except KeyError:
            raise KeyError(f"no config was suggested for trial {trial_id!r}") from None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    @property
    def total_samples(self) -> int | None:
        """How many trials the search makes, where known up front."""
        return None

    def is_finished(self) -> bool:
        return self._finished

    def set_finished(self) -> None:
        self._finished = True

    def get_state(self) -> dict:
        return {"suggestions": dict(self._suggestions), "finished": self._finished}

    def set_state(self, state: dict) -> None:
        self._suggestions = dict(state["suggestions"])
        self._finished = state["finished"]


class SearchGenerator(SearchAlgorithm):
    """Drives a Searcher: its suggestion laid over the param_space (constants kept, sample_from
    values that read the suggestion resolved after it), at most num_samples trials."""

    def __init__(self, searcher: Searcher):
        if not isinstance(searcher, Searcher):
            raise TypeError(f"SearchGenerator wraps a Searcher, got {type(searcher).__name__}")
        super().__init__()
        self.searcher = searcher
        self._param_space: dict = {}
        self._num_samples = 1
        self._counter = 0
        self._restored = False

    @property
    def metric(self):
        return self.searcher.metric

    @property
    def mode(self):
        return self.searcher.mode

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        check_mode(mode)
        self._num_samples = _num_samples(spec)
        self._param_space = copy.deepcopy(config or {})
        grids = parse_spec_vars({"config": self._param_space})[2]
        if grids:
            raise ValueError(f"{key_path(grids[0][0])}: grid_search cannot be used with a search algorithm "
                             f"({type(self.searcher).__name__}); use tune.choice([...]) instead")
        if self._restored:  # the restored searcher has its space already
            return True
        accepted = self.searcher.set_search_properties(metric, mode, self._param_space, **spec)
        if not accepted:
            leftover = [key_path(p) for p, d in parse_spec_vars({"config": self._param_space})[1]
                        if not d.is_function()]
            if leftover:
                raise ValueError(f"the param_space defines {leftover}, but {type(self.searcher).__name__} was "
                                 f"built with its own search space: define the parameters in one place")
        return accepted

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        if self._finished:
            return self.FINISHED
        if self._num_samples != -1 and self._counter >= self._num_samples:
            self._finished = True
            return self.FINISHED
        suggested = self.searcher.suggest(trial_id)
        if suggested == Searcher.FINISHED:
            self._finished = True
            return self.FINISHED
        if suggested is None:
            return None
        config = merge_dicts(self._param_space, suggested)
        params = flatten_dict(suggested)
        if has_unresolved_values(config):  # sample_from values the searcher left to Tune
            resolved_vars, spec = next(generate_variants({"config": config}))
            config = spec["config"]
            params.update(flatten_resolved_vars(resolved_vars))
        index = self._counter
        self._counter += 1
        resolved = {tuple(k.split("/")): v for k, v in params.items()}
        self._suggestions[trial_id] = Suggestion(index, experiment_tag(index, resolved), params)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    @property
    def total_samples(self) -> int | None:
        return None if self._num_samples == -1 else self._num_samples

    def get_state(self) -> dict:
        return {**super().get_state(), "counter": self._counter, "num_samples": self._num_samples,
                "searcher": self.searcher.get_state()}

    def set_state(self, state: dict) -> None:
        """Restores the search; a later set_search_properties (the Tuner's, on restore) gives the
        param_space again and leaves the restored searcher as it is."""
        super().set_state(state)
        self._counter, self._num_samples = state["counter"], state["num_samples"]
        self.searcher.set_state(state["searcher"])
        self._restored = True


def create_search_algorithm(search_alg=None, max_concurrent_trials: int | None = None) -> SearchAlgorithm:
    """What the Tuner runs for ``TuneConfig(search_alg=..., max_concurrent_trials=...)``: a
    BasicVariantGenerator when none is given, a Searcher wrapped in SearchGenerator (and in a
    ConcurrencyLimiter unless it limits itself), a SearchAlgorithm as it is."""
    from juno.tune.search.basic_variant import BasicVariantGenerator
    from juno.tune.search.concurrency_limiter import ConcurrencyLimiter

    if max_concurrent_trials is not None and (isinstance(max_concurrent_trials, bool)
                                              or not isinstance(max_concurrent_trials, int)
                                              or max_concurrent_trials < 0):
        raise ValueError(f"max_concurrent_trials must be an int >= 0, got {max_concurrent_trials!r}")
    if search_alg is None:
        return BasicVariantGenerator(max_concurrent=max_concurrent_trials or 0)
    if isinstance(search_alg, Searcher):
        if max_concurrent_trials and not search_alg.set_max_concurrency(max_concurrent_trials):
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=max_concurrent_trials)
        return SearchGenerator(search_alg)
    if isinstance(search_alg, SearchAlgorithm):
        if max_concurrent_trials:
            search_alg.set_max_concurrency(max_concurrent_trials)
        return search_alg
    raise TypeError(f"search_alg must be a Searcher (e.g. OptunaSearch) or a SearchAlgorithm "
                    f"(e.g. BasicVariantGenerator), got {type(search_alg).__name__}")
