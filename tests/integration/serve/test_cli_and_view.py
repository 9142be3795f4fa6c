"""`juno serve status|shutdown` and Serve's live view (juno.serve.progress) against the real Serve: the
controller, replicas and proxy of a real cluster, figures from real requests. The CLI runs as a real process.

One cluster and one Serve for the module: Serve starts with the first test that needs it; the view's
"Serve went away" test shuts it down, so it runs after the others that need Serve.
"""
import io
import os
import subprocess
import sys

import cloudpickle
import pytest

import juno
from helpers import wait_for_condition
from juno import serve
from juno.owner.core_worker import global_worker
from juno.serve import progress as serve_progress
from juno.util import progress
from juno.util.state import list_library_runs
from juno.widgets import serve_view

JUNO_SHARED_INIT = {"num_cpus": 2}
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # replicas can't import this file


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
class Ingress:
    def __call__(self, x=0):
        return x + 1


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Doomed:
    def __init__(self):
        raise RuntimeError("no model at /x")


@pytest.fixture
def app(cluster):
    """Application "default" on /hello, two replicas, which has answered requests (the view's figures)."""
    if serve.status().applications.get("default") is None:
        serve.start(http_options={"port": 0})
        handle = serve.run(Ingress.bind(), name="default", route_prefix="/hello")
        assert [handle.remote(i).result(timeout_s=30) for i in range(20)] == list(range(1, 21))
        node = juno.get_runtime_context().get_node_id()
        wait_for_condition(lambda: serve.status().proxies == {node: "HEALTHY"}, timeout=60)
    yield "default"
    view = serve_progress.current()
    if view is not None:
        view.stop()


def _gone() -> bool:
    try:
        juno.get_actor("SERVE_CONTROLLER", namespace="serve")
    except ValueError:
        return True
    return False


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    address = global_worker().gcs_address.replace("tcp://", "")
    env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "juno", "serve", *args, "--address", address], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_says_plainly_when_serve_is_not_running(cluster):
    r = run_cli("status")
    assert r.returncode == 1 and r.stdout == ""
    assert "Serve is not running on the cluster at" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("shutdown", "-y")
    assert r.returncode == 0 and "nothing to shut down" in r.stdout


def test_cli_status_prints_applications_deployments_and_replicas_as_yaml(app):
    r = run_cli("status")
    assert r.returncode == 0, r.stderr
    node = juno.get_runtime_context().get_node_id()
    assert r.stdout.splitlines()[:4] == ["proxies:", f"  {node}: HEALTHY", "applications:", "  default:"]
    for line in ("    status: RUNNING", "    route_prefix: /hello", "    deployments:", "      Ingress:",
                 "        status: HEALTHY", "        replica_states:", "          RUNNING: 2", "target_capacity: null"):
        assert line in r.stdout.splitlines(), r.stdout
    one = run_cli("status", "--name", "default")
    assert one.returncode == 0 and one.stdout.splitlines()[0] == "default:"
    missing = run_cli("status", "--name", "nope")
    assert missing.returncode == 1
    assert "no Serve application named 'nope' (applications: default)" in missing.stderr


def test_cli_shutdown_asks_first(app):
    r = run_cli("shutdown", stdin="n\n")
    assert r.returncode == 1 and "not shut down (answer y, or pass -y)" in r.stderr
    assert not _gone()


def test_the_view_fails_with_the_message_when_its_application_fails_to_deploy(app):
    with pytest.raises(RuntimeError, match="no model at /x"):
        serve.run(Doomed.bind(), name="doomed", route_prefix="/doomed")
    view = serve_progress.ServeProgress("doomed", display=False, interval_s=0.2).start()
    try:
        snap = wait_for_condition(lambda: (s := view.snapshot()).ended and s, timeout=20)
    finally:
        view.stop()
    assert snap.state == progress.FAILED and "DEPLOY_FAILED" in snap.error and "no model at /x" in snap.error
    serve.delete("doomed")


