"""A Train run's live view, reported through ``juno.util.progress`` (kind "train").

The controller's only way to show a run: ``TrainProgress`` turns its events (the group started,
rank 0 reported, a worker changed state, checkpoints kept, a restart, the end) into one progress
run, which ``juno.widgets`` draws (a chart per metric, the latest values, the worker table: a widget
in a notebook, static HTML in a saved one, a compact line in a terminal) and the dashboard lists.
What the snapshot means is described in ``juno.widgets.metrics_view``. Showing a run must never
break it: every method logs what goes wrong and carries on.

The decisions are plain classes: ``MetricChooser`` (which reported values become charts and
fields, in which order) and ``WorkerTable`` (the workers' rows).
"""
from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

from juno.util import progress

logger = logging.getLogger("juno.train")

# Bookkeeping values a report may carry (Ray fills most of them in): shown as fields, never charted.
NOT_CHARTED = frozenset({
    "epoch", "iteration", "training_iteration", "iterations_since_restore", "step", "timestamp", "date",
    "time_this_iter_s", "time_total_s", "time_since_restore", "pid", "hostname", "node_ip", "done",
    "trial_id", "experiment_tag", "checkpoint_dir_name", "should_checkpoint", "world_rank", "world_size",
    "local_rank", "node_rank"})
MAX_VALUE_CHARS = 60  # a non-numeric metric's text in the fields line
MAX_ERROR_LINES = 8   # of a failure's text (TrainingFailedError begins with what matters)
COLUMNS = ["rank", "local", "node", "pid", "device", "state", "reports"]
WORKER_STATES = ("pending", "starting", "running", "finished", "failed", "dead", "stopped")


