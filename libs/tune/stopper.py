"""When trials (or the whole experiment) stop: Ray's ``Stopper`` classes, and the ``stop=`` forms of
RunConfig (a dict of thresholds, a function of ``(trial_id, result)``, or a Stopper)."""
from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from typing import Any, Callable, Mapping


class Stopper:
    """``__call__(trial_id, result) -> bool`` stops one trial; ``stop_all() -> bool`` the experiment."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        raise NotImplementedError

    def stop_all(self) -> bool:
        raise NotImplementedError


class CombinedStopper(Stopper):
    """Stops when any of its stoppers does."""

    def __init__(self, *stoppers: Stopper) -> None:
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict) -> bool:
        return any([s(trial_id, result) for s in self._stoppers])  # every stopper sees every result

    def stop_all(self) -> bool:
        return any(s.stop_all() for s in self._stoppers)


class FunctionStopper(Stopper):
    """A function of ``(trial_id, result)``."""

    def __init__(self, function: Callable[[str, dict], bool]) -> None:
        self._fn = function

    def __call__(self, trial_id: str, result: dict) -> bool:
        return bool(self._fn(trial_id, result))

    def stop_all(self) -> bool:
        return False

    @classmethod
    def is_valid_function(cls, fn: Any) -> bool:
        return callable(fn) and not isinstance(fn, Stopper)


class DictStopper(Stopper):
    """``{"training_iteration": 10, "mean_accuracy": 0.98}``: a trial stops when any reported value reaches
    its threshold (``result[key] >= value``), as Ray's ``stop`` dict does; keys may be nested (``a/b``)."""

    def __init__(self, criteria: Mapping[str, Any]) -> None:
        self.criteria = dict(criteria)

    def __call__(self, trial_id: str, result: dict) -> bool:
        from juno.air.storage import metric_value

        for key, threshold in self.criteria.items():
            try:
                value = metric_value(result, key)
            except KeyError:
                continue
            if isinstance(value, (int, float)) and value >= threshold:
                return True
        return False

    def stop_all(self) -> bool:
        return False


class MaximumIterationStopper(Stopper):
    def __init__(self, max_iter: int) -> None:
        self._max_iter = max_iter

    def __call__(self, trial_id: str, result: dict) -> bool:
        return result.get("training_iteration", 0) >= self._max_iter

    def stop_all(self) -> bool:
        return False


class TrialPlateauStopper(Stopper):
    """Stops a trial whose ``metric`` has varied less than ``std`` over its last ``num_results``."""

    def __init__(self, metric: str, std: float = 0.01, num_results: int = 4, grace_period: int = 4,
                 metric_threshold: float | None = None, mode: str | None = None) -> None:
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError("TrialPlateauStopper(metric_threshold=...) needs mode='min' or 'max'.")
        self._metric, self._std, self._num, self._grace = metric, std, num_results, grace_period
        self._threshold, self._mode = metric_threshold, mode
        self._iters: dict[str, int] = defaultdict(int)
        self._window: dict[str, deque] = defaultdict(lambda: deque(maxlen=num_results))

    def __call__(self, trial_id: str, result: dict) -> bool:
        value = result.get(self._metric)
        if value is None:
            return False
        self._iters[trial_id] += 1
        self._window[trial_id].append(value)
        if self._iters[trial_id] < self._grace or len(self._window[trial_id]) < self._num:
            return False
        if self._threshold is not None:
            past = value < self._threshold if self._mode == "min" else value > self._threshold
            if not past:
                return False
        values = list(self._window[trial_id])
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) <= self._std

    def stop_all(self) -> bool:
        return False


class ExperimentPlateauStopper(Stopper):
    """Stops the experiment when the best ``top`` values of ``metric`` have varied less than ``std``
    for ``patience`` results."""

    def __init__(self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ExperimentPlateauStopper(mode={mode!r}) must be 'min' or 'max'.")
        self._metric, self._std, self._top, self._mode, self._patience = metric, std, top, mode, patience
        self._values: list[float] = []
        self._flat = 0

    def __call__(self, trial_id: str, result: dict) -> bool:
        value = result.get(self._metric)
        if value is None:
            return False
        self._values = sorted(self._values + [value], reverse=self._mode == "max")[: self._top]
        if len(self._values) == self._top:
            mean = sum(self._values) / len(self._values)
            spread = math.sqrt(sum((v - mean) ** 2 for v in self._values) / len(self._values))
            self._flat = self._flat + 1 if spread <= self._std else 0
        return self.stop_all()

    def stop_all(self) -> bool:
        return len(self._values) == self._top and self._flat > self._patience


class TimeoutStopper(Stopper):
    """Stops the experiment after ``timeout`` seconds (a number or a ``datetime.timedelta``)."""

    def __init__(self, timeout: Any) -> None:
        seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ValueError(f"TimeoutStopper(timeout=...) must be a positive number of seconds, got {timeout!r}.")
        self._budget = float(seconds)
        self._start = time.monotonic()

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.monotonic() - self._start >= self._budget


def as_stopper(stop: Any) -> Stopper | None:
    """RunConfig's ``stop`` as a Stopper (None when nothing stops trials early)."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, Mapping):
        return DictStopper(stop)
    if callable(stop):
        return FunctionStopper(stop)
    if isinstance(stop, (list, tuple)) and all(isinstance(s, Stopper) for s in stop):
        return CombinedStopper(*stop)
    raise TypeError(f"RunConfig(stop=...) must be a dict of thresholds, a function (trial_id, result) -> bool or a "
                    f"tune.Stopper, got {type(stop).__name__}.")
