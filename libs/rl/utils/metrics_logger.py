"""``MetricsLogger``: RLlib's way for user code (callbacks) to log custom metrics.

``metrics_logger.log_value("pole_angle", angle, reduce="mean", window=100)`` inside a callback; the
reduced value shows up in ``train()``'s result (``result["env_runners"]["pole_angle"]`` for values
logged in the env runners). Pure: values in, reduced values out, no processes. An env runner's
logger (``keep_records=True``) also keeps every value it was given since the last ``pop_records()``, so the algorithm can
log the same values, in order, into its own logger (runners' values meet there, as in RLlib).
"""
from __future__ import annotations

import collections
import contextlib
import math
import time
from typing import Any, Iterator

_REDUCES = ("mean", "min", "max", "sum", None)
_DEFAULT_EMA = 0.01  # RLlib's: a "mean" with neither window nor ema_coeff is an EMA with this coefficient


def _number(key: Any, value: Any) -> float:
    if hasattr(value, "item"):  # numpy scalars, 0-d arrays and tensors
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"MetricsLogger: the value of {key!r} must be a number to reduce it, got "
                        f"{type(value).__name__}; log it with reduce=None to keep a list of any values.")
    return float(value)


class _Stat:
    """The values of one key and how they reduce to one number (or a list, with reduce=None)."""

    def __init__(self, reduce: str | None, window: int | None, ema_coeff: float | None,
                 clear_on_reduce: bool) -> None:
        self.reduce_method, self.window, self.clear_on_reduce = reduce, window, clear_on_reduce
        self.ema_coeff = ema_coeff if ema_coeff is not None else _DEFAULT_EMA
        self._keeps_values = reduce is None or window is not None
        self.values: collections.deque = collections.deque(maxlen=window)
        self.acc: float | None = None

    def push(self, value: Any) -> None:
        if self._keeps_values:
            self.values.append(value)
        elif self.acc is None:
            self.acc = value
        elif self.reduce_method == "mean":
            self.acc = (1.0 - self.ema_coeff) * self.acc + self.ema_coeff * value
        elif self.reduce_method == "sum":
            self.acc += value
        else:
            self.acc = min(self.acc, value) if self.reduce_method == "min" else max(self.acc, value)

    def peek(self) -> Any:
        if self.reduce_method is None:
            return list(self.values)
        if not self._keeps_values:
            return math.nan if self.acc is None else self.acc
        if not self.values:
            return math.nan
        values = list(self.values)
        return {"mean": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}[self.reduce_method](values)

    def reduce(self) -> Any:
        value = self.peek()
        if self.clear_on_reduce or self.reduce_method is None:
            self.values.clear()
            self.acc = None
        return value

    def settings(self) -> dict:
        return {"reduce": self.reduce_method, "window": self.window,
                "ema_coeff": self.ema_coeff if self.reduce_method == "mean" and not self._keeps_values else None,
                "clear_on_reduce": self.clear_on_reduce}


def _key(key: Any) -> tuple:
    """A key is a string, or a tuple of strings for a nested entry (``("a", "b")`` -> ``result["a"]["b"]``)."""
    parts = key if isinstance(key, tuple) else (key,)
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise TypeError(f"MetricsLogger: a key is a non-empty string or a tuple of them, got {key!r}.")
    return parts


