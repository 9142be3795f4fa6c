"""`juno serve status|shutdown` and Serve's live view (juno.serve.progress) against a real cluster.

The Serve controller is written in parallel (branch serve-core); until it lands these tests talk to
``ContractController``, a real named actor in namespace "serve" that answers the contract's read
calls (get_status, get_metrics, get_routes) with what the test sets. The CLI runs as a real process.
"""
import io
import os
import subprocess
import sys

import pytest

import juno
from helpers import wait_for_condition
from juno.owner.core_worker import global_worker
from juno.serve import progress as serve_progress
from juno.util import progress
from juno.util.state import list_library_runs
from juno.widgets import serve_view

JUNO_SHARED_INIT = {"num_cpus": 2}


@juno.remote(num_cpus=0)
class ContractController:
    """The contract's read side of SERVE_CONTROLLER, answering what the test sets."""

    def __init__(self):
        self.status = {"proxies": {}, "applications": {}, "target_capacity": None}
        self.metrics, self.routes = {}, {"version": 0, "routes": {}}

    def set(self, status, metrics=None, routes=None):
        self.status, self.metrics = status, metrics or {}
        self.routes = routes or self.routes

    def get_status(self):
        return self.status

    def get_metrics(self):
        return self.metrics

    def get_routes(self):
        return self.routes


def app_status(app_status="RUNNING", replicas=None, message=""):
    deps = {"Ingress": {"status": "HEALTHY" if app_status == "RUNNING" else "UPDATING", "status_trigger": "",
                        "replica_states": replicas or {"RUNNING": 2}, "message": ""}}
    return {"proxies": {"node1": "HEALTHY"}, "target_capacity": None, "applications": {
        "default": {"status": app_status, "message": message, "last_deployed_time_s": 1.5, "deployments": deps}}}


ROUTES = {"version": 1, "routes": {"/hello": {"app": "default", "deployment": "Ingress"}}}
METRICS = {"default": {"Ingress": {"requests": 40, "errors": 1, "ongoing": 0, "qps": 20.0, "p50_ms": 1.2,
                                   "p99_ms": 3.4}}}


@pytest.fixture
def controller(cluster):
    handle = ContractController.options(name="SERVE_CONTROLLER", namespace="serve").remote()
    juno.get(handle.set.remote(app_status(), METRICS, ROUTES), timeout=30)
    yield handle
    view = serve_progress.current()
    if view is not None:
        view.stop()
    juno.kill(handle)
    wait_for_condition(lambda: _gone(), timeout=20)


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


def test_cli_status_prints_applications_deployments_and_replicas_as_yaml(controller):
    r = run_cli("status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == ["proxies:", "  node1: HEALTHY", "applications:", "  default:"]
    for line in ("    status: RUNNING", "    route_prefix: /hello", "    deployments:", "      Ingress:",
                 "        status: HEALTHY", "        replica_states:", "          RUNNING: 2", "target_capacity: null"):
        assert line in r.stdout.splitlines(), r.stdout
    one = run_cli("status", "--name", "default")
    assert one.returncode == 0 and one.stdout.splitlines()[0] == "default:"
    missing = run_cli("status", "--name", "nope")
    assert missing.returncode == 1
    assert "no Serve application named 'nope' (applications: default)" in missing.stderr


def test_cli_shutdown_asks_first(controller):
    r = run_cli("shutdown", stdin="n\n")
    assert r.returncode == 1 and "not shut down (answer y, or pass -y)" in r.stderr
    assert not _gone()


def test_the_view_follows_serve_live_and_finishes_when_serve_goes(controller):
    out = io.StringIO()
    view = serve_progress.ServeProgress("default", display=True, stream=out, interval_s=0.2).start()
    try:
        snap = wait_for_condition(lambda: (s := view.snapshot()).rows and s, timeout=20)
        assert snap.kind == "serve" and snap.fields[serve_view.ROUTE] == "/hello"
        assert (snap.fields[serve_view.QPS], snap.fields[serve_view.P99]) == (20.0, 3.4)
        assert snap.series[serve_view.QPS_SERIES + "default"][-1][1] == 20.0
        # The dashboard and the state API list it with the same fields.
        row = wait_for_condition(lambda: next((r for r in list_library_runs(kind="serve", detail=True)
                                               if r.run_id == snap.run_id and r.fields.get("route")), None),
                                 timeout=20)
        assert row.fields["route"] == "/hello" and row.fields["replicas"] == "2 RUNNING"
        assert row.fields["status"] == "RUNNING" and row.fields["p99 ms"] == 3.4

        juno.get(controller.set.remote(app_status("RUNNING", {"RUNNING": 3})), timeout=30)
        wait_for_condition(lambda: view.snapshot().fields[serve_view.REPLICAS] == "3 RUNNING", timeout=20)
        juno.kill(controller)  # Serve went away: the view ends finished, its thread stops
        wait_for_condition(lambda: view.snapshot().state == progress.FINISHED, timeout=20)
        view._thread.join(10)
        assert not view._thread.is_alive()
    finally:
        view.stop()
    lines = out.getvalue().splitlines()
    # One line per state change, not one per poll (several rounds ran between them).
    assert lines == ["[serve] application 'default' (/hello): RUNNING",
                     "[serve] deployment default/Ingress: HEALTHY, 2 RUNNING",
                     "[serve] view ended: Serve shut down"], lines


def test_the_view_fails_with_the_message_when_its_application_fails_to_deploy(controller):
    juno.get(controller.set.remote(app_status("DEPLOY_FAILED", {}, "RuntimeError: no model at /x")), timeout=30)
    view = serve_progress.ServeProgress("default", display=False, interval_s=0.2).start()
    try:
        snap = wait_for_condition(lambda: (s := view.snapshot()).ended and s, timeout=20)
    finally:
        view.stop()
    assert snap.state == progress.FAILED and "DEPLOY_FAILED: RuntimeError: no model at /x" in snap.error


def test_a_newer_watch_takes_over(controller):
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


def test_juno_shutdown_stops_the_view(cluster):
    """Last in the module: it disconnects the shared cluster."""
    view = serve_progress.watch(display=False)
    wait_for_condition(lambda: view.snapshot().fields.get(serve_view.NOTE) == "waiting for Serve to start", timeout=20)
    juno.shutdown()
    wait_for_condition(lambda: view.snapshot().ended, timeout=10)
    assert view.snapshot().fields[serve_view.ENDED] == "disconnected from the cluster (juno.shutdown())"
    view._thread.join(10)
    assert not view._thread.is_alive() and serve_progress.current() is None
