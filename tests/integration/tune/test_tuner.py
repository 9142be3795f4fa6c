"""Juno Tune end to end on a real cluster: trials in actors, results, stopping, failures, the class
API, trainers as trainables, interrupts and restore."""
import _thread
import os
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest

import juno
from juno import tune
from juno.tune import Checkpoint, FailureConfig, RunConfig, TuneConfig, Tuner

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 2}


def quadratic(config):
    for step in range(config.get("steps", 5)):
        tune.report({"loss": (config["x"] - 3) ** 2 + 1.0 / (step + 1), "step": step})


def _run(tmp_path, name="exp", **kwargs):
    return RunConfig(storage_path=str(tmp_path), name=name, verbose=0, **kwargs)


def test_a_grid_runs_every_trial_and_finds_the_best(cluster, tmp_path):
    grid = Tuner(quadratic, param_space={"x": tune.grid_search([1, 3, 5, 6])},
                 tune_config=TuneConfig(metric="loss", mode="min"), run_config=_run(tmp_path)).fit()
    assert len(grid) == 4 and grid.num_terminated == 4 and grid.num_errors == 0
    best = grid.get_best_result()
    assert best.config["x"] == 3 and best.metrics["loss"] == pytest.approx(0.2)
    assert best.metrics["training_iteration"] == 5 and len(best.metrics_dataframe) == 5
    assert grid.get_best_result(metric="loss", mode="max").config["x"] == 6
    assert grid.get_best_result(scope="all").config["x"] == 3
    frame = grid.get_dataframe()
    assert sorted(frame["config/x"]) == [1, 3, 5, 6] and set(frame["training_iteration"]) == {5}
    with pytest.raises(ValueError, match="'accuracy'.*reported.*loss"):
        grid.get_best_result(metric="accuracy", mode="max")
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        grid.get_best_result(mode="best")
    assert juno.available_resources().get("CPU") == 2  # every trial's actor is gone


def test_stop_criteria_end_trials_at_the_reported_value(cluster, tmp_path):
    def forever(config):
        step = 0
        while True:
            step += 1
            tune.report({"score": step * config["speed"]})

    grid = Tuner(forever, param_space={"speed": tune.grid_search([1, 2])},
                 run_config=_run(tmp_path, stop={"score": 10})).fit()
    assert sorted(r.metrics["training_iteration"] for r in grid) == [5, 10]
    stopper = tune.stopper.MaximumIterationStopper(3)
    grid = Tuner(forever, param_space={"speed": 1}, run_config=_run(tmp_path, "b", stop=stopper)).fit()
    assert grid[0].metrics["training_iteration"] == 3
    grid = Tuner(forever, param_space={"speed": 1},
                 run_config=_run(tmp_path, "c", stop=lambda trial_id, result: result["score"] >= 4)).fit()
    assert grid[0].metrics["score"] == 4


def test_a_time_budget_ends_the_experiment(cluster, tmp_path):
    def slow(config):
        while True:
            time.sleep(0.1)
            tune.report({"t": time.time()})

    started = time.monotonic()
    grid = Tuner(slow, tune_config=TuneConfig(num_samples=4, time_budget_s=2),
                 run_config=_run(tmp_path)).fit()
    assert time.monotonic() - started < 20
    assert grid.num_terminated >= 2 and all(r.metrics.get("training_iteration", 0) < 100 for r in grid)


def test_failed_trials_retry_from_their_checkpoint_then_are_recorded(cluster, tmp_path):
    def flaky(config):
        checkpoint = tune.get_checkpoint()
        start = checkpoint.to_dict()["i"] + 1 if checkpoint else 0
        for i in range(start, 4):
            if i == 2 and not os.path.exists(config["marker"]):
                open(config["marker"], "w").close()
                raise RuntimeError("flaky")
            tune.report({"i": i, "start": start}, checkpoint=Checkpoint.from_dict({"i": i}))

    grid = Tuner(flaky, param_space={"marker": str(tmp_path / "m")},
                 run_config=_run(tmp_path, failure_config=FailureConfig(max_failures=1))).fit()
    assert (grid[0].metrics["i"], grid[0].metrics["start"], grid.num_errors) == (3, 2, 0)

    def broken(config):
        raise ValueError(f"bad x {config['x']}")

    grid = Tuner(broken, param_space={"x": tune.grid_search([1, 2])}, run_config=_run(tmp_path, "b")).fit()
    assert grid.num_errors == 2 and len(grid.errors) == 2
    assert "ValueError: bad x" in str(grid.errors[0]) and "in broken" in str(grid.errors[0])
    assert (tmp_path / "b").exists() and any("error.txt" in files for _, _, files in os.walk(tmp_path / "b"))


def test_trials_that_can_never_fit_fail_within_seconds(cluster, tmp_path):
    started = time.monotonic()
    with pytest.raises(ValueError, match="can never be placed.*CPU=4"):
        Tuner(tune.with_resources(quadratic, {"cpu": 4}), param_space={"x": 1}, run_config=_run(tmp_path)).fit()
    with pytest.raises(ValueError, match="GPU"):
        Tuner(tune.with_resources(quadratic, {"cpu": 1, "gpu": 1}), param_space={"x": 1},
              run_config=_run(tmp_path, "b")).fit()
    assert time.monotonic() - started < 10


