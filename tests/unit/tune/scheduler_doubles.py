"""Test doubles for the scheduler tests: a Trial with the contract's attributes and a scripted controller.

``Controller`` plays Tune's controller as the schedulers see it (get_trials, get_live_trials,
pause_trial, stop_trial, exploit_trial, has_resources_for_trial) and applies the scheduler's
answers the way Ray's TuneController does: PAUSE pauses, STOP stops; ``stop_trial`` tells the
scheduler ``on_trial_complete`` for a running trial and ``on_trial_remove`` for a waiting one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from juno.tune.schedulers import TrialScheduler


class Trial:
    """The attributes of juno.tune.experiment.Trial that the contract (briefs/common.md) lists."""

    PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"

    def __init__(self, trial_id: str, config: dict | None = None, path: str = "", tag: str | None = None) -> None:
        self.trial_id = trial_id
        self.config = dict(config or {})
        self.evaluated_params = dict(self.config)
        self.experiment_tag = tag if tag is not None else trial_id
        self.status = Trial.PENDING
        self.last_result: dict = {}
        self.metric_analysis: dict = {}
        self.checkpoint: Any = None
        self.path = path
        self.num_failures = 0
        self.error: str | None = None
        self.placement_group_factory = None
        self.resources = {"CPU": 1}

    def is_finished(self) -> bool:
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    def __repr__(self) -> str:
        return f"Trial({self.trial_id}, {self.status})"


class Controller:
    """Runs a scheduler over scripted trials; ``slots`` bounds how many trials run at once."""

    def __init__(self, scheduler: TrialScheduler, slots: int | None = None) -> None:
        self.scheduler = scheduler
        self.slots = slots
        self.trials: list[Trial] = []
        self.calls: list[tuple] = []  # ("pause"|"stop"|"exploit", trial_id, ...) in order

    # ------------------------------------------------------------------ the contract
    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if not t.is_finished()]

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        self.calls.append(("pause", trial.trial_id))
        trial.status = Trial.PAUSED

    def stop_trial(self, trial: Trial) -> None:
        self.calls.append(("stop", trial.trial_id))
        was = trial.status
        trial.status = Trial.TERMINATED
        if was == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        elif was in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)

    def exploit_trial(self, trial: Trial, new_config: dict, checkpoint: Any, new_tag: str) -> None:
        self.calls.append(("exploit", trial.trial_id, new_config, checkpoint, new_tag))
        trial.config = new_config
        trial.checkpoint = checkpoint
        trial.experiment_tag = new_tag

    def has_resources_for_trial(self, trial: Trial) -> bool:
        running = sum(t.status == Trial.RUNNING for t in self.trials)
        return self.slots is None or running < self.slots

    # ------------------------------------------------------------------ driving the scheduler
    def add(self, *trials: Trial) -> None:
        for trial in trials:
            self.trials.append(trial)
            self.scheduler.on_trial_add(self, trial)

    def start_next(self) -> Trial | None:
        """Start the trial the scheduler chooses (None when it chooses none)."""
        trial = self.scheduler.choose_trial_to_run(self)
        if trial is not None:
            assert trial.status in (Trial.PENDING, Trial.PAUSED), trial
            trial.status = Trial.RUNNING
        return trial

    def start_all(self) -> list[Trial]:
        started = []
        while (trial := self.start_next()) is not None:
            started.append(trial)
        return started

    def report(self, trial: Trial, iteration: int | None = None, time: float | None = None,
               checkpoint: Any = None, **metrics: Any) -> str:
        """One result of a running trial through ``on_trial_result``; the action is applied and returned."""
        assert trial.status == Trial.RUNNING, trial
        iteration = iteration if iteration is not None else trial.last_result.get("training_iteration", 0) + 1
        result = {**metrics, "training_iteration": iteration,
                  "time_total_s": float(time if time is not None else iteration),
                  "time_this_iter_s": 1.0, "trial_id": trial.trial_id, "done": False}
        if checkpoint is not None:
            trial.checkpoint = checkpoint
        action = self.scheduler.on_trial_result(self, trial, result)
        trial.last_result = result
        if action == TrialScheduler.PAUSE:
            self.pause_trial(trial)
        elif action == TrialScheduler.STOP:
            self.stop_trial(trial)
        return action

    def finish(self, trial: Trial, **metrics: Any) -> None:
        """The trial ends by itself with its last result."""
        result = {**trial.last_result, **metrics, "done": True}
        trial.last_result = result
        trial.status = Trial.TERMINATED
        self.scheduler.on_trial_complete(self, trial, result)

    def status(self) -> dict[str, str]:
        return {t.trial_id: t.status for t in self.trials}


class Float:
    """A search space Domain as Ray's interface has it (``juno.tune.search.sample`` keeps the same shape)."""

    def __init__(self, lower: float, upper: float) -> None:
        self.lower, self.upper = lower, upper

    def sample(self, spec: Any = None, size: int = 1, random_state: Any = None) -> Any:
        values = np.random.default_rng(random_state).uniform(self.lower, self.upper, size)
        return float(values[0]) if size == 1 else [float(v) for v in values]


class Categorical:
    def __init__(self, categories: list) -> None:
        self.categories = list(categories)

    def sample(self, spec: Any = None, size: int = 1, random_state: Any = None) -> Any:
        picks = np.random.default_rng(random_state).integers(len(self.categories), size=size)
        values = [self.categories[int(i)] for i in picks]
        return values[0] if size == 1 else values


class Function:
    """``tune.sample_from``: a Domain around a function of the config."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def sample(self, spec: Any = None, size: int = 1, random_state: Any = None) -> Any:
        return self.func(spec)
