"""Juno Tune: Ray Tune's API on Juno: hyperparameter search over trials run as actors, with
schedulers (ASHA, HyperBand, median stopping, PBT), search algorithms (random, grid, Optuna,
HyperOpt) and a live trial table.

    from juno import tune
    def objective(config):
        for step in range(10):
            tune.report({"loss": (config["x"] - 3) ** 2 / (step + 1)})
    results = tune.Tuner(objective, param_space={"x": tune.uniform(0, 10)},
                         tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=20)).fit()
    results.get_best_result().config

Built only on Juno's public API, ``juno.air`` and ``juno.train``.
"""
from juno.air.checkpoint import Checkpoint
from juno.air.config import CheckpointConfig, FailureConfig, RunConfig, SyncConfig
from juno.air.result import Result
from juno.air.session import get_checkpoint, get_context, report
from juno.tune import schedulers, search, stopper
from juno.tune.analysis import ExperimentAnalysis, run
from juno.tune.experiment.trial import Trial
from juno.tune.progress_reporter import CLIReporter, JupyterNotebookReporter, ProgressReporter
from juno.tune.result_grid import ResultGrid, TuneError
from juno.tune.schedulers import (ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler,
                                  MedianStoppingRule, PopulationBasedTraining, TrialScheduler)
from juno.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher
from juno.tune.search.sample import (choice, grid_search, lograndint, loguniform, qlograndint, qloguniform, qrandint,
                                     qrandn, quniform, randint, randn, sample_from, uniform)
from juno.tune.stopper import Stopper
from juno.tune.registry import register_env, register_trainable
from juno.tune.trainable.trainable import Trainable
from juno.tune.trainable.util import PlacementGroupFactory, with_parameters, with_resources
from juno.tune.tuner import TuneConfig, Tuner

__all__ = [
    "ASHAScheduler", "CLIReporter", "JupyterNotebookReporter", "ProgressReporter", "AsyncHyperBandScheduler", "BasicVariantGenerator", "Checkpoint", "CheckpointConfig",
    "ConcurrencyLimiter", "ExperimentAnalysis", "FIFOScheduler", "FailureConfig", "HyperBandScheduler", "MedianStoppingRule",
    "PlacementGroupFactory", "PopulationBasedTraining", "Repeater", "Result", "ResultGrid", "RunConfig", "Searcher",
    "Stopper", "SyncConfig", "Trainable", "Trial", "TrialScheduler", "TuneConfig", "TuneError", "Tuner", "choice",
    "get_checkpoint", "get_context", "grid_search", "lograndint", "loguniform", "qlograndint", "qloguniform",
    "qrandint", "qrandn", "quniform", "randint", "randn", "register_env", "register_trainable", "report", "run", "sample_from",
    "schedulers", "search", "stopper", "uniform", "with_parameters", "with_resources",
]
