"""Serve over real HTTP on loopback, the whole stack: serve.start on a free port, serve.run, the controller's
proxy, the Router, replicas. Every status code, longest-prefix routing, retries when a replica dies (and
none lost under GET load), streaming that reaches the client chunk by chunk, slow clients, back pressure,
a FastAPI ingress, and the proxy going away with Serve.

One cluster and one Serve for the module; each application is deployed once, when a test first needs it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import socket
import sys
import time

import cloudpickle
import pytest

import juno
from helpers import wait_for_condition
from juno import serve

JUNO_SHARED_INIT = {"num_cpus": 4}
NO_CPU = {"num_cpus": 0}
REQUEST_TIMEOUT_S = 2.0
HTTP_OPTIONS = {"port": 0, "request_timeout_s": REQUEST_TIMEOUT_S, "max_body_bytes": 1000}
# The user code below travels to the replicas by value, as a notebook's would.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --- user code ---------------------------------------------------------------------------------------------------

@serve.deployment(ray_actor_options=NO_CPU, health_check_period_s=0.5)
class Echo:
    def __init__(self, flag_dir: str):
        self.flag_dir = flag_dir

    async def __call__(self, request):
        path = request.url.path
        if path.endswith("/boom"):
            raise ValueError("boom in user code")
        if path.endswith("/slow"):
            await asyncio.sleep(REQUEST_TIMEOUT_S + 1.0)
        if "/die/" in path:  # the first replica that sees this path dies with it; others answer it
            flag = os.path.join(self.flag_dir, path.rsplit("/", 1)[1])
            if not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(1)
        if request.method == "POST":
            return {"json": await request.json(), "root_path": request.scope["root_path"]}
        return {"path": path, "q": dict(request.query_params), "h": request.headers.get("x-test")}


@serve.deployment(ray_actor_options=NO_CPU)
async def chunks(request):
    """Three chunks; with ?flag=PATH the rest waits (at most 20 s) until the client created PATH."""
    flag = request.query_params.get("flag")
    yield "chunk0;"
    deadline = time.monotonic() + 20
    while flag and not os.path.exists(flag) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    yield "chunk1;"
    yield "chunk2;"


@serve.deployment(ray_actor_options=NO_CPU, max_ongoing_requests=1, max_queued_requests=0)
async def slow(request):
    await asyncio.sleep(1.0)
    return "done"


@serve.deployment(ray_actor_options=NO_CPU)
class Broken:
    def __init__(self):
        raise RuntimeError("no model at /nowhere")


# --- the module's Serve and applications -------------------------------------------------------------------------

_serve: dict = {}


@pytest.fixture
def base(cluster, tmp_path_factory):
    """The proxy's address ("http://127.0.0.1:PORT"); Serve is started once for the module."""
    if "base" not in _serve:
        serve.start(http_options=HTTP_OPTIONS)
        wait_for_condition(lambda: not serve.get_http_address().endswith(":0"), timeout=60)
        _serve["base"] = serve.get_http_address()
        _serve["flags"] = str(tmp_path_factory.mktemp("flags"))
        _serve["apps"] = set()
    return _serve["base"]


def deploy(base, name, app, prefix):
    """Deploy ``app`` as ``name`` on ``prefix`` once, and wait until the proxy routes to it."""
    if name not in _serve["apps"]:
        serve.run(app, name=name, route_prefix=prefix)
        wait_for_condition(lambda: prefix in json.loads(request(base, "GET", "/-/routes")[2]), timeout=30)
        _serve["apps"].add(name)
    return base


@pytest.fixture
def echo(base):
    """Echo on /api (2 replicas) and on / (1 replica)."""
    deploy(base, "echo", Echo.options(num_replicas=2).bind(_serve["flags"]), "/api")
    return deploy(base, "root", Echo.bind(_serve["flags"]), "/")


def request(base, method, path, body=None, headers=None, timeout=30):
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


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


def replica_ids(app, deployment):
    controller = juno.get_actor("SERVE_CONTROLLER", namespace="serve")
    return {r["replica_id"] for r in juno.get(controller.get_replicas.remote(app, deployment), timeout=30)["replicas"]}


