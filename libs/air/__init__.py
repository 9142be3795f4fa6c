"""Juno AIR: what Train, Tune and RL share (Ray's ``ray.air``): run configs, checkpoints, results and
the in-run session. ``juno.train`` and ``juno.tune`` export the same names.
"""
from juno.air import session
from juno.air.checkpoint import Checkpoint
from juno.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, SyncConfig
from juno.air.result import Result
from juno.air.session import SessionMisuseError, TrainContext

__all__ = ["Checkpoint", "CheckpointConfig", "FailureConfig", "Result", "RunConfig", "ScalingConfig",
           "SessionMisuseError", "SyncConfig", "TrainContext", "session"]
