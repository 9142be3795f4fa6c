"""``Tuner`` and ``TuneConfig``: an experiment over a search space, run by the controller.

``fit()`` checks what it can before any trial starts (mode, the scheduler's and searcher's metric,
the storage path), saves what ``Tuner.restore`` needs, runs the trials, and returns a ResultGrid,
also when interrupted (the running trials are paused with a checkpoint, and ``Tuner.restore``
resumes them).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from typing import Any, Callable

import cloudpickle

import juno
from juno.air.config import RunConfig
from juno.air.storage import StorageContext
from juno.tune.execution.controller import TuneController, _FailFast, restore_scheduler
from juno.tune.experiment.trial import Trial
from juno.tune.result_grid import ResultGrid
from juno.tune.stopper import as_stopper
from juno.tune.trainable.function import resolve, trainable_name

logger = logging.getLogger("juno.tune")
_STATE_FILE = "tuner.pkl"


@dataclasses.dataclass
class TuneConfig:
    """How the experiment searches (Ray's ``TuneConfig``): the metric and mode, how many samples, the
    search algorithm and scheduler, how many trials at once, a time budget."""
    metric: str | None = None
    mode: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | datetime.timedelta | None = None
    reuse_actors: bool | None = None  # None: reuse for function trainables (Ray 2.60: never), not for classes
    trial_name_creator: Callable | None = None
    trial_dirname_creator: Callable | None = None
    chdir_to_trial_dir: bool = False

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ValueError(f"TuneConfig(mode={self.mode!r}): mode must be 'min' or 'max'.")
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int) or self.num_samples == 0 \
                or self.num_samples < -1:
            raise ValueError(f"TuneConfig(num_samples=...) must be a positive int (or -1: until the time budget "
                             f"or the searcher ends), got {self.num_samples!r}.")
        if self.max_concurrent_trials is not None and (not isinstance(self.max_concurrent_trials, int)
                                                       or self.max_concurrent_trials < 1):
            raise ValueError(f"TuneConfig(max_concurrent_trials=...) must be a positive int, got "
                             f"{self.max_concurrent_trials!r}.")


class Tuner:
    """Ray's ``Tuner(trainable, param_space=..., tune_config=..., run_config=...)``."""

    def __init__(self, trainable: Any = None, *, param_space: dict | None = None, tune_config: TuneConfig | None = None,
                 run_config: RunConfig | None = None, _restored: dict | None = None) -> None:
        if trainable is None:
            raise TypeError("Tuner needs a trainable: a function taking the config, a tune.Trainable class, a "
                            "trainer (TorchTrainer(...)) or a registered name.")
        self.trainable = resolve(trainable)
        if param_space is not None and not isinstance(param_space, dict) and hasattr(param_space, "to_dict"):
            param_space = param_space.to_dict()  # an RL AlgorithmConfig; search spaces inside it still sample
        self.param_space = dict(param_space or {})
        self.tune_config = tune_config or TuneConfig()
        self.run_config = run_config or RunConfig()
        if not isinstance(self.tune_config, TuneConfig):
            raise TypeError(f"Tuner(tune_config=...) must be a TuneConfig, got {type(self.tune_config).__name__}.")
        if not isinstance(self.run_config, RunConfig):
            raise TypeError(f"Tuner(run_config=...) must be a RunConfig, got {type(self.run_config).__name__}.")
        self._restored = _restored
        self._results: ResultGrid | None = None

    # ------------------------------------------------------------------ fit
    def fit(self) -> ResultGrid:
        from juno.tune.progress import TuneProgress

        juno.init(ignore_reinit_error=True) if not juno.is_initialized() else None
        metric, mode = self._metric_and_mode()
        storage = self._storage()
        search_alg, scheduler = self._search_alg_and_scheduler(metric, mode)
        self._save_tuner(storage)
        title = f"Tuner({trainable_name(self.trainable)})"
        view = TuneProgress(title=title, name=storage.name, metric=metric, mode=mode,
                            num_samples=self.tune_config.num_samples if self.tune_config.num_samples > 0 else None,
                            verbose=1 if self.run_config.verbose is None else self.run_config.verbose)
        if self.run_config.progress_reporter is not None:
            view.configure_from_reporter(self.run_config.progress_reporter)
        trials, state = self._restored_trials()
        controller = TuneController(trainable=self.trainable, search_alg=search_alg, scheduler=scheduler,
                                    tune_config=self.tune_config, run_config=self.run_config, storage=storage,
                                    view=view, stopper=as_stopper(self.run_config.stop), trials=trials, state=state)
        try:
            trials = controller.run()
        except _FailFast as e:
            trials = controller.trials
            view.fail(f"Trial {e.trial} failed and FailureConfig(fail_fast=True) ended the experiment.")
        except BaseException as e:
            view.fail(f"{type(e).__name__}: {e}")
            raise
        else:
            if controller.interrupted:
                view.fail(f"Interrupted: the running trials were paused. Resume with "
                          f"Tuner.restore({storage.run_path!r}, trainable=...).")
                logger.warning("Experiment interrupted; Tuner.restore(%r, trainable=...) resumes it.", storage.run_path)
            else:
                view.finish(_summary(trials, metric, mode))
        self._trials = trials
        self._results = ResultGrid(trials, experiment_path=storage.run_path, metric=metric, mode=mode,
                                   filesystem=None if storage.local else storage.filesystem)
        return self._results

    def get_results(self) -> ResultGrid:
        if self._results is None:
            raise RuntimeError("get_results() before fit(): call tuner.fit() first, or Tuner.restore(path, ...) "
                               "then fit().")
        return self._results

    def _metric_and_mode(self) -> tuple[str | None, str | None]:
        """The TuneConfig's, else what the scheduler or searcher was given (tutorials set it only there)."""
        metric, mode = self.tune_config.metric, self.tune_config.mode
        for part in (self.tune_config.scheduler, self.tune_config.search_alg):
            metric = metric or getattr(part, "metric", None) or getattr(part, "_metric", None)
            mode = mode or getattr(part, "mode", None) or getattr(part, "_mode", None)
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}: mode must be 'min' or 'max'.")
        return metric, mode

    def _search_alg_and_scheduler(self, metric: str | None, mode: str | None) -> tuple[Any, Any]:
        from juno.tune.schedulers import FIFOScheduler
        from juno.tune.search import create_search_algorithm

        search_alg = create_search_algorithm(self.tune_config.search_alg, self.tune_config.max_concurrent_trials)
        search_alg.set_search_properties(metric, mode, self.param_space, num_samples=self.tune_config.num_samples)
        scheduler = self.tune_config.scheduler or FIFOScheduler()
        scheduler.set_search_properties(metric, mode)
        saved = (self._restored or {}).get("search")
        if saved is not None:  # where the search and the scheduler were when the experiment stopped
            search_alg.set_state(saved["search"])
            restore_scheduler(scheduler, saved["scheduler"])
        return search_alg, scheduler

    # ------------------------------------------------------------------ storage and restore
    def _storage(self) -> StorageContext:
        if self._restored is not None:
            return self._restored["storage"]
        name = self.run_config.name or f"{trainable_name(self.trainable)}_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}"
        storage = StorageContext(self.run_config.resolved_storage_path, name, self.run_config.storage_filesystem)
        storage.ensure_writable()
        return storage

    def _save_tuner(self, storage: StorageContext) -> None:
        """The trainable and the experiment's configuration, for Tuner.restore; what cannot be pickled
        is left out (restore then asks for it)."""
        state = {"trainable": self.trainable, "param_space": self.param_space, "tune_config": self.tune_config,
                 "run_config": self.run_config}
        for leave_out in ((), ("trainable",), ("trainable", "param_space", "tune_config")):
            try:
                data = cloudpickle.dumps({k: (None if k in leave_out else v) for k, v in state.items()})
            except Exception:  # noqa: BLE001 - try again with less
                continue
            storage.write_bytes(_STATE_FILE, data)
            return

    def _restored_trials(self) -> tuple[list[Trial] | None, dict | None]:
        if self._restored is None:
            return None, None
        return self._restored["trials"], self._restored["state"]

    @classmethod
    def can_restore(cls, path: str | os.PathLike, storage_filesystem: Any = None) -> bool:
        root, _, name = os.fspath(path).rstrip("/").rpartition("/")
        return StorageContext(root, name, storage_filesystem).read_bytes("experiment_state.json") is not None

    @classmethod
    def restore(cls, path: str | os.PathLike, trainable: Any = None, *, resume_unfinished: bool = True,
                resume_errored: bool = False, restart_errored: bool = False, param_space: dict | None = None,
                storage_filesystem: Any = None, **_: Any) -> "Tuner":
        """Continue the experiment kept at ``path``: finished trials stay as they are, unfinished ones
        resume from their last checkpoint (``resume_unfinished``), errored ones resume
        (``resume_errored``) or start over (``restart_errored``). Pass the trainable again."""
        path = os.fspath(path).rstrip("/")
        root, _, name = path.rpartition("/")
        storage = StorageContext(root, name, storage_filesystem)
        raw = storage.read_bytes("experiment_state.json")
        if raw is None:
            raise FileNotFoundError(f"No Tune experiment to restore at {path!r} (no experiment_state.json). Pass "
                                    "the experiment's folder: ResultGrid.experiment_path, or storage_path/name.")
        saved = cloudpickle.loads(storage.read_bytes(_STATE_FILE) or cloudpickle.dumps({}))
        trainable = trainable or saved.get("trainable")
        if trainable is None:
            raise ValueError(f"Tuner.restore({path!r}) needs the trainable again: Tuner.restore(path, "
                             "trainable=my_function).")
        state = json.loads(raw.decode())
        fs = None if storage.local else storage.filesystem
        trials = [Trial.from_state(t, fs) for t in state["trials"]]
        for trial in trials:
            if trial.status in (Trial.RUNNING, Trial.PAUSED, Trial.PENDING):
                if resume_unfinished:
                    trial.set_status(Trial.PENDING)
                else:
                    trial.set_status(Trial.TERMINATED)
            elif trial.status == Trial.ERROR and (resume_errored or restart_errored):
                trial.error, trial.num_failures = None, 0
                if restart_errored:
                    trial.checkpoint, trial.last_result, trial.iterations = None, {}, 0
                trial.set_status(Trial.PENDING)
        pickled = storage.read_bytes("search_state.pkl")
        search = cloudpickle.loads(pickled) if pickled is not None else None
        restored = {"storage": storage, "trials": trials, "state": state, "search": search}
        return cls(trainable, param_space=param_space if param_space is not None else saved.get("param_space"),
                   tune_config=saved.get("tune_config") or TuneConfig(),
                   run_config=saved.get("run_config") or RunConfig(), _restored=restored)


def _summary(trials: list[Trial], metric: str | None, mode: str | None) -> dict:
    summary = {"trials": len(trials), "terminated": sum(t.status == Trial.TERMINATED for t in trials),
               "errors": sum(t.status == Trial.ERROR for t in trials)}
    scored = [t for t in trials if metric and isinstance(t.last_result.get(metric), (int, float))]
    if scored and mode:
        best = (min if mode == "min" else max)(scored, key=lambda t: t.last_result[metric])
        summary["best"] = {"trial_id": best.trial_id, metric: best.last_result[metric],
                           "config": best.evaluated_params or best.config}
    return summary