class MetricsLogger:
    """Custom metrics, reduced by ``reduce`` ("mean", "min", "max", "sum" or None for a list of values)
    over the last ``window`` values, or over every value (``"mean"``: an exponential moving average with
    ``ema_coeff``, 0.01 unless given, as RLlib does). ``clear_on_reduce=True`` starts each iteration
    afresh (e.g. a per-iteration count with ``reduce="sum"``). A key's first log fixes its settings."""

    def __init__(self, keep_records: bool = False) -> None:
        self._stats: dict[tuple, _Stat] = {}
        self._records: list[tuple] | None = [] if keep_records else None

    def log_value(self, key: str | tuple, value: Any, reduce: str | None = "mean", *, window: int | None = None,
                  ema_coeff: float | None = None, clear_on_reduce: bool = False, **_ignored: Any) -> None:
        """Log one value of ``key``."""
        parts = _key(key)
        stat = self._stats.get(parts)
        if stat is None:
            if reduce not in _REDUCES:
                raise ValueError(f"MetricsLogger.log_value({key!r}, reduce={reduce!r}): reduce is one of "
                                 "'mean', 'min', 'max', 'sum' or None.")
            if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
                raise ValueError(f"MetricsLogger.log_value({key!r}, window={window!r}): a positive int or None.")
            if ema_coeff is not None:
                if window is not None or reduce != "mean":
                    raise ValueError(f"MetricsLogger.log_value({key!r}): ema_coeff goes with reduce='mean' and no "
                                     "window; give one or the other.")
                if not (isinstance(ema_coeff, (int, float)) and 0 < ema_coeff <= 1):
                    raise ValueError(f"MetricsLogger.log_value({key!r}, ema_coeff={ema_coeff!r}): a number in (0, 1].")
            stat = self._stats[parts] = _Stat(reduce, window, ema_coeff, bool(clear_on_reduce))
        if stat.reduce_method is not None:
            value = _number(key, value)
        stat.push(value)
        if self._records is not None:
            self._records.append((parts, value, stat.settings()))

    def log_dict(self, stats_dict: dict, *, key: str | tuple | None = None, reduce: str | None = "mean",
                 window: int | None = None, ema_coeff: float | None = None, clear_on_reduce: bool = False,
                 **_ignored: Any) -> None:
        """Log every leaf of a (nested) dict, under ``key`` if given."""
        prefix = () if key is None else _key(key)
        for name, value in stats_dict.items():
            if isinstance(value, dict):
                self.log_dict(value, key=prefix + (name,), reduce=reduce, window=window, ema_coeff=ema_coeff,
                              clear_on_reduce=clear_on_reduce)
            else:
                self.log_value(prefix + (name,), value, reduce, window=window, ema_coeff=ema_coeff,
                               clear_on_reduce=clear_on_reduce)

    @contextlib.contextmanager
    def log_time(self, key: str | tuple, reduce: str | None = "mean", *, window: int | None = None,
                 ema_coeff: float | None = None, clear_on_reduce: bool = False, **_ignored: Any) -> Iterator[None]:
        """``with metrics_logger.log_time("env_reset_s"): ...`` logs the block's seconds."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.log_value(key, time.perf_counter() - started, reduce, window=window, ema_coeff=ema_coeff,
                           clear_on_reduce=clear_on_reduce)

    def peek(self, key: str | tuple, *, default: Any = None, **_ignored: Any) -> Any:
        """The current reduced value of ``key`` without clearing anything (``default`` if never logged)."""
        stat = self._stats.get(_key(key))
        return default if stat is None else stat.peek()

    def reduce(self) -> dict:
        """Every key's reduced value as a nested dict (``("a", "b")`` under ``["a"]["b"]``); keys logged
        with ``clear_on_reduce`` or ``reduce=None`` start empty again."""
        out: dict = {}
        for parts, stat in self._stats.items():
            value = stat.reduce()
            if stat.reduce_method is None and not value:
                continue
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
            else:
                node[parts[-1]] = value
        return out

    def pop_records(self) -> list[tuple]:
        """Every ``(key, value, settings)`` logged since the last call (an env runner ships them back)."""
        records = self._records or []
        if self._records is not None:
            self._records = []
        return records

    def log_records(self, records: list[tuple]) -> None:
        """Log another logger's records, in order, with their settings."""
        for parts, value, settings in records:
            self.log_value(parts, value, **settings)

    def __contains__(self, key: Any) -> bool:
        return _key(key) in self._stats


def merge_metrics(target: dict, values: dict) -> dict:
    """Put custom metrics into a result dict; a key the result has already (a built-in one) is kept."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_metrics(target[key], value)
        elif key not in target:
            target[key] = value
    return target
