"""The pure parts of juno.widgets: formatting, throttling, progress arithmetic, text/HTML fallbacks."""
import sys

import pytest

from juno.widgets import formatting as fmt
from juno.widgets.blocks import LineChart, ProgressBar, Table, sparkline
from juno.widgets.cluster import render_cluster_html, render_cluster_text
from juno.widgets.live import WIDGET_MIME, LiveView, Ticker, kernel_shell
from juno.widgets.progress import ProgressState


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def test_format_duration_rate_bytes():
    assert fmt.format_duration(None) == "?"
    assert fmt.format_duration(float("inf")) == "?"
    assert fmt.format_duration(3.31) == "3.3s"
    assert fmt.format_duration(42) == "42s"
    assert fmt.format_duration(184) == "3m 04s"
    assert fmt.format_duration(7500) == "2h 05m"
    assert fmt.format_rate(None) == "? it/s"
    assert fmt.format_rate(250, "task") == "250 task/s"
    assert fmt.format_rate(2.5) == "2.5 it/s"
    assert fmt.format_rate(0.25) == "4.0 s/it"
    assert fmt.format_bytes(512) == "512 B"
    assert fmt.format_bytes(3 * 2**30) == "3.0 GiB"


def test_bars_and_fraction():
    assert fmt.fraction(5, None) is None and fmt.fraction(5, 0) is None
    assert fmt.fraction(15, 10) == 1.0
    assert fmt.text_bar(0.5, 10) == "[#####.....]"
    assert fmt.text_bar(None, 4) == "[????]"
    html = fmt.html_bar(0.5, label="<b>x</b>", failed_frac=0.1)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<script" not in html
    assert "width:40.0%" in html and "width:10.0%" in html


def test_tables_escape_and_align():
    text = fmt.text_table(["a", "long header"], [(1, "x"), ("wide cell", 2)])
    lines = text.splitlines()
    assert lines[0].startswith("a          long header")
    html = fmt.html_table(["h"], [("<img src=x>",)])
    assert "&lt;img src=x&gt;" in html
    raw = fmt.html_table(["h"], [("<i>ok</i>",)], raw_columns=(0,))
    assert "<i>ok</i>" in raw


def test_throttle_with_fake_clock():
    clock = FakeClock()
    t = fmt.Throttle(0.25, clock)
    assert t.ready()
    clock.t += 0.1
    assert not t.ready()
    clock.t += 0.2
    assert t.ready()
    assert not t.ready()
    with pytest.raises(ValueError):
        fmt.Throttle(-1)


def test_progress_state_counts_rate_eta():
    clock = FakeClock()
    s = ProgressState(total=10, description="squares", clock=clock)
    s.submitted = 10
    assert s.running == 10 and not s.complete and s.rate() is None and s.eta() is None
    clock.t += 2.0
    for _ in range(3):
        s.record(True)
    s.record(False)
    assert (s.done, s.failed, s.running, s.finished) == (3, 1, 6, 4)
    assert s.rate() == pytest.approx(2.0)
    assert s.eta() == pytest.approx(3.0)
    text = s.text()
    assert text.startswith("squares: [") and "4/10 finished" in text and "1 failed" in text
    assert "6 running" in text and "ETA 3.0s" in text
    for _ in range(6):
        s.record(True)
    assert s.complete and s.eta() == 0.0
    clock.t += 50  # the clock stops at completion
    assert s.elapsed() == pytest.approx(2.0)
    assert "ETA" not in s.text()
    assert "#5cb85c" not in s.html()  # a failure keeps the bar from turning green


def test_progress_state_unknown_total_until_exhausted():
    s = ProgressState(clock=FakeClock())
    s.submitted = 2
    s.record(True)
    s.record(True)
    assert s.expected is None and not s.complete and "2/? finished" in s.text()
    assert "[???" in s.text()
    s.exhausted = True
    assert s.complete and "2/2 finished" in s.text()


def test_live_view_outside_a_kernel_is_text_and_html_only():
    assert kernel_shell() is None
    view = LiveView(lambda: "plain", lambda: "<b>rich</b>")
    bundle = view.mimebundle()
    assert bundle == {"text/plain": "plain", "text/html": "<b>rich</b>"}
    assert WIDGET_MIME not in bundle and view.widget is None
    assert not view.refresh()


def test_ticker_stops_when_tick_says_so():
    calls = []

    def tick():
        calls.append(1)
        return len(calls) < 3

    t = Ticker(tick, 0.01).start()
    t._thread.join(5)
    assert not t.running and len(calls) == 3
    with pytest.raises(ValueError):
        Ticker(tick, 0)


