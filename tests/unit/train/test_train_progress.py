"""The Train run's view without processes: TrainProgress drives a progress run (read back as its
snapshot), and metrics_view draws it (charts, the compact terminal line, the summary)."""
from __future__ import annotations

import io
import logging
import math
import time

import numpy as np
import pytest

from juno.train.progress import MetricChooser, TrainProgress, WorkerTable, checkpoints_text, error_text, flatten
from juno.util import progress
from juno.util.progress import RunState
from juno.widgets import metrics_view
from juno.widgets.run_view import DisplaySink, layout_for

WORKERS = [{"rank": 1, "local_rank": 1, "node_rank": 0, "node_id": "ab" * 14, "pid": 202, "device": "cpu"},
           {"rank": 0, "local_rank": 0, "node_rank": 0, "node_id": "ab" * 14, "pid": 201, "device": "cpu"}]


_views: list[TrainProgress] = []


@pytest.fixture(autouse=True)
def _end_views():
    """Every view a test opened ends with it: no run stays open for the progress thread."""
    yield
    while _views:
        _views.pop().finish()


def quiet_view(**kw) -> TrainProgress:
    _views.append(TrainProgress("TorchTrainer(train_func)", "run-a", 2, display=False, **kw))
    return _views[-1]


def test_reports_become_one_series_per_metric_loss_first_and_fields_for_the_rest():
    view = quiet_view()
    view.start(1, WORKERS)
    for it in (1, 2, 3):
        view.report(it, {"epoch": it - 1, "accuracy": 0.5 + it / 10, "loss": 1.0 / it, "timestamp": 1e9 + it,
                         "tag": "x" * 200, "val": {"loss": 2.0 / it}, "lr": np.float32(0.5), "note": None})
    s = view.snapshot()
    assert s.kind == "train" and s.title == "TorchTrainer(train_func) · run-a" and s.state == "running"
    assert list(s.series) == ["loss", "val/loss", "accuracy", "lr"]  # loss-like first; bookkeeping never charted
    assert s.series["loss"] == ((1.0, 1.0), (2.0, 0.5), (3.0, 1 / 3))
    assert s.done == 3 and s.unit == "iterations" and s.total is None
    assert list(s.fields)[:2] == ["loss", "val/loss"]
    assert s.fields["epoch"] == 2 and s.fields["timestamp"] == 1e9 + 3 and s.fields["lr"] == 0.5
    assert len(s.fields["tag"]) <= 60 and s.fields["note"] == "None"
    assert s.columns == ("rank", "local", "node", "pid", "device", "state", "reports")
    assert s.rows == ((0, 0, "0 (abababab)", 201, "cpu", "running", 3), (1, 1, "0 (abababab)", 202, "cpu", "starting", 0))


def test_series_stop_at_the_protocols_cap_and_odd_values_are_not_charted():
    chooser = MetricChooser(max_series=2)
    fields = chooser.fields(flatten({"a": 1, "b": 2.0, "c": 3, "d_loss": float("nan"), "e": True, "f": "text"}))
    assert chooser.points(fields) == [("a", 1.0), ("b", 2.0)]  # the NaN loss waits for a finite value
    assert chooser.points(chooser.fields({"z_loss": 0.5, "c": 4})) == []  # full: z_loss comes too late
    view = quiet_view()
    view.report(1, {f"m{i:02d}": i for i in range(progress.MAX_SERIES + 5)})
    assert len(view.snapshot().series) == progress.MAX_SERIES


