"""OptunaSearch and HyperOptSearch driving the real optuna and hyperopt on a synthetic objective."""
import sys

import pytest

from juno.tune.search import BasicVariantGenerator, ConcurrencyLimiter, create_search_algorithm
from juno.tune.search import sample as s
from juno.tune.search.hyperopt import HyperOptSearch
from juno.tune.search.optuna import OptunaSearch

import hyperopt  # noqa: E402 - the test extra installs both: a missing one fails here, loudly
import optuna  # noqa: E402

SPACE = {"x": s.uniform(-10, 10), "y": s.uniform(-10, 10), "epochs": 5}


def loss(config):
    return (config["x"] - 3) ** 2 + (config["y"] + 1) ** 2


def best_loss(search_alg, rounds=30, space=SPACE, mode="min"):
    """Run ``rounds`` suggest/complete rounds as the Tuner would; the best loss found."""
    alg = create_search_algorithm(search_alg)
    alg.set_search_properties("loss", mode, space, num_samples=rounds)
    best = float("inf")
    for i in range(rounds):
        config = alg.suggest(f"t{i}")
        assert config["epochs"] == 5
        value = loss(config)
        alg.on_trial_result(f"t{i}", {"loss": value if mode == "min" else -value, "training_iteration": 1})
        alg.on_trial_complete(f"t{i}", {"loss": value if mode == "min" else -value})
        best = min(best, value)
    assert alg.suggest("last") == BasicVariantGenerator.FINISHED
    return best


def test_optuna_finds_the_minimum_and_beats_random_search():
    random_best = best_loss(BasicVariantGenerator(random_state=0))
    optuna_best = best_loss(OptunaSearch(seed=0))
    assert optuna_best < random_best and optuna_best < 0.5
    assert best_loss(OptunaSearch(seed=0), mode="max") < 0.5  # mode="max" on the negated loss


def test_hyperopt_finds_the_minimum_and_beats_random_search():
    random_best = best_loss(BasicVariantGenerator(random_state=0))
    hyperopt_best = best_loss(HyperOptSearch(n_initial_points=10, random_state_seed=0))
    # 20 TPE rounds in 2-D on this seed: about 1.1 (random search: 2.1 on a 20 x 20 square)
    assert hyperopt_best < random_best / 1.5 and hyperopt_best < 1.5
    assert best_loss(HyperOptSearch(n_initial_points=10, random_state_seed=0), mode="max") < 1.5


ALL_DOMAINS = {"f": s.uniform(0, 1), "qf": s.quniform(0, 1, 0.25), "lf": s.loguniform(1e-4, 1e-1),
               "i": s.randint(0, 4), "qi": s.qrandint(0, 10, 5), "li": s.lograndint(1, 100),
               "c": s.choice(["a", ("t", 1), {"k": 2}]), "nested": {"d": s.choice([1, 2])}}


@pytest.mark.parametrize("make", [lambda: OptunaSearch(seed=1), lambda: HyperOptSearch(random_state_seed=1)])
def test_adapters_convert_every_supported_domain_within_its_bounds(make):
    alg = create_search_algorithm(make())
    alg.set_search_properties("loss", "min", ALL_DOMAINS, num_samples=40)
    for i in range(40):
        c = alg.suggest(f"t{i}")
        assert 0 <= c["f"] <= 1 and c["qf"] in (0, 0.25, 0.5, 0.75, 1.0) and 1e-4 <= c["lf"] <= 1e-1
        assert c["i"] in range(4) and c["qi"] in (0, 5, 10) and 1 <= c["li"] <= 99
        assert all(type(c[k]) is int for k in ("i", "qi", "li"))
        assert c["c"] in ["a", ("t", 1), {"k": 2}] and c["nested"]["d"] in (1, 2)
        alg.on_trial_complete(f"t{i}", {"loss": c["f"]})
    assert "nested/d" in alg.suggestion("t0").evaluated_params


def test_optuna_takes_its_own_distributions_a_define_by_run_function_and_warm_starts():
    dist = optuna.distributions
    searcher = OptunaSearch({"x": dist.FloatDistribution(0, 1)}, metric="loss", mode="min", seed=0)
    assert 0 <= searcher.suggest("a")["x"] <= 1

    def define_by_run(trial):
        kind = trial.suggest_categorical("kind", ["linear", "tree"])
        if kind == "tree":
            trial.suggest_int("depth", 1, 5)
        return {"fixed": 1}

    searcher = OptunaSearch(define_by_run, metric="loss", mode="min", seed=0)
    configs = [searcher.suggest(f"t{i}") for i in range(10)]
    assert all(c["fixed"] == 1 and (c["kind"] == "linear") == ("depth" not in c) for c in configs)

    warm = OptunaSearch({"x": s.uniform(0, 10)}, metric="loss", mode="min", seed=0,
                        points_to_evaluate=[{"x": 3.0}, {"x": 8.0}], evaluated_rewards=[0.0, 25.0])
    study = warm._study
    assert [t.value for t in study.trials] == [0.0, 25.0] and study.best_params == {"x": 3.0}
    warm.add_evaluated_point({"x": 3.5}, 0.25)
    assert len(study.trials) == 3
    queued = OptunaSearch({"x": s.uniform(0, 10)}, metric="loss", mode="min", points_to_evaluate=[{"x": 4.5}])
    assert queued.suggest("p") == {"x": 4.5}


