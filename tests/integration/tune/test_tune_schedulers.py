"""Schedulers and search algorithms driving real trials: ASHA stops the trailing trials at each rung,
HyperBand pauses and resumes them, the median rule stops the slow ones, PBT clones the best trial's
checkpoint into the worst, and Optuna and HyperOpt search through the Tuner."""
import pathlib
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


def pauses_slowly(config):
    """Two trials per bracket: the leader's loop takes a second to end once paused, and the follower
    reaches the milestone within that second (it waits for the leader's pause to begin)."""
    checkpoint = tune.get_checkpoint()
    start = checkpoint.to_dict()["step"] + 1 if checkpoint else 0
    me = config["t"]
    paused = pathlib.Path(config["dir"]) / f"paused_{me['bracket']}"
    for step in range(start, 2):
        saw_pause = False
        if me["role"] == "follower":
            deadline = time.monotonic() + 30
            while not paused.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            saw_pause = paused.exists()
        try:
            tune.report({"score": me["quality"], "step": step, "saw_pause": saw_pause},
                        checkpoint=Checkpoint.from_dict({"step": step}))
        except BaseException:  # the controller stopped or paused the loop at this report
            paused.touch()
            time.sleep(1.0)
            raise


def test_hyperband_decisions_about_a_trial_whose_pause_is_still_ending(cluster, tmp_path, caplog):
    """max_t=2, eta=2: the first bracket runs two trials to 2 and stops them, the second halves two
    trials at 1. In both, the leader pauses and its loop is still ending when the follower's result
    settles the bracket: the first leader must end (not stay paused), the second must resume."""
    def trial(bracket, role, quality):
        return {"bracket": bracket, "role": role, "quality": quality}

    space = {"dir": str(tmp_path), "t": tune.grid_search([trial(0, "leader", 4), trial(0, "follower", 3),
                                                         trial(1, "leader", 2), trial(1, "follower", 1)])}
    grid = Tuner(pauses_slowly, param_space=space,
                 tune_config=TuneConfig(metric="score", mode="max",
                                        scheduler=tune.HyperBandScheduler(max_t=2, reduction_factor=2)),
                 run_config=_run(tmp_path)).fit()
    assert grid.num_errors == 0 and grid.num_terminated == 4
    assert "starts none" not in caplog.text  # no trial was left paused for the controller to end
    by_role = {(r.config["t"]["bracket"], r.config["t"]["role"]): r for r in grid}
    assert all(by_role[(b, "follower")].metrics["saw_pause"] for b in (0, 1))  # the race was really run
    iterations = {key: r.metrics["training_iteration"] for key, r in by_role.items()}
    assert iterations == {(0, "leader"): 2, (0, "follower"): 2, (1, "leader"): 2, (1, "follower"): 1}
    # The second bracket's leader went on from its checkpoint after the halving.
    assert list(by_role[(1, "leader")].metrics_dataframe["step"]) == [0, 1]


class PausesForever(tune.schedulers.FIFOScheduler):
    """A faulty custom scheduler: pauses every trial at its first result and never resumes one."""

    def on_trial_result(self, tune_controller, trial, result):
        return self.PAUSE

    def choose_trial_to_run(self, tune_controller):
        return next((t for t in tune_controller.get_trials() if t.status == "PENDING"), None)


def test_trials_a_scheduler_never_resumes_end_the_experiment_with_a_warning(cluster, tmp_path, caplog):
    grid = Tuner(curve, param_space={"quality": tune.grid_search([1, 2, 3]), "checkpoint": True},
                 tune_config=TuneConfig(metric="score", mode="max", scheduler=PausesForever()),
                 run_config=_run(tmp_path)).fit()
    assert grid.num_terminated == 3 and grid.num_errors == 0
    assert all(r.metrics["training_iteration"] == 1 for r in grid)
    assert "PausesForever starts none of the 3 trial(s) still waiting" in caplog.text


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
