"""Juno Train: Ray Train's API on Juno: data-parallel training on a group of worker actors, with
checkpoints, fault tolerance and a live view.

    from juno import train
    from juno.train.torch import TorchTrainer
    def loop(config):
        ...                                            # build model, juno.train.torch.prepare_model(model)
        train.report({"loss": loss}, checkpoint=train.Checkpoint.from_directory(d))
    result = TorchTrainer(loop, scaling_config=train.ScalingConfig(num_workers=2)).fit()

Built only on Juno's public API and ``juno.air`` (shared with Tune and RL).
"""
from juno.air.checkpoint import Checkpoint
from juno.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, SyncConfig
from juno.air.result import Result
from juno.air.session import (SessionMisuseError, TrainContext, get_checkpoint, get_context, get_dataset_shard,
                              report)
from juno.train.controller import Backend
from juno.train.errors import ResourcesUnavailableError, TrainingFailedError
from juno.train.trainer import DataParallelTrainer

__all__ = ["Backend", "Checkpoint", "CheckpointConfig", "DataParallelTrainer", "FailureConfig", "ResourcesUnavailableError", "Result",
           "RunConfig", "ScalingConfig", "SessionMisuseError", "SyncConfig", "TrainContext", "TrainingFailedError",
           "get_checkpoint", "get_context", "get_dataset_shard", "report", "torch"]


def __getattr__(name: str):
    if name == "torch":  # juno.train.torch imports torch: only when asked for
        import importlib

        return importlib.import_module("juno.train.torch")
    raise AttributeError(f"module 'juno.train' has no attribute {name!r}")
