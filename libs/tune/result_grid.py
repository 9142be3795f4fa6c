"""``ResultGrid``: an experiment's results, one ``Result`` per trial, and the best of them."""
from __future__ import annotations

import math
from typing import Any, Iterator

from juno.air.result import Result, flatten_dict, metrics_dataframe, read_reports
from juno.air.storage import StorageContext, metric_value
from juno.tune.experiment.trial import Trial

SCOPES = ("last", "avg", "last-5-avg", "last-10-avg", "all")


class ResultGrid:
    """Iterate it, index it, or ask for ``get_best_result``; ``errors`` lists the trials' exceptions."""

    def __init__(self, trials: list[Trial], *, experiment_path: str, metric: str | None = None, mode: str | None = None,
                 filesystem: Any = None) -> None:
        self._trials = list(trials)
        self._metric, self._mode = metric, mode
        self.experiment_path = experiment_path
        self.filesystem = filesystem
        self._results = [self._result(t) for t in self._trials]

    def _result(self, trial: Trial) -> Result:
        root, _, name = trial.path.rpartition("/")
        storage = StorageContext(root, name, self.filesystem)
        reports = read_reports(storage)
        return Result(metrics=dict(trial.last_result) if trial.last_result else {}, checkpoint=trial.checkpoint,
                      error=_trial_error(trial), path=trial.path, metrics_dataframe=metrics_dataframe(reports),
                      best_checkpoints=[], config=trial.config, filesystem=self.filesystem)

    # ------------------------------------------------------------------ the best
    def get_best_result(self, metric: str | None = None, mode: str | None = None, scope: str = "last",
                        filter_nan_and_inf: bool = True) -> Result:
        """The trial with the best ``metric`` (the TuneConfig's, else the scheduler's or searcher's when not
        given) by ``mode``; ``scope`` "last" compares each trial's last value, "all" its best value ever,
        "avg"/"last-5-avg"/"last-10-avg" its averages."""
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric or not mode:
            raise ValueError("get_best_result needs a metric and a mode: pass get_best_result(metric='loss', "
                             "mode='min'), or set them in TuneConfig(metric=..., mode=...).")
        if mode not in ("min", "max"):
            raise ValueError(f"get_best_result(mode={mode!r}): mode must be 'min' or 'max'.")
        if scope not in SCOPES:
            raise ValueError(f"get_best_result(scope={scope!r}): scope must be one of {', '.join(SCOPES)}.")
        best, best_value = None, None
        for trial, result in zip(self._trials, self._results):
            value = _scoped(trial, metric, mode, scope)
            if value is None or (filter_nan_and_inf and not math.isfinite(value)):
                continue
            if best_value is None or (value < best_value if mode == "min" else value > best_value):
                best, best_value = result, value
        if best is None:
            seen = sorted({k for t in self._trials for k in t.last_result})
            raise ValueError(f"No trial reported the metric {metric!r} (with a finite value); the trials reported "
                             f"{seen or 'nothing'}. Pass a metric they report to get_best_result(metric=...).")
        return best

    def get_dataframe(self, filter_metric: str | None = None, filter_mode: str | None = None) -> Any:
        """One row per trial: its last result (or, with ``filter_metric``/``filter_mode``, its result with the
        best value of that metric), with ``config/...`` columns."""
        import pandas as pd

        rows = []
        for trial, result in zip(self._trials, self._results):
            row = dict(trial.last_result)
            if filter_metric and result.metrics_dataframe is not None and filter_metric in result.metrics_dataframe:
                frame = result.metrics_dataframe.dropna(subset=[filter_metric])
                if len(frame):
                    index = frame[filter_metric].idxmin() if filter_mode == "min" else frame[filter_metric].idxmax()
                    row = frame.loc[index].to_dict()
            row.pop("config", None)
            row.update({f"config/{k}": v for k, v in flatten_dict(trial.config).items()})
            row.update({"trial_id": trial.trial_id, "logdir": trial.path})
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ collection
    @property
    def errors(self) -> list[BaseException]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return sum(t.status == Trial.ERROR for t in self._trials)

    @property
    def num_terminated(self) -> int:
        return sum(t.status == Trial.TERMINATED for t in self._trials)

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, index: int) -> Result:
        return self._results[index]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __repr__(self) -> str:
        return (f"ResultGrid<{len(self)} trials: {self.num_terminated} terminated, {self.num_errors} errored, "
                f"path={self.experiment_path!r}>")


class TuneError(RuntimeError):
    """A trial's failure, as its Result's ``error``: the worker's error text, the cause attached."""


def _trial_error(trial: Trial) -> BaseException | None:
    if trial.status != Trial.ERROR:
        return None
    error = TuneError(f"Trial {trial.trial_id} failed after {trial.num_failures} attempt(s):\n{trial.error}")
    error.__cause__ = trial.error_object
    return error


def _scoped(trial: Trial, metric: str, mode: str, scope: str) -> float | None:
    if scope == "last":
        try:
            value = metric_value(trial.last_result, metric)
        except KeyError:
            return None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    stats = trial.metric_analysis.get(metric)
    if not stats:
        return None
    return stats[mode] if scope == "all" else stats[scope]
