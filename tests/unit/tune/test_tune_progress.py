"""Tune's live trial table without processes: TuneProgress driven by trial doubles (read back as its
snapshot), the TrialTable's decisions, tune_view's drawing and Ray's reporter classes."""
from __future__ import annotations

import dataclasses
import io
import logging
import re

import pytest

from juno.tune.progress import MAX_CHARTED, TrialTable, TuneProgress
from juno.tune.progress_reporter import CLIReporter, JupyterNotebookReporter, ProgressReporter
from juno.util import progress
from juno.widgets import tune_view
from juno.widgets.run_view import layout_for


@dataclasses.dataclass
class Trial:
    """A double of juno.tune.experiment.Trial: the attributes of the contract, nothing else."""
    trial_id: str
    config: dict = dataclasses.field(default_factory=dict)
    evaluated_params: dict = dataclasses.field(default_factory=dict)
    experiment_tag: str = ""
    status: str = "PENDING"
    last_result: dict = dataclasses.field(default_factory=dict)
    metric_analysis: dict = dataclasses.field(default_factory=dict)
    checkpoint: object = None
    path: str = ""
    num_failures: int = 0
    error: str | None = None

    def is_finished(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")

    def report(self, iteration: int, **metrics) -> "Trial":
        self.status = "RUNNING"
        self.last_result = {**metrics, "training_iteration": iteration, "time_total_s": iteration * 0.5,
                            "trial_id": self.trial_id, "config": self.config, "done": False,
                            "timestamp": 1.7e9 + iteration}
        return self


def trials(n: int) -> list[Trial]:
    return [Trial(f"abc_{i:05d}", {"lr": 10.0 ** -i, "opt": {"m": 0.9}}, {"lr": 10.0 ** -i, "opt/m": 0.9})
            for i in range(n)]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


_views: list[TuneProgress] = []


@pytest.fixture(autouse=True)
def _end_views():
    """Every view a test opened ends with it: no run stays open for the progress thread."""
    yield
    while _views:
        _views.pop().finish()


def view(**kw) -> TuneProgress:
    kw.setdefault("display", False)
    _views.append(TuneProgress("Tuner(train_fn)", "exp", **kw))
    return _views[-1]


def column(s: progress.RunSnapshot, name: str) -> list:
    i = s.columns.index(name)
    return [row[i] for row in s.rows]


# ============================================================================ the table
@pytest.mark.parametrize("mode", ["min", "max"])
def test_rows_are_sorted_by_the_metric_best_first_with_latest_and_best_values(mode):
    v = view(metric="loss", mode=mode, num_samples=4)
    ts = trials(4)
    for t in ts:
        v.trial_added(t)
    s = v.snapshot()
    assert s.kind == "tune" and s.title == "Tuner(train_fn) · exp" and s.unit == "trials" and s.total == 4
    assert column(s, "status") == ["PENDING"] * 4 and column(s, "trial name") == [t.trial_id for t in ts]
    for it, losses in enumerate([(0.4, 0.1, 0.9, None), (0.3, 0.5, 0.8, None)], start=1):
        for t, loss in zip(ts, losses):
            if loss is not None:
                v.trial_updated(t.report(it, loss=loss, acc=1 - loss))
    s = v.snapshot()
    assert s.columns == ("trial name", "status", "lr", "opt/m", "loss", "best loss", "acc", "iter", "total time (s)")
    order = ["abc_00000", "abc_00001", "abc_00002"] if mode == "min" else ["abc_00002", "abc_00001", "abc_00000"]
    assert column(s, "trial name") == order + ["abc_00003"]  # sorted by the latest value; no value last
    best = {"abc_00000": 0.3, "abc_00001": 0.1, "abc_00002": 0.8} if mode == "min" else \
        {"abc_00000": 0.4, "abc_00001": 0.5, "abc_00002": 0.9}
    assert dict(zip(column(s, "trial name"), column(s, "best loss"))) == {**best, "abc_00003": ""}
    assert column(s, "iter")[:3] == [2, 2, 2] and column(s, "total time (s)")[0] == 1.0
    assert s.fields["best"] == (0.3 if mode == "min" else 0.8)
    assert s.fields["best trial"] == order[0] and s.fields["metric"] == "loss" and s.fields["mode"] == mode
    assert s.fields["running"] == 3 and s.fields["pending"] == 1 and "terminated" not in s.fields


def test_metric_analysis_gives_the_best_value_the_view_never_saw():
    v = view(metric="acc", mode="max")
    t = trials(1)[0]
    t.metric_analysis = {"acc": {"max": 0.99, "min": 0.1, "last": 0.5}}
    v.trial_updated(t.report(7, acc=0.5))
    s = v.snapshot()
    assert column(s, "acc") == [0.5] and column(s, "best acc") == [0.99]


def test_long_tables_keep_running_trials_and_the_best_and_count_the_rest():
    table = TrialTable("loss", "min", max_rows=5)
    ts = trials(30)
    for i, t in enumerate(ts):
        t.report(1, loss=float(i))
        t.status = "TERMINATED"
        table.update(t)
    for t in ts[-3:]:  # the worst three are still running
        t.status = "RUNNING"
        table.update(t)
    headers, rows, dropped = table.table()
    names = [r[0] for r in rows]
    assert names == ["abc_00000", "abc_00001", "abc_00027", "abc_00028", "abc_00029"] and dropped == 25
    v = view(metric="loss", mode="min")
    for t in ts:
        v.trial_updated(t)
    s = v.snapshot()
    assert len(s.rows) == 20 and s.rows_dropped == 10  # Ray's 20 rows; the dashboard says "10 more"
    assert "(10 more trials not shown)" in tune_view.run_text(s)
    assert "10 more trials not shown" in tune_view.run_html(s)


def test_status_counts_fill_the_bar_and_more_trials_than_announced_raise_the_total():
    v = view(metric="loss", mode="min", num_samples=2)
    ts = trials(3)
    for t in ts:
        v.trial_added(t)
    assert v.snapshot().total == 3  # never past 100 %
    v.trial_updated(ts[0].report(1, loss=1.0))
    ts[1].status, ts[1].error = "ERROR", "ValueError: lr too high\nTraceback ..."
    v.trial_updated(ts[1])
    ts[0].status = "TERMINATED"
    v.trial_updated(ts[0])
    s = v.snapshot()
    assert (s.done, s.failed) == (1, 1) and s.fields["terminated"] == 1 and s.fields["error"] == 1
    assert "running" not in s.fields and s.fields["pending"] == 1
    assert tune_view.counts_text(s.fields) == "1 pending, 1 terminated, 1 error"
    assert column(s, "error") == ["", "ValueError: lr too high", ""]


def test_verbose_two_adds_columns_and_reporter_columns_replace_the_defaults():
    t = trials(1)[0].report(1, loss=0.5, acc=0.7, f1=0.6, auc=0.8, blob="x" * 500)
    v = view(metric="loss", mode="min", verbose=2)
    v.trial_updated(t)
    assert v.snapshot().columns == ("trial name", "status", "lr", "opt/m", "loss", "best loss", "acc", "f1", "auc",
                                    "iter", "total time (s)", "failures")
    v = view(metric="loss", mode="min")
    v.trial_updated(t)
    assert "f1" in v.snapshot().columns and "auc" not in v.snapshot().columns  # verbose 1: two other metrics
    v.configure_from_reporter(CLIReporter(metric_columns={"acc": "Accuracy", "training_iteration": "iter"},
                                          parameter_columns=["opt/m"], max_progress_rows=3))
    s = v.snapshot()
    assert s.columns == ("trial name", "status", "opt/m", "loss", "best loss", "Accuracy", "iter", "total time (s)")
    assert v.table.max_rows == 3
    v.configure_from_reporter(CLIReporter(parameter_columns={"lr": "learning rate"}))
    assert "learning rate" in v.snapshot().columns and "acc" in v.snapshot().columns


def test_a_reporter_can_give_the_metric_and_the_experiments_metric_wins():
    v = view()
    ts = trials(3)
    for t, loss in zip(ts, (0.5, 0.1, 0.9)):
        v.trial_updated(t.report(1, loss=loss, acc=1 - loss))
    s = v.snapshot()
    assert column(s, "trial name") == [t.trial_id for t in ts]  # no metric: in the order added
    assert "loss" in s.columns and "best" not in s.fields and s.fields["metric"] == "loss"  # the first one charted
    v.configure_from_reporter(CLIReporter(metric="acc", mode="max"))
    s = v.snapshot()
    assert column(s, "trial name") == ["abc_00001", "abc_00000", "abc_00002"] and s.fields["best"] == 0.9
    v.set_metric("loss", "min")  # the experiment's own metric (the scheduler's, the searcher's) wins
    s = v.snapshot()
    assert s.fields["metric"] == "loss" and column(s, "trial name") == ["abc_00001", "abc_00000", "abc_00002"]
    assert column(s, "best loss") == [0.1, 0.5, 0.9]


# ============================================================================ the chart
def test_the_chart_follows_the_best_trials_and_restarts_rewrite_a_curve():
    v = view(metric="loss", mode="min")
    ts = trials(MAX_CHARTED + 2)
    for it in (1, 2):
        for i, t in enumerate(ts):
            v.trial_updated(t.report(it, loss=i + 1.0 / it))
    s = v.snapshot()
    assert list(s.series) == [t.trial_id for t in ts[:MAX_CHARTED]]
    assert s.series["abc_00000"] == ((1.0, 1.0), (2.0, 0.5))
    v.trial_updated(ts[-1].report(3, loss=-5.0))  # the last trial becomes the best: the worst charted one goes
    s = v.snapshot()
    assert "abc_00011" in s.series and f"abc_{MAX_CHARTED - 1:05d}" not in s.series and len(s.series) == MAX_CHARTED
    assert s.series["abc_00011"] == ((1.0, 12.0), (2.0, 11.5), (3.0, -5.0))
    v.trial_updated(ts[0].report(2, loss=0.25))  # a PBT exploit: back to iteration 2 with another value
    assert v.snapshot().series["abc_00000"] == ((1.0, 1.0), (2.0, 0.25))
    v.trial_updated(ts[0])  # a status change only: no new point
    assert v.snapshot().series["abc_00000"] == ((1.0, 1.0), (2.0, 0.25))
    assert_chart_drawn(v.snapshot())


def assert_chart_drawn(s: progress.RunSnapshot) -> None:
    html = tune_view.run_html(s)
    assert html.count("<svg") == 1 and 'data-metric="loss"' in html and html.count("<polyline") == len(s.series)
    assert ">training_iteration</text>" in html and "<title>abc_00011</title>" in html
    legend = re.findall(r"</span> (abc_\d+) ", html)
    assert legend[0] == "abc_00011" and len(legend) == 10  # best first


def test_a_metric_known_late_restarts_the_chart_on_it():
    v = view()
    t = trials(1)[0]
    v.trial_updated(t.report(1, acc=0.5, loss=2.0))
    assert v.snapshot().series == {"abc_00000": ((1.0, 0.5),)}  # the first reported metric meanwhile
    v.set_metric("loss", "min")
    assert v.snapshot().series == {}
    v.trial_updated(t.report(2, acc=0.6, loss=1.0))
    assert v.snapshot().series == {"abc_00000": ((2.0, 1.0),)} and v.snapshot().fields["metric"] == "loss"


# ============================================================================ the end, the terminal, bad input
def test_finish_writes_one_summary_line_with_the_best_trial_and_its_config():
    v = view(metric="loss", mode="min", num_samples=2)
    ts = trials(2)
    for t, loss in zip(ts, (0.5, 0.25)):
        v.trial_updated(t.report(3, loss=loss))
        t.status = "TERMINATED"
        v.trial_updated(t)
    _views.remove(v)
    v.finish({"trials": 2, "terminated": 2, "errors": 0, "interrupted": True})
    s = v.snapshot()
    assert s.state == "finished" and s.done == 2
    assert re.fullmatch(r"2 trials \(2 terminated\) in \S+; best abc_00001: loss=0\.25 \(lr=0\.1, opt/m=0\.9\) "
                        r"\[interrupted=True\]", s.fields["summary"])
    assert tune_view.summary_text(s).splitlines()[-1].startswith("[tune] Tuner(train_fn) · exp: finished: 2 trials")
    v.trial_updated(ts[0].report(4, loss=0.0))  # after the end: ignored
    assert v.snapshot().version == s.version


def test_the_terminal_gets_a_compact_table_every_few_seconds_never_the_result_dict():
    clock, out = Clock(), io.StringIO()
    v = view(metric="loss", mode="min", display=True, stream=out, clock=clock)
    assert v.run.snapshot() and out.getvalue() == ""
    ts = trials(3)
    for it in range(1, 301):  # 300 iterations of 3 trials, 0.1 s apart: 30 s
        for t in ts:
            v.trial_updated(t.report(it, loss=1.0 / it, secret_blob="B" * 300, acc=0.5, f1=0.1, auc=0.2))
        clock.t += 0.1
    _views.remove(v)
    ts[0].status = "ERROR"
    ts[0].error = "RuntimeError: boom"
    v.trial_updated(ts[0])
    v.fail(RuntimeError("the controller died"))
    text = out.getvalue()
    tables = text.count("trial name  status")
    assert 5 <= tables <= 8, tables  # every 5 s, and the final one
    assert "secret_blob" not in text and "B" * 30 not in text and "auc" not in text
    assert text.rstrip().endswith("error: RuntimeError: the controller died")
    assert "[tune] Tuner(train_fn) · exp: failed: 3 trials (2 running, 1 error)" in text


def test_verbose_zero_prints_nothing_and_the_run_is_still_published():
    out = io.StringIO()
    v = view(display=True, verbose=0, stream=out, clock=Clock())
    v.trial_updated(trials(1)[0].report(1, loss=1.0))
    assert out.getvalue() == "" and v.snapshot().rows


def test_bad_arguments_are_named_and_a_broken_trial_never_breaks_the_experiment(caplog):
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', got 'minimize'"):
        TuneProgress("t", mode="minimize", display=False)
    with pytest.raises(ValueError, match="verbose must be 0"):
        TuneProgress("t", verbose=-1, display=False)
    with pytest.raises(ValueError, match="num_samples must be None"):
        TuneProgress("t", num_samples="3", display=False)
    v = view(metric="loss", mode="min")
    with caplog.at_level(logging.WARNING, logger="juno.tune"):
        v.trial_updated(object())  # no trial_id
        v.set_metric("loss", "sideways")
    assert "could not show trial_updated()" in caplog.text and "could not show set_metric()" in caplog.text
    odd = Trial("odd", evaluated_params={"obj": object(), "arr": [1, 2]}, status="RUNNING",
                last_result={"loss": float("nan"), "training_iteration": 1, "note": None})
    v.trial_updated(odd)
    s = v.snapshot()
    assert s.state == "running" and column(s, "loss") == ["nan"] and s.series == {}


# ============================================================================ drawing and reporters
def test_tune_runs_have_their_layout_with_coloured_statuses_and_no_script():
    v = view(metric="loss", mode="min", num_samples=2)
    ts = trials(2)
    v.trial_updated(ts[0].report(1, loss=0.5))
    ts[1].status, ts[1].error = "ERROR", "boom <b>"
    v.trial_updated(ts[1])
    s = v.snapshot()
    assert layout_for("tune") is tune_view.LAYOUT
    html = tune_view.run_html(s)
    assert 'data-kind="tune"' in html and "<script" not in html and "boom &lt;b&gt;" in html
    assert f'data-status="RUNNING" style="color:{tune_view.STATUS_COLORS["RUNNING"]}' in html
    assert 'data-status="ERROR"' in html and "best loss=0.5 (abc_00000)" in html
    assert "<b>best config</b>: lr=1, opt/m=0.9" in html
    assert tune_view.status_line(s).endswith("1 running, 1 error, 2/2 trials, best loss=0.5 (abc_00000), "
                                             "elapsed " + tune_view.fmt.format_duration(s.elapsed_s))


def test_reporters_keep_rays_interface_pace_and_columns():
    clock = Clock()
    out = io.StringIO()
    reporter = CLIReporter(metric_columns=["loss"], max_report_frequency=5, stream=out)
    reporter._clock = clock
    reporter.add_metric_column("acc", "Accuracy")
    reporter.add_parameter_column("lr")
    with pytest.raises(ValueError, match="the metric column 'loss' is already shown"):
        reporter.add_metric_column("loss")
    assert reporter.metric_columns == {"loss": "loss", "acc": "Accuracy"} and reporter.parameter_columns == ["lr"]
    assert reporter.set_search_properties("loss", "min") and not reporter.set_search_properties("acc", None)
    reporter.setup(total_samples=3)
    ts = [t.report(1, loss=loss, acc=0.1) for t, loss in zip(trials(3), (0.3, 0.1, 0.2))]
    assert reporter.should_report(ts) and not reporter.should_report(ts)
    clock.t += 5
    assert reporter.should_report(ts) and reporter.should_report(ts, done=True)
    reporter.report(ts, False, "Resources requested: 3/4 CPUs")
    text = out.getvalue()
    assert text.startswith("Resources requested: 3/4 CPUs\nTrials: 3 of 3 (3 running); current best trial abc_00001")
    lines = text.splitlines()
    assert lines[2].split() == ["trial", "name", "status", "lr", "loss", "best", "loss", "Accuracy", "iter", "total",
                                "time", "(s)"]
    assert [ln.split()[0] for ln in lines[3:6]] == ["abc_00000", "abc_00001", "abc_00002"]  # sort_by_metric=False
    assert CLIReporter(sort_by_metric=True, metric="loss", mode="min").progress_str(ts).splitlines()[2].startswith(
        "abc_00001")
    html = JupyterNotebookReporter(metric="loss", mode="min").progress_html(ts)
    assert "<table" in html and 'data-status="RUNNING"' in html
    with pytest.raises(TypeError, match="metric_columns must be a list of keys or a dict"):
        CLIReporter(metric_columns="loss")
    with pytest.raises(ValueError, match="max_progress_rows must be a positive number"):
        CLIReporter(max_progress_rows=0)
    with pytest.raises(NotImplementedError):
        ProgressReporter().report(ts, False)
