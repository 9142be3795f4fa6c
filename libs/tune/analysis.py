"""Ray's older experiment API, which many tutorials still use: ``tune.run(...)`` returning an
``ExperimentAnalysis`` (``best_config``, ``best_trial``, ``dataframe()`` ...). It runs a Tuner."""
from __future__ import annotations

from typing import Any

from juno.air.config import CheckpointConfig, FailureConfig, RunConfig
from juno.tune.experiment.trial import Trial
from juno.tune.result_grid import ResultGrid, TuneError
from juno.tune.trainable.util import with_resources
from juno.tune.tuner import TuneConfig, Tuner


class ExperimentAnalysis:
    """The trials of a finished ``tune.run`` and the best of them by the run's metric and mode."""

    def __init__(self, grid: ResultGrid, trials: list[Trial], metric: str | None, mode: str | None) -> None:
        self._grid, self.trials = grid, trials
        self.default_metric, self.default_mode = metric, mode
        self.experiment_path = grid.experiment_path

    def _best(self, metric: str | None, mode: str | None, scope: str = "last") -> Trial:
        result = self._grid.get_best_result(metric or self.default_metric, mode or self.default_mode, scope)
        return next(t for t in self.trials if t.path == result.path)

    def get_best_trial(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                       filter_nan_and_inf: bool = True) -> Trial:
        return self._best(metric, mode, scope)

    def get_best_config(self, metric: str | None = None, mode: str | None = None, scope: str = "last") -> dict:
        return self._best(metric, mode, scope).config

    def get_best_checkpoint(self, trial: Trial, metric: str | None = None, mode: str | None = None) -> Any:
        return trial.checkpoint

    @property
    def best_trial(self) -> Trial:
        return self._best(None, None)

    @property
    def best_config(self) -> dict:
        return self.best_trial.config

    @property
    def best_result(self) -> dict:
        return self.best_trial.last_result

    @property
    def best_checkpoint(self) -> Any:
        return self.best_trial.checkpoint

    @property
    def best_logdir(self) -> str:
        return self.best_trial.path

    @property
    def best_dataframe(self) -> Any:
        return self.trial_dataframes[self.best_trial.path]

    @property
    def results(self) -> dict:
        return {t.trial_id: t.last_result for t in self.trials}

    @property
    def results_df(self) -> Any:
        return self._grid.get_dataframe()

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:
        return self._grid.get_dataframe(filter_metric=metric, filter_mode=mode)

    @property
    def trial_dataframes(self) -> dict:
        return {r.path: r.metrics_dataframe for r in self._grid}


def run(run_or_experiment: Any, *, name: str | None = None, metric: str | None = None, mode: str | None = None,
        stop: Any = None, time_budget_s: Any = None, config: dict | None = None, resources_per_trial: Any = None,
        num_samples: int = 1, storage_path: str | None = None, local_dir: str | None = None, search_alg: Any = None,
        scheduler: Any = None, checkpoint_config: CheckpointConfig | None = None, verbose: int | None = None,
        progress_reporter: Any = None, max_failures: int = 0, fail_fast: bool = False, reuse_actors: bool | None = None,
        max_concurrent_trials: int | None = None, raise_on_failed_trial: bool = True, callbacks: list | None = None,
        keep_checkpoints_num: int | None = None, checkpoint_score_attr: str | None = None, checkpoint_freq: int = 0,
        checkpoint_at_end: bool = False, trial_name_creator: Any = None, trial_dirname_creator: Any = None,
        **_: Any) -> ExperimentAnalysis:
    """``tune.run(trainable, config=..., num_samples=..., metric=..., mode=..., stop=..., scheduler=...,
    resources_per_trial=...)``: the same experiment as ``Tuner(...).fit()``, with the older names."""
    trainable = with_resources(run_or_experiment, resources_per_trial) if resources_per_trial else run_or_experiment
    if checkpoint_config is None:
        score_order = "max"
        if checkpoint_score_attr and checkpoint_score_attr.startswith("min-"):
            checkpoint_score_attr, score_order = checkpoint_score_attr[4:], "min"
        checkpoint_config = CheckpointConfig(num_to_keep=keep_checkpoints_num,
                                             checkpoint_score_attribute=checkpoint_score_attr,
                                             checkpoint_score_order=score_order, checkpoint_frequency=checkpoint_freq,
                                             checkpoint_at_end=checkpoint_at_end)
    tuner = Tuner(trainable, param_space=config or {},
                  tune_config=TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                         num_samples=num_samples, max_concurrent_trials=max_concurrent_trials,
                                         time_budget_s=time_budget_s, reuse_actors=reuse_actors,
                                         trial_name_creator=trial_name_creator,
                                         trial_dirname_creator=trial_dirname_creator),
                  run_config=RunConfig(name=name, storage_path=storage_path or local_dir, stop=stop, verbose=verbose,
                                       checkpoint_config=checkpoint_config, progress_reporter=progress_reporter,
                                       failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
                                       callbacks=callbacks))
    grid = tuner.fit()
    trials = tuner._trials
    if raise_on_failed_trial and grid.num_errors:
        failed = [t.trial_id for t in trials if t.status == Trial.ERROR]
        raise TuneError(f"Trials did not complete: {failed}. The first error:\n{grid.errors[0]}")
    return ExperimentAnalysis(grid, trials, *tuner._metric_and_mode())