def test_worker_states_checkpoints_and_a_restart_show_in_the_table_and_the_facts():
    view = quiet_view()
    assert [r[5] for r in view.snapshot().rows] == ["pending", "pending"]  # the group's size before it starts
    view.start(1, WORKERS)
    view.report(1, {"loss": 0.9}, checkpoint_path="/runs/a/checkpoint_000001")
    view.worker_state(1, "running", reports=1)
    view.worker_state(1, "dead")
    assert view.snapshot().fields["checkpoints"] == "1 kept in /runs/a: checkpoint_000001 (loss=0.9)"
    view.restart(2, RuntimeError("worker 1 died\n  Traceback: many lines"))
    s = view.snapshot()
    assert [r[5] for r in s.rows] == ["stopped", "dead"]
    assert s.fields["attempt"] == 2 and s.fields["restarted after"] == "RuntimeError: worker 1 died"
    view.start(2, [dict(w, pid=w["pid"] + 10) for w in WORKERS])
    view.report(2, {"loss": 0.5})
    view.checkpoints([("/runs/a/checkpoint_000002", {"loss": 0.5}), ("/runs/a/checkpoint_000001", {"loss": 0.9})])
    s = view.snapshot()
    assert [r[3] for r in s.rows] == [211, 212] and s.series["loss"] == ((1.0, 0.9), (2.0, 0.5))
    assert s.fields["checkpoints"].startswith("2 kept in /runs/a: checkpoint_000002 (loss=0.5), checkpoint_000001")
    view.finish({"loss": 0.5, "epoch": 1})
    s = view.snapshot()
    assert s.state == "finished" and [r[5] for r in s.rows] == ["finished", "finished"] and s.fields["epoch"] == 1
    view.report(3, {"loss": 0.1})  # after the end: ignored
    assert view.snapshot().done == 2


def test_fail_keeps_the_first_lines_of_the_error_and_marks_the_workers():
    view = quiet_view()
    view.start(1, WORKERS)
    view.worker_state(0, "failed")
    view.fail("TrainingFailedError: ZeroDivisionError: division by zero\n" + "\n".join(f"frame {i}" for i in range(30)))
    s = view.snapshot()
    assert s.state == "failed" and s.error.startswith("TrainingFailedError: ZeroDivisionError")
    assert len(s.error.splitlines()) == 9 and s.error.endswith("(23 more lines)")
    assert [r[5] for r in s.rows] == ["failed", "stopped"]
    assert error_text(ValueError("bad")) == "ValueError: bad"


def test_bad_calls_are_logged_never_raised_and_bad_construction_is_clear(caplog):
    view = quiet_view()
    with caplog.at_level(logging.WARNING, logger="juno.train"):
        view.worker_state(7, "running")
        view.worker_state(0, "sleeping")
        view.report(1, ["not", "a", "dict"])
    assert "no worker of rank 7" in caplog.text and "sleeping" in caplog.text and "must be a dict" in caplog.text
    view.report(1, {"loss": 1.0})
    assert view.snapshot().done == 1  # it carries on
    with pytest.raises(ValueError, match="verbose must be 0"):
        TrainProgress("T", verbose=-1)
    assert quiet_view(verbose=3).verbose == 3  # Ray's Verbosity goes to 3
    assert MetricChooser.order(["acc", "val_loss", "loss", "lr"]) == ["loss", "val_loss", "acc", "lr"]
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        TrainProgress("T", num_workers=0)


def test_checkpoint_and_worker_helpers():
    assert checkpoints_text([]) == "none kept"
    kept = [(f"/r/c{i}", {"loss": i / 10}) for i in range(5)]
    assert checkpoints_text(kept) == "5 kept in /r: c0 (loss=0), c1 (loss=0.1), c2 (loss=0.2), and 2 more"
    assert checkpoints_text([("/a/c1", {}), ("/b/c2", {})]) == "2 kept: /a/c1, /b/c2"
    table = WorkerTable(1)
    table.reported(0)
    assert table.rows()[0][5:] == ["running", 1]