def test_a_newer_watch_takes_over(app):
    first = serve_progress.watch("default", display=False)
    second = serve_progress.watch(display=False)
    assert serve_progress.current() is second
    assert first.snapshot().state == progress.FINISHED
    assert first.snapshot().fields[serve_view.ENDED] == "a newer view took over"
    first._thread.join(10)
    assert not first._thread.is_alive()
    wait_for_condition(lambda: second.snapshot().rows, timeout=20)
    second.stop()
    assert serve_progress.current() is None or serve_progress.current() is not second


def test_the_view_follows_serve_live_and_finishes_when_serve_goes(app):
    """After the others that need Serve: it shuts Serve down."""
    handle = serve.get_app_handle("default")
    assert [handle.remote(i).result(timeout_s=30) for i in range(20)] == list(range(1, 21))  # recent figures
    out = io.StringIO()
    view = serve_progress.ServeProgress("default", display=True, stream=out, interval_s=0.2).start()
    try:
        snap = wait_for_condition(lambda: (s := view.snapshot()).rows and s.fields.get(serve_view.QPS) and s,
                                  timeout=30)
        assert snap.kind == "serve" and snap.fields[serve_view.ROUTE] == "/hello"
        assert snap.fields[serve_view.QPS] > 0 and snap.fields[serve_view.P99] > 0
        assert snap.series[serve_view.QPS_SERIES + "default"][-1][1] > 0
        # The dashboard and the state API list it with the same fields.
        row = wait_for_condition(lambda: next((r for r in list_library_runs(kind="serve", detail=True)
                                               if r.run_id == snap.run_id and r.fields.get("route")), None),
                                 timeout=20)
        assert row.fields["route"] == "/hello" and row.fields["replicas"] == "2 RUNNING"
        assert row.fields["status"] == "RUNNING" and row.fields["p99 ms"] > 0

        serve.run(Ingress.options(num_replicas=3).bind(), name="default", route_prefix="/hello")  # rescale
        wait_for_condition(lambda: view.snapshot().fields[serve_view.REPLICAS] == "3 RUNNING", timeout=30)
        serve.shutdown()  # Serve went away: the view ends finished, its thread stops
        wait_for_condition(lambda: view.snapshot().state == progress.FINISHED, timeout=20)
        view._thread.join(10)
        assert not view._thread.is_alive()
    finally:
        view.stop()
    lines = out.getvalue().splitlines()
    # One line per state change, not one per poll (many rounds ran between them).
    assert lines[:2] == ["[serve] application 'default' (/hello): RUNNING",
                         "[serve] deployment default/Ingress: HEALTHY, 2 RUNNING"], lines
    # The rescale shows in the view's fields (waited for above); a terminal line comes only when a status
    # changes, and the deployment's UPDATING can be shorter than a poll, so it may have no line of its own
    # (and serve.shutdown's deletion may print one more before the end).
    assert all("2 RUNNING, 1 STARTING" in line or "3 RUNNING" in line or line.endswith("UPDATING")
               for line in lines[2:-1] if line.startswith("[serve] deployment")), lines
    # serve.shutdown deletes the applications first: the view may see that before the controller goes.
    assert lines[-1] in ("[serve] view ended: Serve shut down",
                         "[serve] view ended: application 'default' was deleted"), lines
    assert all(a != b for a, b in zip(lines, lines[1:])) and len(lines) <= 10, lines


def test_juno_shutdown_stops_the_view(cluster):
    """Last in the module: it disconnects the shared cluster."""
    view = serve_progress.watch(display=False)
    wait_for_condition(lambda: view.snapshot().fields.get(serve_view.NOTE) == "waiting for Serve to start", timeout=20)
    juno.shutdown()
    wait_for_condition(lambda: view.snapshot().ended, timeout=10)
    assert view.snapshot().fields[serve_view.ENDED] == "disconnected from the cluster (juno.shutdown())"
    view._thread.join(10)
    assert not view._thread.is_alive() and serve_progress.current() is None
