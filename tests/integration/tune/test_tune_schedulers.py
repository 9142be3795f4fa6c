"""Schedulers and search algorithms driving real trials: ASHA stops the trailing trials at each rung,
HyperBand pauses and resumes them, the median rule stops the slow ones, PBT clones the best trial's
checkpoint into the worst, and Optuna and HyperOpt search through the Tuner."""
import sys
import time

import cloudpickle

from juno import tune
from juno.tune import Checkpoint, RunConfig, TuneConfig, Tuner

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 2}


def curve(config):
    """A learning curve whose level is set by the config: trial order is the same at every step."""
    checkpoint = tune.get_checkpoint()
    start = checkpoint.to_dict()["step"] + 1 if checkpoint else 0
    for step in range(start, config.get("steps", 16)):
        tune.report({"score": config["quality"] * (1 - 0.5 ** (step + 1)), "step": step},
                    checkpoint=Checkpoint.from_dict({"step": step}) if config.get("checkpoint") else None)


def _run(tmp_path, name="exp", **kwargs):
    return RunConfig(storage_path=str(tmp_path), name=name, verbose=0, **kwargs)


def test_asha_stops_trailing_trials_at_the_rungs(cluster, tmp_path):
    scheduler = tune.ASHAScheduler(max_t=16, grace_period=2, reduction_factor=2)
    grid = Tuner(curve, param_space={"quality": tune.grid_search([8, 1, 7, 2, 6, 3, 5, 4])},
                 tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler, max_concurrent_trials=2),
                 run_config=_run(tmp_path)).fit()
    iterations = {r.config["quality"]: r.metrics["training_iteration"] for r in grid}
    assert iterations[8] == 16  # the best trial runs to max_t
    assert all(i in (2, 4, 8, 16) for i in iterations.values())  # trials stop only at rungs
    assert sum(i < 16 for i in iterations.values()) >= 4  # ASHA saved most of the budget
    assert grid.get_best_result().config["quality"] == 8


def test_hyperband_pauses_and_resumes_trials(cluster, tmp_path):
    scheduler = tune.HyperBandScheduler(max_t=9, reduction_factor=3)
    grid = Tuner(curve, param_space={"quality": tune.grid_search([1, 2, 3, 4, 5, 6]), "steps": 9,
                                     "checkpoint": True},
                 tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler),
                 run_config=_run(tmp_path)).fit()
    assert grid.num_errors == 0 and grid.num_terminated == 6
    best = grid.get_best_result()
    assert best.config["quality"] == 6 and best.metrics["training_iteration"] == 9
    # The paused-then-resumed trials continued from their checkpoints: their iterations count on.
    for result in grid:
        steps = list(result.metrics_dataframe["step"])
        assert steps == list(range(len(steps)))


def test_the_median_rule_stops_below_median_trials(cluster, tmp_path):
    # The metric and mode only on the scheduler, as tutorials write it: get_best_result still knows them.
    scheduler = tune.MedianStoppingRule(time_attr="training_iteration", metric="score", mode="max", grace_period=2,
                                        min_samples_required=2)
    grid = Tuner(curve, param_space={"quality": tune.grid_search([1, 5, 9, 2])},
                 tune_config=TuneConfig(scheduler=scheduler, max_concurrent_trials=2), run_config=_run(tmp_path)).fit()
    iterations = {r.config["quality"]: r.metrics["training_iteration"] for r in grid}
    assert iterations[9] == 16 and min(iterations.values()) < 16
    assert grid.get_best_result().config["quality"] == 9


def pbt_trainable(config):
    checkpoint = tune.get_checkpoint()
    state = checkpoint.to_dict() if checkpoint else {"value": 0.0, "step": 0}
    value, step = state["value"], state["step"]
    while step < 20:
        step += 1
        value += config["lr"]
        # The fast trial reaches each perturbation point first, and is still running when the slow one does.
        time.sleep(0.25 if config["lr"] < 1 else 0.1)
        tune.report({"value": value, "lr": config["lr"]},
                    checkpoint=Checkpoint.from_dict({"value": value, "step": step}))


def test_pbt_clones_the_best_trials_checkpoint_into_the_worst(cluster, tmp_path):
    scheduler = tune.PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                             hyperparam_mutations={"lr": [0.1, 0.5, 1.0, 2.0]},
                                             quantile_fraction=0.5, seed=0)
    grid = Tuner(pbt_trainable, param_space={"lr": tune.grid_search([0.1, 2.0])},
                 tune_config=TuneConfig(metric="value", mode="max", scheduler=scheduler),
                 run_config=_run(tmp_path, stop={"training_iteration": 20})).fit()
    assert grid.num_errors == 0
    values = sorted(r.metrics["value"] for r in grid)
    # Without PBT the slow trial would end at 20 * 0.1 = 2.0; exploiting the fast one lifts it.
    assert values[0] > 2.0 * 3 and values[1] >= 20 * 2.0 - 1e-9
    assert all(r.metrics["training_iteration"] == 20 for r in grid)


def test_optuna_and_hyperopt_search_through_the_tuner(cluster, tmp_path):
    from juno.tune.search.hyperopt import HyperOptSearch
    from juno.tune.search.optuna import OptunaSearch

    def objective(config):
        tune.report({"loss": (config["x"] - 3) ** 2})

    space = {"x": tune.uniform(-10, 10)}
    for name, searcher in (("optuna", OptunaSearch(seed=0)),
                           ("hyperopt", HyperOptSearch(n_initial_points=5, random_state_seed=0))):
        grid = Tuner(objective, param_space=space,
                     tune_config=TuneConfig(metric="loss", mode="min", num_samples=16, search_alg=searcher,
                                            max_concurrent_trials=2),
                     run_config=_run(tmp_path, name)).fit()
        assert len(grid) == 16 and grid.num_errors == 0
        assert grid.get_best_result().metrics["loss"] < 1.0, name
