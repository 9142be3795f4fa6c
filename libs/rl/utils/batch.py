"""Helpers over env runners' time-major batches (dicts of arrays ``[T, N, ...]``)."""
from __future__ import annotations

import numpy as np


def concat_env_batches(batches: list[dict]) -> dict:
    """Runners' batches side by side: ``[T, N1 + N2 + ..., ...]`` (every runner sampled the same T)."""
    if len(batches) == 1:
        return batches[0]
    lengths = {next(iter(b.values())).shape[0] for b in batches}
    if len(lengths) != 1:
        raise ValueError(f"Batches of different lengths {sorted(lengths)} cannot go side by side; use "
                         "flatten_time_major on each and concatenate.")
    return {key: np.concatenate([b[key] for b in batches], axis=1) for key in batches[0]}


def flatten_time_major(batch: dict) -> dict:
    """``[T, N, ...]`` to ``[T * N, ...]`` (time-major order kept: step 0 of every env first)."""
    return {key: value.reshape((-1,) + value.shape[2:]) for key, value in batch.items()}
