"""The standalone dashboard: the state API and the page on one tornado app.

Every request needs the cluster token: ``Authorization: token <t>`` (scripts), or the
cookie the page sets after ``/?token=<t>`` (browsers; HttpOnly, SameSite=Strict, so
other sites can neither read it nor send it). The cookie holds a value derived from
the token, never the token itself. The page is ``static/index.html`` (helper T's
build); the files beside it are served at ``/static/``.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
from typing import Any

import tornado.web
import tornado.websocket

from juno.dashboard.http_api import ApiError, ServiceRegistry, api_routes

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
COOKIE = "juno_dashboard_token"
_COOKIE_LABEL = b"juno-dashboard-cookie-v1"


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), _COOKIE_LABEL, hashlib.sha256).hexdigest()


def _unauthorized(address: str) -> ApiError:
    return ApiError(401, f"this dashboard needs the token of the Juno cluster at {address}: send the header "
                         "'Authorization: token <token>', or open the page once as /?token=<token>. "
                         f"`juno token --address {address}` prints it on the cluster's head machine.")


class TokenAuthMixin:
    """Authenticates a request by the cluster token (header) or the page's cookie."""

    def juno_authenticated(self) -> bool:
        settings = self.settings  # type: ignore[attr-defined]
        token: str = settings["juno_token"]
        header = self.request.headers.get("Authorization", "")  # type: ignore[attr-defined]
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip():
            return hmac.compare_digest(value.strip().encode(), token.encode())
        cookie = self.get_cookie(COOKIE)  # type: ignore[attr-defined]
        return bool(cookie) and hmac.compare_digest(cookie.encode(), cookie_value(token).encode())

    def juno_registry(self) -> ServiceRegistry:
        return self.settings["juno_registry"]  # type: ignore[attr-defined]

    def juno_address(self) -> str:
        return self.settings["juno_address"]  # type: ignore[attr-defined]


class ApiHandler(TokenAuthMixin, tornado.web.RequestHandler):
    """Base of the standalone API routes: 401 JSON before the verb runs unless authenticated."""

    def prepare(self) -> None:
        if not self.juno_authenticated():
            raise _unauthorized(self.juno_address())

    def check_xsrf_cookie(self) -> None:
        """No XSRF token: a cross-site request carries no token header, and the SameSite=Strict
        cookie is never sent cross-site."""


class SocketHandler(TokenAuthMixin, tornado.websocket.WebSocketHandler):
    """Base of the events websocket: the same token check on the upgrade request; tornado's
    default check_origin (the Origin's host must be the Host) keeps other sites out."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.juno_authenticated():
            self.set_status(401)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json.dumps({"error": _unauthorized(self.juno_address()).message}))
            return
        await super().get(*args, **kwargs)


def _route_handler(mixin: type) -> type:
    return type(f"Standalone{mixin.__name__}", (mixin, ApiHandler), {})


def _socket_handler(mixin: type) -> type:
    return type(f"Standalone{mixin.__name__}", (mixin, SocketHandler), {})


_LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Juno dashboard: log in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}}
input{{width:100%;font-family:monospace;padding:.4em}}code{{background:#eee;padding:0 .2em}}</style></head>
<body><h1>Juno dashboard</h1><p>{message}</p>
<p>This dashboard shows the Juno cluster at <code>{address}</code>. It needs that cluster's token:
run <code>juno token --address {address}</code> on the cluster's head machine and paste it here.</p>
<form method="get" action=""><input name="token" type="password" autocomplete="off" autofocus
placeholder="cluster token"><p><button type="submit">Open the dashboard</button></p></form></body></html>
"""

_NOT_BUILT = """<!doctype html>
<html><head><meta charset="utf-8"><title>Juno dashboard</title></head>
<body><h1>Juno dashboard</h1><p>The dashboard's page was not built in this installation
(<code>scripts/build_frontend.sh</code> builds it). The state API answers at
<a href="api/summary">api/summary</a>, <a href="api/nodes">api/nodes</a>, <a href="api/tasks">api/tasks</a> ...</p>
</body></html>
"""


class PageHandler(TokenAuthMixin, tornado.web.RequestHandler):
    """``/``: the page. ``?token=`` logs in (sets the cookie, then redirects to drop the token
    from the address bar and the history); without a valid token or cookie: a login form."""

    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is not None:
            if hmac.compare_digest(token.strip().encode(), self.settings["juno_token"].encode()):
                self.set_cookie(COOKIE, cookie_value(self.settings["juno_token"]), httponly=True,
                                samesite="Strict", path="/", expires_days=30)
                self.redirect(self.request.path or "/")
                return
            self._login(401, "That token is not this cluster's token.")
            return
        if not self.juno_authenticated():
            self._login(401, "Log in with the cluster token.")
            return
        self.set_header("Cache-Control", "no-store")
        page = os.path.join(STATIC_DIR, "index.html")
        try:
            with open(page, "rb") as f:
                body = f.read()
        except OSError:
            body = _NOT_BUILT.encode()
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(body)

    def _login(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        address = html.escape(self.juno_address())
        self.finish(_LOGIN_PAGE.format(message=html.escape(message), address=address))


class NotFoundHandler(tornado.web.RequestHandler):
    """Any other path: a JSON 404 that lists where things are."""

    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": f"no such page or API route: {self.request.path}; the page is at /, "
                                         "the API under /api/ (summary, nodes, tasks, actors, objects, "
                                         "placement_groups, jobs, workers, logs, events)"}))


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's script and styles (public build output: no token needed)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": f"no such file: {self.request.path}"}))


def make_app(gcs_address: str, token: str, registry: ServiceRegistry | None = None) -> tornado.web.Application:
    """The standalone app for the cluster at ``gcs_address`` (``host:port``), whose token is ``token``."""
    address = gcs_address.replace("tcp://", "")
    registry = registry or ServiceRegistry(token=token)
    routes: list = [(r"/", PageHandler),
                    (r"/static/(.*)", StaticHandler, {"path": STATIC_DIR}),
                    # the page's own files, wherever index.html refers to them (./dashboard.js or static/...)
                    (r"/([\w.-]+\.(?:js|css|map|svg|png|ico|woff2?))", StaticHandler, {"path": STATIC_DIR})]
    routes += api_routes("/api/", _route_handler, _socket_handler)
    return tornado.web.Application(
        routes, default_handler_class=NotFoundHandler, juno_token=token, juno_address=address,
        juno_registry=registry, websocket_ping_interval=30, compress_response=True)
