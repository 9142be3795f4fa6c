"""Ray Tune's reporter classes, for code that passes one: ``RunConfig(progress_reporter=CLIReporter(...))``.

Juno's own view (``juno.tune.progress.TuneProgress``) draws every experiment; a reporter given by
the user configures it (``TuneProgress.configure_from_reporter``): its ``metric_columns`` and
``parameter_columns`` become the table's columns, ``max_progress_rows`` its length,
``max_report_frequency`` the terminal's pace. The classes also work alone, as in Ray: the
controller asks ``should_report(trials, done)`` and calls ``report(trials, done, *sys_info)``;
``CLIReporter`` prints the table, ``JupyterNotebookReporter`` displays it as HTML. A subclass of
``ProgressReporter`` that overrides both is a custom reporter, as in Ray.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Mapping, Sequence

from juno.tune.progress import MAX_ROWS, REPORT_EVERY_S, TrialTable, check_mode, table_of
from juno.widgets import formatting as fmt
from juno.widgets.tune_view import counts_text, status_badge

__all__ = ["ProgressReporter", "TuneReporterBase", "CLIReporter", "JupyterNotebookReporter"]


class ProgressReporter:
    """Ray's reporter interface: when to report, and how."""

    def setup(self, start_time: float | None = None, total_samples: int | None = None, metric: str | None = None,
              mode: str | None = None, **kwargs: Any) -> None:
        """Told once, before the first trial, what the experiment knows."""

    def should_report(self, trials: Sequence[Any], done: bool = False) -> bool:
        """Whether to report now (``done``: the experiment ended)."""
        raise NotImplementedError

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        """Report the trials' progress (``sys_info``: lines about the cluster's resources)."""
        raise NotImplementedError


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return value


class TuneReporterBase(ProgressReporter):
    """What Ray's CLIReporter and JupyterNotebookReporter share: the columns, the row cap, the pace,
    the metric and mode (for the best trial and, with ``sort_by_metric``, the order)."""

    def __init__(self, *, metric_columns: list[str] | Mapping[str, str] | None = None,
                 parameter_columns: list[str] | Mapping[str, str] | None = None, total_samples: int | None = None,
                 max_progress_rows: int = MAX_ROWS, max_error_rows: int = 20, max_column_length: int = 20,
                 max_report_frequency: float = REPORT_EVERY_S, infer_limit: int = 3,
                 print_intermediate_tables: bool | None = None, metric: str | None = None, mode: str | None = None,
                 sort_by_metric: bool = False):
        TrialTable().set_columns(metric_columns, parameter_columns)  # checks them, with Ray's names in the errors
        self.metric_columns = dict(metric_columns) if isinstance(metric_columns, Mapping) else (
            list(metric_columns) if metric_columns is not None else None)
        self.parameter_columns = dict(parameter_columns) if isinstance(parameter_columns, Mapping) else (
            list(parameter_columns) if parameter_columns is not None else None)
        self.max_progress_rows = int(_positive("max_progress_rows", max_progress_rows))
        self.max_error_rows = int(_positive("max_error_rows", max_error_rows, allow_zero=True))
        self.max_column_length = int(_positive("max_column_length", max_column_length))
        self.max_report_frequency = _positive("max_report_frequency", max_report_frequency, allow_zero=True)
        self.infer_limit = infer_limit
        self.print_intermediate_tables = print_intermediate_tables
        self.total_samples = total_samples
        self.metric, self.mode = metric, check_mode(mode)
        self.sort_by_metric = bool(sort_by_metric)
        self._clock: Callable[[], float] = time.monotonic
        self._last_report: float | None = None

    # ------------------------------------------------------------------ Ray's configuration calls
    def add_metric_column(self, metric: str, representation: str | None = None) -> None:
        self.metric_columns = self._add(self.metric_columns, metric, representation, "metric")

    def add_parameter_column(self, parameter: str, representation: str | None = None) -> None:
        self.parameter_columns = self._add(self.parameter_columns, parameter, representation, "parameter")

    @staticmethod
    def _add(columns: Any, key: str, representation: str | None, what: str) -> Any:
        columns = [] if columns is None else columns
        if key in columns:
            raise ValueError(f"the {what} column {key!r} is already shown")
        if isinstance(columns, dict):
            return {**columns, key: representation or key}
        if representation is not None and representation != key:
            return {**{k: k for k in columns}, key: representation}
        return [*columns, key]

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """The experiment's metric and mode; False when the reporter was given others already (Ray's answer)."""
        if (self.metric and metric and self.metric != metric) or (self.mode and mode and self.mode != mode):
            return False
        self.metric, self.mode = metric or self.metric, check_mode(mode) or self.mode
        return True

    def set_total_samples(self, total_samples: int) -> None:
        self.total_samples = total_samples

    def setup(self, start_time: float | None = None, total_samples: int | None = None, metric: str | None = None,
              mode: str | None = None, **kwargs: Any) -> None:
        if total_samples is not None:
            self.set_total_samples(total_samples)
        self.set_search_properties(metric, mode)

    # ------------------------------------------------------------------ reporting
    def should_report(self, trials: Sequence[Any], done: bool = False) -> bool:
        """At most once per ``max_report_frequency`` seconds, and always at the end."""
        now = self._clock()
        if done or self._last_report is None or now - self._last_report >= self.max_report_frequency:
            self._last_report = now
            return True
        return False

    def table(self, trials: Sequence[Any]) -> TrialTable:
        return table_of(trials, metric=self.metric, mode=self.mode, metric_columns=self.metric_columns,
                        parameter_columns=self.parameter_columns, max_rows=min(self.max_progress_rows, 200),
                        sort_by_metric=self.sort_by_metric)

    def _head(self, table: TrialTable) -> str:
        total = f" of {self.total_samples}" if self.total_samples else ""
        counts = counts_text({k.lower(): n for k, n in table.counts().items()})
        line = f"Trials: {len(table.trials)}{total} ({counts or 'none yet'})"
        best = table.best()
        if best is not None:
            line += f"; current best trial {best.trial_id}: {table.metric}={best.value(table.metric):.4g}"
        return line

    def progress_str(self, trials: Sequence[Any], done: bool = False, *sys_info: str) -> str:
        """The table as text (what CLIReporter prints): a head line, the rows, how many were left out."""
        table = self.table(trials)
        headers, rows, dropped = table.table()
        lines = [*sys_info, self._head(table), fmt.text_table(headers, rows)]
        if dropped:
            lines.append(f"... {dropped} more trials not shown")
        return "\n".join(lines)

    def progress_html(self, trials: Sequence[Any], done: bool = False, *sys_info: str) -> str:
        """The table as self-contained HTML (what JupyterNotebookReporter displays)."""
        table = self.table(trials)
        headers, rows, dropped = table.table()
        status = headers.index("status")
        cells = [[status_badge(c) if i == status else fmt.escape(c) for i, c in enumerate(r)] for r in rows]
        parts = [f"<div>{fmt.escape(line)}</div>" for line in (*sys_info, self._head(table))]
        parts.append(fmt.html_table(headers, cells, raw_columns=range(len(headers))))
        if dropped:
            parts.append(f"<div><i>{dropped} more trials not shown</i></div>")
        return f'<div class="juno-tune-report" style="font-size:12px">{"".join(parts)}</div>'


