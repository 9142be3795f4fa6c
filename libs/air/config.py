"""The run configuration Train, Tune and RL share, with Ray's names, fields and defaults.

They are plain dataclasses checked at construction, so a typo fails where it is written rather than
minutes later on a worker. ``ScalingConfig`` says how many workers and what each holds; ``RunConfig``
where a run is kept and how it survives failures.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
DEFAULT_STORAGE_PATH = os.path.join("~", "juno_results")


def _positive_number(name: str, value: Any, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}.")
    return value


@dataclasses.dataclass
class ScalingConfig:
    """How many workers a run has and what each one holds (Ray's ``ScalingConfig``).

    ``resources_per_worker`` defaults to ``{"CPU": 1}``, plus ``{"GPU": 1}`` with ``use_gpu``; fractions
    pack several workers on one GPU (``{"GPU": 0.5}``). ``placement_strategy`` is the placement group's.
    """
    num_workers: int | None = None
    use_gpu: bool = False
    resources_per_worker: Mapping[str, float] | None = None
    placement_strategy: str = "PACK"
    trainer_resources: Mapping[str, float] | None = None
    accelerator_type: str | None = None

    def __post_init__(self) -> None:
        if self.num_workers is None:
            self.num_workers = 1
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ValueError(f"ScalingConfig(num_workers=...) must be a positive int, got {self.num_workers!r}.")
        if not isinstance(self.use_gpu, bool):
            raise TypeError(f"ScalingConfig(use_gpu=...) must be True or False, got {self.use_gpu!r}.")
        if self.placement_strategy not in _STRATEGIES:
            raise ValueError(f"ScalingConfig(placement_strategy={self.placement_strategy!r}) must be one of "
                             f"{', '.join(_STRATEGIES)}.")
        for field in ("resources_per_worker", "trainer_resources"):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise TypeError(f"ScalingConfig({field}=...) must be a dict of resource name to amount, "
                                f"got {value!r}.")
            for name, amount in value.items():
                if not isinstance(name, str):
                    raise TypeError(f"ScalingConfig({field}) keys must be resource names, got {name!r}.")
                _positive_number(f"ScalingConfig({field})[{name!r}]", amount)
            setattr(self, field, dict(value))
        if self.use_gpu and self.resources_per_worker and self.resources_per_worker.get("GPU", None) == 0:
            raise ValueError("ScalingConfig(use_gpu=True) with resources_per_worker={'GPU': 0}: give each worker "
                             "some GPU, or set use_gpu=False.")

    @property
    def _resources_per_worker_not_none(self) -> dict[str, float]:
        resources = dict(self.resources_per_worker) if self.resources_per_worker is not None else {}
        if "CPU" not in resources and self.resources_per_worker is None:
            resources["CPU"] = 1
        if self.use_gpu and "GPU" not in resources:
            resources["GPU"] = 1
        if self.accelerator_type:
            resources[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return {k: v for k, v in resources.items() if v}

    @property
    def worker_resources(self) -> dict[str, float]:
        """What each worker's placement-group bundle holds."""
        return self._resources_per_worker_not_none

    @property
    def num_cpus_per_worker(self) -> float:
        return self.worker_resources.get("CPU", 0)

    @property
    def num_gpus_per_worker(self) -> float:
        return self.worker_resources.get("GPU", 0)

    @property
    def additional_resources_per_worker(self) -> dict[str, float]:
        return {k: v for k, v in self.worker_resources.items() if k not in ("CPU", "GPU", "memory")}

    @property
    def total_resources(self) -> dict[str, float]:
        total: dict[str, float] = dict(self.trainer_resources or {})
        for name, amount in self.worker_resources.items():
            total[name] = total.get(name, 0) + amount * self.num_workers
        return total

    def bundles(self) -> list[dict[str, float]]:
        """The placement group's bundles: the trainer's (when it asks for any) first, then one per worker."""
        head = [dict(self.trainer_resources)] if any((self.trainer_resources or {}).values()) else []
        return head + [self.worker_resources or {"CPU": 0.001} for _ in range(self.num_workers)]


@dataclasses.dataclass
class CheckpointConfig:
    """Which checkpoints a run keeps: the ``num_to_keep`` best by ``checkpoint_score_attribute`` (the
    newest when no attribute is given); the latest is always kept too, so a restart never loses work."""
    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and (isinstance(self.num_to_keep, bool) or not isinstance(self.num_to_keep, int)
                                             or self.num_to_keep < 1):
            raise ValueError(f"CheckpointConfig(num_to_keep=...) must be None (keep all) or a positive int, got "
                             f"{self.num_to_keep!r}. To keep no checkpoints, do not report any.")
        if self.checkpoint_score_order not in ("max", "min"):
            raise ValueError(f"CheckpointConfig(checkpoint_score_order={self.checkpoint_score_order!r}) must be "
                             "'max' or 'min'.")
        if self.checkpoint_score_attribute is not None and not isinstance(self.checkpoint_score_attribute, str):
            raise TypeError("CheckpointConfig(checkpoint_score_attribute=...) must be a metric name, got "
                            f"{self.checkpoint_score_attribute!r}.")


@dataclasses.dataclass
class FailureConfig:
    """How many times a run restarts after a failure; ``-1`` restarts forever."""
    max_failures: int = 0
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < -1:
            raise ValueError(f"FailureConfig(max_failures=...) must be -1 (retry forever) or a count >= 0, got "
                             f"{self.max_failures!r}.")


@dataclasses.dataclass
class SyncConfig:
    """Accepted for Ray compatibility: Juno moves checkpoints to the storage path itself, from any node."""
    sync_period: int = 300
    sync_timeout: int = 1800
    sync_artifacts: bool = False
    sync_artifacts_on_checkpoint: bool = True
    upload_dir: Any = None
    syncer: Any = None
    sync_on_checkpoint: bool = True


@dataclasses.dataclass
class RunConfig:
    """Where a run is kept (``storage_path/name``), which checkpoints stay, how failures are retried,
    how much it prints (``verbose`` 0, 1 or 2), and Tune's ``stop`` and ``callbacks``."""
    name: str | None = None
    storage_path: str | os.PathLike | None = None
    storage_filesystem: Any = None
    failure_config: FailureConfig | None = None
    checkpoint_config: CheckpointConfig | None = None
    sync_config: SyncConfig | None = None
    verbose: int | None = None
    stop: Mapping | Callable | Any = None
    callbacks: list | None = None
    progress_reporter: Any = None
    log_to_file: bool | str | tuple = False
    local_dir: str | None = None  # Ray's old name for storage_path

    def __post_init__(self) -> None:
        if self.local_dir is not None and self.storage_path is None:
            self.storage_path = self.local_dir
        if self.storage_path is not None:
            self.storage_path = os.fspath(self.storage_path)
            if not isinstance(self.storage_path, str) or not self.storage_path:
                raise ValueError(f"RunConfig(storage_path=...) must be a directory or URI, got {self.storage_path!r}.")
        if self.name is not None and (not isinstance(self.name, str) or not self.name or "/" in self.name):
            raise ValueError(f"RunConfig(name=...) must be a non-empty string without '/', got {self.name!r}.")
        self.failure_config = self.failure_config or FailureConfig()
        self.checkpoint_config = self.checkpoint_config or CheckpointConfig()
        self.sync_config = self.sync_config or SyncConfig()
        for field, kind in (("failure_config", FailureConfig), ("checkpoint_config", CheckpointConfig)):
            if not isinstance(getattr(self, field), kind):
                raise TypeError(f"RunConfig({field}=...) must be a {kind.__name__}, got {getattr(self, field)!r}.")
        if self.verbose is not None and self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"RunConfig(verbose=...) must be 0, 1, 2 or 3, got {self.verbose!r}.")

    @property
    def resolved_storage_path(self) -> str:
        """The storage path with ``~`` expanded (``$JUNO_STORAGE_PATH`` or ``~/juno_results`` by default)."""
        path = self.storage_path or os.environ.get("JUNO_STORAGE_PATH") or DEFAULT_STORAGE_PATH
        return path if "://" in path else os.path.abspath(os.path.expanduser(path))
