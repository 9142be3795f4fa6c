"""The in-run session: what ``report``, ``get_checkpoint``, ``get_context`` and ``get_dataset_shard``
talk to inside a training loop.

Each worker process runs one loop, so the session is a process-wide object set when the loop starts.
``report`` never waits for the driver: it copies the checkpoint's files out (the caller may delete its
directory as soon as report returns) and queues the report; the driver long-polls the queue. The
module-level functions are Ray's ``ray.train``/``ray.air.session`` forms, the older ones included.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from juno.air.checkpoint import Checkpoint
from juno.air.storage import StorageContext, pack_directory, unpack_archive


REPORT_ACK_TIMEOUT_S = 120.0  # how long a report waits for the driver to hold it (then the loop goes on)


class TrialStopped(BaseException):
    """Raised by ``report()`` in a loop the driver asked to stop (a Tune scheduler's decision): it ends
    the loop quietly. A BaseException, so a loop's ``except Exception`` does not swallow it."""


class SessionMisuseError(RuntimeError):
    """A session function was called where there is no run (outside a training loop)."""


class TrainContext:
    """Who this worker is in the run (Ray's ``TrainContext``): ranks, sizes, names and storage."""

    def __init__(self, info: dict) -> None:
        self._info = dict(info)

    def get_world_size(self) -> int:
        return self._info["world_size"]

    def get_world_rank(self) -> int:
        return self._info["world_rank"]

    def get_local_rank(self) -> int:
        return self._info["local_rank"]

    def get_local_world_size(self) -> int:
        return self._info["local_world_size"]

    def get_node_rank(self) -> int:
        return self._info["node_rank"]

    def get_experiment_name(self) -> str:
        return self._info.get("experiment_name", "")

    def get_trial_name(self) -> str | None:
        return self._info.get("trial_name")

    def get_trial_id(self) -> str | None:
        return self._info.get("trial_id")

    def get_trial_dir(self) -> str | None:
        return self._info.get("run_path")

    def get_trial_resources(self) -> dict:
        return dict(self._info.get("resources", {}))

    def get_metadata(self) -> dict:
        return dict(self._info.get("metadata", {}))

    def get_storage(self) -> StorageContext | None:
        return self._info.get("storage")

    def __repr__(self) -> str:
        return (f"TrainContext(world_rank={self.get_world_rank()}, world_size={self.get_world_size()}, "
                f"local_rank={self.get_local_rank()}, node_rank={self.get_node_rank()})")


class Session:
    """One worker's side of a run: its context, the checkpoint to resume from, its dataset shards,
    and the queue of reports the driver drains with :meth:`poll`."""

    def __init__(self, context: TrainContext, storage: StorageContext, *, start_iteration: int = 0,
                 checkpoint: Checkpoint | None = None, dataset_shards: dict | None = None,
                 ship_checkpoints: bool = False, sync_reports: bool = False) -> None:
        self.context = context
        self.storage = storage
        self.checkpoint = checkpoint
        self.dataset_shards = dict(dataset_shards or {})
        self.iteration = start_iteration
        self.ship_checkpoints = ship_checkpoints  # another node, local storage: files travel with the report
        self._queue: list[dict] = []
        self._sent = 0      # reports queued so far
        self._acked = 0     # reports the driver said it holds
        self._cond = threading.Condition()
        self.sync_reports = sync_reports  # Tune: every report waits for the driver's decision
        self._stop_requested: bool | str = False  # True, or "pause" (a checkpoint is wanted first)
        self._finished = False
        self._error: BaseException | None = None
        self._last_report = time.time()

    # ------------------------------------------------------------------ the loop's side
    def report(self, metrics: dict, checkpoint: Checkpoint | None = None) -> None:
        if not isinstance(metrics, dict):
            raise TypeError(f"report() takes a dict of metrics, got {type(metrics).__name__}: {metrics!r}.")
        bad = [k for k in metrics if not isinstance(k, str)]
        if bad:
            raise TypeError(f"report() metric names must be strings, got {bad!r}.")
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"report(checkpoint=...) takes a juno.train.Checkpoint (Checkpoint.from_directory(d)), "
                            f"got {type(checkpoint).__name__}.")
        self.iteration += 1
        now = time.time()
        entry: dict[str, Any] = {"iteration": self.iteration, "metrics": dict(metrics), "time": now,
                                 "time_this_iter_s": now - self._last_report}
        self._last_report = now
        if self._stop_requested:
            raise TrialStopped()
        if checkpoint is not None:
            entry["checkpoint"] = self._save(checkpoint)
        with self._cond:
            self._sent += 1
            entry["seq"] = self._sent
            self._queue.append(entry)
            self._cond.notify_all()
            if checkpoint is not None or self.sync_reports:
                # A checkpoint is worth a round trip: wait until the driver holds it, so a worker that
                # dies right after reporting one does not take it along. Tune waits for every report:
                # its scheduler decides after each one whether the trial goes on.
                self._cond.wait_for(lambda: self._acked >= entry["seq"] or self._stop_requested,
                                    REPORT_ACK_TIMEOUT_S)
            if self._stop_requested:
                raise TrialStopped()

    def _save(self, checkpoint: Checkpoint) -> tuple[str, Any]:
        """Take the checkpoint's files now: into the run's folder, or into an archive sent with the report."""
        with checkpoint.as_directory() as local_dir:
            if not os.path.isdir(local_dir):
                raise FileNotFoundError(f"report(checkpoint={checkpoint!r}): the directory no longer exists. "
                                        "Keep it until report() returns.")
            if self.ship_checkpoints:
                return ("archive", pack_directory(local_dir))
            dest = self.storage.checkpoint_path(self.iteration)
            if os.path.abspath(local_dir) != os.path.abspath(dest) or not self.storage.local:
                self.storage.persist_directory(local_dir, dest)
            return ("persisted", dest)

    @property
    def stop_wants_checkpoint(self) -> bool:
        """The driver paused this loop: save a checkpoint (``final_checkpoint``) before ending."""
        return self._stop_requested == "pause"

    def final_checkpoint(self, checkpoint: Checkpoint) -> None:
        """A checkpoint of the state the stopped loop ends in, sent without a result."""
        entry = {"iteration": self.iteration, "final_checkpoint": True, "checkpoint": self._save(checkpoint),
                 "time": time.time()}
        with self._cond:
            self._sent += 1
            entry["seq"] = self._sent
            self._queue.append(entry)
            self._cond.notify_all()

    # ------------------------------------------------------------------ the driver's side
    @property
    def finished(self) -> bool:
        """The loop has ended (returned, raised or stopped); its thread may still be exiting."""
        return self._finished

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._finished, self._error = True, error
            self._cond.notify_all()

    def poll(self, timeout_s: float, acked: int = 0, stop: bool | str = False) -> tuple[list[dict], bool]:
        """The reports queued since the last poll, and whether the loop has ended; waits up to
        ``timeout_s`` for either. ``acked``: the last report the driver holds (releasing a report
        that waits with its checkpoint). A loop that raised re-raises its exception here (so the
        caller's ``get`` carries the worker's traceback)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if acked > self._acked or stop:
                self._acked = max(acked, self._acked)
                self._stop_requested = self._stop_requested or stop
                self._stop_requested = stop if stop == "pause" else self._stop_requested
                self._cond.notify_all()
            while not self._queue and not self._finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            items, self._queue = self._queue, []
            if self._finished and self._error is not None and not items:
                raise self._error
            return items, self._finished and not items


# ============================================================================ the process's session
_session: Session | None = None


def set_session(session: Session | None) -> None:
    global _session
    _session = session


def get_session() -> Session | None:
    return _session


def _require(what: str) -> Session:
    if _session is None:
        raise SessionMisuseError(
            f"{what} was called outside a training run. Call it inside the function you give a trainer "
            "(TorchTrainer(train_loop_per_worker=...)) or Tune (Tuner(trainable)), which runs it on the workers.")
    return _session


def report(metrics: dict | None = None, *, checkpoint: Checkpoint | None = None,
           checkpoint_dir_name: str | None = None, **kwargs: Any) -> None:
    """Report this iteration's metrics (and optionally a checkpoint) from every worker. The older keyword
    form ``report(loss=0.1, accuracy=0.9)`` works too."""
    session = _require("report()")
    if metrics is None:
        metrics = kwargs
    elif kwargs:
        raise TypeError("report() takes a metrics dict or keyword metrics, not both: "
                        f"report({{..., {', '.join(repr(k) for k in kwargs)}: ...}}).")
    session.report(metrics, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint to resume from: the latest one reported before a restart, or the trainer's
    ``resume_from_checkpoint``; None on a fresh start."""
    return _require("get_checkpoint()").checkpoint


