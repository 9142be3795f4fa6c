"""The Jupyter Server extension (juno.jupyter_extension) in a real Jupyter Server
(pytest-jupyter's fixtures): every juno route refuses an unauthenticated request, the
payloads of a real cluster, the websocket, which cluster it finds (user-set,
JUNO_ADDRESS, a kernel's own cluster), starting a cluster, and a JupyterHub-style
base_url.

pytest-jupyter's fixtures are imported here, not registered as a plugin, so they (and
their autouse fixtures) apply to this module only; the tests are plain functions that
drive the server's asyncio loop themselves.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid

import pytest
import tornado.httpclient
import tornado.routing
import tornado.websocket
from jupyter_server.auth.authorizer import Authorizer
from traitlets.config import Config

from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (jp_serverapp, jp_fetch, jp_ws_fetch ...)
from helpers import wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 2, "include_dashboard": False}
UPDATE_KEYS = {"summary", "nodes", "tasks", "actors", "placement_groups", "jobs", "library_runs"}


@pytest.fixture(autouse=True)
def _server_loop_is_current(jp_asyncio_loop):
    """Tornado's client looks the loop up when a request is made, outside the running loop;
    an earlier test of the run (a kernel test, say) may have left no current loop."""
    asyncio.set_event_loop(jp_asyncio_loop)
    yield


@pytest.fixture
def jp_server_config(request):
    """The extension enabled; a test may add ServerApp settings with indirect parametrization."""
    server = {"jpserver_extensions": {"juno.jupyter_extension": True}, **getattr(request, "param", {})}
    return Config({"ServerApp": server})


class RefuseJuno(Authorizer):
    """A deployment's authorizer that allows everything but the "juno" resource."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        return resource != "juno"


@pytest.fixture
def ext(jp_serverapp):
    """The extension's settings in the running server; its services closed afterwards."""
    settings = jp_serverapp.web_app.settings
    assert "juno_registry" in settings, "the juno extension was not loaded"
    yield settings
    settings["juno_registry"].close()


@pytest.fixture
def address(cluster):
    import juno

    return juno.init(ignore_reinit_error=True).address


def run(loop, awaitable, timeout: float = 60.0):
    return loop.run_until_complete(asyncio.wait_for(awaitable, timeout))


def fetch_json(loop, jp_fetch, *parts, method="GET", body=None, params=None) -> dict:
    kwargs = {"method": method, "params": params}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    r = run(loop, jp_fetch(*parts, **kwargs))
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


def fetch_error(loop, jp_fetch, *parts, **kwargs) -> tuple[int, str]:
    if "body" in kwargs and not isinstance(kwargs["body"], str):
        kwargs["body"] = json.dumps(kwargs["body"])
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        run(loop, jp_fetch(*parts, **kwargs))
    return e.value.code, json.loads(e.value.response.body)["error"]


def juno_rules(app) -> list[tuple[str, type]]:
    """(pattern, handler class) of every route of the web app under juno/api/."""
    out = []

    def walk(router) -> None:
        for rule in getattr(router, "rules", []):
            if isinstance(rule.target, tornado.routing.Router):
                walk(rule.target)
            elif isinstance(rule.matcher, tornado.routing.PathMatches) and "juno/api" in rule.matcher.regex.pattern:
                out.append((rule.matcher.regex.pattern, rule.target))

    walk(app.wildcard_router)
    walk(app.default_router)
    return out


def concrete_path(pattern: str) -> str:
    """A request path that ``pattern`` matches (groups filled with a hex id)."""
    path = re.sub(r"\([^)]*\)", "ab" * 16, pattern)
    return path.replace("/?$", "").rstrip("$").replace("\\", "")


# ============================================================================ auth
def test_every_juno_route_refuses_an_unauthenticated_request(ext, jp_serverapp, http_server_client,
                                                            jp_asyncio_loop, jp_http_port):
    rules = juno_rules(jp_serverapp.web_app)
    paths = {concrete_path(p).rsplit("juno/api/", 1)[1] for p, _ in rules}
    assert {"summary", "nodes", "tasks", "actors", "objects", "placement_groups", "jobs", "workers", "logs",
            "library_runs", "events", "connection", "clusters", f"actors/{'ab' * 16}/kill"} <= paths, paths
    checked = 0
    for pattern, handler in rules:
        path = concrete_path(pattern)
        if issubclass(handler, tornado.websocket.WebSocketHandler):
            with pytest.raises(tornado.httpclient.HTTPClientError) as e:
                run(jp_asyncio_loop, tornado.websocket.websocket_connect(f"ws://127.0.0.1:{jp_http_port}{path}"))
            assert e.value.code in (401, 403), (path, e.value.code)
            checked += 1
            continue
        for verb in ("get", "post", "put", "delete"):
            if verb not in vars(handler) and not any(verb in vars(b) for b in handler.__mro__[1:3]):
                continue
            body = "{}" if verb in ("post", "put") else None
            r = run(jp_asyncio_loop, http_server_client.fetch(path, method=verb.upper(), body=body,
                                                              raise_error=False))
            assert r.code in (401, 403), (verb, path, r.code, r.body)
            checked += 1
    assert checked >= len(paths)


