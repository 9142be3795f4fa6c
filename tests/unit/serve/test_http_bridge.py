"""The replica's HTTP bridge without processes: payload -> Starlette Request -> user code -> response payload."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest



from starlette.background import BackgroundTask  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402

from juno.serve.http.bridge import handle_http, stream_http, streams  # noqa: E402


def payload(path="/", method="GET", body=b"", query=b"", headers=(), root_path=""):
    return {"scope": {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                      "query_string": query, "headers": [[k, v] for k, v in headers], "root_path": root_path,
                      "client": ["127.0.0.1", 5000], "server": ["127.0.0.1", 8000], "scheme": "http",
                      "http_version": "1.1", "path_params": {}},
            "body": body}


def call(target, p=None):
    return asyncio.run(handle_http(target, p or payload()))


def stream(target, p=None):
    async def collect():
        return [item async for item in stream_http(target, p or payload())]
    return asyncio.run(collect())


def header(reply, name: bytes):
    return dict((k, v) for k, v in reply["headers"]).get(name)


def test_request_carries_what_the_proxy_sent():
    async def echo(request):
        return {"method": request.method, "path": request.url.path, "q": dict(request.query_params),
                "h": request.headers.get("x-test"), "json": await request.json(), "body": (await request.body()).decode(),
                "client": request.client.host}

    reply = call(echo, payload("/a/b", "POST", b'{"x": 1}', b"k=v&n=2", [(b"x-test", b"yes")]))
    assert reply["status"] == 200
    assert header(reply, b"content-type") == b"application/json"
    assert json.loads(reply["body"]) == {"method": "POST", "path": "/a/b", "q": {"k": "v", "n": "2"}, "h": "yes",
                                         "json": {"x": 1}, "body": '{"x": 1}', "client": "127.0.0.1"}


class Model:
    def __init__(self):
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        return self.calls


def test_a_class_instance_is_called_with_the_request():
    model = Model()
    call(model)
    assert json.loads(call(model)["body"]) == 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


class NotJSON:
    pass


@pytest.mark.parametrize("value, content_type, body", [
    ({"a": [1, 2]}, b"application/json", b'{"a":[1,2]}'),
    ([1, "two"], b"application/json", b'[1,"two"]'),
    (None, b"application/json", b"null"),
    (3.5, b"application/json", b"3.5"),
    ("hello", b"text/plain; charset=utf-8", b"hello"),
    (b"\x00\x01", b"application/octet-stream", b"\x00\x01"),
    (Point(1, 2), b"application/json", b'{"x":1,"y":2}'),
])
def test_return_values_become_responses(value, content_type, body):
    reply = call(lambda request: value)
    assert (reply["status"], header(reply, b"content-type"), reply["body"]) == (200, content_type, body)
    assert header(reply, b"content-length") == str(len(body)).encode()


def test_numpy_values_become_json():
    import numpy as np
    assert json.loads(call(lambda r: {"v": np.arange(3), "s": np.float32(0.5)})["body"]) == {"v": [0, 1, 2], "s": 0.5}


def test_a_value_json_cannot_take_is_a_500_naming_its_type():
    reply = call(lambda request: NotJSON())
    assert reply["status"] == 500
    assert b"NotJSON" in reply["body"] and b"cannot become an HTTP response" in reply["body"]


def test_starlette_responses_go_out_as_they_are():
    reply = call(lambda r: PlainTextResponse("teapot", status_code=418, headers={"x-kind": "tea"}))
    assert (reply["status"], reply["body"], header(reply, b"x-kind")) == (418, b"teapot", b"tea")
    reply = call(lambda r: JSONResponse({"ok": True}, status_code=201))
    assert (reply["status"], json.loads(reply["body"])) == (201, {"ok": True})


def test_background_tasks_run_after_the_reply():
    ran = []

    async def serve():
        reply = await handle_http(lambda r: PlainTextResponse("x", background=BackgroundTask(ran.append, 1)),
                                  payload())
        for _ in range(200):
            if ran:
                break
            await asyncio.sleep(0.01)
        return reply

    assert asyncio.run(serve())["body"] == b"x" and ran == [1]


def test_async_callables_are_awaited():
    async def handler(request):
        await asyncio.sleep(0)
        return "async"
    assert call(handler)["body"] == b"async"


def test_bad_json_is_a_400_not_a_500():
    async def handler(request):
        return await request.json()
    reply = call(handler, payload(method="POST", body=b"{not json"))
    assert reply["status"] == 400
    assert b"not valid JSON" in reply["body"]


def test_a_user_exception_is_a_500_with_type_message_and_traceback():
    def handler(request):
        raise ValueError("no such model: m7")
    reply = call(handler)
    assert reply["status"] == 500
    text = reply["body"].decode()
    assert text.startswith("ValueError: no such model: m7") and "Traceback" in text and "in handler" in text


def test_an_http_exception_keeps_its_status():
    from starlette.exceptions import HTTPException

    def handler(request):
        raise HTTPException(status_code=404, detail="no item 3")
    reply = call(handler)
    assert (reply["status"], reply["body"]) == (404, b"no item 3")


def test_generators_stream_start_then_chunks():
    def gen(request):
        yield "a"
        yield b"b"
        yield {"c": 3}

    items = stream(gen)
    assert items[0]["status"] == 200 and b"".join(items[1:]) == b'ab{"c":3}\n'
    assert call(gen)["body"] == b'ab{"c":3}\n'  # one reply: the chunks joined


def test_async_generators_and_streaming_responses_stream():
    async def agen():
        for i in range(3):
            yield f"{i},"

    items = stream(lambda r: StreamingResponse(agen(), media_type="text/csv"))
    assert header(items[0], b"content-type").startswith(b"text/csv")
    assert items[1:] == [b"0,", b"1,", b"2,"]

    async def handler(request):
        return agen()
    assert b"".join(stream(handler)[1:]) == b"0,1,2,"


def test_an_error_mid_stream_is_raised_after_the_start():
    def gen(request):
        yield "first"
        raise RuntimeError("broke")

    async def collect():
        got = []
        with pytest.raises(RuntimeError, match="broke"):
            async for item in stream_http(gen, payload()):
                got.append(item)
        return got

    got = asyncio.run(collect())
    assert got[0]["status"] == 200 and got[1:] == [b"first"]


def test_streams_tells_generator_deployments_apart():
    class Gen:
        async def __call__(self, request):
            yield b"x"

    def gen(request):
        yield "x"

    assert streams(Gen) and streams(Gen()) and streams(gen)
    assert not streams(Model) and not streams(Model()) and not streams(lambda r: 1)