class _BreaksInTheWorker:
    """Pickles in the driver, raises when a worker unpickles it (a module missing there, a bad __setstate__)."""

    def __reduce__(self):
        return (_refuse, ("this object cannot be rebuilt in the worker",))


def _refuse(message):
    raise RuntimeError(message)


def test_a_trainable_that_cannot_start_fails_its_trials_instead_of_hanging(cluster, tmp_path):
    broken = _BreaksInTheWorker()

    def uses_it(config):
        tune.report({"loss": float(broken is not None)})

    started = time.monotonic()
    results = Tuner(uses_it, param_space={"x": tune.grid_search([1, 2])}, run_config=_run(tmp_path)).fit()
    assert len(results.errors) == 2 and "cannot be rebuilt in the worker" in str(results.errors[0])
    assert time.monotonic() - started < 60


def test_the_class_api_with_parameters_and_checkpoints(cluster, tmp_path):
    class Counter(tune.Trainable):
        def setup(self, config, data=None):
            self.rate, self.total, self.data = config["rate"], 0, data

        def step(self):
            self.total += self.rate
            return {"total": self.total + float(self.data.sum())}

        def save_checkpoint(self, checkpoint_dir):
            return {"total": self.total}

        def load_checkpoint(self, state):
            self.total = state["total"]

    grid = Tuner(tune.with_parameters(Counter, data=np.ones(1000)), param_space={"rate": tune.grid_search([1, 2])},
                 run_config=_run(tmp_path, stop={"training_iteration": 4},
                                 checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2))).fit()
    assert sorted(r.metrics["total"] for r in grid) == [1004.0, 1008.0]
    assert all(r.checkpoint.to_dict()["total"] in (4, 8) for r in grid)


def test_a_trainer_is_a_trainable_each_trial_a_training_run(cluster, tmp_path):
    from juno import train
    from juno.train import ScalingConfig
    from juno.train.torch import TorchTrainer

    def loop(config):
        for epoch in range(3):
            train.report({"loss": config["lr"] / (epoch + 1), "world": train.get_context().get_world_size()})

    trainer = TorchTrainer(loop, train_loop_config={"lr": 1.0}, scaling_config=ScalingConfig(num_workers=2))
    grid = Tuner(trainer, param_space={"train_loop_config": {"lr": tune.grid_search([0.1, 0.5])}},
                 tune_config=TuneConfig(metric="loss", mode="min"), run_config=_run(tmp_path)).fit()
    assert grid.num_terminated == 2
    best = grid.get_best_result()
    assert best.config == {"train_loop_config": {"lr": 0.1}} and best.metrics["world"] == 2
    assert best.metrics["training_iteration"] == 3
    with pytest.raises(ValueError, match="CPU"):  # 3 workers on 2 CPUs: said at once, never PENDING forever
        Tuner(TorchTrainer(loop, scaling_config=ScalingConfig(num_workers=3)), run_config=_run(tmp_path, "b")).fit()


def test_interrupting_returns_what_finished_and_restore_resumes(cluster, tmp_path):
    def counting(config):
        checkpoint = tune.get_checkpoint()
        start = checkpoint.to_dict()["i"] + 1 if checkpoint else 0
        for i in range(start, 6):
            if i == 2 and not os.path.exists(config["marker"]):
                open(config["marker"], "w").close()
            time.sleep(0.2)
            tune.report({"i": i, "start": start}, checkpoint=Checkpoint.from_dict({"i": i}))

    marker = tmp_path / "running"
    threading.Thread(target=lambda: (_wait_for(marker.exists), time.sleep(0.5), _thread.interrupt_main()),
                     daemon=True).start()
    grid = Tuner(counting, param_space={"marker": str(marker)}, run_config=_run(tmp_path)).fit()
    assert grid[0].metrics["i"] < 5 and juno.available_resources().get("CPU") == 2
    path = grid.experiment_path
    assert Tuner.can_restore(path) and not Tuner.can_restore(str(tmp_path))
    grid = Tuner.restore(path, trainable=counting).fit()
    assert grid[0].metrics["i"] == 5 and grid[0].metrics["start"] >= 2


def test_reused_actors_run_trials_one_after_another(cluster, tmp_path):
    def pid(config):
        tune.report({"pid": os.getpid()})

    grid = Tuner(pid, tune_config=TuneConfig(num_samples=4, reuse_actors=True, max_concurrent_trials=1),
                 run_config=_run(tmp_path)).fit()
    assert grid.num_terminated == 4 and len({r.metrics["pid"] for r in grid}) == 1


def test_the_older_tune_run_form(cluster, tmp_path):
    analysis = tune.run(quadratic, config={"x": tune.grid_search([2, 3])}, metric="loss", mode="min",
                        storage_path=str(tmp_path), name="old", verbose=0)
    assert analysis.best_config["x"] == 3 and len(analysis.trials) == 2
    assert sorted(analysis.dataframe()["config/x"]) == [2, 3]
    with pytest.raises(tune.TuneError, match="did not complete"):
        tune.run(lambda config: 1 / 0, storage_path=str(tmp_path), name="bad", verbose=0)


def _wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
