"""juno.util.progress without processes: the run state, its pacing, the event stream and the GCS's table."""
import io
import threading
import time

import pytest

from juno.gcs.library_runs import LibraryRunTable
from juno.util import progress
from juno.util.progress import FAILED, FINISHED, RUNNING, Pacer, RunClosed, RunOpened, RunSnapshot, RunState


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A sink that keeps every event it gets."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.events = []
        self.lock = threading.Lock()

    def handle(self, event):
        with self.lock:
            self.events.append(event)


@pytest.fixture
def recorder():
    rec = Recorder()
    progress.add_sink(rec)
    progress.set_display_enabled(False)
    yield rec
    progress.remove_sink(rec)
    progress.set_display_enabled(True)


# ============================================================================ RunState
def test_state_counts_rate_and_eta_follow_the_injected_clock():
    clock = FakeClock()
    st = RunState("r", "data", "pipeline", clock=clock, wall_clock=lambda: 1000.0)
    st.set_total(100, unit="rows")
    st.advance(done=10)
    clock.t += 2
    s = st.snapshot()
    assert (s.done, s.total, s.unit, s.state, s.elapsed_s) == (10, 100, "rows", RUNNING, 2)
    assert s.rate == 5 and s.eta_s == 18 and s.fraction == 0.1
    st.update(done=50, failed=2)
    assert (st.snapshot().done, st.snapshot().failed) == (50, 2)


def test_finish_fills_a_known_total_and_freezes_the_run():
    clock = FakeClock()
    st = RunState("r", "data", "t", clock=clock)
    st.set_total(100)
    st.advance(40, failed=5)
    assert st.finish()
    clock.t += 10
    s = st.snapshot()
    assert s.state == FINISHED and s.done == 95 and s.failed == 5 and s.fraction == 1.0
    assert s.eta_s == 0.0 and s.end_time is not None
    assert s.elapsed_s == 0  # the clock stopped at the end
    version = st.version
    assert not st.advance(1) and not st.fail("late") and not st.set_fields({"a": 1})
    assert st.version == version and st.snapshot().state == FINISHED


def test_fail_marks_failed_with_the_error_and_keeps_the_counts():
    st = RunState("r", "train", "t")
    st.set_total(10)
    st.advance(3)
    assert st.fail("ValueError: bad batch")
    s = st.snapshot()
    assert (s.state, s.done, s.error) == (FAILED, 3, "ValueError: bad batch")
    assert not st.finish() and st.snapshot().state == FAILED


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="kind must name the library"):
        RunState("r", "", "t")
    with pytest.raises(TypeError, match="title must be a str"):
        RunState("r", "data", 3)
    st = RunState("r", "data", "t")
    with pytest.raises(ValueError, match="total must be None or a non-negative number"):
        st.set_total(-1)
    with pytest.raises(ValueError, match="done must be a non-negative number"):
        st.advance(done="3")
    with pytest.raises(ValueError, match="failed must be"):
        st.update(failed=float("nan"))
    with pytest.raises(TypeError, match="columns must be a non-empty list of str"):
        st.set_table("abc", [])
    with pytest.raises(ValueError, match=r"table row 1 has 1 cells, but there are 2 columns \(a, b\)"):
        st.set_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(TypeError, match="x and y must be numbers"):
        st.add_point("loss", "x", 1)
    with pytest.raises(TypeError, match="field names must be str"):
        st.set_fields({1: 2})
    assert st.version == 0  # nothing half-applied


def test_table_series_and_fields_are_bounded_and_plain():
    st = RunState("r", "data", "t")
    st.set_table(["op", "obj"], [[f"op{i}", object()] for i in range(progress.MAX_TABLE_ROWS + 5)])
    s = st.snapshot()
    assert len(s.rows) == progress.MAX_TABLE_ROWS and s.rows_dropped == 5
    assert isinstance(s.rows[0][1], str)  # anything not a scalar is shown as str()
    for i in range(progress.MAX_SERIES_POINTS + 10):
        st.add_point("loss", i, 1.0 / (i + 1))
    pts = st.snapshot().series["loss"]
    assert len(pts) == progress.MAX_SERIES_POINTS and pts[0][0] == 10
    st.set_fields({"iteration": 3, "lr": 0.1})
    st.set_fields({"lr": None})
    assert st.snapshot().fields == {"iteration": 3}