def wait_for_replacement(app, deployment, before, count=2):
    """Until a replica that died is replaced: ``count`` replicas, not all of them from ``before``."""
    wait_for_condition(lambda: len(ids := replica_ids(app, deployment)) == count and not ids <= before, timeout=60)


# --- the tests ---------------------------------------------------------------------------------------------------

def test_404_names_the_routes(base):
    """First: no "/" catch-all is deployed yet."""
    deploy(base, "only", slow.options(max_queued_requests=-1).bind(), "/only")
    status, _, body = request(base, "GET", "/elsewhere")
    assert status == 404 and b"/elsewhere" in body and b"/only" in body
    assert request(base, "GET", "/onlyx")[0] == 404
    assert request(base, "GET", "/only/1")[0] == 200


def test_get_and_post_reach_user_code_by_longest_prefix(echo):
    status, headers, body = request(echo, "GET", "/api/items?k=v", headers={"x-test": "yes"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"path": "/api/items", "q": {"k": "v"}, "h": "yes"}
    status, _, body = request(echo, "POST", "/api/x", json.dumps({"n": 1}), {"content-type": "application/json"})
    assert (status, json.loads(body)) == (200, {"json": {"n": 1}, "root_path": "/api"})
    status, _, body = request(echo, "POST", "/other", b"[1]")
    assert (status, json.loads(body)) == (200, {"json": [1], "root_path": ""})
    assert request(echo, "GET", "/apix")[0] == 200  # "/api" matches whole segments only: "/" takes it
    assert set(serve.status().proxies.values()) == {"HEALTHY"}


def test_healthz_routes_and_404(echo):
    assert request(echo, "GET", "/-/healthz")[::2] == (200, b"success")
    status, _, body = request(echo, "GET", "/-/routes")
    assert status == 200 and json.loads(body)["/api"] == "echo" and json.loads(body)["/"] == "root"
    status, _, body = request(echo, "GET", "/-/nothing")
    assert status == 404 and b"/-/healthz" in body


def test_user_error_is_500_with_traceback_and_bad_json_is_400(echo):
    status, _, body = request(echo, "GET", "/api/boom")
    assert status == 500 and body.startswith(b"ValueError: boom in user code") and b"Traceback" in body
    status, _, body = request(echo, "POST", "/api/x", b"{broken", {"content-type": "application/json"})
    assert status == 400 and b"not valid JSON" in body
    assert request(echo, "GET", "/-/healthz")[0] == 200  # the proxy is fine


def test_malformed_http_is_400(echo):
    assert raw_exchange(echo, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_body_past_the_limit_is_413_without_reading_it(echo):
    start = time.monotonic()
    reply = raw_exchange(echo, b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - start < 5
    chunked = (b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(4)))
    assert raw_exchange(echo, chunked).startswith(b"HTTP/1.1 413")


def test_slow_body_is_408_and_slow_reply_is_504(echo):
    reply = raw_exchange(echo, b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 408")
    status, _, body = request(echo, "GET", "/api/slow")
    assert status == 504 and b"did not answer within request_timeout_s" in body


def test_no_free_replica_within_the_timeout_is_504(base, tmp_path):
    deploy(base, "busy", chunks.options(name="busy", max_ongoing_requests=1).bind(), "/busy")
    flag = tmp_path / "go"
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/busy/held?flag={flag}")  # holds the only slot until the flag exists
        resp = conn.getresponse()
        assert resp.read1() == b"chunk0;"
        start = time.monotonic()
        status, _, body = request(base, "GET", "/busy/waits")
        assert status == 504 and b"No replica was free within request_timeout_s" in body
        assert REQUEST_TIMEOUT_S - 0.5 < time.monotonic() - start < REQUEST_TIMEOUT_S + 5
        flag.touch()
        assert resp.read() == b"chunk1;chunk2;"
    finally:
        conn.close()


def test_a_deployment_that_failed_to_deploy_is_503(base):
    with pytest.raises(RuntimeError, match="no model at /nowhere"):
        serve.run(Broken.bind(), name="broken", route_prefix="/broken")
    _serve["apps"].add("broken")
    wait_for_condition(lambda: "/broken" in json.loads(request(base, "GET", "/-/routes")[2]), timeout=30)
    status, _, body = request(base, "GET", "/broken")
    assert status == 503 and b"no replica can take this request" in body and b"DEPLOY_FAILED" in body


def test_a_slow_client_does_not_block_others(echo):
    host, port = echo[len("http://"):].split(":")
    with socket.create_connection((host, int(port))) as slow_client:
        slow_client.sendall(b"GET /api/x HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        start = time.monotonic()
        assert request(echo, "GET", "/api/fast")[0] == 200
        assert time.monotonic() - start < 5


def test_a_generator_streams_chunk_by_chunk(base, tmp_path):
    deploy(base, "s", chunks.bind(), "/stream")
    status, headers, body = request(base, "GET", "/stream/x")
    assert status == 200 and body == b"chunk0;chunk1;chunk2;"
    assert headers.get("transfer-encoding") == "chunked"

    flag = tmp_path / "go"
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", f"/stream/gated?flag={flag}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read1() == b"chunk0;"  # the first chunk came while the generator still waits
        assert not flag.exists()
        flag.touch()
        assert resp.read() == b"chunk1;chunk2;"
    finally:
        conn.close()


def test_back_pressure_is_503_with_retry_after(base):
    deploy(base, "slow", slow.bind(), "/slow")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: request(base, "GET", "/slow"), range(4)))
    statuses = sorted(r[0] for r in results)
    assert 503 in statuses and 200 in statuses, statuses
    busy = next(r for r in results if r[0] == 503)
    assert busy[1].get("retry-after") == "1" and b"too many requests" in busy[2]


def test_replica_death_answers_post_500_and_retries_get(echo):
    before = replica_ids("echo", "Echo")
    status, _, body = request(echo, "POST", "/api/die/post", b"{}")  # the replica dies with it
    assert status == 500 and b"replica died" in body and b"not retried" in body
    wait_for_replacement("echo", "Echo", before)  # its health check found it dead
    before = replica_ids("echo", "Echo")
    status, _, body = request(echo, "GET", "/api/die/get")  # a replica dies, the other answers the retry
    assert status == 200 and json.loads(body)["path"] == "/api/die/get", body
    wait_for_replacement("echo", "Echo", before)


def test_a_replica_killed_under_get_load_loses_no_request(echo):
    def load(i):
        return [request(echo, "GET", f"/api/{i}-{n}")[0] for n in range(20)]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(load, i) for i in range(5)]
        time.sleep(0.2)
        futures.append(pool.submit(lambda: [request(echo, "GET", "/api/die/load")[0]]))
        statuses = [s for f in futures for s in f.result(timeout=120)]
    assert os.path.exists(os.path.join(_serve["flags"], "load"))
    assert statuses == [200] * len(statuses)


def test_a_fastapi_ingress_class_is_served(base):
    import fastapi

    app = fastapi.FastAPI()

    @serve.deployment(ray_actor_options=NO_CPU)
    @serve.ingress(app)
    class Api:
        def __init__(self):
            self.calls = 0

        @app.get("/count")
        def count(self):
            self.calls += 1
            return {"calls": self.calls}

    deploy(base, "api", Api.bind(), "/v1")
    assert [json.loads(request(base, "GET", "/v1/count")[2])["calls"] for _ in range(2)] == [1, 2]
    assert request(base, "GET", "/v1/missing")[0] == 404


def test_one_healthy_proxy_per_node_gone_with_serve(base):
    """Last: it shuts Serve down."""
    node = juno.get_runtime_context().get_node_id()
    assert serve.status().proxies == {node: "HEALTHY"}
    proxy = juno.get_actor(f"SERVE_PROXY::{node}", namespace="serve")
    assert juno.get(proxy.get_address.remote(), timeout=30) == ["127.0.0.1", int(base.rsplit(":", 1)[1])]
    serve.shutdown()
    _serve.clear()
    assert serve.status().proxies == {}
    with pytest.raises(OSError):
        request(base, "GET", "/-/healthz", timeout=5)