def get_context() -> TrainContext:
    return _require("get_context()").context


def get_dataset_shard(dataset_name: str | None = None) -> Any:
    """This worker's streaming share of ``datasets[dataset_name]`` (a DataIterator; iterate it each epoch)."""
    session = _require("get_dataset_shard()")
    shards = session.dataset_shards
    if dataset_name is None:
        if len(shards) != 1:
            raise ValueError(f"get_dataset_shard() needs a name when the trainer has {len(shards)} datasets "
                             f"({sorted(shards)}).")
        dataset_name = next(iter(shards))
    if dataset_name not in shards:
        raise KeyError(f"get_dataset_shard({dataset_name!r}): the trainer was given no dataset by that name; it has "
                       f"{sorted(shards) or 'none'}. Pass datasets={{{dataset_name!r}: ds}} to the trainer.")
    return shards[dataset_name]


# Ray's older ``ray.air.session`` accessors.
def get_world_size() -> int:
    return get_context().get_world_size()


def get_world_rank() -> int:
    return get_context().get_world_rank()


def get_local_rank() -> int:
    return get_context().get_local_rank()


def get_local_world_size() -> int:
    return get_context().get_local_world_size()


def get_node_rank() -> int:
    return get_context().get_node_rank()


def get_experiment_name() -> str:
    return get_context().get_experiment_name()


def get_trial_name() -> str | None:
    return get_context().get_trial_name()


def get_trial_id() -> str | None:
    return get_context().get_trial_id()


def get_trial_dir() -> str | None:
    return get_context().get_trial_dir()


def get_trial_resources() -> dict:
    return get_context().get_trial_resources()


def restore_checkpoint(source: tuple[str, Any] | None, storage: StorageContext) -> Checkpoint | None:
    """The resume checkpoint as this worker can read it: its path when the storage reaches here, else the
    archive the driver sent, unpacked to a local temporary folder."""
    if source is None:
        return None
    kind, value = source
    if kind == "checkpoint":
        return value
    if kind == "path":
        return storage.checkpoint(value)
    directory = tempfile.mkdtemp(prefix="juno_resume_")
    unpack_archive(value, directory)
    return Checkpoint(directory)
