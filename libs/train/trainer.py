"""``DataParallelTrainer``: run one function on N workers as a data-parallel training run.

``fit()`` checks what can be checked on the driver first (the loop ships, the cluster can ever hold
the workers, the storage path is writable), saves what ``restore`` needs to the run's folder, then
hands over to the controller. Framework trainers (``TorchTrainer``) only add a backend.
"""
from __future__ import annotations

import datetime
import os
from typing import Any, Callable

import cloudpickle

import juno
from juno.air.checkpoint import Checkpoint
from juno.air.config import RunConfig, ScalingConfig
from juno.air.result import Result
from juno.air.storage import StorageContext
from juno.train.controller import Backend, RunState, TrainController
from juno.train.errors import TrainingFailedError

_STATE_FILE = "trainer.pkl"


class DataParallelTrainer:
    """Ray's ``DataParallelTrainer``: ``train_loop_per_worker(config)`` on every worker of the
    ScalingConfig, with ``datasets`` split among them and checkpoints kept per the RunConfig."""

    _backend: Backend = Backend()
    _default_backend_config: Any = None

    def __init__(self, train_loop_per_worker: Callable, *, train_loop_config: dict | None = None,
                 backend_config: Any = None, scaling_config: ScalingConfig | None = None,
                 run_config: RunConfig | None = None, datasets: dict | None = None, dataset_config: Any = None,
                 resume_from_checkpoint: Checkpoint | None = None, metadata: dict | None = None) -> None:
        if not callable(train_loop_per_worker):
            raise TypeError(f"{type(self).__name__}(train_loop_per_worker=...) must be a function taking the "
                            f"train_loop_config dict (or nothing), got {type(train_loop_per_worker).__name__}.")
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"train_loop_config must be a dict, got {type(train_loop_config).__name__}.")
        for name, value, kind in (("scaling_config", scaling_config, ScalingConfig),
                                  ("run_config", run_config, RunConfig),
                                  ("resume_from_checkpoint", resume_from_checkpoint, Checkpoint)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{type(self).__name__}({name}=...) must be a {kind.__name__}, got "
                                f"{type(value).__name__}.")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = train_loop_config
        self.backend_config = backend_config if backend_config is not None else self._default_backend_config
        self.scaling_config = scaling_config or ScalingConfig()
        self.run_config = run_config or RunConfig()
        self.datasets = _check_datasets(datasets)
        self.dataset_config = dataset_config
        self.resume_from_checkpoint = resume_from_checkpoint
        self.metadata = dict(metadata or {})
        self._restored_storage: StorageContext | None = None

    # ------------------------------------------------------------------ fit
    def fit(self) -> Result:
        """Train to the end and return the Result; raises ``TrainingFailedError`` once failures pass
        ``FailureConfig.max_failures``. Interrupting stops the workers; ``restore`` resumes later."""
        from juno.train.progress import TrainProgress

        juno.init(ignore_reinit_error=True) if not juno.is_initialized() else None
        check_fits(self.scaling_config)
        if self.datasets:
            check_cpu_left_for_data(self.scaling_config, sorted(self.datasets))
        check_shippable(self.train_loop_per_worker)
        storage = self._restored_storage or StorageContext(
            self.run_config.resolved_storage_path, self.run_config.name or self._default_name(),
            self.run_config.storage_filesystem)
        state = RunState(storage, self.run_config)
        if self._restored_storage is not None:
            state.load()
        else:
            storage.ensure_writable()
        state.config = _plain(self.train_loop_config)
        hook = getattr(self, "_tune_hook", None) or {}  # set when this run is one trial of a Tune experiment
        if hook:
            state.iteration = hook["start_iteration"]
        self._save_state(storage)
        title = f"{type(self).__name__}({getattr(self.train_loop_per_worker, '__name__', 'train_loop')})"
        view = TrainProgress(title=title, name=storage.name, num_workers=self.scaling_config.num_workers,
                             verbose=1 if self.run_config.verbose is None else self.run_config.verbose)
        controller = TrainController(
            loop=self.train_loop_per_worker, loop_config=self.train_loop_config, scaling=self.scaling_config,
            run_config=self.run_config, storage=storage, state=state, backend=self._backend,
            backend_config=self.backend_config, datasets=self.datasets,
            resume_checkpoint=self.resume_from_checkpoint, view=view,
            context={"experiment_name": storage.name, "metadata": self.metadata,
                     **({"trial_id": hook["trial_id"]} if hook else {})},
            on_failed=self._training_failed, on_iteration=hook.get("on_iteration"))
        try:
            return controller.run()
        except KeyboardInterrupt:
            view.fail(f"Interrupted. Resume with {type(self).__name__}.restore({storage.run_path!r}).")
            raise

    def _training_failed(self, failure: Any, state: RunState) -> TrainingFailedError:
        latest = state.latest_checkpoint()
        return TrainingFailedError(failure.error, rank=failure.rank, num_failures=state.failures,
                                   max_failures=self.run_config.failure_config.max_failures,
                                   checkpoint_path=latest.path if latest else None, run_path=state.storage.run_path,
                                   trainer=type(self).__name__)

    def _default_name(self) -> str:
        return f"{type(self).__name__}_{datetime.datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"

    # ------------------------------------------------------------------ restore
    def _save_state(self, storage: StorageContext) -> None:
        state = {"cls": type(self), "train_loop_per_worker": self.train_loop_per_worker,
                 "train_loop_config": self.train_loop_config, "backend_config": self.backend_config,
                 "scaling_config": self.scaling_config, "run_config": self.run_config,
                 "dataset_names": sorted(self.datasets), "resume_from_checkpoint": self.resume_from_checkpoint,
                 "metadata": self.metadata}
        storage.write_bytes(_STATE_FILE, cloudpickle.dumps(state))

    @classmethod
    def can_restore(cls, path: str | os.PathLike, storage_filesystem: Any = None) -> bool:
        """Whether ``path`` holds a run this trainer can resume."""
        return _load_state(os.fspath(path), storage_filesystem, raise_missing=False) is not None

    @classmethod
    def restore(cls, path: str | os.PathLike, train_loop_per_worker: Callable | None = None,
                train_loop_config: dict | None = None, *, datasets: dict | None = None,
                scaling_config: ScalingConfig | None = None, storage_filesystem: Any = None,
                **kwargs: Any) -> "DataParallelTrainer":
        """A trainer that continues the run kept at ``path`` from its latest checkpoint. Datasets are not
        saved with a run: pass them again. Other arguments replace the saved ones."""
        path = os.fspath(path)
        state, storage = _load_state(path, storage_filesystem, raise_missing=True)
        if not issubclass(state["cls"], cls) and not issubclass(cls, state["cls"]):
            raise TypeError(f"{path!r} holds a {state['cls'].__name__} run; restore it with "
                            f"{state['cls'].__name__}.restore(...).")
        missing = sorted(set(state["dataset_names"]) - set(datasets or {}))
        if missing:
            raise ValueError(f"The run at {path!r} was trained with datasets {state['dataset_names']}; datasets are "
                             f"not saved with a run, so pass them again: {cls.__name__}.restore(path, "
                             f"datasets={{{', '.join(repr(m) + ': ...' for m in missing)}}}).")
        trainer_cls = state["cls"] if issubclass(state["cls"], cls) else cls
        trainer = trainer_cls(train_loop_per_worker or state["train_loop_per_worker"],
                              train_loop_config=train_loop_config if train_loop_config is not None
                              else state["train_loop_config"],
                              backend_config=state["backend_config"],
                              scaling_config=scaling_config or state["scaling_config"],
                              run_config=state["run_config"], datasets=datasets,
                              resume_from_checkpoint=state["resume_from_checkpoint"], metadata=state["metadata"],
                              **kwargs)
        trainer._restored_storage = storage
        return trainer

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(train_loop_per_worker={getattr(self.train_loop_per_worker, '__name__', '?')}, "
                f"scaling_config={self.scaling_config})")


