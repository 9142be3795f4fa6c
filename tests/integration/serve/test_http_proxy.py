"""The Serve proxy over real HTTP on loopback: every status code, retries when a replica dies, streaming,
slow clients, and the proxy manager.

The proxy is the real actor; the controller, replicas and router it talks to are tiny contract-shaped
fixtures defined here (the real ones are other pieces of issue 16), so these tests need only the HTTP piece.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import sys
import time
import uuid

import cloudpickle
import pytest


import juno  # noqa: E402
from juno.serve.http.bridge import handle_http, stream_http  # noqa: E402
from juno.serve.http.proxy import ProxyActor  # noqa: E402

JUNO_SHARED_INIT = {"num_cpus": 4}
# The user code, router and fixtures below travel to the proxy and replicas by value, as a notebook's would.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --- contract-shaped fixtures: controller, replica, router ------------------------------------------------------

@juno.remote
class TinyController:
    """The controller's route and replica long polls, set by the test."""

    def __init__(self):
        self.routes, self.version, self.replicas = {}, 0, {}
        self.changed = asyncio.Event()

    async def set_routes(self, routes):
        self.routes, self.version = routes, self.version + 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def set_replicas(self, app, deployment, replicas, max_queued=-1):
        self.replicas[(app, deployment)] = {"version": 1, "replicas": replicas, "max_queued_requests": max_queued,
                                            "status": "HEALTHY"}

    async def get_routes(self):
        return {"version": self.version, "routes": self.routes}

    async def wait_for_routes(self, known_version, timeout_s):
        if known_version == self.version:
            try:
                await asyncio.wait_for(self.changed.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        return await self.get_routes()

    async def get_replicas(self, app, deployment):
        return self.replicas[(app, deployment)]


@juno.remote(max_concurrency=64)
class TinyReplica:
    """The replica contract's two request methods, through the HTTP bridge."""

    def __init__(self, target, name="r"):
        self.target, self.name = target, name

    async def handle_request(self, meta, args, kwargs):
        if meta["route"] == "/die" or args[0]["scope"]["path"].startswith("/die"):
            if self.name.startswith("dies"):
                os._exit(1)
        return await handle_http(self.target, args[0])

    async def handle_request_streaming(self, meta, args, kwargs):
        async for item in stream_http(self.target, args[0]):
            yield item


class BackPressureError(Exception):
    """Stands in for juno.serve.exceptions.BackPressureError (the proxy matches it by name)."""


class TinyRouter:
    """Round robin over the controller's replicas; BackPressureError past max_queued_requests in flight."""

    def __init__(self, controller, app, deployment, loop):
        self.controller, self.app, self.deployment, self.loop = controller, app, deployment, loop
        self.info, self.next, self.ongoing = None, 0, 0

    async def assign_request(self, meta, args, kwargs):
        if self.info is None:
            self.info = await self.controller.get_replicas.remote(self.app, self.deployment)
        limit = self.info["max_queued_requests"]
        if limit >= 0 and self.ongoing > limit:
            raise BackPressureError(f"{self.ongoing} requests in flight, max_queued_requests {limit}")
        replica = self.info["replicas"][self.next % len(self.info["replicas"])]["actor"]
        self.next += 1
        self.ongoing += 1
        if meta["stream"]:
            self.ongoing -= 1
            return replica.handle_request_streaming.options(num_returns="streaming").remote(meta, args, kwargs)
        ref = replica.handle_request.remote(meta, args, kwargs)
        ref.future().add_done_callback(lambda _: self.loop.call_soon_threadsafe(self._done))
        return ref

    def _done(self):
        self.ongoing -= 1

    def shutdown(self):
        pass


# --- user code served by the replicas ----------------------------------------------------------------------------

async def echo(request):
    path = request.url.path
    if path.endswith("/boom"):
        raise ValueError("boom in user code")
    if path.endswith("/slow"):
        await asyncio.sleep(3)
    if request.method == "POST":
        return {"json": await request.json(), "root_path": request.scope["root_path"]}
    return {"path": path, "q": dict(request.query_params), "h": request.headers.get("x-test")}


def counting_stream(request):
    for i in range(3):
        yield f"chunk{i};"


# --- fixtures ----------------------------------------------------------------------------------------------------

def start_proxy(cluster, http_options=None, routes=None, deployments=None):
    """A controller, replicas and a proxy on port 0: (controller, proxy, "http://host:port")."""
    name = f"TEST_CONTROLLER_{uuid.uuid4().hex[:8]}"
    controller = TinyController.options(name=name, namespace="serve").remote()
    for (app, dep), (replicas, max_queued) in (deployments or {}).items():
        juno.get(controller.set_replicas.remote(app, dep, [{"replica_id": str(i), "actor": r, "node_id": "",
                                                            "max_ongoing_requests": 5}
                                                           for i, r in enumerate(replicas)], max_queued))
    juno.get(controller.set_routes.remote(routes or {}))
    options = {"host": "127.0.0.1", "port": 0, **(http_options or {})}
    proxy = juno.remote(ProxyActor).options(num_cpus=0, max_concurrency=8).remote(options, name, "serve",
                                                                                 TinyRouter)
    host, port = juno.get(proxy.ready.remote(), timeout=60)
    juno.get(proxy.wait_for_routes.remote(len(routes or {})), timeout=30)
    return controller, proxy, f"http://{host}:{port}"


def request(base, method, path, body=None, headers=None, timeout=30):
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def echo_proxy(cluster):
    replicas = [TinyReplica.remote(echo) for _ in range(2)]
    routes = {"/api": {"app": "a", "deployment": "Echo"}, "/": {"app": "root", "deployment": "Echo"},
              "/stream": {"app": "s", "deployment": "Stream", "stream": True}}
    deployments = {("a", "Echo"): (replicas, -1), ("root", "Echo"): (replicas, -1),
                   ("s", "Stream"): ([TinyReplica.remote(counting_stream)], -1)}
    controller, proxy, base = start_proxy(cluster, {"max_body_bytes": 1000, "body_timeout_s": 1.0,
                                                    "request_timeout_s": 1.5}, routes, deployments)
    yield base
    juno.get(proxy.shutdown.remote(), timeout=30)
    for actor in [proxy, controller, *replicas]:
        juno.kill(actor)


# --- the tests ---------------------------------------------------------------------------------------------------

def test_get_and_post_reach_user_code_by_longest_prefix(echo_proxy):
    status, headers, body = request(echo_proxy, "GET", "/api/items?k=v", headers={"x-test": "yes"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"path": "/api/items", "q": {"k": "v"}, "h": "yes"}
    status, _, body = request(echo_proxy, "POST", "/api/x", json.dumps({"n": 1}),
                              {"content-type": "application/json"})
    assert (status, json.loads(body)) == (200, {"json": {"n": 1}, "root_path": "/api"})
    status, _, body = request(echo_proxy, "POST", "/other", b"[1]")
    assert (status, json.loads(body)) == (200, {"json": [1], "root_path": ""})


def test_healthz_and_routes(echo_proxy):
    assert request(echo_proxy, "GET", "/-/healthz")[::2] == (200, b"success")
    status, _, body = request(echo_proxy, "GET", "/-/routes")
    assert status == 200 and json.loads(body) == {"/": "root", "/api": "a", "/stream": "s"}


def test_404_names_the_routes(cluster):
    replicas = [TinyReplica.remote(echo)]
    controller, proxy, base = start_proxy(cluster, routes={"/only": {"app": "a", "deployment": "Echo"}},
                                          deployments={("a", "Echo"): (replicas, -1)})
    try:
        status, _, body = request(base, "GET", "/elsewhere")
        assert status == 404 and b"/elsewhere" in body and b"/only" in body
        assert request(base, "GET", "/onlyx")[0] == 404
        assert request(base, "GET", "/only/1")[0] == 200
    finally:
        for actor in [proxy, controller, *replicas]:
            juno.kill(actor)


def test_user_error_is_500_with_traceback_and_bad_json_is_400(echo_proxy):
    status, _, body = request(echo_proxy, "GET", "/api/boom")
    assert status == 500 and body.startswith(b"ValueError: boom in user code") and b"Traceback" in body
    status, _, body = request(echo_proxy, "POST", "/api/x", b"{broken", {"content-type": "application/json"})
    assert status == 400 and b"not valid JSON" in body
    assert request(echo_proxy, "GET", "/-/healthz")[0] == 200  # the proxy is fine


def raw_exchange(base, data: bytes, wait_s: float = 10.0) -> bytes:
    host, port = base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
        return b"".join(chunks)


def test_malformed_http_is_400(echo_proxy):
    assert raw_exchange(echo_proxy, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_body_past_the_limit_is_413_without_reading_it(echo_proxy):
    start = time.monotonic()
    reply = raw_exchange(echo_proxy, b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - start < 5
    chunked = (b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(4)))
    assert raw_exchange(echo_proxy, chunked).startswith(b"HTTP/1.1 413")


def test_slow_body_is_408_and_slow_reply_is_504(echo_proxy):
    reply = raw_exchange(echo_proxy, b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 408")
    status, _, body = request(echo_proxy, "GET", "/api/slow")
    assert status == 504 and b"request_timeout_s" in body


def test_a_slow_client_does_not_block_others(echo_proxy):
    host, port = echo_proxy[len("http://"):].split(":")
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"GET /api/x HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        start = time.monotonic()
        assert request(echo_proxy, "GET", "/api/fast")[0] == 200
        assert time.monotonic() - start < 5


def test_streaming_route_sends_chunks(echo_proxy):
    status, headers, body = request(echo_proxy, "GET", "/stream/x")
    assert status == 200 and body == b"chunk0;chunk1;chunk2;"
    assert headers.get("transfer-encoding") == "chunked"


def test_back_pressure_is_503_with_retry_after(cluster):
    replicas = [TinyReplica.remote(echo)]
    controller, proxy, base = start_proxy(cluster, routes={"/": {"app": "a", "deployment": "Echo"}},
                                          deployments={("a", "Echo"): (replicas, 0)})
    try:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: request(base, "GET", "/slow"), range(4)))
        statuses = sorted(r[0] for r in results)
        assert 503 in statuses and 200 in statuses
        busy = next(r for r in results if r[0] == 503)
        assert busy[1].get("retry-after") == "1" and b"too many requests" in busy[2]
    finally:
        for actor in [proxy, controller, *replicas]:
            juno.kill(actor)


def test_replica_death_retries_get_and_answers_post_500(cluster):
    replicas = [TinyReplica.remote(echo, "dies-a"), TinyReplica.remote(echo, "dies-b"), TinyReplica.remote(echo)]
    controller, proxy, base = start_proxy(cluster, routes={"/": {"app": "a", "deployment": "Echo"}},
                                          deployments={("a", "Echo"): (replicas, -1)})
    try:
        status, _, body = request(base, "POST", "/die", b"{}")  # replica a dies with it
        assert status == 500 and b"replica died" in body
        status, _, body = request(base, "GET", "/die/again")  # replica b dies, c answers the retry
        assert status == 200 and json.loads(body)["path"] == "/die/again"
    finally:
        for actor in [proxy, controller, *replicas]:
            juno.kill(actor)


def test_a_fastapi_ingress_class_is_served_through_the_proxy(cluster):
    import fastapi
    from juno.serve.http.ingress import ingress

    app = fastapi.FastAPI()

    @ingress(app)
    class Api:
        def __init__(self):
            self.calls = 0

        @app.get("/count")
        def count(self):
            self.calls += 1
            return {"calls": self.calls}

    replicas = [TinyReplica.remote(Api())]  # the class, with its app, travels by value as a notebook's does
    controller, proxy, base = start_proxy(cluster, routes={"/v1": {"app": "api", "deployment": "Api"}},
                                          deployments={("api", "Api"): (replicas, -1)})
    try:
        assert [json.loads(request(base, "GET", "/v1/count")[2])["calls"] for _ in range(2)] == [1, 2]
        assert request(base, "GET", "/v1/missing")[0] == 404
    finally:
        for actor in [proxy, controller, *replicas]:
            juno.kill(actor)


def test_proxy_manager_keeps_one_healthy_proxy_per_node(cluster):
    from helpers import wait_for_condition
    from juno.serve.http.proxy_manager import ProxyManager

    name = f"TEST_CONTROLLER_{uuid.uuid4().hex[:8]}"
    controller = TinyController.options(name=name, namespace="serve").remote()
    juno.get(controller.get_routes.remote())
    manager = ProxyManager({"host": "127.0.0.1", "port": 0}, controller_name=name, namespace="serve")
    node = juno.get_runtime_context().get_node_id()
    try:
        manager.reconcile()
        assert manager.status() == {node: "STARTING"}

        def healthy():
            manager.reconcile()
            return manager.status() == {node: "HEALTHY"}
        wait_for_condition(healthy, timeout=60)
        address = manager.http_address()
        assert address.startswith("http://127.0.0.1:") and not address.endswith(":0")
        assert request(address, "GET", "/-/healthz")[0] == 200
        proxy = juno.get_actor(f"SERVE_PROXY::{node}", namespace="serve")
        assert juno.get(proxy.get_address.remote()) == ["127.0.0.1", int(address.rsplit(":", 1)[1])]
        manager.reconcile()  # nothing changes: still one proxy
        assert list(manager.handles) == [node]
    finally:
        asyncio.run(manager.shutdown())
        juno.kill(controller)
    assert manager.status() == {}
    with pytest.raises(Exception):
        request(address, "GET", "/-/healthz", timeout=5)
