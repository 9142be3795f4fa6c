"""Tune's trial schedulers (Ray Tune's names): decide, from trials' results, which go on, pause or stop.

Each is a pure class driven by Tune's controller through the ``TrialScheduler`` interface.
"""
from __future__ import annotations

from typing import Any

from .async_hyperband import ASHAScheduler, AsyncHyperBandScheduler
from .hyperband import HyperBandScheduler
from .median_stopping_rule import MedianStoppingRule
from .pbt import PopulationBasedTraining
from .trial_scheduler import FIFOScheduler, TrialScheduler

SCHEDULERS = {
    "fifo": FIFOScheduler,
    "async_hyperband": AsyncHyperBandScheduler,
    "asynchyperband": AsyncHyperBandScheduler,
    "asha": ASHAScheduler,
    "hyperband": HyperBandScheduler,
    "median_stopping_rule": MedianStoppingRule,
    "medianstopping": MedianStoppingRule,
    "pbt": PopulationBasedTraining,
}


def create_scheduler(scheduler: str, **kwargs: Any) -> TrialScheduler:
    """A scheduler by name (``"asha"``, ``"pbt"``...), as Ray's ``tune.create_scheduler``."""
    try:
        cls = SCHEDULERS[scheduler]
    except KeyError:
        raise ValueError(f"unknown scheduler {scheduler!r}; known schedulers: {', '.join(sorted(SCHEDULERS))}.") \
            from None
    return cls(**kwargs)


__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "HyperBandScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "TrialScheduler",
    "create_scheduler",
]