def test_ticker_max_seconds_and_errors_end_it():
    t = Ticker(lambda: True, 0.01, max_seconds=0.05).start()
    t._thread.join(5)
    assert not t.running

    def boom():
        raise RuntimeError("display gone")

    t = Ticker(boom, 0.01).start()
    t._thread.join(5)
    assert not t.running


def test_blocks_render_text_and_html():
    bar = ProgressBar(total=4, description="epochs")
    bar.update(1, note="loss 0.3")
    assert bar.text() == "epochs: [" + "#" * 8 + "." * 22 + "] 1/4 loss 0.3"
    assert "epochs" in bar.html() and "25.0%" in bar.html()
    assert set(bar._repr_mimebundle_()) == {"text/plain", "text/html"}

    table = Table(["trial", "score"], max_rows=2)
    for i in range(3):
        table.add_row([f"t{i}", i / 10])
    assert "t0" not in table.text() and "t2" in table.text() and "1 older rows" in table.text()
    assert "<table" in table.html()
    with pytest.raises(ValueError):
        table.add_row([1])
    with pytest.raises(ValueError):
        Table([])

    chart = LineChart(title="loss", max_points=3)
    assert chart.text() == "loss" and "no data" in chart.html()
    for step, loss in enumerate([1.0, 0.5, 0.4, 0.2]):
        chart.append("train", step, loss)
    chart.append("<eval>", 3, 0.3)
    assert len(chart.series["train"]) == 3
    assert chart.text().splitlines()[1].startswith("train: ") and "last 0.2" in chart.text()
    html = chart.html()
    assert "<svg" in html and html.count("<polyline") == 2 and "&lt;eval&gt;" in html
    with pytest.raises(ValueError):
        chart.append("train", 1, "not a number")
    assert sparkline([0, 1, 2]) == "▁▄█" and sparkline([]) == ""


def test_cluster_renderers():
    snap = {"connected": True, "address": "127.0.0.1:6379", "running_tasks": 3,
            "actors": {"ALIVE": 2, "DEAD": 5}, "errors": ["node x: timed out"],
            "nodes": [
                {"node_id": "a" * 40, "address": "tcp://1", "ip": "10.0.0.1", "alive": True,
                 "usage": {"CPU": (3.0, 4.0), "GPU": (1.0, 2.0), "object_store_memory": (2**30, 4 * 2**30)}},
                {"node_id": "b" * 40, "address": "tcp://2", "ip": "10.0.0.2", "alive": False, "usage": {}},
            ]}
    text = render_cluster_text(snap)
    assert "1 node alive (1 dead), 3 running tasks, 2 actors" in text
    assert "CPU" in text and "3 / 4" in text and "1.0 GiB / 4.0 GiB" in text and "missing: node x" in text
    html = render_cluster_html(snap)
    assert "75.0%" in html and "<details>" in html and "dead" in html and "aaaaaaaaaaaa" in html
    assert "not connected" in render_cluster_text({"connected": False})
    assert "not connected" in render_cluster_html({"connected": False})


def test_task_error_html_puts_the_message_first():
    from juno.exceptions import GetTimeoutError, RayTaskError
    from juno.widgets.reprs import error_html

    try:
        raise ValueError("bad <input>")
    except ValueError as e:
        err = RayTaskError.from_exception(e, "square", pid=123, ip="10.0.0.1")
    html = err.as_instanceof_cause()._repr_html_()
    assert html.index("ValueError: bad &lt;input&gt;") < html.index("<details>")
    assert "remote traceback" in html and "task square" in html and "pid 123" in html
    other = error_html(GetTimeoutError("took too long"))
    assert "GetTimeoutError" in other and "took too long" in other


def test_import_juno_does_not_import_ipywidgets():
    import subprocess

    code = ("import sys, juno, juno.widgets; from juno.widgets import progress; "
            "print('ipywidgets' in sys.modules, 'IPython' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_error_html_is_one_escaped_block_every_view_uses():
    """The red error block is one helper (formatting.error_html), shared by every run layout."""
    from juno.util import progress
    from juno.widgets import formatting, metrics_view, run_view, tune_view

    html = formatting.error_html("ValueError: <bad>\n  line 2")
    assert html.startswith("<pre") and "&lt;bad&gt;" in html and "\n  line 2" in html
    snap = progress.RunSnapshot("r", "data", "t", state=progress.FAILED, error="ValueError: <bad>\n  line 2")
    for layout in (run_view.GENERIC_LAYOUT, metrics_view.LAYOUT, tune_view.LAYOUT):
        assert html in layout.html(snap)