def _short(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def scalar(value: Any) -> Any:
    """A metric value as a plain scalar: numpy and 0-d torch/numpy values as Python numbers, strings
    shortened, anything else its short repr."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _short(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            return scalar(value.item())
        except Exception:  # noqa: BLE001 - shown as text below
            pass
    return _short(repr(value))


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``outer/inner`` names (as Tune shows them), values made plain by ``scalar``."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = scalar(value)
    return out


def is_loss(name: str) -> bool:
    return "loss" in name.lower()


def _chartable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class MetricChooser:
    """Which reported metrics become charts, and the order of the fields: loss-like names first,
    then the others in the order they were first reported. The first ``max_series`` chartable
    metrics are charted for the whole run (bookkeeping values such as "epoch" never are)."""

    def __init__(self, max_series: int = progress.MAX_SERIES):
        self.max_series = max_series
        self.charted: list[str] = []
        self._seen: set[str] = set()

    @staticmethod
    def order(names: Iterable[str]) -> list[str]:
        """"loss" first, then the other loss-like names, then the rest, each in report order."""
        return sorted(names, key=lambda n: 0 if n == "loss" else 1 if is_loss(n) else 2)

    def fields(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """One flattened report as fields, in display order (None shown as text: None removes a field)."""
        return {name: "None" if metrics[name] is None else metrics[name] for name in self.order(metrics)}

    def points(self, fields: Mapping[str, Any]) -> list[tuple[str, float]]:
        """The (series, y) to chart for one report; picks new series while there is room."""
        for name, value in fields.items():
            if name in self._seen or name in NOT_CHARTED or not _chartable(value):
                continue
            if len(self.charted) < self.max_series:
                self._seen.add(name)
                self.charted.append(name)
        return [(n, float(fields[n])) for n in self.charted if n in fields and _chartable(fields[n])]


class WorkerTable:
    """The worker group's rows: rank, local rank, node, pid, device, state and reports received."""

    def __init__(self, num_workers: int):
        self.workers: list[dict[str, Any]] = [
            {"rank": r, "local_rank": "", "node": "", "pid": "", "device": "", "state": "pending", "reports": 0}
            for r in range(num_workers)]

    def start(self, workers: Sequence[Mapping[str, Any]]) -> None:
        rows = []
        for w in sorted(workers, key=lambda w: w.get("rank", 0)):
            node_id = str(w.get("node_id") or "")
            node = w.get("node_rank", "")
            node = f"{node} ({node_id[:8]})" if node_id else node
            rows.append({"rank": w.get("rank", len(rows)), "local_rank": w.get("local_rank", ""), "node": node,
                         "pid": w.get("pid") or "", "device": w.get("device") or "", "state": "starting",
                         "reports": 0})
        self.workers = rows

    def _row(self, rank: int) -> dict[str, Any]:
        for w in self.workers:
            if w["rank"] == rank:
                return w
        raise ValueError(f"no worker of rank {rank!r}; the group has ranks {[w['rank'] for w in self.workers]}")

    def set_state(self, rank: int, state: str, reports: int | None = None) -> None:
        if state not in WORKER_STATES:
            raise ValueError(f"worker state must be one of {', '.join(WORKER_STATES)}, got {state!r}")
        row = self._row(rank)
        row["state"] = state
        if reports is not None:
            row["reports"] = reports

    def reported(self, rank: int = 0) -> None:
        row = self._row(rank)
        row["reports"] += 1
        if row["state"] in ("pending", "starting"):
            row["state"] = "running"

    def end(self, state: str) -> None:
        """The group ended: workers still at work are marked ``state``; failed or dead ones keep theirs."""
        for w in self.workers:
            if w["state"] not in ("failed", "dead", "finished"):
                w["state"] = state

    def rows(self) -> list[list[Any]]:
        return [[w["rank"], w["local_rank"], w["node"], w["pid"], w["device"], w["state"], w["reports"]]
                for w in self.workers]


def checkpoints_text(kept: Sequence[tuple[str, Mapping[str, Any]]], limit: int = 3) -> str:
    """``2 kept in /runs/r: checkpoint_000012 (loss=0.12), checkpoint_000011 (loss=0.13)``."""
    if not kept:
        return "none kept"
    paths = [str(p).rstrip("/") for p, _ in kept]
    folder = os.path.dirname(paths[0])
    same = all(os.path.dirname(p) == folder for p in paths)
    shown = []
    for path, metrics in list(zip(paths, (m for _, m in kept)))[:limit]:
        label = os.path.basename(path) if same else path
        score = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in flatten(metrics or {}).items() if is_loss(k)][:1]
        shown.append(label + (f" ({score[0]})" if score else ""))
    more = f", and {len(kept) - limit} more" if len(kept) > limit else ""
    where = f" in {folder}" if same and folder else ""
    return f"{len(kept)} kept{where}: {', '.join(shown)}{more}"


