"""Serve's HTTP end to end with the real pieces: serve.run, the controller's proxy, the Router, replicas."""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import sys
import time

import cloudpickle
import pytest
from juno import serve

JUNO_SHARED_INIT = {"num_cpus": 4}
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def request(base, method, path, body=None, headers=None, timeout=30):
    host, port = base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def wait_for_200(base, path, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = request(base, "GET", path, timeout=10)[0]
            if status == 200:
                return
        except OSError:
            status = None
        if time.monotonic() > deadline:
            raise AssertionError(f"{base}{path} never answered 200 (last {status})")
        time.sleep(0.1)


@pytest.fixture
def serving(cluster):
    """serve.start on a free port; the proxy's real address once it listens."""
    from helpers import wait_for_condition

    serve.start(http_options={"port": 0})
    try:
        wait_for_condition(lambda: not serve.get_http_address().endswith(":0"), timeout=60)
        yield serve.get_http_address()
    finally:
        serve.shutdown()


@serve.deployment(num_replicas=2)
class Echo:
    def __init__(self, flag_dir):
        self.flag_dir = flag_dir

    async def __call__(self, request):
        path = request.url.path
        if path.endswith("/boom"):
            raise KeyError("no such thing")
        if path.endswith("/die"):
            flag = os.path.join(self.flag_dir, "died")
            if not os.path.exists(flag):  # the first replica that sees it dies; the retry is answered
                open(flag, "w").close()
                os._exit(1)
        if request.method == "POST":
            return {"json": await request.json()}
        return {"path": path, "pid": os.getpid()}


def test_requests_reach_replicas_and_errors_have_their_codes(serving, tmp_path):
    serve.run(Echo.bind(str(tmp_path)), name="echo", route_prefix="/echo")
    wait_for_200(serving, "/echo/")
    status, _, body = request(serving, "GET", "/echo/a")
    assert status == 200 and json.loads(body)["path"] == "/echo/a"
    assert request(serving, "POST", "/echo/x", b'{"k": 1}')[2] == b'{"json":{"k":1}}'
    assert request(serving, "POST", "/echo/x", b"{nope")[0] == 400
    status, _, body = request(serving, "GET", "/echo/boom")
    assert status == 500 and b"KeyError" in body and b"no such thing" in body
    status, _, body = request(serving, "GET", "/nowhere")
    assert status == 404 and b"/echo" in body
    assert json.loads(request(serving, "GET", "/-/routes")[2]) == {"/echo": "echo"}
    assert set(serve.status().proxies.values()) == {"HEALTHY"}


def test_a_replica_killed_under_get_load_loses_no_request(serving, tmp_path):
    serve.run(Echo.bind(str(tmp_path)), name="echo2", route_prefix="/e2")
    wait_for_200(serving, "/e2/")

    def load(i):
        return [request(serving, "GET", f"/e2/{i}-{n}")[0] for n in range(30)]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(load, i) for i in range(5)]
        time.sleep(0.2)
        futures.append(pool.submit(lambda: [request(serving, "GET", "/e2/die")[0]]))
        statuses = [s for f in futures for s in f.result(timeout=120)]
    assert os.path.exists(tmp_path / "died")
    assert statuses == [200] * len(statuses)


@serve.deployment(max_ongoing_requests=1, max_queued_requests=0)
async def slow(request):
    import asyncio

    await asyncio.sleep(1.0)
    return "done"


def test_back_pressure_is_503(serving):
    serve.run(slow.bind(), name="slow", route_prefix="/slow")
    wait_for_200(serving, "/slow")  # the proxy's router knows the replicas and their limits now
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: request(serving, "GET", "/slow"), range(4)))
    statuses = sorted(r[0] for r in results)
    assert 200 in statuses and 503 in statuses, statuses
    assert next(r for r in results if r[0] == 503)[1].get("retry-after") == "1"
