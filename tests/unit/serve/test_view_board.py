"""Serve's live view, the pure part (juno.serve.progress.ServeBoard): the controller's answers in
(the contract's dict shapes), the table, fields, curves, terminal lines and the view's end out."""
import pytest

from juno.serve.progress import ServeBoard, counts_text, replicas_text
from juno.util import progress
from juno.widgets import serve_view as view


def status(**apps):
    """get_status()'s shape: ``name=(app status, {deployment: (status, {replica state: n})}, message)``."""
    out = {}
    for name, (app_status, deps, *message) in apps.items():
        out[name] = {"status": app_status, "message": message[0] if message else "", "last_deployed_time_s": 1.0,
                     "deployments": {d: {"status": s, "status_trigger": "", "replica_states": r, "message": ""}
                                     for d, (s, r) in deps.items()}}
    return {"proxies": {"n1": "HEALTHY"}, "applications": out, "target_capacity": None}


def metric(qps, p50=1.0, p99=2.0, errors=0, requests=0):
    return {"requests": requests, "errors": errors, "ongoing": 0, "qps": qps, "p50_ms": p50, "p99_ms": p99}


ROUTES = {"version": 1, "routes": {"/": {"app": "default", "deployment": "Ingress"},
                                   "/b": {"app": "other", "deployment": "B"}}}


def test_replica_and_status_counts_read_like_ray():
    assert replicas_text({"STARTING": 1, "RUNNING": 2, "STOPPING": 0}) == "2 RUNNING, 1 STARTING"
    assert replicas_text({}) == ""
    assert counts_text(["RUNNING", "DEPLOYING", "RUNNING"]) == "2 RUNNING, 1 DEPLOYING"


def test_table_rows_are_each_application_then_its_deployments_ingress_first():
    board = ServeBoard("default", start=0.0)
    board.observe(status(default=("RUNNING", {"Model": ("HEALTHY", {"RUNNING": 1}),
                                              "Ingress": ("UPDATING", {"RUNNING": 1, "STARTING": 1})}),
                         other=("DEPLOYING", {"B": ("UPDATING", {"STARTING": 1})})),
                  {"default": {"Ingress": metric(10.0, 3.0, 9.5, errors=2), "Model": metric(20.0)}},
                  ROUTES, now=1.0)
    columns, rows = board.table()
    assert columns == list(view.COLUMNS)
    assert [(r[0], r[1]) for r in rows] == [("default", ""), ("default", "Ingress"), ("default", "Model"),
                                            ("other", ""), ("other", "B")]
    app = dict(zip(columns, rows[0]))
    # The application's figures are its ingress deployment's: what its callers see.
    assert app == {"application": "default", "deployment": "", "route": "/", "status": "RUNNING",
                   "replicas": "2 RUNNING, 1 STARTING", "req/s": 10.0, "p50 ms": 3.0, "p99 ms": 9.5, "errors": 2,
                   "message": ""}
    assert dict(zip(columns, rows[3]))["req/s"] == ""  # no metrics yet: blank, not 0
    fields = board.fields()
    assert fields[view.STATUS] == "RUNNING" and fields[view.ROUTE] == "/"
    assert fields[view.REPLICAS] == "2 RUNNING, 1 STARTING"
    assert (fields[view.QPS], fields[view.P99], fields[view.ERRORS]) == (10.0, 9.5, 2)
    assert fields[view.APPLICATIONS] == 2 and fields[view.WATCHING] == "default"


def test_watching_every_application_sums_the_rates_and_counts_the_statuses():
    board = ServeBoard(None)
    board.observe(status(default=("RUNNING", {"Ingress": ("HEALTHY", {"RUNNING": 2})}),
                         other=("DEPLOYING", {"B": ("UPDATING", {"STARTING": 1})})),
                  {"default": {"Ingress": metric(10.0, p99=5.0)}, "other": {"B": metric(2.5, p99=7.0)}},
                  ROUTES, now=1.0)
    fields = board.fields()
    assert fields[view.STATUS] == "1 RUNNING, 1 DEPLOYING"
    assert fields[view.ROUTE] == "/, /b"
    assert (fields[view.QPS], fields[view.P99]) == (12.5, 7.0)
    assert fields[view.REPLICAS] == "2 RUNNING, 1 STARTING"


def test_an_application_without_a_known_ingress_adds_up_its_deployments():
    board = ServeBoard(None)
    board.observe(status(a=("RUNNING", {"X": ("HEALTHY", {}), "Y": ("HEALTHY", {})})),
                  {"a": {"X": metric(1.0, p99=3.0, errors=1), "Y": metric(2.0, p99=8.0, errors=1)}}, None, now=0.0)
    m = board.app_metrics("a")
    assert (m.qps, m.p99_ms, m.errors) == (3.0, 8.0, 2.0)