@pytest.mark.parametrize("jp_server_config", [{"authorizer_class": RefuseJuno}], indirect=True)
def test_the_deployments_authorizer_decides_who_sees_the_dashboard(ext, jp_fetch, jp_ws_fetch, jp_asyncio_loop):
    """Logged in is not enough where the authorizer refuses the "juno" resource: every route
    answers 403 (reads and writes, and the websocket), while the rest of Jupyter works."""
    assert json.loads(run(jp_asyncio_loop, jp_fetch("api", "status")).body)["started"]
    for parts, kwargs in [(("summary",), {}), (("nodes",), {}), (("connection",), {}),
                          (("connection",), {"method": "PUT", "body": {"address": None}}),
                          (("clusters",), {"method": "POST", "body": {}}),
                          (("actors", "ab" * 16, "kill"), {"method": "POST", "body": {}})]:
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            if "body" in kwargs:
                kwargs = {**kwargs, "body": json.dumps(kwargs["body"])}
            run(jp_asyncio_loop, jp_fetch("juno", "api", *parts, **kwargs))
        assert e.value.code == 403, (parts, e.value.code)
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        run(jp_asyncio_loop, jp_ws_fetch("juno", "api", "events"))
    assert e.value.code == 403


# ============================================================================ payloads
def test_payloads_of_a_real_cluster(ext, address, jp_fetch, jp_asyncio_loop):
    import juno

    loop = jp_asyncio_loop
    conn = fetch_json(loop, jp_fetch, "juno", "api", "connection", method="PUT", body={"address": address})
    assert (conn["address"], conn["source"], conn["connected"], conn["error"]) == (address, "user", True, None)
    summary = fetch_json(loop, jp_fetch, "juno", "api", "summary")
    assert summary["address"] == address and summary["resources"]["CPU"]["total"] == 2
    assert fetch_json(loop, jp_fetch, "juno", "api", "summary", params={"address": address})["address"] == address
    nodes = fetch_json(loop, jp_fetch, "juno", "api", "nodes")["nodes"]
    assert len(nodes) == 1 and nodes[0]["is_head"]
    for route, key in (("tasks", "by_state"), ("actors", "actors"), ("objects", "objects"),
                       ("placement_groups", "placement_groups"), ("jobs", "jobs"), ("workers", "workers")):
        assert key in fetch_json(loop, jp_fetch, "juno", "api", route), route
    assert fetch_error(loop, jp_fetch, "juno", "api", "tasks", params={"limit": "0"})[0] == 400
    assert fetch_error(loop, jp_fetch, "juno", "api", "summary", params={"address": "no port"})[0] == 400

    @juno.remote
    class Victim:
        def ping(self):
            return "pong"

    name = f"victim-{uuid.uuid4().hex[:8]}"
    victim = Victim.options(name=name).remote()
    assert juno.get(victim.ping.remote()) == "pong"
    actor_id = victim._actor_id.hex()
    killed = fetch_json(loop, jp_fetch, "juno", "api", "actors", actor_id, "kill", method="POST",
                        body={"no_restart": True})
    assert killed == {"ok": True}
    wait_for_condition(lambda: [a for a in fetch_json(loop, jp_fetch, "juno", "api", "actors")["actors"]
                                if a["actor_id"] == actor_id and a["state"] == "DEAD"], timeout=20)
    code, error = fetch_error(loop, jp_fetch, "juno", "api", "actors", "ab" * 16, "kill", method="POST", body={})
    assert code == 404 and error


def test_websocket_under_jupyter_auth(ext, address, jp_ws_fetch, jp_asyncio_loop):
    async def scenario():
        with pytest.raises(tornado.httpclient.HTTPClientError) as bad:
            await jp_ws_fetch("juno", "api", "events", params={"address": "not an address"})
        assert bad.value.code == 400
        ws = await jp_ws_fetch("juno", "api", "events", params={"address": address})
        try:
            hello = json.loads(await asyncio.wait_for(ws.read_message(), 15))
            assert hello["type"] == "hello" and hello["address"] == address
            deadline = time.monotonic() + 20
            while True:
                msg = json.loads(await asyncio.wait_for(ws.read_message(), max(0.1, deadline - time.monotonic())))
                if msg["type"] == "update":
                    assert set(msg["data"]) == UPDATE_KEYS
                    break
            ws.write_message(json.dumps({"type": "ping"}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 15))
                if msg["type"] == "pong":
                    break
        finally:
            ws.close()

    run(jp_asyncio_loop, scenario())