class CLIReporter(TuneReporterBase):
    """Ray's terminal reporter: prints the table (``progress_str``) when asked to report."""

    def __init__(self, metric_columns: list[str] | Mapping[str, str] | None = None,
                 parameter_columns: list[str] | Mapping[str, str] | None = None, total_samples: int | None = None,
                 max_progress_rows: int = MAX_ROWS, max_error_rows: int = 20, max_column_length: int = 20,
                 max_report_frequency: float = REPORT_EVERY_S, infer_limit: int = 3,
                 print_intermediate_tables: bool | None = None, metric: str | None = None, mode: str | None = None,
                 sort_by_metric: bool = False, *, stream: Any = None):
        super().__init__(metric_columns=metric_columns, parameter_columns=parameter_columns,
                         total_samples=total_samples, max_progress_rows=max_progress_rows,
                         max_error_rows=max_error_rows, max_column_length=max_column_length,
                         max_report_frequency=max_report_frequency, infer_limit=infer_limit,
                         print_intermediate_tables=print_intermediate_tables, metric=metric, mode=mode,
                         sort_by_metric=sort_by_metric)
        self._stream = stream

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        print(self.progress_str(trials, done, *sys_info), file=self._stream or sys.stdout, flush=True)


class JupyterNotebookReporter(TuneReporterBase):
    """Ray's notebook reporter: displays the table as HTML, in place when ``overwrite`` (else one
    table per report); outside a kernel it prints the text table."""

    def __init__(self, overwrite: bool = True, metric_columns: list[str] | Mapping[str, str] | None = None,
                 parameter_columns: list[str] | Mapping[str, str] | None = None, total_samples: int | None = None,
                 max_progress_rows: int = MAX_ROWS, max_error_rows: int = 20, max_column_length: int = 20,
                 max_report_frequency: float = REPORT_EVERY_S, infer_limit: int = 3,
                 print_intermediate_tables: bool | None = None, metric: str | None = None, mode: str | None = None,
                 sort_by_metric: bool = False):
        super().__init__(metric_columns=metric_columns, parameter_columns=parameter_columns,
                         total_samples=total_samples, max_progress_rows=max_progress_rows,
                         max_error_rows=max_error_rows, max_column_length=max_column_length,
                         max_report_frequency=max_report_frequency, infer_limit=infer_limit,
                         print_intermediate_tables=print_intermediate_tables, metric=metric, mode=mode,
                         sort_by_metric=sort_by_metric)
        self.overwrite = bool(overwrite)
        self._handle: Any = None

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        from juno.widgets.live import kernel_shell

        if kernel_shell() is None:
            print(self.progress_str(trials, done, *sys_info), flush=True)
            return
        from IPython.display import HTML, display

        html = HTML(self.progress_html(trials, done, *sys_info))
        if self.overwrite and self._handle is not None:
            self._handle.update(html)
        else:
            self._handle = display(html, display_id=True)

