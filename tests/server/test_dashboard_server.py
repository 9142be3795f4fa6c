"""The standalone dashboard process against a real cluster: its token auth, every route of
the state API, killing an actor, logs, the live websocket, the page, and the process's
life (started and stopped with the cluster, a busy port).

The module's cluster is juno.init()'s own, with its dashboard on a port picked here
(so another dashboard on this machine does not matter); the CLI tests run
`juno start --head` / `juno stop` with a private cluster file (tests/cli_harness.py).
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest
import tornado.httpclient
import tornado.websocket

from cli_harness import Cli, free_port
from helpers import wait_for_condition, wait_for_file

DASHBOARD_PORT = free_port()
JUNO_SHARED_INIT = {"num_cpus": 2, "dashboard_port": DASHBOARD_PORT}
TASK_KEYS = {"task_id", "name", "func_or_class_name", "state", "type", "job_id", "actor_id", "node_id",
             "worker_id", "worker_pid", "attempt_number", "creation_time", "start_time", "end_time",
             "error_type", "error_message"}
UPDATE_KEYS = {"summary", "nodes", "tasks", "actors", "placement_groups", "jobs", "library_runs"}


# ============================================================================ helpers
def request(method: str, path: str, *, port: int = DASHBOARD_PORT, token: str | None = None,
            cookie: str | None = None, body: dict | None = None) -> tuple[int, dict, bytes]:
    """One HTTP request (no redirects followed): (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    if cookie is not None:
        headers["Cookie"] = cookie
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(path: str, token: str, port: int = DASHBOARD_PORT) -> dict:
    status, headers, body = request("GET", path, token=token, port=port)
    assert status == 200, (path, status, body)
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


def error_of(status_body: tuple) -> str:
    status, headers, body = status_body
    assert headers["content-type"].startswith("application/json"), headers
    return json.loads(body)["error"]


@pytest.fixture
def dash(cluster):
    """(context, token) of the module's cluster once its dashboard answers."""
    import juno
    from juno.comm import auth

    ctx = juno.init(ignore_reinit_error=True)
    token = auth.resolve_token(ctx["gcs_address"])[0]
    wait_for_condition(lambda: request("GET", "/api/summary", token=token)[0] == 200, timeout=30)
    return ctx, token


async def next_message(ws, timeout: float = 15.0, kind: str | None = None) -> dict:
    """The next message (of type ``kind``), within ``timeout`` seconds (asyncio.TimeoutError if none)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), max(0.01, deadline - time.monotonic()))
        assert raw is not None, "the server closed the websocket"
        msg = json.loads(raw)
        if kind is None or msg["type"] == kind:
            return msg


async def connect(token: str | None, port: int = DASHBOARD_PORT, origin: str | None = None):
    headers = {"Authorization": f"token {token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    req = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{port}/api/events", headers=headers,
                                         connect_timeout=20, request_timeout=20)
    return await tornado.websocket.websocket_connect(req)


# ============================================================================ auth and routes
def test_token_is_required(dash):
    ctx, token = dash
    for path in ("/api/summary", "/api/nodes", "/api/tasks", "/api/logs?actor_id=00000000"):
        for wrong in (None, "not-the-token-at-all-0123456789"):
            answer = request("GET", path, token=wrong)
            assert answer[0] == 401, (path, answer)
            assert "juno token" in error_of(answer)
    assert request("POST", "/api/actors/" + "ab" * 16 + "/kill", token=None, body={})[0] == 401
    assert request("GET", "/api/summary", cookie="juno_dashboard_token=forged")[0] == 401
    assert request("GET", "/api/summary", token=token)[0] == 200


def test_every_route_answers_with_the_contract_payload(dash):
    import juno

    ctx, token = dash
    summary = get_json("/api/summary", token)
    assert summary["address"] == ctx.address
    assert summary["nodes"] == {"alive": 1, "dead": 0}
    assert summary["resources"]["CPU"]["total"] == 2
    assert set(summary) >= {"time", "version", "object_store", "tasks", "actors", "placement_groups", "jobs"}
    nodes = get_json("/api/nodes", token)["nodes"]
    assert len(nodes) == 1 and nodes[0]["alive"] and nodes[0]["is_head"] and nodes[0]["state"] == "ALIVE"
    assert set(nodes[0]["object_store"]) >= {"used", "total", "spilled", "num_objects"}

    @juno.remote
    def square(x):
        return x * x

    @juno.remote(max_retries=0)
    def broken():
        raise ValueError("dashboard-test-failure")

    assert juno.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    with pytest.raises(Exception):
        juno.get(broken.remote())

    def tasks_seen():
        t = get_json("/api/tasks?limit=5", token)
        names = {f["name"]: f for f in t["by_function"]}
        return t if any("square" in n for n in names) and t["failed"] else None

    tasks = wait_for_condition(tasks_seen, timeout=20)
    assert tasks["failed_total"] >= 1 and len(tasks["failed"]) <= 5
    assert set(tasks["failed"][0]) >= TASK_KEYS
    assert "dashboard-test-failure" in (tasks["failed"][0]["error_message"] or "")
    ref = juno.put(b"x" * (1 << 20))
    objects = get_json("/api/objects?limit=10", token)
    assert set(objects) == {"summary", "objects", "truncated"} and objects["summary"]["count"] >= 1
    assert any(o["object_id"] == ref.hex() for o in objects["objects"]) or objects["truncated"]
    jobs = get_json("/api/jobs", token)["jobs"]
    assert any(j["status"] == "RUNNING" for j in jobs)
    workers = get_json("/api/workers", token)["workers"]
    assert workers and {"worker_id", "pid", "node_id", "is_alive", "worker_type"} <= set(workers[0])
    assert isinstance(get_json("/api/placement_groups", token)["placement_groups"], list)
    assert isinstance(get_json("/api/actors", token)["actors"], list)


def test_library_runs_route_shows_a_finished_run(dash):
    from juno.util import progress

    ctx, token = dash
    title = f"pipeline-{uuid.uuid4().hex[:8]}"
    with progress.open("data", title, total=10, unit="rows", display=False) as run:
        run.set_table(["operator", "rows"], [["ReadRange", 10]])
        run.add_point("rows/s", 0, 5)
    runs = get_json("/api/library_runs", token)["runs"]
    mine = next(r for r in runs if r["title"] == title)
    assert mine["state"] == "finished" and mine["done"] == 10 and mine["kind"] == "data"
    assert mine["rows"] == [["ReadRange", 10]] and mine["series_last"] == {"rows/s": 5.0}


def test_bad_parameters_and_unknown_paths_are_clear_json_errors(dash):
    ctx, token = dash
    for path, words in (("/api/tasks?limit=0", "limit"), ("/api/tasks?limit=many", "limit"),
                        ("/api/objects?limit=100000", "limit"), ("/api/logs", "actor_id"),
                        ("/api/logs?actor_id=xyz12345", "hex"), ("/api/logs?worker_id=abc", "8"),
                        ("/api/logs?actor_id=abcdef12&tail=0", "tail")):
        answer = request("GET", path, token=token)
        assert answer[0] == 400, (path, answer)
        assert words in error_of(answer), (path, answer)
    for who in ("actor_id", "worker_id"):
        answer = request("GET", f"/api/logs?{who}=" + "ab" * 16, token=token)
        assert answer[0] == 404 and error_of(answer), answer
    answer = request("POST", "/api/actors/" + "ab" * 16 + "/kill", token=token, body={})
    assert answer[0] == 404 and error_of(answer)
    answer = request("POST", "/api/actors/nothex/kill", token=token, body={})
    assert answer[0] == 400
    answer = request("GET", "/api/nothing", token=token)
    assert answer[0] == 404 and "/api/" in error_of(answer)


def test_kill_an_actor_and_read_its_logs(dash):
    import juno

    ctx, token = dash
    marker = f"hello-from-the-actor-{uuid.uuid4().hex[:8]}"

    @juno.remote
    class Talker:
        def say(self, text):
            print(text, flush=True)
            return os.getpid()

    name = f"talker-{uuid.uuid4().hex[:8]}"
    actor = Talker.options(name=name).remote()
    juno.get(actor.say.remote(marker))
    actors = wait_for_condition(lambda: [a for a in get_json("/api/actors", token)["actors"]
                                         if a["name"] == name and a["state"] == "ALIVE"], timeout=20)
    actor_id = actors[0]["actor_id"]
    logs = wait_for_condition(lambda: (lambda p: p if any(marker in line for line in p["lines"]) else None)(
        get_json(f"/api/logs?actor_id={actor_id[:12]}&tail=50", token)), timeout=20)
    assert logs["source"]["kind"] == "actor" and logs["source"]["id"].startswith(actor_id[:12])
    assert len(logs["lines"]) <= 50
    status, _, body = request("POST", f"/api/actors/{actor_id}/kill", token=token, body={"no_restart": True})
    assert (status, json.loads(body)) == (200, {"ok": True})
    wait_for_condition(lambda: [a for a in get_json("/api/actors", token)["actors"]
                                if a["actor_id"] == actor_id and a["state"] == "DEAD"], timeout=20)
    with pytest.raises(juno.exceptions.RayActorError):
        juno.get(actor.say.remote("after the kill"), timeout=20)


# ============================================================================ websocket
def test_websocket_sends_updates_and_honours_pause_and_resume(dash, gate):
    import juno

    ctx, token = dash

    @juno.remote
    def hold(path):
        wait_for_file(path)
        return 1

    async def scenario():
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await connect(None)
        assert refused.value.code == 401
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:  # another site's page
            await connect(token, origin="http://elsewhere.example")
        assert refused.value.code == 403
        ws = await connect(token)
        try:
            hello = await next_message(ws)
            assert hello == {"type": "hello", "address": ctx.address, "interval": 1.0}
            first = await next_message(ws, kind="update")
            assert set(first["data"]) == UPDATE_KEYS
            assert first["data"]["summary"]["address"] == ctx.address
            ws.write_message(json.dumps({"type": "ping"}))
            assert (await next_message(ws, kind="pong")) == {"type": "pong"}
            ref = hold.remote(str(gate))
            deadline = time.monotonic() + 20
            while True:  # an update that shows the task running
                msg = await next_message(ws, timeout=max(0.1, deadline - time.monotonic()), kind="update")
                tasks = msg["data"].get("tasks")
                if tasks and tasks["by_state"].get("RUNNING", 0) >= 1:
                    assert set(msg["data"]) < UPDATE_KEYS  # only what changed
                    break
            ws.write_message(json.dumps({"type": "pause"}))
            # The server handles a client's messages in order: once the pong is here, the pause is in
            # effect, and any update sent before it has arrived.
            ws.write_message(json.dumps({"type": "ping"}))
            await next_message(ws, kind="pong")
            gate.touch()  # the task finishes: a change that a subscribed client would be told about
            assert juno.get(ref, timeout=20) == 1
            # Paused: no update while the task's end would show (a bounded wait: 3 intervals).
            with pytest.raises(asyncio.TimeoutError):
                while True:
                    msg = await next_message(ws, timeout=3.0)
                    assert msg["type"] != "update", msg
            ws.write_message(json.dumps({"type": "resume"}))
            full = await next_message(ws, kind="update")
            assert set(full["data"]) == UPDATE_KEYS
            assert full["data"]["tasks"]["by_state"].get("RUNNING", 0) == 0
        finally:
            ws.close()

    asyncio.run(scenario())


# ============================================================================ the page
def test_page_login_by_token_sets_a_strict_httponly_cookie(dash):
    ctx, token = dash
    status, headers, body = request("GET", "/")
    assert status == 401 and b"juno token" in body and headers["content-type"].startswith("text/html")
    assert request("GET", "/?token=wrong-token-0123456789")[0] == 401
    status, headers, _ = request("GET", f"/?token={token}")
    assert status == 302 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
    pair = cookie.split(";", 1)[0]
    status, headers, body = request("GET", "/", cookie=pair)
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in body.lower()
    assert request("GET", "/api/summary", cookie=pair)[0] == 200


def test_init_reports_the_dashboard_url(dash):
    ctx, token = dash
    assert ctx.dashboard_url == f"127.0.0.1:{DASHBOARD_PORT}"
    assert ctx["webui_url"] == ctx.dashboard_url


def test_init_refuses_a_busy_dashboard_port_before_starting_anything(shutdown_only):
    import juno

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match="already in use"):
            juno.init(num_cpus=1, dashboard_port=port)
    assert not juno.is_initialized()


# ============================================================================ the process's life
def _dashboards(cli: Cli) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(cli.marker_env) == cli.marker and "juno.dashboard" in proc.cmdline():
                out.append(proc)
        except psutil.Error:
            continue
    return out


@pytest.fixture
def cli(tmp_path, _juno_leak_guard):
    c = Cli(tmp_path, marker_env="PYTEST_JUNO_DASHBOARD_CLI_MARKER")
    try:
        yield c
    finally:
        c.cleanup()
        for proc in _dashboards(c):  # cleanup's last resort knows only the GCS, nodes and workers
            proc.kill()


def test_juno_start_serves_the_dashboard_and_juno_stop_stops_it(cli):
    port, dport = free_port(), free_port()
    out = cli.ok("start", "--head", "--port", port, "--num-cpus", 1, "--dashboard-port", dport)
    cli.note_session(out)
    url = f"http://127.0.0.1:{dport}"
    assert f"Dashboard: {url}" in out and "juno token" in out
    token = cli.ok("token").strip()
    assert get_json("/api/summary", token, port=dport)["address"] == f"127.0.0.1:{port}"
    assert f"Dashboard: {url}" in cli.ok("status")
    assert len(_dashboards(cli)) == 1
    # a driver that connects finds the URL the dashboard registered (Ray's form: host:port)
    r = cli.python("import juno\nprint(juno.init(address='auto').dashboard_url)\njuno.shutdown()")
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == f"127.0.0.1:{dport}", r.stdout + r.stderr
    stopped = cli.ok("stop", "--address", f"127.0.0.1:{port}")
    assert "1 dashboard" in stopped
    wait_for_condition(lambda: not _dashboards(cli), timeout=10)


def test_juno_dashboard_serves_a_running_clusters_page_until_ctrl_c(cli):
    """`juno dashboard` in the foreground for a cluster that has none: the API and the page
    answer with the token, `juno status` shows it, and Ctrl-C stops it and unregisters it."""
    port, dport = free_port(), free_port()
    cli.start_head(port, "--include-dashboard", "false")
    token = cli.ok("token").strip()
    proc = subprocess.Popen([sys.executable, "-m", "juno", "dashboard", "--address", f"127.0.0.1:{port}",
                             "--port", str(dport)], env=cli.env, cwd=cli.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    cli.popens.append(proc)
    wait_for_condition(lambda: request("GET", "/api/summary", token=token, port=dport)[0] == 200, timeout=30)
    assert get_json("/api/summary", token, port=dport)["address"] == f"127.0.0.1:{port}"
    assert request("GET", "/api/summary", port=dport)[0] == 401
    status, headers, _ = request("GET", f"/?token={token}", port=dport)
    assert status == 302 and "juno_dashboard_token=" in headers["set-cookie"]
    assert f"Dashboard: http://127.0.0.1:{dport}" in cli.ok("status")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{dport}" in out
    assert "Dashboard:" not in cli.ok("status")  # its address left the GCS with it


def test_juno_start_without_the_dashboard(cli):
    port = free_port()
    out = cli.ok("start", "--head", "--port", port, "--num-cpus", 1, "--include-dashboard", "false")
    cli.note_session(out)
    assert "Dashboard:" not in out and not _dashboards(cli)
    assert "Dashboard:" not in cli.ok("status")


def test_a_dashboard_port_asked_for_must_be_free(cli):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        dport = busy.getsockname()[1]
        r = cli.run("start", "--head", "--port", port, "--num-cpus", 1, "--dashboard-port", dport)
    assert r.returncode != 0
    assert f"dashboard port {dport}" in r.stderr and "already in use" in r.stderr
    assert not cli.processes() and not _dashboards(cli)  # nothing was started


def test_default_port_taken_moves_to_a_free_one_and_says_so(cli):
    port = free_port()
    cli.note_session(cli.ok("start", "--head", "--port", port, "--num-cpus", 1, "--include-dashboard", "false"))
    token = cli.ok("token").strip()
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", 8265))
            holder.listen()
        except OSError:
            pass  # something else holds 8265 already: just as good
        env = dict(cli.env, JUNO_CLUSTER_TOKEN=token)
        proc = subprocess.Popen([sys.executable, "-m", "juno", "dashboard", "--address", f"127.0.0.1:{port}"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        cli.popens.append(proc)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Juno dashboard of the cluster" in line:
                break
        text = "".join(lines)
        assert "port 8265 is in use" in text, text
        moved = int(text.split("http://127.0.0.1:", 1)[1].split()[0])
        assert get_json("/api/summary", token, port=moved)["address"] == f"127.0.0.1:{port}"
        assert f"Dashboard: http://127.0.0.1:{moved}" in cli.ok("status")  # it registered itself
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops `juno dashboard`, which takes its URL back
        assert proc.wait(15) == 0
        assert "Dashboard:" not in cli.ok("status")
    finally:
        holder.close()


def test_the_dashboard_exits_when_its_gcs_is_gone(cli):
    port, dport = free_port(), free_port()
    cli.note_session(cli.ok("start", "--head", "--port", port, "--num-cpus", 1, "--dashboard-port", dport))
    gcs = [p for p in cli.processes() if "juno.gcs" in p.cmdline()]
    assert len(gcs) == 1 and len(_dashboards(cli)) == 1
    gcs[0].kill()
    wait_for_condition(lambda: not _dashboards(cli), timeout=15)


def test_the_service_registry_drops_only_clusters_nobody_watches():
    from juno.dashboard.http_api import ServiceRegistry

    registry = ServiceRegistry(max_clusters=2)
    try:
        watched = "127.0.0.1:1"
        registry.service(watched)

        class Hub:  # a hub with a live subscriber (no cluster needed: services connect lazily)
            subscribers = [object()]
            closed = False

            def close(self):
                self.closed = True

        registry._hubs[watched] = Hub()
        for port in (2, 3, 4):
            registry.service(f"127.0.0.1:{port}")
        assert list(registry._services) == [watched, "127.0.0.1:4"]
        assert registry.service(watched) is registry.service(watched)
    finally:
        registry.close()
