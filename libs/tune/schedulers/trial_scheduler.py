"""``TrialScheduler``, the interface between Tune's controller and a scheduling algorithm, and ``FIFOScheduler``.

A scheduler is a pure decision maker: the controller tells it about trials (added, a result, complete,
error, removed) and asks it which trial to start next; it answers CONTINUE, PAUSE or STOP per result
and acts on other trials only through the few controller methods of the contract (``pause_trial``,
``stop_trial``, ``exploit_trial``). It keeps trial ids, never Trial objects, in its state, so that
``save``/``restore`` carry it over to the Trial objects of a restored experiment.
"""
from __future__ import annotations

import math
import os
from typing import Any

import cloudpickle

# Trial.status values (juno.tune.experiment.Trial uses the same strings).
PENDING = "PENDING"
RUNNING = "RUNNING"
PAUSED = "PAUSED"
TERMINATED = "TERMINATED"
ERROR = "ERROR"

MODES = ("min", "max")

# Keys Tune adds to every result; a result holding only these (say the bare "done" marker some
# trainables end with) carries no metric, so schedulers skip it instead of failing on it.
AUTO_RESULT_KEYS = frozenset({
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "done", "config",
    "date", "hostname", "node_ip", "pid", "time_since_restore", "iterations_since_restore",
    "timesteps_since_restore", "timesteps_total", "episodes_total", "experiment_id", "experiment_tag",
    "checkpoint_dir_name", "should_checkpoint",
})


def check_mode(scheduler: str, mode: str | None) -> None:
    """Fail early on a mode Tune does not know."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"{scheduler}: unknown mode {mode!r}; mode must be 'min' or 'max' (or None to take "
                         "it from tune.TuneConfig(mode=...)).")


def has_user_metrics(result: dict | None) -> bool:
    return bool(result) and any(key not in AUTO_RESULT_KEYS for key in result)


class TrialScheduler:
    """Ray Tune's scheduler interface: decides, from the results trials report, which run on, pause or stop."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    NOOP = "NOOP"  # the scheduler already acted on the trial (PBT's exploit): the controller does nothing more

    _metric: str | None = None
    _mode: str | None = None
    _supports_buffered_results = True

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    @property
    def supports_buffered_results(self) -> bool:
        return self._supports_buffered_results

    @property
    def _metric_op(self) -> float:
        """+1 when higher is better, -1 when lower is: scores are always maximised inside."""
        return 1.0 if self._mode == "max" else -1.0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Take metric and mode from the TuneConfig; False when the scheduler already has its own (Ray then raises)."""
        if (self._metric and metric) or (self._mode and mode):
            return False
        check_mode(type(self).__name__, mode)
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    # ------------------------------------------------------------------ events from the controller
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        raise NotImplementedError

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        raise NotImplementedError

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        raise NotImplementedError

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        raise NotImplementedError

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        raise NotImplementedError

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        raise NotImplementedError

    def debug_string(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ checks shared by the schedulers
    def _require_metric_and_mode(self) -> None:
        """At the first result: a scheduler that still lacks metric or mode cannot rank trials."""
        missing = [name for name, value in (("metric", self._metric), ("mode", self._mode)) if not value]
        if missing:
            what = " and ".join(f"`{name}`" for name in missing)
            raise ValueError(
                f"{type(self).__name__} has no {what}: pass {' and '.join(f'{n}=...' for n in missing)} when "
                f"creating it, or to tune.TuneConfig({', '.join(f'{n}=...' for n in missing)}).")

    def _usable_result(self, trial: Any, result: dict | None, time_attr: str) -> bool:
        """True when ``result`` carries this scheduler's metric and time attribute.

        A result with user metrics but without the scheduler's metric is a mistake (a typo, or a
        metric reported under another name): it raises, naming the metric and the keys the result has.
        A result with only Tune's own keys is skipped, and so is a last result (``done``) without
        them: the trial is over, and the results before it were checked.
        """
        if not has_user_metrics(result):
            return False
        self._require_metric_and_mode()
        for kind, key in (("metric", self._metric), ("time_attr", time_attr)):
            if key not in result:
                if result.get("done"):
                    return False
                raise ValueError(
                    f"{type(self).__name__}: trial {getattr(trial, 'trial_id', trial)} reported a result without "
                    f"the {kind} {key!r}; the result has {sorted(result)}. Report {key!r} with tune.report(...) "
                    f"or give the scheduler the name you report ({kind}=...).")
        value = result[self._metric]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return True

    # ------------------------------------------------------------------ persistence (Tuner.restore)
    def save(self, checkpoint_path: str) -> None:
        """Pickle the scheduler's state (trial ids, brackets, scores) to ``checkpoint_path``."""
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint_path)), exist_ok=True)
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump({"scheduler": type(self).__name__, "state": dict(self.__dict__)}, f)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state ``save`` wrote; a file of another scheduler class is refused."""
        with open(checkpoint_path, "rb") as f:
            saved = cloudpickle.load(f)
        if not isinstance(saved, dict) or saved.get("scheduler") != type(self).__name__:
            found = saved.get("scheduler") if isinstance(saved, dict) else type(saved).__name__
            raise ValueError(f"{checkpoint_path} holds the state of {found}, not of {type(self).__name__}: "
                             "restore an experiment with the scheduler it was run with.")
        self.__dict__.update(saved["state"])


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were added, never pausing or stopping one early."""

    def __init__(self) -> None:
        super().__init__()

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        pass

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        pass

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        pass

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        pass

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """The first PENDING trial that fits, else the first PAUSED one."""
        trials = tune_controller.get_trials()
        for status in (PENDING, PAUSED):
            for trial in trials:
                if trial.status == status and tune_controller.has_resources_for_trial(trial):
                    return trial
        return None

    def debug_string(self) -> str:
        return "Using FIFO scheduling algorithm."