def _load_state(path: str, filesystem: Any, *, raise_missing: bool) -> Any:
    root, _, name = path.rstrip("/").rpartition("/")
    storage = StorageContext(root or ".", name, filesystem)
    data = storage.read_bytes(_STATE_FILE)
    if data is None:
        if raise_missing:
            raise FileNotFoundError(f"No training run to restore at {path!r} (it has no {_STATE_FILE}). Pass the "
                                    "run's folder: Result.path, or storage_path/name.")
        return None
    return cloudpickle.loads(data), storage


def _check_datasets(datasets: dict | None) -> dict:
    if datasets is None:
        return {}
    if not isinstance(datasets, dict):
        raise TypeError(f"datasets must be a dict of name to juno.data.Dataset, got {type(datasets).__name__}.")
    from juno.data import Dataset

    for name, ds in datasets.items():
        if not isinstance(ds, Dataset):
            raise TypeError(f"datasets[{name!r}] must be a juno.data.Dataset (juno.data.from_items(...), "
                            f"read_parquet(...)), got {type(ds).__name__}.")
    return dict(datasets)


def _plain(config: dict | None) -> dict | None:
    """The loop config as the Result shows it (values that are not plain data become their repr)."""
    if config is None:
        return None
    return {k: v if isinstance(v, (int, float, str, bool, type(None), list, dict, tuple)) else repr(v)
            for k, v in config.items()}


def check_fits(scaling: ScalingConfig) -> None:
    from juno.air.validation import check_resources_fit

    check_resources_fit(scaling.bundles(), scaling.placement_strategy, juno.nodes())


def check_cpu_left_for_data(scaling: ScalingConfig, names: list[str]) -> None:
    """Datasets are read and transformed by tasks outside the workers' placement group: with every CPU
    held by the workers they would wait forever, so say so now."""
    total = juno.cluster_resources().get("CPU", 0)
    held = scaling.total_resources.get("CPU", 0)
    if total - held < 1:
        raise ValueError(f"The datasets {names} are read and transformed by tasks that need a CPU outside the "
                         f"workers, but the run's {scaling.num_workers} workers hold {held:g} of the cluster's "
                         f"{total:g} CPUs. Leave at least one free: fewer workers, "
                         "resources_per_worker={'CPU': ...} with less, or a cluster with more CPUs.")


def check_shippable(loop: Callable) -> None:
    from juno.air.validation import check_function_shippable, check_loop_signature

    check_loop_signature(loop, what="train_loop_per_worker")
    check_function_shippable(loop, what="train_loop_per_worker")
