"""How each kind of trainable runs in a trial's actor: a function, a Trainable class, or a Juno
trainer (``Tuner(TorchTrainer(...))`` runs each trial as a whole distributed training run), and the
registry of trainables by name (``tune.register_trainable``; RL's algorithms register there)."""
from __future__ import annotations

import copy
from typing import Any, Callable

from juno.air import session as air_session
from juno.air.config import RunConfig
from juno.air.result import RUN_INFO_KEYS
from juno.tune.trainable.trainable import ClassRunner, Trainable
from juno.tune.trainable.util import PlacementGroupFactory, trial_resources

_REGISTRY: dict[str, Any] = {}


def register_trainable(name: str, trainable: Any) -> None:
    """``Tuner("name", ...)`` finds ``trainable`` by this name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_trainable needs a name, got {name!r}.")
    _REGISTRY[name] = trainable


def get_trainable_cls(name: str) -> Any:
    """The trainable registered under ``name``, else RL's algorithm of that name ("PPO", "DQN", "SAC"),
    imported only when asked for."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    from juno.rl.algorithms.registry import ALGORITHMS, get_algorithm_class

    if name in ALGORITHMS:
        return get_algorithm_class(name)
    known = sorted(set(_REGISTRY) | set(ALGORITHMS))
    raise ValueError(f"Unknown trainable {name!r}: register it first with tune.register_trainable({name!r}, ...); "
                     f"known: {known}.")


def resolve(trainable: Any) -> Any:
    if isinstance(trainable, str):
        return get_trainable_cls(trainable)
    return trainable


def is_trainer(trainable: Any) -> bool:
    from juno.train.trainer import DataParallelTrainer

    return isinstance(trainable, DataParallelTrainer)


def trainable_name(trainable: Any) -> str:
    if is_trainer(trainable):
        return type(trainable).__name__
    return getattr(trainable, "__name__", type(trainable).__name__)


def runner_for(trainable: Any, *, checkpoint_frequency: int = 0, checkpoint_at_end: bool = False) -> Callable:
    """The picklable loop a trial's actor runs with the trial's config."""
    if is_trainer(trainable):
        return TrainerRunner(trainable)
    if isinstance(trainable, type) and issubclass(trainable, Trainable):
        return ClassRunner(trainable, checkpoint_frequency, checkpoint_at_end)
    if callable(trainable):
        return FunctionRunner(trainable)
    raise TypeError(f"A Tune trainable is a function taking the config, a tune.Trainable subclass, a Juno trainer "
                    f"(TorchTrainer(...)) or a registered name; got {type(trainable).__name__}.")


def resources_for(trainable: Any, config: dict) -> PlacementGroupFactory:
    """What one trial holds: a trainer's workers (plus its own bundle), else the trainable's request."""
    if is_trainer(trainable):
        trainer = merged_trainer(trainable, config)
        bundles = trainer.scaling_config.bundles()
        return PlacementGroupFactory([{}] + bundles, trainer.scaling_config.placement_strategy)
    return trial_resources(trainable, config)


class FunctionRunner:
    """A function trainable: ``fn(config)``; a dict it returns is its last report (Ray's older form)."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "trainable")

    def __call__(self, config: dict) -> None:
        value = self.fn(config)
        if isinstance(value, dict):
            air_session.report(value)


def merged_trainer(trainer: Any, config: dict) -> Any:
    """A copy of ``trainer`` with the trial's param_space values in place: ``train_loop_config`` merged
    key by key, ``scaling_config`` and the other constructor arguments replaced."""
    merged = copy.copy(trainer)
    for key, value in config.items():
        if key == "train_loop_config" and isinstance(value, dict):
            merged.train_loop_config = {**(trainer.train_loop_config or {}), **value}
        elif key in ("scaling_config", "datasets", "resume_from_checkpoint", "metadata"):
            setattr(merged, key, value)
        else:
            raise ValueError(f"param_space key {key!r} is not something a trainer takes in a Tune trial: use "
                             "'train_loop_config' (merged into the trainer's), 'scaling_config' or 'datasets'.")
    return merged


class TrainerRunner:
    """A Juno trainer as a trial: the trial's actor runs ``fit()`` with the trial's config merged in;
    each iteration of the run is the trial's result, and its checkpoints are the trial's."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.__name__ = type(trainer).__name__

    def __call__(self, config: dict) -> None:
        session = air_session.get_session()
        trainer = merged_trainer(self.trainer, config)
        context = session.context
        storage = session.storage
        trainer.run_config = RunConfig(name=storage.name, storage_path=storage.storage_path,
                                       storage_filesystem=storage.filesystem if not storage.local else None,
                                       checkpoint_config=self.trainer.run_config.checkpoint_config,
                                       failure_config=self.trainer.run_config.failure_config, verbose=0)
        if session.checkpoint is not None:
            trainer.resume_from_checkpoint = session.checkpoint
        trainer._tune_hook = {"start_iteration": session.iteration, "trial_id": context.get_trial_id(),
                              "on_iteration": _forward}
        trainer.fit()


def _forward(metrics: dict, checkpoint_path: str | None) -> None:
    """One iteration of the trainer in a trial is one report of the trial."""
    user = {k: v for k, v in metrics.items() if k not in RUN_INFO_KEYS}
    session = air_session.get_session()
    air_session.report(user, checkpoint=session.storage.checkpoint(checkpoint_path) if checkpoint_path else None)