def test_curves_keep_the_last_window_per_application_and_drop_deleted_ones():
    board = ServeBoard(None, start=100.0, window_s=10.0)
    for t in range(15):
        apps = status(default=("RUNNING", {"Ingress": ("HEALTHY", {"RUNNING": 1})}))
        board.observe(apps, {"default": {"Ingress": metric(float(t), p99=float(2 * t))}}, ROUTES, now=100.0 + t)
    qps = board.curves[view.QPS_SERIES + "default"]
    assert qps[0] == (4.0, 4.0) and qps[-1] == (14.0, 14.0)   # x: seconds since the view started
    assert board.curves[view.P99_SERIES + "default"][-1] == (14.0, 28.0)
    board.observe(status(), {}, ROUTES, now=116.0)
    assert board.curves == {}


def test_a_terminal_gets_a_line_per_state_change_not_per_round():
    board = ServeBoard("default")
    running = status(default=("DEPLOYING", {"Ingress": ("UPDATING", {"STARTING": 1})}))
    board.observe(running, {}, ROUTES, now=0.0)
    assert board.take_lines() == ["application 'default' (/): DEPLOYING",
                                  "deployment default/Ingress: UPDATING, 1 STARTING"]
    for t in range(5):  # the same state again and again: nothing new to say
        board.observe(running, {"default": {"Ingress": metric(float(t))}}, ROUTES, now=1.0 + t)
    assert board.take_lines() == []
    board.observe(status(default=("RUNNING", {"Ingress": ("HEALTHY", {"RUNNING": 1})})), {}, ROUTES, now=9.0)
    assert board.take_lines() == ["application 'default' (/): RUNNING",
                                  "deployment default/Ingress: HEALTHY, 1 RUNNING"]


def test_the_view_fails_when_its_application_is_deploy_failed_with_the_message():
    board = ServeBoard("default")
    board.observe(status(default=("DEPLOY_FAILED", {"Ingress": ("DEPLOY_FAILED", {})},
                                  "ValueError: bad model path\nTraceback ...")), {}, ROUTES, now=1.0)
    state, why = board.outcome
    assert state == progress.FAILED
    assert "DEPLOY_FAILED" in why and "ValueError: bad model path" in why
    assert board.take_lines()[-1].startswith("failed: application 'default' is DEPLOY_FAILED")
    board.observe(status(default=("RUNNING", {})), {}, ROUTES, now=2.0)  # ended: later rounds change nothing
    assert board.outcome == (state, why)


def test_the_view_finishes_when_its_application_is_deleted_or_serve_shuts_down():
    board = ServeBoard("default")
    board.observe(status(default=("RUNNING", {})), {}, ROUTES, now=0.0)
    board.observe(status(default=("DELETING", {})), {}, ROUTES, now=1.0)
    assert board.outcome is None
    board.observe(status(), {}, ROUTES, now=2.0)
    assert board.outcome == (progress.FINISHED, "application 'default' was deleted")

    every = ServeBoard(None)
    every.observe(status(default=("RUNNING", {})), {}, ROUTES, now=0.0)
    every.observe(status(), {}, ROUTES, now=1.0)   # watching every application: deleting one ends nothing
    assert every.outcome is None
    every.serve_missing(now=2.0)
    assert every.outcome == (progress.FINISHED, "Serve shut down")


def test_a_view_waits_a_while_for_serve_and_its_application_then_says_what_is_missing():
    board = ServeBoard(None, start=0.0, grace_s=5.0)
    board.serve_missing(now=1.0)
    assert board.outcome is None and board.fields()[view.NOTE] == "waiting for Serve to start"
    board.serve_missing(now=6.0)
    assert board.outcome[0] == progress.FINISHED and "Serve is not running" in board.outcome[1]

    typo = ServeBoard("defualt", start=0.0, grace_s=5.0)
    typo.observe(status(default=("RUNNING", {})), {}, ROUTES, now=1.0)
    assert typo.outcome is None
    typo.observe(status(default=("RUNNING", {})), {}, ROUTES, now=6.0)
    assert typo.outcome == (progress.FAILED, "there is no Serve application named 'defualt' (applications: default)")


def test_a_failed_round_is_a_note_until_one_works():
    board = ServeBoard(None)
    board.poll_failed("the Serve controller did not answer within 5s")
    assert board.fields()[view.NOTE] == "the Serve controller did not answer within 5s"
    board.observe(status(), {}, ROUTES, now=1.0)
    assert board.fields()[view.NOTE] is None and board.outcome is None


def test_stop_ends_the_view_finished_once():
    board = ServeBoard(None)
    board.stop("a newer view took over")
    board.stop("again")
    assert board.outcome == (progress.FINISHED, "a newer view took over")


@pytest.mark.parametrize("bad", ["", 3])
def test_a_bad_app_name_is_refused(bad):
    with pytest.raises(ValueError, match="app_name must be"):
        ServeBoard(bad)


def test_odd_answers_do_not_break_the_board():
    board = ServeBoard(None)
    board.observe({"applications": {"a": {"status": "RUNNING", "deployments": None}, "b": "junk"}},
                  {"a": "junk", "b": {"X": {"qps": float("nan")}}}, {"routes": "junk"}, now=0.0)
    _, rows = board.table()
    assert [r[0] for r in rows] == ["a"]
    assert board.fields()[view.QPS] is None
