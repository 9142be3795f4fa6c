"""A Tune experiment's live view, reported through ``juno.util.progress`` (kind "tune").

The controller's only way to show an experiment: ``TuneProgress`` turns its events (a trial was
added, a trial's status or latest result changed, the metric became known, the end) into one
progress run, which ``juno.widgets.tune_view`` draws (the trial table sorted by the metric, a chart
of the best trials' curves, the status counts: a widget in a notebook, static HTML in a saved one)
and the dashboard lists. In a terminal it prints a compact table at most every few seconds, never
the whole result dict. Showing an experiment must never break it: every method logs what goes
wrong and carries on.

The decisions are a plain class, ``TrialTable`` (the rows and their order, the columns, which trials
are charted, the counts, the best trial), shared with Ray's reporter classes (``progress_reporter``).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping

from juno.train.progress import NOT_CHARTED, error_text, flatten, scalar
from juno.util import progress
from juno.widgets import tune_view
from juno.widgets.formatting import Throttle, format_duration

logger = logging.getLogger("juno.tune")

PENDING, RUNNING, PAUSED, TERMINATED, ERROR = "PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"
STATUSES = (RUNNING, PENDING, PAUSED, TERMINATED, ERROR)  # the order of the counts
MODES = ("min", "max")
MAX_ROWS = 20            # rows shown (Ray's CLIReporter max_progress_rows); the rest are counted
MAX_CHARTED = 10         # trials whose curves are charted (the best by the metric)
PARAM_COLUMNS = (8, 16)  # parameter columns shown at verbose 1, and at 2 or more
OTHER_METRICS = (2, 5)   # reported metrics shown besides the experiment's metric, at verbose 1 and 2
REPORT_EVERY_S = 5.0     # the terminal's table at most this often (Ray's max_report_frequency)
CELL_CHARS = 24          # a parameter's or an error's text in a cell
ITERATION, TIME = "training_iteration", "time_total_s"
KNOWN_SUMMARY = frozenset({"trials", "terminated", "errors", "error", "pending", "running", "paused"})  # counted here


def _number(value: Any) -> float | None:
    """A finite float, or None for anything that cannot be ranked or charted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def cell(value: Any) -> Any:
    """A table cell: floats to 4 significant digits (still numbers), text shortened."""
    value = scalar(value)
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.4g}")
    if isinstance(value, str) and len(value) > CELL_CHARS:
        return value[:CELL_CHARS - 1] + "…"
    return value


def params_text(params: Mapping[str, Any]) -> str:
    """``lr=0.01, momentum=0.9``: a trial's sampled values in one short line."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in ((k, cell(v)) for k, v in params.items()))


def _columns(spec: Any, what: str) -> dict[str, str] | None:
    """Ray's metric_columns/parameter_columns: a list of keys or a dict key -> header."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, (list, tuple)):
        pairs = [(k, k) for k in spec]
    else:
        raise TypeError(f"{what} must be a list of keys or a dict of key -> header, got {type(spec).__name__}")
    for key, header in pairs:
        if not isinstance(key, str) or not isinstance(header, str):
            raise TypeError(f"{what} keys and headers must be str, got {key!r}: {header!r}")
    return dict(pairs)


def check_mode(mode: Any) -> str | None:
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


@dataclasses.dataclass
class TrialRow:
    """What the view keeps of one trial."""
    trial_id: str
    order: int
    status: str = PENDING
    params: dict = dataclasses.field(default_factory=dict)   # evaluated_params, flattened
    config: Any = None
    result: dict = dataclasses.field(default_factory=dict)   # last_result, flattened
    analysis: dict = dataclasses.field(default_factory=dict)  # metric_analysis
    points: list = dataclasses.field(default_factory=list)   # (iteration, charted metric)
    lowest: float | None = None    # of the charted metric, over the trial's life
    highest: float | None = None
    error: str | None = None
    num_failures: int = 0
    metric_value: float | None = None  # the metric's latest value (the rank)

    def value(self, key: str | None) -> float | None:
        return None if key is None else _number(self.result.get(key))

    def best(self, key: str | None, mode: str | None) -> float | None:
        """The best value the trial reached, by metric_analysis, the values the view charted and the latest."""
        if key is None or mode is None:
            return None
        analysis = self.analysis.get(key)
        values = [_number(analysis.get(mode)) if isinstance(analysis, Mapping) else None, self.value(key),
                  self.lowest if mode == "min" else self.highest]
        values = [v for v in values if v is not None]
        return (min if mode == "min" else max)(values) if values else None

    def param(self, key: str) -> Any:
        if key in self.params:
            return self.params[key]
        value = self.config
        for part in key.split("/"):
            if not isinstance(value, Mapping) or part not in value:
                return ""
            value = value[part]
        return value


