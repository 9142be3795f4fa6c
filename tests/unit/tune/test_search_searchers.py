"""The Searcher wrappers and SearchGenerator, over a small deterministic searcher of our own."""
import math

import pytest

from juno.tune.search import (
    BasicVariantGenerator, ConcurrencyLimiter, Repeater, SearchGenerator, Searcher, create_search_algorithm,
)
from juno.tune.search import sample as s

FINISHED = Searcher.FINISHED


class CountingSearcher(Searcher):
    """Suggests x = 0, 1, 2, ... up to ``limit``; records what it is told."""

    def __init__(self, limit=100, metric="loss", mode="min"):
        super().__init__(metric=metric, mode=mode)
        self.limit, self.next_x, self.completed = limit, 0, []

    def suggest(self, trial_id):
        if self.next_x >= self.limit:
            return FINISHED
        self.next_x += 1
        return {"x": self.next_x - 1}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result, error))


def test_concurrency_limiter_holds_suggestions_while_trials_run():
    inner = CountingSearcher()
    limiter = ConcurrencyLimiter(inner, max_concurrent=2)
    assert limiter.suggest("a") == {"x": 0} and limiter.suggest("b") == {"x": 1}
    assert limiter.suggest("c") is None
    limiter.on_trial_complete("a", {"loss": 1.0})
    assert limiter.suggest("c") == {"x": 2}
    assert inner.completed == [("a", {"loss": 1.0}, False)]
    with pytest.raises(ValueError, match="suggested already"):
        limiter.suggest("b")


def test_concurrency_limiter_in_batch_mode_tells_the_searcher_once_the_batch_is_done():
    inner = CountingSearcher()
    limiter = ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    limiter.suggest("a"), limiter.suggest("b")
    limiter.on_trial_complete("a", {"loss": 1})
    assert inner.completed == [] and limiter.suggest("c") is None
    limiter.on_trial_complete("b", {"loss": 2}, error=True)
    assert [c[0] for c in inner.completed] == ["a", "b"] and inner.completed[1][2] is True
    assert limiter.suggest("c") == {"x": 2}


def test_wrappers_refuse_what_they_cannot_wrap():
    with pytest.raises(TypeError, match="BasicVariantGenerator takes max_concurrent itself"):
        ConcurrencyLimiter(BasicVariantGenerator(), 2)
    with pytest.raises(ValueError, match="max_concurrent must be an int >= 1"):
        ConcurrencyLimiter(CountingSearcher(), 0)
    with pytest.raises(ValueError, match="repeat must be an int >= 1"):
        Repeater(CountingSearcher(), repeat=0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'minimise'"):
        CountingSearcher(mode="minimise")


def test_repeater_runs_each_config_repeat_times_and_reports_the_mean():
    inner = CountingSearcher()
    repeater = Repeater(inner, repeat=3)
    configs = [repeater.suggest(f"t{i}") for i in range(6)]
    assert configs[:3] == [{"x": 0, "__trial_index__": i} for i in range(3)]
    assert configs[3]["x"] == 1 and configs[5]["__trial_index__"] == 2
    repeater.on_trial_complete("t0", {"loss": 1.0})
    repeater.on_trial_complete("t1", {"loss": 2.0})
    assert inner.completed == []
    repeater.on_trial_complete("t2", {"other": 9})  # no metric: left out of the mean
    assert inner.completed == [("t0", {"loss": 1.5}, False)]
    assert Repeater(CountingSearcher(), repeat=2, set_index=False).suggest("z") == {"x": 0}
    assert Repeater(CountingSearcher(limit=0), repeat=2).suggest("z") == FINISHED


def test_search_generator_merges_the_param_space_and_counts_num_samples():
    alg = create_search_algorithm(CountingSearcher(), max_concurrent_trials=2)
    assert isinstance(alg, SearchGenerator) and isinstance(alg.searcher, ConcurrencyLimiter)
    alg.set_search_properties("loss", "min", {"epochs": 3, "y": s.sample_from(lambda spec: spec.config.x * 10)},
                              num_samples=3)
    assert alg.total_samples == 3
    first = alg.suggest("a")
    assert first == {"epochs": 3, "x": 0, "y": 0}
    assert alg.suggestion("a").experiment_tag == "0_x=0,y=0"
    assert alg.suggestion("a").evaluated_params == {"x": 0, "y": 0}
    assert alg.suggest("b")["x"] == 1 and alg.suggest("c") is None  # the limiter holds the third
    alg.on_trial_complete("a", {"loss": 0.5})
    assert alg.suggest("c")["y"] == 20
    assert alg.suggest("d") == FINISHED and alg.is_finished()
    with pytest.raises(KeyError, match="no config was suggested for trial 'zz'"):
        alg.suggestion("zz")


def test_search_generator_refuses_a_grid_and_a_second_search_space():
    with pytest.raises(ValueError, match="g: grid_search cannot be used with a search algorithm"):
        SearchGenerator(CountingSearcher()).set_search_properties(None, None, {"g": {"grid_search": [1, 2]}})
    with pytest.raises(ValueError, match=r"the param_space defines \['lr'\], but CountingSearcher"):
        SearchGenerator(CountingSearcher()).set_search_properties(None, None, {"lr": s.uniform(0, 1)})
    with pytest.raises(TypeError, match="search_alg must be a Searcher"):
        create_search_algorithm("optuna")


def test_a_searcher_that_finishes_ends_the_search_and_state_round_trips(tmp_path):
    alg = create_search_algorithm(Repeater(CountingSearcher(limit=1), repeat=2))
    alg.set_search_properties("loss", "min", {}, num_samples=10)
    assert alg.suggest("a") == {"x": 0, "__trial_index__": 0}
    alg.save_to_dir(str(tmp_path))
    assert alg.suggest("b")["__trial_index__"] == 1 and alg.suggest("c") == FINISHED
    again = create_search_algorithm(Repeater(CountingSearcher(limit=1), repeat=2))
    again.restore_from_dir(str(tmp_path))
    again.set_search_properties("loss", "min", {}, num_samples=10)
    assert again.suggest("b") == {"x": 0, "__trial_index__": 1} and again.suggest("c") == FINISHED


def test_create_search_algorithm_defaults_to_basic_variants_with_the_concurrency_limit():
    alg = create_search_algorithm(None, max_concurrent_trials=1)
    alg.set_search_properties(None, None, {"x": s.uniform(0, 1)}, num_samples=2)
    assert isinstance(alg.suggest("a")["x"], float) and alg.suggest("b") is None
    assert math.isfinite(alg.suggest.__self__.total_samples)
