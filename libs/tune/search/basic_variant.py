"""BasicVariantGenerator: Tune's default search, grid expansion and random sampling (Ray's)."""
from __future__ import annotations

import copy
import itertools
from typing import Iterator

import numpy as np

from juno.tune.search.sample import as_rng
from juno.tune.search.search_algorithm import SearchAlgorithm, Suggestion, _num_samples
from juno.tune.search.searcher import check_mode
from juno.tune.search.variant_generator import (
    count_variants, experiment_tag, flatten_resolved_vars, generate_variants, parse_spec_vars, preset_variants,
)

__all__ = ["BasicVariantGenerator"]


class BasicVariantGenerator(SearchAlgorithm):
    """Every grid_search combination, ``num_samples`` times over, each with its Domains sampled:
    num_samples x grid size trials. ``points_to_evaluate`` (partial configs) run first, each
    using up one of num_samples. ``random_state`` (a seed or numpy generator) makes the configs
    repeatable; without it numpy's global generator seeds the search (``np.random.seed`` works).
    ``max_concurrent`` > 0 caps the trials live at once."""

    def __init__(self, points_to_evaluate: list | None = None, max_concurrent: int = 0,
                 constant_grid_search: bool = False, random_state=None):
        super().__init__()
        if points_to_evaluate is not None and (
                not isinstance(points_to_evaluate, (list, tuple))
                or not all(isinstance(p, dict) for p in points_to_evaluate)):
            raise ValueError(f"points_to_evaluate must be a list of dicts (partial configs), "
                             f"got {points_to_evaluate!r}")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(f"max_concurrent must be an int >= 0 (0: no limit), got {max_concurrent!r}")
        as_rng(random_state)  # a bad random_state fails here, not at the first trial
        self._points = copy.deepcopy(list(points_to_evaluate or []))
        self._max_concurrent = max_concurrent
        self._constant_grid_search = constant_grid_search
        self._random_state = random_state
        self._spec: dict | None = None
        self._num_samples = 1
        self._seed: int | None = None
        self._emitted = 0
        self._live: set = set()
        self._variants: Iterator | None = None

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        check_mode(mode)
        self._num_samples = _num_samples(spec)
        self._spec = {"config": copy.deepcopy(config or {})}
        parse_spec_vars(self._spec)  # a space that cannot be sampled fails now, naming its key
        count_variants(self._spec, self._points)  # and so does a point with an unknown key
        if self._seed is None:
            random_state = self._random_state
            self._seed = (int(random_state) if isinstance(random_state, (int, np.integer))
                          else int(as_rng(random_state).integers(0, 2**31 - 1, 1)[0]))
        self._variants = None
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_concurrent = max_concurrent
        return True

    @property
    def total_samples(self) -> int | None:
        if self._spec is None or self._num_samples == -1:
            return None
        return count_variants(self._spec, self._points, self._num_samples)

    def _all_variants(self) -> Iterator:
        rng = as_rng(self._seed)
        for point in self._points:
            yield from preset_variants(self._spec, point, self._constant_grid_search, rng)
        passes = itertools.count() if self._num_samples == -1 else range(self._num_samples - len(self._points))
        for _ in passes:
            yield from generate_variants(self._spec, self._constant_grid_search, rng)

    def suggest(self, trial_id: str):
        if self._spec is None:
            raise RuntimeError("BasicVariantGenerator: call set_search_properties(metric, mode, param_space, "
                               "num_samples=...) before suggest")
        if self._finished:
            return self.FINISHED
        if self._max_concurrent and len(self._live) >= self._max_concurrent:
            return None
        if self._variants is None:  # first call, or after a restore: replay up to where it was
            self._variants = self._all_variants()
            for _ in itertools.islice(self._variants, self._emitted):
                pass
        try:
            resolved_vars, spec = next(self._variants)
        except StopIteration:
            self._finished = True
            return self.FINISHED
        index = self._emitted
        self._emitted += 1
        self._live.add(trial_id)
        self._suggestions[trial_id] = Suggestion(index, experiment_tag(index, resolved_vars),
                                                 flatten_resolved_vars(resolved_vars))
        return spec["config"]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)

    def get_state(self) -> dict:
        return {**super().get_state(), "seed": self._seed, "emitted": self._emitted, "live": set(self._live),
                "points": copy.deepcopy(self._points), "num_samples": self._num_samples,
                "max_concurrent": self._max_concurrent}

    def set_state(self, state: dict) -> None:
        """Restores where the search was; the param_space comes again through set_search_properties
        (before or after), and the remaining configs are the same ones the first run would have made."""
        super().set_state(state)
        self._seed, self._emitted, self._live = state["seed"], state["emitted"], set(state["live"])
        self._points, self._num_samples = state["points"], state["num_samples"]
        self._max_concurrent = state["max_concurrent"]
        self._variants = None