def test_a_library_can_leave_rows_out_and_replace_its_series():
    st = RunState("r", "tune", "t")
    st.set_table(["trial", "loss"], [["t1", 0.5]], dropped=7)  # the best rows shown, 7 more counted
    assert st.snapshot().rows == (("t1", 0.5),) and st.snapshot().rows_dropped == 7
    st.set_table(["op"], [[i] for i in range(progress.MAX_TABLE_ROWS + 2)], dropped=3)
    assert st.snapshot().rows_dropped == 5
    st.add_point("t1", 1, 0.5)
    st.set_series({"t2": [(1, 0.4), (2, 0.3)], "t3": [(i, i) for i in range(progress.MAX_SERIES_POINTS + 4)]})
    s = st.snapshot()
    assert list(s.series) == ["t2", "t3"] and s.series["t2"] == ((1.0, 0.4), (2.0, 0.3))
    assert len(s.series["t3"]) == progress.MAX_SERIES_POINTS and s.series["t3"][0] == (4.0, 4.0)
    version = st.version
    with pytest.raises(ValueError, match="dropped must be a non-negative int"):
        st.set_table(["a"], [], dropped=-1)
    with pytest.raises(ValueError, match=f"at most {progress.MAX_SERIES} chart series"):
        st.set_series({f"s{i}": [] for i in range(progress.MAX_SERIES + 1)})
    with pytest.raises(TypeError, match=r"set_series\('x'\): points must be \(x, y\) pairs"):
        st.set_series({"x": [(1, "a")]})
    with pytest.raises(TypeError, match="series must be a dict"):
        st.set_series([("x", [])])
    assert st.version == version and list(st.snapshot().series) == ["t2", "t3"]  # nothing half-applied
    st.finish()
    assert not st.set_series({}) and list(st.snapshot().series) == ["t2", "t3"]


def test_snapshot_round_trips_through_plain_data():
    st = RunState("r", "tune", "sweep", job_id="01000000")
    st.set_total(4, unit="trials")
    st.set_table(["trial", "loss"], [["t1", 0.5]])
    st.add_point("loss", 1, 0.5)
    st.set_fields({"best": "t1"})
    s = st.snapshot()
    data = s.to_dict()
    assert data["rows"] == [["t1", 0.5]] and data["series"] == {"loss": [[1.0, 0.5]]} and "rate" in data
    back = RunSnapshot.from_dict(data)
    assert back == s


# ============================================================================ Pacer
def test_pacer_lets_through_at_most_one_change_per_interval_and_never_a_stale_one():
    pacer = Pacer(0.25)
    now, sent = 0.0, 0
    for version in range(1, 10001):  # 10k changes over 1 s
        now = version / 10000
        if pacer.due(version, now):
            pacer.sent(version, now)
            sent += 1
    assert 4 <= sent <= 5
    assert pacer.next_time(10000) in (None, pacer.sent_at + 0.25)
    assert not pacer.due(pacer.sent_version, now + 10)  # nothing new: nothing due
    with pytest.raises(ValueError, match="interval"):
        Pacer(-1)


# ============================================================================ ProgressRun and the sinks
def test_many_updates_make_a_bounded_number_of_events_and_the_final_one_always(recorder):
    with progress.open("data", "many", total=10**9, unit="rows") as run:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            run.advance(1)
    events = recorder.events
    assert isinstance(events[0], RunOpened) and isinstance(events[-1], RunClosed)
    assert len(events) <= 2 + 0.6 / recorder.interval + 2, len(events)  # bounded by the pace, not by n
    final = events[-1].snapshot
    assert final.state == FINISHED and final.done == 10**9  # the bar ends full
    versions = [e.snapshot.version for e in events]
    assert versions == sorted(versions)  # in order, never an older state after a newer one


def test_the_latest_state_goes_out_without_further_updates(recorder):
    run = progress.open("train", "trailing")
    run.advance(1)
    run.advance(1)  # within the interval of the first: coalesced, then sent when the interval ends
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(e.snapshot.done == 2 for e in recorder.events):
        time.sleep(0.02)
    assert any(e.snapshot.done == 2 and e.snapshot.state == RUNNING for e in recorder.events)
    run.finish()


def test_context_manager_fails_the_run_and_reraises(recorder):
    with pytest.raises(KeyError):
        with progress.open("data", "boom") as run:
            run.advance(3)
            raise KeyError("column x")
    final = recorder.events[-1]
    assert isinstance(final, RunClosed)
    assert final.snapshot.state == FAILED and final.snapshot.error == "KeyError: 'column x'"
    run.finish()  # a second end is ignored: one RunClosed per run
    assert sum(isinstance(e, RunClosed) for e in recorder.events) == 1
    assert run.state == FAILED