def error_text(error: Any) -> str:
    """The first lines of a failure (an exception shows as ``Type: message``)."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    lines = text.strip().splitlines() or ["failed"]
    return "\n".join(lines[:MAX_ERROR_LINES] + ([f"... ({len(lines) - MAX_ERROR_LINES} more lines)"]
                                               if len(lines) > MAX_ERROR_LINES else []))


def _never_raises(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: "TrainProgress", *args: Any, **kwargs: Any) -> None:
        try:
            with self._lock:
                method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - showing a run never breaks it
            logger.warning("the Train run's view could not show %s()", method.__name__, exc_info=True)
    return wrapper


class TrainProgress:
    """One Train run's view; the controller calls it (from one thread) as the run goes.

        view = TrainProgress(title="TorchTrainer(train_func)", name=run_name, num_workers=2)
        view.start(attempt, workers)        # [{rank, local_rank, node_rank, node_id, pid, device}]
        view.report(iteration, metrics, checkpoint_path=None)   # rank 0's report
        view.worker_state(rank, "failed")   # starting | running | finished | failed | dead
        view.checkpoints([(path, metrics), ...])                 # kept, best or newest first
        view.restart(attempt, error)        # a failed attempt, about to restart
        view.finish(metrics) / view.fail(error)

    ``verbose`` is RunConfig.verbose: 0 shows nothing (the dashboard still lists the run), 1 the
    widget or, in a terminal, a compact line at most once a second and a summary line at the end,
    2 (or more: Ray's Tune levels go to 3) also, in a terminal, the charts, the final metrics, the
    checkpoints and the worker table at the end.
    ``display`` False keeps the run off the screen whatever ``verbose`` says (None: the process-wide
    switch, ``juno.util.progress.set_display_enabled``).
    """

    def __init__(self, title: str, name: str = "", num_workers: int = 1, *, display: bool | None = None,
                 verbose: int = 1, stream: Any = None):
        if isinstance(verbose, bool) or not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be 0 (silent), 1 (default) or 2 (more), got {verbose!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        self._lock = threading.RLock()
        self.verbose = verbose
        self._stream = stream
        self._charts = MetricChooser()
        self._table = WorkerTable(num_workers)
        self._kept: list[tuple[str, Mapping[str, Any]]] = []
        self._display = False if verbose == 0 else display
        full = f"{title} · {name}" if name else title
        self.run = progress.open("train", full, display=self._display, unit="iterations")
        self._show_table()

    def _show_table(self) -> None:
        self.run.set_table(COLUMNS, self._table.rows())

    @_never_raises
    def start(self, attempt: int, workers: Sequence[Mapping[str, Any]]) -> None:
        """The worker group of ``attempt`` (1 for the first) is up: one table row per worker."""
        self._table.start(workers)
        self._show_table()
        if attempt > 1:
            self.run.set_fields(attempt=attempt)

    @_never_raises
    def report(self, iteration: int, metrics: Mapping[str, Any], checkpoint_path: str | None = None) -> None:
        """Rank 0 reported ``metrics`` at ``iteration`` (1 for the first report)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
        fields = self._charts.fields(flatten(metrics))
        for name, y in self._charts.points(fields):
            self.run.add_point(name, iteration, y)
        self.run.set_fields(**fields)
        self.run.update(done=iteration)
        self._table.reported(0)
        self._show_table()
        if checkpoint_path and all(p != checkpoint_path for p, _ in self._kept):
            self._kept.insert(0, (checkpoint_path, metrics))
            self.run.set_fields(checkpoints=checkpoints_text(self._kept))

    @_never_raises
    def worker_state(self, rank: int, state: str, reports: int | None = None) -> None:
        """Worker ``rank`` is now ``state``; ``reports``: how many reports it sent, where known."""
        self._table.set_state(rank, state, reports)
        self._show_table()

    @_never_raises
    def checkpoints(self, kept: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """The checkpoints kept now, as (path, metrics), in the order they should be listed."""
        self._kept = [(str(p), m or {}) for p, m in kept]
        self.run.set_fields(checkpoints=checkpoints_text(self._kept))

    @_never_raises
    def restart(self, attempt: int, error: Any) -> None:
        """Attempt ``attempt - 1`` failed with ``error``; attempt ``attempt`` starts from the latest checkpoint."""
        self._table.end("stopped")
        self._show_table()
        self.run.set_fields(attempt=attempt, **{"restarted after": error_text(error).splitlines()[0][:120]})

    @_never_raises
    def finish(self, metrics: Mapping[str, Any] | None = None) -> None:
        """The run ended well; ``metrics``: the result's metrics (rank 0's last report)."""
        if metrics:
            self.run.set_fields(**self._charts.fields(flatten(metrics)))
        self._table.end("finished")
        self._show_table()
        self.run.finish()
        self._print_details()

    @_never_raises
    def fail(self, error: Any) -> None:
        """The run failed for good (a TrainingFailedError): its first lines are the run's error."""
        self._table.end("stopped")
        self._show_table()
        self.run.fail(error_text(error))
        self._print_details()

    def _print_details(self) -> None:
        """verbose=2 in a terminal: the whole final state under the summary line."""
        shown = progress.display_enabled() if self._display is None else self._display
        if self.verbose < 2 or not shown:
            return
        from juno.widgets.live import kernel_shell
        from juno.widgets.metrics_view import details_text

        if kernel_shell() is None:
            print(details_text(self.run.snapshot()), file=self._stream or sys.stderr, flush=True)

    def snapshot(self) -> progress.RunSnapshot:
        return self.run.snapshot()

    def __repr__(self) -> str:
        return f"TrainProgress({self.run!r})"