# ============================================================================ how a train run is drawn
def _train_snapshot(state: str = "running") -> progress.RunSnapshot:
    st = RunState("r", "train", "TorchTrainer(f) · run-a", clock=lambda: 10.0)
    st.set_total(None, "iterations")
    for it in range(1, 6):
        st.add_point("loss", it, 1 / it)
        st.add_point("accuracy", it, it / 10)
    st.set_fields({"loss": 0.2, "epoch": 4, "accuracy": 0.5, "note": "<b>x</b>", "checkpoints": "1 kept: c5"})
    st.update(done=5)
    st.set_table(["rank", "state"], [[0, "running"], [1, "running"]])
    if state == "failed":
        st.fail("TrainingFailedError: boom")
    elif state == "finished":
        st.finish()
    return st.snapshot()


def test_the_chart_has_axes_min_max_the_latest_value_and_no_script():
    svg = metrics_view.svg_chart("loss <1>", [(1, 1.0), (2, 0.5), (3, 0.25), (4, math.nan)])
    assert svg.startswith("<svg") and "<script" not in svg and "class=" not in svg
    assert "loss &lt;1&gt;" in svg and ">0.25</tspan>" in svg  # name and latest value
    assert ">1</text>" in svg and ">0.25</text>" in svg and ">3</text>" in svg and ">iteration</text>" in svg
    assert "<polyline" in svg and "nan" not in svg
    one = metrics_view.svg_chart("x", [(1, 2.0)])
    assert "<circle" in one and "<polyline" not in one  # one point: a dot, inside the plot
    assert metrics_view.svg_chart("x", []) == ""


def test_train_runs_draw_charts_metrics_facts_and_workers_while_data_runs_keep_their_look():
    s = _train_snapshot()
    assert layout_for("train") is metrics_view.LAYOUT and layout_for("data").html.__name__ == "run_html"
    html = metrics_view.run_html(s)
    assert 'data-kind="train"' in html and html.count("<svg") == 2 and 'data-metric="loss"' in html
    assert "loss=0.2  epoch=4  accuracy=0.5" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>checkpoints</b>: 1 kept: c5" in html and "<table" in html and "5 iterations" in html
    text = metrics_view.run_text(s)
    assert "loss: " in text and "rank  state" in text and "checkpoints: 1 kept: c5" in text
    failed = metrics_view.run_html(_train_snapshot("failed"))
    assert 'data-state="failed"' in failed and "TrainingFailedError: boom" in failed and "#d9534f" in failed


def test_the_terminal_line_is_compact_and_the_summary_says_how_it_ended():
    line = metrics_view.status_line(_train_snapshot())
    assert line == "[train] TorchTrainer(f) · run-a: iter 5, loss=0.2, elapsed 0.0s"
    summary = metrics_view.summary_line(_train_snapshot("failed"))
    assert summary.startswith("[train] TorchTrainer(f) · run-a: failed after 5 iterations in 0.0s: loss=0.2")
    assert summary.endswith("\nerror: TrainingFailedError: boom") and "checkpoints: 1 kept: c5" in summary


def test_a_terminal_gets_at_most_one_line_a_second_and_a_summary_line():
    out = io.StringIO()
    sink = DisplaySink(stream=out)
    progress.add_sink(sink)
    try:
        view = TrainProgress("TorchTrainer(f)", "term", 1, display=True, verbose=2, stream=out)
        view.start(1, WORKERS[1:])
        deadline, it = time.monotonic() + 1.6, 0
        while time.monotonic() < deadline:
            it += 1
            view.report(it, {"loss": 1 / it, "accuracy": 0.1, "epoch": it})
            time.sleep(0.01)
        view.finish({"loss": 1 / it})
    finally:
        progress.remove_sink(sink)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("[train] TorchTrainer(f) · term")]
    assert 2 <= len(lines) <= 4, lines
    assert all("accuracy" not in ln and "epoch" not in ln for ln in lines)  # never the whole metrics dict
    assert lines[-1].startswith(f"[train] TorchTrainer(f) · term: finished after {it} iterations")
    assert "metrics: loss=" in out.getvalue() and "rank  local" in out.getvalue()  # verbose=2: the details