def test_updates_from_many_threads_all_count(recorder):
    run = progress.open("data", "threads")
    threads = [threading.Thread(target=lambda: [run.advance(1) for _ in range(5000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    run.finish()
    assert recorder.events[-1].snapshot.done == 20000


def test_display_switch_and_sink_errors_never_break_the_run(recorder):
    assert recorder.events == [] and not progress.display_enabled()
    progress.open("data", "quiet").finish()
    assert recorder.events[0].display is False
    loud = progress.open("data", "loud", display=True)
    assert recorder.events[-1].display is True
    loud.finish()

    class Broken:
        interval = 0.0

        def handle(self, event):
            raise RuntimeError("sink bug")

    broken = Broken()
    progress.add_sink(broken)
    try:
        run = progress.open("data", "survives")
        run.advance(1)
        run.finish()
        assert recorder.events[-1].snapshot.state == FINISHED
    finally:
        progress.remove_sink(broken)
    with pytest.raises(TypeError, match="handle"):
        progress.add_sink(object())
    with pytest.raises(TypeError, match="display must be"):
        progress.open("data", "x", display="yes")


# ============================================================================ the GCS's table
def _run(run_id, state="running", version=1, kind="data", job_id="01000000", start=0.0):
    return {"run_id": run_id, "kind": kind, "title": run_id, "state": state, "version": version,
            "job_id": job_id, "start_time": start}


def test_table_keeps_the_newest_version_and_an_ended_run_never_changes():
    table = LibraryRunTable()
    assert table.publish(_run("a", version=3))
    assert not table.publish(_run("a", version=2))  # an older snapshot that arrived late
    assert table.publish(_run("a", state="finished", version=5))
    assert not table.publish(_run("a", version=4))
    assert not table.publish(_run("a", version=9))  # a running one after the end: ignored
    assert [r["state"] for r in table.runs()] == ["finished"]
    assert not table.publish({"run_id": "x"}) and not table.publish(_run("y", state="odd"))


def test_table_is_bounded_and_filters_by_kind():
    table = LibraryRunTable(max_ended=3, max_running=2)
    for i in range(5):
        table.publish(_run(f"e{i}", state="finished", start=i))
    for i in range(4):
        table.publish(_run(f"r{i}", kind="train", start=10 + i))
    runs = table.runs()
    assert [r["run_id"] for r in runs] == ["e2", "e3", "e4", "r2", "r3"]
    assert [r["run_id"] for r in table.runs("train")] == ["r2", "r3"]


def test_table_without_series_gives_only_their_last_values():
    table = LibraryRunTable()
    table.publish({**_run("a"), "series": {"loss": [[0, 1.0], [1, 0.5]], "empty": []}})
    assert table.runs()[0]["series"] == {"loss": [[0, 1.0], [1, 0.5]], "empty": []}
    light = table.runs(series=False)[0]
    assert "series" not in light and light["series_last"] == {"loss": 0.5}


def test_a_finished_job_fails_its_running_runs():
    table = LibraryRunTable(wall_clock=lambda: 50.0)
    table.publish(_run("mine", job_id="01000000"))
    table.publish(_run("other", job_id="02000000"))
    table.on_job_finished("01000000")
    by_id = {r["run_id"]: r for r in table.runs()}
    assert by_id["mine"]["state"] == "failed" and "driver exited" in by_id["mine"]["error"]
    assert by_id["mine"]["end_time"] == 50.0 and by_id["other"]["state"] == "running"


# ============================================================================ text rendering
def _snapshot(**kw):
    st = RunState("r", "data", "Dataset.map_batches(f)", clock=FakeClock())
    st.set_total(kw.get("total", 1000), unit="rows")
    st.advance(kw.get("done", 250))
    return st


def test_text_rendering_shows_bar_counts_table_fields_and_charts():
    from juno.widgets.run_view import run_text, status_line

    st = _snapshot()
    st.set_table(["operator", "rows"], [["map_batches(f)", 250]])
    st.set_fields({"iteration": 3})
    for i in range(5):
        st.add_point("loss", i, 5 - i)
    text = run_text(st.snapshot())
    line = status_line(st.snapshot())
    assert line.startswith("[data] Dataset.map_batches(f) [") and "250/1,000 rows (25.0%)" in line
    assert "iteration=3" in line and "ETA" in line
    assert "operator" in text and "map_batches(f)  250" in text and "loss: " in text
    st.fail("ValueError: bad")
    text = run_text(st.snapshot())
    assert "failed" in text.splitlines()[0] and "error: ValueError: bad" in text


def test_html_rendering_is_static_escaped_and_red_when_failed():
    from juno.widgets.run_view import run_html

    st = RunState("r", "data", "<script>x</script>")
    st.set_total(10)
    st.add_point("loss", 0, 1)
    st.add_point("loss", 1, 0.5)
    st.fail("ValueError: <bad>")
    html = run_html(st.snapshot())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'data-state="failed"' in html and "#d9534f" in html and "ValueError: &lt;bad&gt;" in html
    assert "<svg" in html and "<polyline" in html
    st2 = _snapshot()
    st2.finish()
    assert "#5cb85c" in run_html(st2.snapshot()) and "1,000/1,000 rows" in run_html(st2.snapshot())


def test_terminal_display_prints_a_bounded_number_of_lines_and_the_final_state():
    from juno.widgets.run_view import DisplaySink

    out = io.StringIO()
    sink = DisplaySink(stream=out)
    assert sink.interval == 1.0  # no kernel here
    progress.add_sink(sink)
    try:
        run = progress.open("data", "terminal", display=True, total=10)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            run.advance(0)
            run.update(done=5)
        run.finish()
    finally:
        progress.remove_sink(sink)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("[data] terminal")]
    assert 1 <= len(lines) <= 4, lines
    assert "10/10 it (100.0%)" in lines[-1] and "finished" in lines[-1]