def test_optuna_records_intermediate_values_and_pruned_or_failed_trials_as_ray_does():
    searcher = OptunaSearch({"x": s.uniform(0, 1)}, metric="loss", mode="min", seed=0)
    for trial_id in "abc":
        searcher.suggest(trial_id)
    searcher.on_trial_result("a", {"loss": 0.5, "training_iteration": 1})
    searcher.on_trial_result("a", {"loss": 0.25, "training_iteration": 2})
    searcher.on_trial_complete("a", {"loss": 0.25})
    searcher.on_trial_complete("b", None)
    searcher.on_trial_complete("c", None, error=True)
    trials = searcher._study.trials
    state = optuna.trial.TrialState
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.25} and trials[0].state == state.COMPLETE
    assert trials[1].state == state.PRUNED and trials[2].state == state.FAIL


def test_hyperopt_points_to_evaluate_errors_and_a_hyperopt_space():
    searcher = HyperOptSearch({"x": s.uniform(0, 10), "c": s.choice(["a", "b"])}, metric="acc", mode="max",
                              points_to_evaluate=[{"x": 2.0, "c": "b"}], random_state_seed=0)
    assert searcher.suggest("p") == {"x": 2.0, "c": "b"}
    searcher.on_trial_complete("p", {"acc": 0.9})
    searcher.suggest("q")
    searcher.on_trial_complete("q", None, error=True)
    states = [doc["state"] for doc in searcher._trials.trials]
    assert states == [hyperopt.JOB_STATE_DONE]  # hyperopt's Trials drops errored documents
    assert searcher._trials.trials[0]["result"]["loss"] == -0.9  # max: the loss is the negated metric
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        HyperOptSearch({"x": s.uniform(0, 1), "c": s.choice([1])}, points_to_evaluate=[{"x": 0.5}])
    native = HyperOptSearch({"lr": hyperopt.hp.loguniform("lr", -5, 0)}, metric="loss", mode="min")
    assert 0 < native.suggest("n")["lr"] <= 1


@pytest.mark.parametrize("make", [lambda: OptunaSearch(seed=3), lambda: HyperOptSearch(random_state_seed=3)])
def test_adapter_state_round_trips(make, tmp_path):
    space = {"x": s.uniform(0, 1)}
    first = create_search_algorithm(make())
    first.set_search_properties("loss", "min", space, num_samples=6)
    for i in range(3):
        first.on_trial_complete(f"t{i}", {"loss": first.suggest(f"t{i}")["x"]})
    first.save_to_dir(str(tmp_path))
    expected = [first.suggest(f"u{i}") for i in range(3)]
    again = create_search_algorithm(make())
    again.restore_from_dir(str(tmp_path))
    again.set_search_properties("loss", "min", space, num_samples=6)
    assert [again.suggest(f"u{i}") for i in range(3)] == expected
    assert again.suggest("v") == BasicVariantGenerator.FINISHED


@pytest.mark.parametrize("searcher, words", [
    (OptunaSearch, "x: optuna has no distribution for Float sampled by Normal"),
    (HyperOptSearch, None),
])
def test_unsupported_spaces_name_the_key(searcher, words):
    if words:
        with pytest.raises(ValueError, match=words):
            searcher(space={"x": s.randn()})
    for bad, match in [({"l": [s.uniform(0, 1)]}, "l/0: .* inside a list"),
                       ({"g": {"grid_search": [1]}}, "g: .*grid_search")]:
        with pytest.raises(ValueError, match=match):
            searcher(space=bad)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        searcher(metric="loss", mode="lowest")
    with pytest.raises(RuntimeError, match="needs a metric and a mode"):
        ConcurrencyLimiter(searcher(space={"x": s.uniform(0, 1)}), 1).suggest("t")


@pytest.mark.parametrize("searcher, module, extra", [(OptunaSearch, "optuna", "tune-optuna"),
                                                     (HyperOptSearch, "hyperopt", "tune-hyperopt")])
def test_a_missing_library_names_the_extra(searcher, module, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a package that is not installed
    with pytest.raises(ImportError, match=rf'pip install "juno\[{extra}\]"'):
        searcher()
