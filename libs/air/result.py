"""``Result``: what a finished (or failed) run leaves: its last metrics, checkpoints, error and folder."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from juno.air.checkpoint import Checkpoint
from juno.air.storage import StorageContext


@dataclasses.dataclass
class Result:
    """``metrics`` is rank 0's last report (with or without a checkpoint); ``checkpoint`` the latest one
    kept; ``best_checkpoints`` every kept one with the metrics it came with, oldest first."""
    metrics: dict | None = None
    checkpoint: Checkpoint | None = None
    error: BaseException | None = None
    path: str | None = None
    metrics_dataframe: Any = None
    best_checkpoints: list[tuple[Checkpoint, dict]] = dataclasses.field(default_factory=list)
    config: dict | None = None
    filesystem: Any = None

    @property
    def _metrics_without_run_info(self) -> dict:
        return {k: v for k, v in (self.metrics or {}).items() if k not in RUN_INFO_KEYS}

    @classmethod
    def from_path(cls, path: str, filesystem: Any = None) -> "Result":
        """The result of a run kept at ``path`` (its folder under the storage path)."""
        root, _, name = path.rstrip("/").rpartition("/")
        storage = StorageContext(root or ".", name, filesystem)
        return result_from_storage(storage)

    def __repr__(self) -> str:
        parts = [f"metrics={self._metrics_without_run_info!r}", f"path={self.path!r}"]
        if self.checkpoint is not None:
            parts.append(f"checkpoint={self.checkpoint!r}")
        if self.error is not None:
            parts.append(f"error={type(self.error).__name__}")
        return f"Result({', '.join(parts)})"


# Keys the run adds to each report, as Ray does (Tune sorts and stops on them).
RUN_INFO_KEYS = ("training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "done")


def read_reports(storage: StorageContext) -> list[dict]:
    text = (storage.read_bytes("result.json") or b"").decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def metrics_dataframe(reports: list[dict]) -> Any:
    """Rank 0's reports as a pandas DataFrame (nested dicts flattened to ``a/b`` columns); None without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return None
    return pd.DataFrame([flatten_dict(r) for r in reports])


def flatten_dict(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` as ``{"a/b": 1}``: how nested metrics and configs become columns."""
    flat: dict = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(flatten_dict(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def result_from_storage(storage: StorageContext, error: BaseException | None = None) -> Result:
    """Build a Result from what the run's folder holds (its reports and checkpoint bookkeeping)."""
    reports = read_reports(storage)
    state = json.loads((storage.read_bytes("run_state.json") or b"{}").decode())
    kept = [(storage.checkpoint(e["path"]), e["metrics"]) for e in state.get("checkpoints", [])]
    return Result(metrics=reports[-1] if reports else None, checkpoint=kept[-1][0] if kept else None, error=error,
                  path=storage.run_path, metrics_dataframe=metrics_dataframe(reports), best_checkpoints=kept,
                  config=state.get("config"), filesystem=storage.filesystem)
