"""@serve.ingress without processes: FastAPI and Starlette apps served through the bridge, ``self`` bound."""
from __future__ import annotations

import asyncio
import json

import fastapi
import pytest
from juno.serve.http.bridge import handle_http
from juno.serve.http.ingress import ingress
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

app = fastapi.FastAPI()


class Item(BaseModel):
    name: str
    qty: int = 1


@app.get("/plain")
def plain_function():
    return {"plain": True}


@ingress(app)
class Shop:
    def __init__(self, greeting: str):
        self.greeting = greeting
        self.orders = 0

    @app.get("/")
    def root(self):
        return f"{self.greeting}!"

    @app.get("/items/{item_id}")
    async def item(self, item_id: int, q: str | None = None):
        return {"id": item_id, "q": q, "greeting": self.greeting}

    @app.post("/orders", status_code=201)
    def order(self, item: Item):
        self.orders += 1
        return {"item": item.name, "qty": item.qty, "orders": self.orders}


def payload(path, method="GET", body=b"", query=b"", root_path=""):
    headers = [[b"content-type", b"application/json"]] if body else []
    return {"scope": {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                      "query_string": query, "headers": headers, "root_path": root_path, "client": ["127.0.0.1", 1],
                      "server": ["127.0.0.1", 8000], "scheme": "http", "http_version": "1.1", "path_params": {}},
            "body": body}


def call(target, *args, **kwargs):
    reply = asyncio.run(handle_http(target, payload(*args, **kwargs)))
    return reply["status"], reply["body"]


def test_fastapi_routes_get_the_instance_as_self():
    shop = Shop("hello")
    assert call(shop, "/") == (200, b'"hello!"')
    status, body = call(shop, "/items/7", query=b"q=red")
    assert status == 200 and json.loads(body) == {"id": 7, "q": "red", "greeting": "hello"}
    status, body = call(shop, "/orders", "POST", b'{"name": "pen", "qty": 2}')
    assert status == 201 and json.loads(body) == {"item": "pen", "qty": 2, "orders": 1}
    assert call(shop, "/plain") == (200, b'{"plain":true}')


def test_each_instance_is_its_own_self():
    a, b = Shop("a"), Shop("b")
    assert call(a, "/")[1] == b'"a!"' and call(b, "/")[1] == b'"b!"'


def test_fastapi_validation_and_missing_routes_answer_as_fastapi_does():
    shop = Shop("x")
    assert call(shop, "/items/notanint")[0] == 422
    assert call(shop, "/orders", "POST", b"{bad json")[0] == 422
    assert call(shop, "/nowhere")[0] == 404


def test_routes_answer_under_the_route_prefix():
    shop = Shop("p")
    assert call(shop, "/shop/items/1", root_path="/shop")[0] == 200
    assert call(shop, "/shop", root_path="/shop") == (200, b'"p!"')


def test_openapi_has_no_self_parameter():
    schema = app.openapi()
    params = schema["paths"]["/items/{item_id}"]["get"]["parameters"]
    assert {p["name"] for p in params} == {"item_id", "q"}


def test_starlette_apps_are_served_as_they_are():
    async def hello(request):
        return PlainTextResponse(f"hi {request.path_params['who']}")

    @ingress(Starlette(routes=[Route("/hi/{who}", hello)]))
    class Greeter:
        pass

    assert call(Greeter(), "/hi/ann") == (200, b"hi ann")


def test_bad_uses_are_refused_clearly():
    with pytest.raises(TypeError, match="ASGI app instance"):
        ingress(fastapi.FastAPI)
    with pytest.raises(TypeError, match="decorates a deployment class"):
        ingress(fastapi.FastAPI())(lambda: None)