class TrialTable:
    """The trial table's decisions, without I/O: feed it trials, read its rows, counts and curves.

    Rows are sorted by the metric's latest value, best first by ``mode`` (trials that reported none
    after them, running ones first); without a metric and mode, in the order trials were added.
    Tables longer than ``max_rows`` keep every running trial and the best of the others. The chart
    follows the metric (or, while it is unknown, the first metric a trial reported) over
    ``training_iteration`` for the best ``max_charted`` trials."""

    def __init__(self, metric: str | None = None, mode: str | None = None, *, max_rows: int = MAX_ROWS,
                 max_charted: int = MAX_CHARTED, verbose: int = 1, sort_by_metric: bool = True):
        for name, value, top in (("max_rows", max_rows, progress.MAX_TABLE_ROWS),
                                 ("max_charted", max_charted, progress.MAX_SERIES)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ValueError(f"{name} must be an int from 1 to {top}, got {value!r}")
        self.max_rows, self.max_charted, self.verbose, self.sort_by_metric = max_rows, max_charted, verbose, sort_by_metric
        self.metric: str | None = None
        self.mode: str | None = None
        self.trials: dict[str, TrialRow] = {}
        self.metric_columns: dict[str, str] | None = None
        self.parameter_columns: dict[str, str] | None = None
        self._param_keys: dict[str, None] = {}   # in the order first seen
        self._metric_keys: dict[str, None] = {}
        self._charted_key: str | None = None
        self._counts = dict.fromkeys(STATUSES, 0)
        self._errors: set[str] = set()             # trials with an error (the error column shows then)
        self._ranked: list[TrialRow] | None = None  # cached until something changes
        self._cells: dict[str, list] = {}           # trial_id -> its row's cells, for ``_cells_of``
        self._cells_of: tuple = ()                  # the columns the cached cells are for
        self.set_metric(metric, mode)

    # ------------------------------------------------------------------ events
    def set_metric(self, metric: str | None, mode: str | None) -> None:
        if metric is not None and not isinstance(metric, str):
            raise TypeError(f"metric must be a str (a key the trials report), got {metric!r}")
        self.mode = check_mode(mode) or self.mode
        self.metric = metric or self.metric
        self._chart(self.metric or self._charted_key)
        for row in self.trials.values():
            row.metric_value = row.value(self.metric)
        self._ranked, self._cells = None, {}

    def set_columns(self, metric_columns: Any = None, parameter_columns: Any = None) -> None:
        """The user's columns (Ray's reporter arguments); None keeps the default choice."""
        self.metric_columns = _columns(metric_columns, "metric_columns")
        self.parameter_columns = _columns(parameter_columns, "parameter_columns")
        self._cells = {}

    def update(self, trial: Any) -> str | None:
        """Take in a trial's current state. Returns what happened to its curve: "append" (a new
        point at the end), "rewrite" (it went back: a restart or a PBT exploit) or None."""
        trial_id = str(trial.trial_id)
        row = self.trials.get(trial_id)
        if row is None:
            row = self.trials[trial_id] = TrialRow(trial_id, len(self.trials))
            self._counts[row.status] += 1
        status = getattr(trial, "status", None)
        self._counts[row.status] -= 1
        row.status = status if status in STATUSES else str(status or PENDING)
        self._counts[row.status] = self._counts.get(row.status, 0) + 1
        self._ranked = None
        self._cells.pop(trial_id, None)
        row.params = flatten(getattr(trial, "evaluated_params", None) or {})
        self._param_keys.update(dict.fromkeys(row.params))
        row.config = getattr(trial, "config", None)
        analysis = getattr(trial, "metric_analysis", None)
        row.analysis = analysis if isinstance(analysis, Mapping) else {}
        error = getattr(trial, "error", None)
        row.error = error_text(error).splitlines()[0] if error else None
        (self._errors.add if error else self._errors.discard)(trial_id)
        row.num_failures = getattr(trial, "num_failures", 0) or 0
        result = getattr(trial, "last_result", None) or {}
        if not isinstance(result, Mapping):
            return None
        row.result = flatten({k: v for k, v in result.items() if k != "config"})
        row.metric_value = row.value(self.metric)
        for key, value in row.result.items():
            if key not in self._metric_keys and key not in NOT_CHARTED and _number(value) is not None:
                self._metric_keys[key] = None
        if self._charted_key is None and self._metric_keys:
            self._chart(next(iter(self._metric_keys)))
        return self._record(row)

    def _chart(self, key: str | None) -> None:
        """Chart ``key`` from now on: curves of another metric are dropped (they refill as trials report)."""
        if key == self._charted_key:
            return
        self._charted_key = key
        for row in self.trials.values():
            row.points, row.lowest, row.highest = [], None, None

    def _record(self, row: TrialRow) -> str | None:
        y, x = row.value(self._charted_key), _number(row.result.get(ITERATION))
        if y is None or x is None:
            return None
        row.lowest = y if row.lowest is None else min(row.lowest, y)
        row.highest = y if row.highest is None else max(row.highest, y)
        if row.points and row.points[-1][0] >= x:
            if row.points[-1] == (x, y):
                return None  # the same result again (a status change)
            row.points = [p for p in row.points if p[0] < x]
            row.points.append((x, y))
            return "rewrite"
        row.points.append((x, y))
        if len(row.points) > progress.MAX_SERIES_POINTS:
            del row.points[0]
        return "append"

    # ------------------------------------------------------------------ reading
    @property
    def charted_metric(self) -> str | None:
        return self._charted_key

    def counts(self) -> dict[str, int]:
        """Trials per status, in ``STATUSES`` order, every status listed (0 when none)."""
        return dict(self._counts)

    def _by_metric(self) -> bool:
        return self.metric is not None and self.mode is not None

    def _rank_key(self) -> Callable[[TrialRow], tuple]:
        sign = 1 if self.mode == "min" else -1

        def key(row: TrialRow) -> tuple:
            value = row.metric_value
            if value is None:
                return (1, row.status != RUNNING, row.order)
            return (0, sign * value, row.order)
        return key

    def ranked(self) -> list[TrialRow]:
        """Every trial in the table's order (cached until a trial or the metric changes)."""
        if self._ranked is None:
            rows = list(self.trials.values())  # in the order added
            self._ranked = sorted(rows, key=self._rank_key()) if self.sort_by_metric and self._by_metric() else rows
        return self._ranked

    def best(self) -> TrialRow | None:
        """The trial with the best latest value of the metric (Ray's "current best trial")."""
        if not self._by_metric():
            return None
        if self.sort_by_metric:
            ranked = self.ranked()
            return ranked[0] if ranked and ranked[0].metric_value is not None else None
        rows = [r for r in self.trials.values() if r.metric_value is not None]
        return min(rows, key=self._rank_key()) if rows else None

    def columns(self) -> list[tuple[str, str]]:
        """(key, header) of each column: name, status, parameters, metrics, iterations, time, error."""
        wide = self.verbose >= 2
        params = self.parameter_columns or {k: k for k in list(self._param_keys)[:PARAM_COLUMNS[wide]]}
        cols = [("trial_id", "trial name"), ("status", "status")] + [(f"param:{k}", h) for k, h in params.items()]
        shown = {ITERATION, TIME}
        if self.metric is not None:
            cols.append((self.metric, self.metric))
            shown.add(self.metric)
            if self.mode is not None:
                cols.append(("best:", f"best {self.metric}"))
        if self.metric_columns is not None:
            others = {k: h for k, h in self.metric_columns.items() if k not in shown}
        else:
            keys = [k for k in self._metric_keys if k not in shown][:OTHER_METRICS[wide]]
            others = {k: k for k in keys}
        cols += list(others.items()) + [(ITERATION, "iter"), (TIME, "total time (s)")]
        if wide:
            cols.append(("failures:", "failures"))
        if self._errors:
            cols.append(("error:", "error"))
        return cols

    def _cell(self, row: TrialRow, key: str) -> Any:
        if key == "trial_id":
            return row.trial_id
        if key == "status":
            return row.status
        if key.startswith("param:"):
            return cell(row.param(key[len("param:"):]))
        if key == "best:":
            best = row.best(self.metric, self.mode)
            return "" if best is None else cell(best)
        if key == "failures:":
            return row.num_failures
        if key == "error:":
            return cell(row.error or "")
        value = row.result.get(key, "")
        return "" if value is None else cell(value)

    def shown(self) -> list[TrialRow]:
        """The rows to show, in rank order: every running trial (up to ``max_rows``), then the best."""
        ranked = self.ranked()
        if len(ranked) <= self.max_rows:
            return ranked
        running = [r.trial_id for r in ranked if r.status == RUNNING][:self.max_rows]
        others = [r.trial_id for r in ranked if r.status != RUNNING][:self.max_rows - len(running)]
        keep = set(running) | set(others)
        return [r for r in ranked if r.trial_id in keep]

    def table(self) -> tuple[list[str], list[list[Any]], int]:
        """(headers, rows, how many trials are left out)."""
        cols = tuple(self.columns())
        if cols != self._cells_of:
            self._cells, self._cells_of = {}, cols
        rows = self.shown()
        cells = []
        for row in rows:
            if row.trial_id not in self._cells:
                self._cells[row.trial_id] = [self._cell(row, k) for k, _ in cols]
            cells.append(self._cells[row.trial_id])
        return [h for _, h in cols], cells, len(self.trials) - len(rows)

    def charted(self) -> list[str]:
        """The trials whose curves are drawn: the best ``max_charted`` (else the first), in the order added."""
        if self.metric == self._charted_key and self.sort_by_metric and self._by_metric():
            chosen = []  # the best by the latest value: the ranking's first trials with a curve
            for row in self.ranked():
                if len(chosen) == self.max_charted or row.metric_value is None:
                    break
                if row.points:
                    chosen.append(row)
        else:
            chosen = [r for r in self.trials.values() if r.points][:self.max_charted]
        return [r.trial_id for r in sorted(chosen, key=lambda r: r.order)]

    def series(self) -> dict[str, list[tuple[float, float]]]:
        return {trial_id: list(self.trials[trial_id].points) for trial_id in self.charted()}

    def fields(self) -> dict[str, Any]:
        """The run's fields (``tune_view.FIELDS``): metric, mode, the best trial and the counts; a value
        of None removes a field that no longer applies."""
        best = self.best()
        config = params_text(best.params) if best else None
        out: dict[str, Any] = {
            tune_view.METRIC: self._charted_key, tune_view.MODE: self.mode,
            tune_view.BEST: best.value(self.metric) if best else None,
            tune_view.BEST_TRIAL: best.trial_id if best else None, tune_view.BEST_CONFIG: config or None}
        out.update({status.lower(): n or None for status, n in self.counts().items()})
        return out

    def summary(self, elapsed_s: float | None = None) -> str:
        """One line: ``30 trials (28 terminated, 2 error) in 12.3s; best a_00003: loss=0.1234 (lr=0.01)``."""
        counts = tune_view.counts_text({k.lower(): n for k, n in self.counts().items()})
        line = f"{len(self.trials)} trial{'' if len(self.trials) == 1 else 's'}" + (f" ({counts})" if counts else "")
        if elapsed_s is not None:
            line += f" in {format_duration(elapsed_s)}"
        best = self.best()
        if best is not None:
            line += f"; best {best.trial_id}: {self.metric}={best.value(self.metric):.4g}"
            if best.params:
                line += f" ({params_text(best.params)})"
        return line


def _never_raises(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: "TuneProgress", *args: Any, **kwargs: Any) -> None:
        try:
            with self._lock:
                method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - showing an experiment never breaks it
            logger.warning("the Tune experiment's view could not show %s()", method.__name__, exc_info=True)
    return wrapper


class TuneProgress:
    """One experiment's view; the controller calls it (from one thread) as trials come and go.

        view = TuneProgress("Tuner(train_fn)", name, metric="loss", mode="min", num_samples=30)
        view.trial_added(trial)          # a PENDING row
        view.trial_updated(trial)        # a status change or a new last_result
        view.set_metric(metric, mode)    # when the scheduler or searcher tells it
        view.configure_from_reporter(reporter)   # RunConfig(progress_reporter=CLIReporter(...))
        view.finish(summary) / view.fail(error)

    ``verbose`` is RunConfig.verbose: 0 shows nothing (the dashboard still lists the experiment), 1
    the widget or, in a terminal, a compact table at most every ``REPORT_EVERY_S`` and a summary at
    the end, 2 (or more) also more columns (other metrics, failures, more parameters).
    ``display`` False keeps it off the screen whatever ``verbose`` says (None: the process-wide switch,
    ``juno.util.progress.set_display_enabled``).
    """

    def __init__(self, title: str, name: str = "", metric: str | None = None, mode: str | None = None,
                 num_samples: int | None = None, display: bool | None = None, verbose: int = 1, *,
                 stream: Any = None, clock: Callable[[], float] = time.monotonic):
        if isinstance(verbose, bool) or not isinstance(verbose, int) or verbose < 0:
            raise ValueError(f"verbose must be 0 (silent), 1 (default) or 2 (more), got {verbose!r}")
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                        or num_samples < 0):
            raise ValueError(f"num_samples must be None (unknown) or a non-negative int, got {num_samples!r}")
        if display is not None and not isinstance(display, bool):
            raise TypeError(f"display must be True, False or None, got {display!r}")
        self._lock = threading.RLock()
        self.table = TrialTable(metric, mode, verbose=verbose)
        self.num_samples = num_samples
        self._stream = stream
        from juno.widgets.live import kernel_shell

        shown = verbose > 0 and (progress.display_enabled() if display is None else display)
        in_kernel = kernel_shell() is not None
        self._terminal = shown and not in_kernel  # a terminal's table is printed here, at its own pace
        self._throttle = Throttle(REPORT_EVERY_S, clock)
        self._throttle.ready()  # the first table after a whole interval, not at the first trial
        self._charted: list[str] = []
        full = f"{title} · {name}" if name else title
        self.run = progress.open("tune", full, display=shown and in_kernel, total=num_samples, unit="trials")
        self._push()

    # ------------------------------------------------------------------ the controller's calls
    @_never_raises
    def trial_added(self, trial: Any) -> None:
        """A new trial (PENDING)."""
        self._take(trial)

    @_never_raises
    def trial_updated(self, trial: Any) -> None:
        """A trial changed status or has a new ``last_result``."""
        self._take(trial)

    @_never_raises
    def set_metric(self, metric: str | None, mode: str | None) -> None:
        """The metric and mode, when they come late (from the scheduler or the searcher)."""
        self.table.set_metric(metric, mode)
        self._push(series=True)

    @_never_raises
    def configure_from_reporter(self, reporter: Any) -> None:
        """Take the columns, the row cap, the report pace, the metric and mode of a Ray reporter
        (``RunConfig(progress_reporter=CLIReporter(metric_columns=[...]))``); what it lacks stays."""
        self.table.set_columns(getattr(reporter, "metric_columns", None), getattr(reporter, "parameter_columns", None))
        rows = getattr(reporter, "max_progress_rows", None)
        if rows is not None:
            self.table.max_rows = max(1, min(int(rows), progress.MAX_TABLE_ROWS))
        every = getattr(reporter, "max_report_frequency", None)
        if every is not None:
            self._throttle.interval = max(0.0, float(every))
        metric, mode = getattr(reporter, "metric", None), getattr(reporter, "mode", None)
        if metric is not None or mode is not None:
            self.table.set_metric(self.table.metric or metric, self.table.mode or mode)
        self._push(series=True)

    @_never_raises
    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """The experiment ended (all trials done, a time budget, or a clean interrupt). ``summary``
        (the controller's counts) is shown as given beside the view's own one-line summary."""
        self._push()
        line = self.table.summary(self.run.snapshot().elapsed_s)
        summary = dict(summary or {})
        best = summary.pop("best", None)
        if self.table.best() is None and isinstance(best, Mapping) and best:
            line += f"; best: {params_text(flatten(best))}"
        extra = {k: v for k, v in summary.items() if k not in KNOWN_SUMMARY and isinstance(v, (int, float, str))}
        if extra:
            line += f" [{params_text(extra)}]"
        self.run.set_fields(**{tune_view.SUMMARY: line})
        self.run.finish()
        self._print(final=True)

    @_never_raises
    def fail(self, error: Any) -> None:
        """The experiment failed (not a trial: the controller itself, or bad input)."""
        self._push()
        self.run.set_fields(**{tune_view.SUMMARY: self.table.summary(self.run.snapshot().elapsed_s)})
        self.run.fail(error_text(error))
        self._print(final=True)

    # ------------------------------------------------------------------ inside
    def _take(self, trial: Any) -> None:
        before = self._charted
        change = self.table.update(trial)
        trial_id = str(trial.trial_id)
        self._push(series=change == "rewrite" and trial_id in before)
        if change == "append" and self._charted == before and trial_id in before:
            x, y = self.table.trials[trial_id].points[-1]
            self.run.add_point(trial_id, x, y)
        self._print()

    def _push(self, series: bool = False) -> None:
        """Send the table, the fields and the counts; the curves when the charted trials changed."""
        headers, rows, dropped = self.table.table()
        self.run.set_table(headers, rows, dropped)
        self.run.set_fields(**self.table.fields())
        counts = self.table.counts()
        if self.num_samples is not None and len(self.table.trials) > self.num_samples:
            self.num_samples = len(self.table.trials)  # more trials than announced: the bar never overflows
            self.run.set_total(self.num_samples)
        self.run.update(done=counts[TERMINATED], failed=counts[ERROR])
        charted = self.table.charted()
        if series or charted != self._charted:
            self._charted = charted
            self.run.set_series(self.table.series())

    def _print(self, final: bool = False) -> None:
        if not self._terminal or not (final or self._throttle.ready()):
            return
        snap = self.run.snapshot()
        text = tune_view.summary_text(snap) if final else tune_view.report_text(snap)
        print(text, file=self._stream or sys.stderr, flush=True)

    def snapshot(self) -> progress.RunSnapshot:
        return self.run.snapshot()

    def __repr__(self) -> str:
        return f"TuneProgress({self.run!r})"


def table_of(trials: Iterable[Any], *, metric: str | None = None, mode: str | None = None,
             metric_columns: Any = None, parameter_columns: Any = None, max_rows: int = MAX_ROWS,
             sort_by_metric: bool = True, verbose: int = 1) -> TrialTable:
    """A ``TrialTable`` of these trials at once (what a reporter prints)."""
    table = TrialTable(metric, mode, max_rows=max_rows, verbose=verbose, sort_by_metric=sort_by_metric)
    table.set_columns(metric_columns, parameter_columns)
    for trial in trials:
        table.update(trial)
    return table


__all__ = ["TuneProgress", "TrialTable", "TrialRow", "table_of", "STATUSES", "MAX_ROWS", "MAX_CHARTED"]