# ============================================================================ which cluster
def test_connection_from_juno_address_then_user_set_then_back(ext, address, jp_fetch, jp_asyncio_loop,
                                                              monkeypatch):
    loop = jp_asyncio_loop
    monkeypatch.setenv("JUNO_ADDRESS", address)
    conn = fetch_json(loop, jp_fetch, "juno", "api", "connection")
    assert (conn["address"], conn["source"], conn["connected"]) == (address, "JUNO_ADDRESS", True)
    assert conn["candidates"][0] == {"address": address, "source": "JUNO_ADDRESS"}
    other = "127.0.0.1:1"  # nothing listens there
    conn = fetch_json(loop, jp_fetch, "juno", "api", "connection", method="PUT", body={"address": other})
    assert (conn["address"], conn["source"], conn["connected"]) == (other, "user", False)
    assert conn["error"]
    assert [c["address"] for c in conn["candidates"][:2]] == [other, address]
    assert fetch_error(loop, jp_fetch, "juno", "api", "summary")[0] == 502
    conn = fetch_json(loop, jp_fetch, "juno", "api", "connection", method="PUT", body={"address": None})
    assert (conn["address"], conn["source"]) == (address, "JUNO_ADDRESS")
    code, error = fetch_error(loop, jp_fetch, "juno", "api", "connection", method="PUT", body={"address": 5})
    assert code == 400 and "address" in error


def test_connection_of_a_kernel_that_started_its_own_cluster(ext, jp_fetch, jp_serverapp, jp_asyncio_loop,
                                                            monkeypatch, _juno_leak_guard):
    from jupyter_client import BlockingKernelClient

    loop = jp_asyncio_loop
    monkeypatch.delenv("JUNO_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    kernel = fetch_json(loop, jp_fetch, "api", "kernels", method="POST", body={"name": "python3"})
    km = jp_serverapp.kernel_manager.get_kernel(kernel["id"])
    client = BlockingKernelClient(connection_file=km.connection_file)
    client.load_connection_file()
    client.start_channels()

    def execute(code: str) -> str:
        out = []
        reply = client.execute_interactive(code, timeout=90, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)

    try:
        client.wait_for_ready(timeout=60)
        started = execute("import juno\nctx = juno.init(num_cpus=1, include_dashboard=False)\nprint(ctx.address)")
        kernel_address = started.strip().splitlines()[-1]
        _juno_leak_guard.note_processes()
        conn = fetch_json(loop, jp_fetch, "juno", "api", "connection", params={"kernel_id": kernel["id"]})
        assert conn["address"] == kernel_address and conn["source"] == "kernel", conn
        assert conn["connected"], conn
        assert conn["candidates"][0] == {"address": kernel_address, "source": "kernel", "kernel_id": kernel["id"]}
        # without ?kernel_id=, a live kernel's cluster is still found (no user choice, no JUNO_ADDRESS)
        assert any(c["address"] == kernel_address for c in
                   fetch_json(loop, jp_fetch, "juno", "api", "connection")["candidates"])
        summary = fetch_json(loop, jp_fetch, "juno", "api", "summary", params={"kernel_id": kernel["id"]})
        assert summary["address"] == kernel_address
        execute("juno.shutdown()")
    finally:
        client.stop_channels()
        run(loop, jp_fetch("api", "kernels", kernel["id"], method="DELETE"))


def test_start_a_cluster_from_jupyter(ext, jp_fetch, jp_asyncio_loop, monkeypatch, tmp_path):
    loop = jp_asyncio_loop
    monkeypatch.setenv("JUNO_CLUSTER_FILE", str(tmp_path / "current_cluster"))  # don't replace the machine's
    code, error = fetch_error(loop, jp_fetch, "juno", "api", "clusters", method="POST", body={"num_cpus": -1})
    assert code == 400 and "num_cpus" in error
    conn = fetch_json(loop, jp_fetch, "juno", "api", "clusters", method="POST",
                      body={"num_cpus": 1}, params=None)
    try:
        assert conn["source"] == "user" and conn["connected"], conn
        summary = fetch_json(loop, jp_fetch, "juno", "api", "summary")
        assert summary["address"] == conn["address"] and summary["resources"]["CPU"]["total"] == 1
    finally:
        if conn.get("address"):
            subprocess.run([sys.executable, "-m", "juno", "stop", "--address", conn["address"]],
                           capture_output=True, timeout=60)


# ============================================================================ base_url
@pytest.mark.parametrize("jp_base_url", ["/user/alice/"])
def test_routes_live_under_a_jupyterhub_base_url(ext, address, jp_fetch, jp_ws_fetch, jp_asyncio_loop,
                                                 http_server_client, jp_auth_header):
    loop = jp_asyncio_loop
    summary = fetch_json(loop, jp_fetch, "juno", "api", "summary", params={"address": address})
    assert summary["address"] == address
    r = run(loop, http_server_client.fetch(f"/juno/api/summary?address={address}", headers=jp_auth_header,
                                           raise_error=False))
    assert r.code == 404  # only under the base_url

    async def hello():
        ws = await jp_ws_fetch("juno", "api", "events", params={"address": address})
        try:
            return json.loads(await asyncio.wait_for(ws.read_message(), 15))
        finally:
            ws.close()

    assert run(loop, hello())["type"] == "hello"
