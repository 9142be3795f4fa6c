"""How many replicas a deployment should have, from its ongoing requests (a pure decision).

The controller calls ``decide`` every loop with the time and what it measured; the policy keeps
the recent samples and the pending direction, nothing else. Ray Serve's AutoscalingConfig fields
and defaults; the desired count is ``ceil(average ongoing / target_ongoing_requests)``, reached
from the running count in steps scaled by the smoothing (scaling) factors, clamped to
[min_replicas, max_replicas], and applied only once wanted for the whole upscale or downscale delay.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any

# Ray Serve's AutoscalingConfig defaults, by field name.
DEFAULTS = {
    "min_replicas": 1,
    "initial_replicas": None,
    "max_replicas": 1,
    "target_ongoing_requests": 2.0,
    "look_back_period_s": 30.0,
    "smoothing_factor": 1.0,
    "upscale_smoothing_factor": None,
    "downscale_smoothing_factor": None,
    "upscaling_factor": None,
    "downscaling_factor": None,
    "upscale_delay_s": 30.0,
    "downscale_delay_s": 600.0,
    "downscale_to_zero_delay_s": None,
}


def _read(cfg: Any, name: str) -> Any:
    if cfg is None:
        return DEFAULTS[name]
    if isinstance(cfg, dict):
        value = cfg.get(name)
    else:
        value = getattr(cfg, name, None)
    return DEFAULTS[name] if value is None else value


def _number(name: str, value: Any, *, minimum: float, strict: bool = False, integer: bool = False) -> Any:
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"autoscaling_config.{name} must be {kind} {bound}, got {value!r}.")
    return value


class AutoscalingPolicy:
    """Replica count decisions for one deployment; see the module docstring."""

    def __init__(self, *, min_replicas: int = 1, initial_replicas: int | None = None, max_replicas: int = 1,
                 target_ongoing_requests: float = 2.0, look_back_period_s: float = 30.0,
                 smoothing_factor: float = 1.0, upscale_smoothing_factor: float | None = None,
                 downscale_smoothing_factor: float | None = None, upscaling_factor: float | None = None,
                 downscaling_factor: float | None = None, upscale_delay_s: float = 30.0,
                 downscale_delay_s: float = 600.0, downscale_to_zero_delay_s: float | None = None):
        self.min_replicas = _number("min_replicas", min_replicas, minimum=0, integer=True)
        self.max_replicas = _number("max_replicas", max_replicas, minimum=1, integer=True)
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscaling_config.min_replicas ({min_replicas}) must not exceed max_replicas "
                             f"({max_replicas}).")
        if initial_replicas is not None:
            _number("initial_replicas", initial_replicas, minimum=0, integer=True)
            if not self.min_replicas <= initial_replicas <= self.max_replicas:
                raise ValueError(f"autoscaling_config.initial_replicas ({initial_replicas}) must be between "
                                 f"min_replicas ({min_replicas}) and max_replicas ({max_replicas}).")
        self.initial_replicas = initial_replicas
        self.target_ongoing_requests = _number("target_ongoing_requests", target_ongoing_requests, minimum=0,
                                               strict=True)
        self.look_back_period_s = _number("look_back_period_s", look_back_period_s, minimum=0, strict=True)
        smoothing = _number("smoothing_factor", smoothing_factor, minimum=0, strict=True)
        up = upscaling_factor if upscaling_factor is not None else upscale_smoothing_factor
        down = downscaling_factor if downscaling_factor is not None else downscale_smoothing_factor
        self.upscaling_factor = smoothing if up is None else _number("upscaling_factor", up, minimum=0, strict=True)
        self.downscaling_factor = (smoothing if down is None
                                   else _number("downscaling_factor", down, minimum=0, strict=True))
        self.upscale_delay_s = _number("upscale_delay_s", upscale_delay_s, minimum=0)
        self.downscale_delay_s = _number("downscale_delay_s", downscale_delay_s, minimum=0)
        self.downscale_to_zero_delay_s = (self.downscale_delay_s if downscale_to_zero_delay_s is None else
                                          _number("downscale_to_zero_delay_s", downscale_to_zero_delay_s, minimum=0))
        self._samples: deque[tuple[float, float]] = deque()  # (time, total ongoing)
        self._wanted: int | None = None        # the direction (+1/-1) wanted since _wanted_since
        self._wanted_since = 0.0

    @classmethod
    def from_config(cls, cfg: Any) -> "AutoscalingPolicy":
        """From an AutoscalingConfig-like object or a dict, reading Ray's field names (others ignored)."""
        if cfg is not None and not isinstance(cfg, dict) and not hasattr(cfg, "max_replicas"):
            raise TypeError(f"autoscaling_config must be a dict or an AutoscalingConfig, got {type(cfg).__name__}.")
        return cls(**{name: _read(cfg, name) for name in DEFAULTS})

    @property
    def initial_target(self) -> int:
        """How many replicas to start with: initial_replicas, else min_replicas."""
        return self.initial_replicas if self.initial_replicas is not None else self.min_replicas

    def desired(self, current: int, average_ongoing: float) -> int:
        """Where the load says to go, before delays: ``ceil(avg / target)`` reached from ``current`` in a step
        scaled by the factor (at least one replica), clamped to [min, max]."""
        needed = math.ceil(average_ongoing / self.target_ongoing_requests - 1e-9) if average_ongoing > 0 else 0
        if needed > current:
            step = math.ceil((needed - current) * self.upscaling_factor)
        elif needed < current:
            step = math.floor((needed - current) * self.downscaling_factor)
        else:
            step = 0
        return max(self.min_replicas, min(self.max_replicas, current + step))

    def decide(self, now: float, current_target: int, total_ongoing: float, running_replicas: int) -> int:
        """The target replica count after this loop (``current_target`` if nothing should change yet).

        ``total_ongoing`` is the deployment's ongoing requests (replicas' plus the routers' queued);
        ``running_replicas`` is accepted for the controller's record, the step is taken from the target."""
        samples = self._samples
        samples.append((now, float(total_ongoing)))
        while samples and samples[0][0] < now - self.look_back_period_s:
            samples.popleft()
        average = sum(value for _, value in samples) / len(samples)
        # Steps go from the target, not the running count: replicas still starting are on their way.
        desired = self.desired(current_target, average)
        if desired == current_target:
            self._wanted = None
            return current_target
        direction = 1 if desired > current_target else -1
        if direction < 0 and desired == 0 and current_target > 1:
            desired = 1  # down to one replica first; zero needs its own delay
        if self._wanted != direction:
            self._wanted, self._wanted_since = direction, now
        if direction > 0:
            delay = self.upscale_delay_s
        else:
            delay = self.downscale_to_zero_delay_s if desired == 0 else self.downscale_delay_s
        if now - self._wanted_since < delay:
            return current_target
        self._wanted = None
        return desired


__all__ = ["AutoscalingPolicy"]
