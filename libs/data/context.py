"""``DataContext``: the knobs a Ray Data user sets, per driver process.

``DataContext.get_current()`` is one object per process; an execution reads it when it starts
(changing it mid-run does not affect that run), and passes the values its tasks need as
arguments, so workers never depend on their own copy.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass
class ExecutionResources:
    """Limits on what one execution may use at once; None means "what the cluster has"."""

    cpu: float | None = None
    gpu: float | None = None
    object_store_memory: float | None = None

    def __post_init__(self):
        for name in ("cpu", "gpu", "object_store_memory"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"ExecutionResources({name}=...) must be None or a non-negative number, got {value!r}")


@dataclass
class ExecutionOptions:
    """How an execution runs (Ray's ``DataContext.execution_options``)."""

    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    preserve_order: bool = False  # outputs in input order (else: as they finish, which streams faster)
    locality_with_output: bool = False  # accepted for Ray compatibility; one object store per node already
    verbose_progress: bool = False
    actor_locality_enabled: bool = True


@dataclass
class DataContext:
    """Per-process settings of Juno Data (Ray's ``ray.data.DataContext``)."""

    target_max_block_size: int = 128 * MiB  # a task's output is cut into blocks of about this size
    target_min_block_size: int = 1 * MiB
    read_op_min_num_blocks: int = 200  # a read splits into at least this many blocks (if the data allows)
    default_batch_size: int = 1024  # map_batches(batch_size="default")
    enable_progress_bars: bool = True
    enable_operator_progress_bars: bool = True
    # Fraction of the cluster's object store an execution's blocks may hold at once before the
    # executor holds back new tasks (backpressure); the resource limit wins when it is set.
    object_store_memory_fraction: float = 0.25
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)
    max_errored_blocks: int = 0
    actor_pool_start_timeout_s: float = 60.0  # actors of a pool that cannot start (resources) fail the run
    # A request for resources no node has fails within this many seconds (never a wait forever).
    unschedulable_timeout_s: float = 10.0
    use_push_based_shuffle: bool = False  # accepted for Ray compatibility
    # streaming_split: how long a consumer waits for the others to finish an epoch (a consumer that
    # died or stopped iterating would otherwise hold them forever).
    streaming_split_wait_s: float = 600.0
    eager_free: bool = True

    _current = None
    _lock = threading.Lock()

    @staticmethod
    def get_current() -> "DataContext":
        """The process's context (created on first use)."""
        with DataContext._lock:
            if DataContext._current is None:
                DataContext._current = DataContext()
            return DataContext._current

    @staticmethod
    def _set_current(context: "DataContext") -> None:
        with DataContext._lock:
            DataContext._current = context

    def copy(self) -> "DataContext":
        return copy.deepcopy(self)


# Ray's older name.
DatasetContext = DataContext
