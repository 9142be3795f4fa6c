"""How Serve's view looks (juno.widgets.serve_view): text and static HTML of a "serve" run, pure
functions of a snapshot; and the view's shell without a cluster (it ends, never raises)."""
import io

import pytest

from juno.serve import progress as serve_progress
from juno.serve.progress import ServeBoard, ServeProgress
from juno.util import progress
from juno.widgets import run_view, serve_view


def snapshot_of(board: ServeBoard, **kw) -> progress.RunSnapshot:
    columns, rows = board.table()
    state = progress.RunState("r1", "serve", "Serve · default", wall_clock=lambda: 0.0)
    kw.setdefault("elapsed_s", 12.0)
    state.set_table(columns, rows)
    state.set_fields({k: v for k, v in board.fields().items()})
    state.set_series(board.curves)
    return progress.RunSnapshot(**{**state.snapshot().__dict__, **kw})


def board_with_two_apps() -> ServeBoard:
    board = ServeBoard("default", start=0.0)
    routes = {"version": 1, "routes": {"/": {"app": "default", "deployment": "Ingress"},
                                       "/b": {"app": "other", "deployment": "B"}}}
    for t in range(3):
        board.observe(
            {"applications": {
                "default": {"status": "RUNNING", "message": "", "deployments": {
                    "Ingress": {"status": "HEALTHY", "replica_states": {"RUNNING": 2}, "message": ""},
                    "Model": {"status": "UPSCALING", "replica_states": {"RUNNING": 1, "STARTING": 1}}}},
                "other": {"status": "DEPLOY_FAILED", "message": "RuntimeError: <no GPU>", "deployments": {
                    "B": {"status": "DEPLOY_FAILED", "replica_states": {}, "message": "RuntimeError: <no GPU>"}}}}},
            {"default": {"Ingress": {"qps": 10.0 + t, "p50_ms": 1.5, "p99_ms": 4.0 + t, "errors": 1},
                         "Model": {"qps": 30.0, "p50_ms": 0.5, "p99_ms": 1.0, "errors": 0}},
             "other": {}},
            routes, now=float(t))
    return board


def test_serve_runs_have_their_own_layout():
    assert run_view.layout_for("serve") is serve_view.LAYOUT


def test_text_shows_both_tables_and_the_curves():
    s = snapshot_of(board_with_two_apps())
    text = serve_view.run_text(s)
    first = text.splitlines()[0]
    assert first == "[serve] Serve · default: route /, RUNNING, 3 RUNNING, 1 STARTING, 12 req/s, p99 6 ms, " \
                    "1 error, elapsed 12s"
    assert "application  route  status         replicas" in text
    assert "default      Ingress     HEALTHY" in text and "Model       UPSCALING" in text
    assert "RuntimeError: <no GPU>" in text
    assert "req/s · default:" in text and "p99 ms · default:" in text


def test_html_has_two_charts_both_tables_and_escapes_messages():
    html = serve_view.run_html(snapshot_of(board_with_two_apps()))
    assert html.count("<svg") == 2 and 'data-metric="requests/s"' in html and 'data-metric="p99 latency (ms)"' in html
    assert 'data-juno="applications"' in html and 'data-juno="deployments"' in html
    assert 'data-status="DEPLOY_FAILED"' in html and serve_view.STATUS_COLORS["DEPLOY_FAILED"] in html
    assert "&lt;no GPU&gt;" in html and "<no GPU>" not in html
    assert "<script" not in html


def test_an_ended_view_says_why_and_a_failed_one_shows_its_error():
    board = board_with_two_apps()
    done = snapshot_of(board, state=progress.FINISHED, fields={**board.fields(), serve_view.ENDED: "Serve shut down"})
    assert serve_view.final_text(done).endswith("ended: Serve shut down")
    assert 'data-juno="ended"' in serve_view.run_html(done)
    failed = snapshot_of(board, state=progress.FAILED, error="application 'x' is DEPLOY_FAILED: boom")
    assert "error: application 'x' is DEPLOY_FAILED: boom" in serve_view.final_text(failed)
    assert serve_view.run_html(failed).count("<pre") == 1


def test_an_empty_view_says_it_waits():
    board = ServeBoard(None)
    board.serve_missing(now=0.0)
    s = snapshot_of(board)
    assert serve_view.status_line(s) == "[serve] Serve · default: waiting for Serve to start, elapsed 12s"
    assert "<svg" not in serve_view.run_html(s)


def test_watch_needs_a_connected_cluster():
    import juno

    assert not juno.is_initialized()
    with pytest.raises(RuntimeError, match=r"call juno.init\(\)"):
        serve_progress.watch()


def test_without_a_cluster_the_view_ends_with_one_terminal_line_and_never_raises():
    out = io.StringIO()
    view = ServeProgress("default", display=True, stream=out)
    assert view.poll_once() is False
    snap = view.snapshot()
    assert snap.state == progress.FINISHED and snap.fields[serve_view.ENDED].startswith("disconnected")
    assert out.getvalue() == "[serve] view ended: disconnected from the cluster (juno.shutdown())\n"
    view.stop()   # stopping an ended view is harmless
    assert view.snapshot().version == snap.version


@pytest.mark.parametrize("kw", [{"interval_s": 0}, {"call_timeout_s": -1}, {"display": "yes"}])
def test_the_shell_refuses_bad_settings(kw):
    with pytest.raises((ValueError, TypeError)):
        ServeProgress(**kw)
