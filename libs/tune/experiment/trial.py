"""``Trial``: one configuration of an experiment, its state and its results so far.

Schedulers and searchers read trials; only the controller changes them. The state that survives a
restore (``to_state``/``from_state``) is plain JSON-able data plus the latest checkpoint's path.
"""
from __future__ import annotations

import math
import time
from typing import Any

from juno.air.checkpoint import Checkpoint


class Trial:
    """Ray's ``Trial``: ``trial_id``, ``config``, ``status``, ``last_result``, ``checkpoint`` ..."""

    PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"

    def __init__(self, trial_id: str, config: dict, *, experiment_tag: str = "", evaluated_params: dict | None = None,
                 resources: dict | None = None, path: str = "", trial_name: str | None = None) -> None:
        self.trial_id = trial_id
        self.config = config
        self.experiment_tag = experiment_tag
        self.evaluated_params = dict(evaluated_params or {})
        self.resources = dict(resources or {})
        self.path = path
        self.trial_name = trial_name or trial_id
        self.status = Trial.PENDING
        self.last_result: dict = {}
        self.metric_analysis: dict[str, dict] = {}
        self.metric_n_steps: dict[str, dict] = {}
        self.checkpoint: Checkpoint | None = None
        self.num_failures = 0
        self.error: str | None = None
        self.error_object: BaseException | None = None
        self.start_time: float | None = None
        self.iterations = 0  # training_iteration of the last result (continues across restarts)

    # ------------------------------------------------------------------ results
    def update_last_result(self, result: dict) -> None:
        """Record a result: the latest, and per numeric metric its min, max, average and recent averages."""
        self.last_result = result
        self.iterations = result.get("training_iteration", self.iterations)
        for key, value in result.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            stats = self.metric_analysis.get(key)
            recent = self.metric_n_steps.setdefault(key, {"5": [], "10": []})
            for n, window in recent.items():
                window.append(value)
                del window[:-int(n)]
            if stats is None:
                self.metric_analysis[key] = {"max": value, "min": value, "avg": value, "last": value,
                                             "last-5-avg": value, "last-10-avg": value, "count": 1}
                continue
            count = stats["count"] + 1
            stats.update(max=max(stats["max"], value), min=min(stats["min"], value), last=value, count=count,
                         avg=stats["avg"] + (value - stats["avg"]) / count,
                         **{f"last-{n}-avg": sum(w) / len(w) for n, w in recent.items()})

    def is_finished(self) -> bool:
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    @property
    def local_path(self) -> str:
        return self.path

    def set_status(self, status: str) -> None:
        if status == Trial.RUNNING and self.start_time is None:
            self.start_time = time.time()
        self.status = status

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict:
        return {"trial_id": self.trial_id, "config": self.config, "experiment_tag": self.experiment_tag,
                "evaluated_params": self.evaluated_params, "resources": self.resources, "path": self.path,
                "trial_name": self.trial_name, "status": self.status, "last_result": self.last_result,
                "metric_analysis": self.metric_analysis, "metric_n_steps": self.metric_n_steps,
                "checkpoint": self.checkpoint.path if self.checkpoint else None, "num_failures": self.num_failures,
                "error": self.error, "iterations": self.iterations}

    @classmethod
    def from_state(cls, state: dict, filesystem: Any = None) -> "Trial":
        trial = cls(state["trial_id"], state["config"], experiment_tag=state["experiment_tag"],
                    evaluated_params=state["evaluated_params"], resources=state["resources"], path=state["path"],
                    trial_name=state.get("trial_name"))
        for key in ("status", "last_result", "metric_analysis", "metric_n_steps", "num_failures", "error",
                    "iterations"):
            setattr(trial, key, state[key])
        trial.checkpoint = Checkpoint(state["checkpoint"], filesystem) if state["checkpoint"] else None
        return trial

    def __repr__(self) -> str:
        return self.trial_name

    def __str__(self) -> str:
        return self.trial_name
