"""The dashboard's state API inside Jupyter Server, under ``{base_url}juno/api/``.

The routes are runtime/dashboard/http_api.py's, each on Jupyter's ``APIHandler``
with ``@tornado.web.authenticated`` on every verb (the websocket checks the user
on its upgrade request), so Jupyter's auth, XSRF checks, origin checks and
JupyterHub's base_url apply unchanged. A request's cluster is ``?address=`` when
given, else the extension's connection (jupyter_extension/discovery.py). Two
routes exist only here: ``connection`` (GET/PUT: which cluster, and is it up) and
``clusters`` (POST: start a local cluster with ``juno start --head``).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import re
import subprocess
import sys
from typing import Any

import tornado.web
import tornado.websocket
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join

from juno.dashboard.http_api import ApiError, ServiceRegistry, StateApiMixin, api_routes, as_api_error, check_address
from juno.jupyter_extension.discovery import Discovery

VERBS = ("get", "post", "put", "delete", "patch")
AUTH_RESOURCE = "juno"
START_TIMEOUT_S = 90.0


class JupyterMountMixin:
    """Which cluster serves a Jupyter request: ``?address=``, else the extension's connection."""

    _juno_resolved: str | None = None

    def juno_registry(self) -> ServiceRegistry:
        return self.settings["juno_registry"]  # type: ignore[attr-defined]

    def juno_discovery(self) -> Discovery:
        return self.settings["juno_discovery"]  # type: ignore[attr-defined]

    def juno_address(self) -> str:
        if self._juno_resolved is None:
            raw = self.get_query_argument("address", None)  # type: ignore[attr-defined]
            if raw:
                self._juno_resolved = check_address(raw)
            else:
                kernel_id = self.get_query_argument("kernel_id", None)  # type: ignore[attr-defined]
                address = self.juno_discovery().first(kernel_id)
                if address is None:
                    raise ApiError(502, "no Juno cluster to show: none was chosen (PUT juno/api/connection), "
                                        "JUNO_ADDRESS is not set, no kernel of this server started one, and "
                                        "`juno start --head` recorded none on this machine. Run juno.init() in "
                                        "a notebook, or start one (POST juno/api/clusters).")
                self._juno_resolved = address
        return self._juno_resolved


def _authenticated_class(name: str, bases: tuple, mixin: type) -> type:
    """A handler class of ``bases`` whose every verb ``mixin`` defines is @authenticated, then
    @authorized on the resource "juno" (reads for GET, writes for POST/PUT), so a deployment's
    authorizer (JupyterHub's, say) can allow or refuse the dashboard like any other resource."""
    attrs: dict[str, Any] = {verb: tornado.web.authenticated(authorized(getattr(mixin, verb)))
                             for verb in VERBS if hasattr(mixin, verb)}
    attrs["auth_resource"] = AUTH_RESOURCE
    return type(name, bases, attrs)


def _route_handler(mixin: type) -> type:
    return _authenticated_class(f"Jupyter{mixin.__name__}", (JupyterMountMixin, mixin, APIHandler), mixin)


class _SocketBase(WebSocketMixin, tornado.websocket.WebSocketHandler, JupyterHandler):
    """Jupyter's websocket stack: its origin check, pings, and the user of the upgrade request."""

    def set_default_headers(self) -> None:
        """JupyterHandler's headers (CSP ...) make no sense on a websocket upgrade."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.current_user is None:
            raise tornado.web.HTTPError(403, "not authenticated")
        allowed = self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        if not (await allowed if inspect.isawaitable(allowed) else allowed):
            raise tornado.web.HTTPError(403, f"not authorized to read {AUTH_RESOURCE}")
        try:
            self.juno_address()  # type: ignore[attr-defined] - a bad ?address= fails before the upgrade
        except ApiError as e:
            self.set_status(e.status_code)
            self.finish(json.dumps({"error": e.message}))
            return
        await super().get(*args, **kwargs)


def _socket_handler(mixin: type) -> type:
    return type(f"Jupyter{mixin.__name__}", (JupyterMountMixin, mixin, _SocketBase), {})


# ============================================================================ Jupyter-only routes
class ConnectionRoute(StateApiMixin):
    """``GET``: the cluster the extension shows (for ``?kernel_id=``: that kernel's, preferably),
    whether it answers, and every candidate. ``PUT {"address": "host:port" | null}``: choose one,
    or go back to discovery."""

    async def get(self) -> None:
        self.juno_write(await self.juno_connection_state(self.get_query_argument("kernel_id", None)))

    async def put(self) -> None:
        body = self.juno_body()
        if "address" not in body:
            raise ApiError(400, 'the body must be {"address": "host:port"} or {"address": null} (back to '
                                "automatic discovery).")
        address = body["address"]
        if address is not None and not isinstance(address, str):
            raise ApiError(400, f"address must be a string such as \"127.0.0.1:6379\" or null, got {address!r}.")
        self.juno_discovery().set_user_address(check_address(address) if address else None)
        self.juno_write(await self.juno_connection_state(self.get_query_argument("kernel_id", None)))

    async def juno_connection_state(self, kernel_id: str | None) -> dict:
        address, source, candidates = self.juno_discovery().current(kernel_id)
        state = {"address": address, "source": source, "connected": False, "error": None,
                 "candidates": candidates}
        if address is None:
            state["error"] = ("no Juno cluster found: run juno.init() in a notebook, set JUNO_ADDRESS, "
                              "`juno start --head`, or start one here.")
            return state
        self._juno_resolved = address
        try:
            await self.juno_call("summary")
            state["connected"] = True
        except ApiError as e:
            state["error"] = e.message
        return state


class ClustersRoute(ConnectionRoute):
    """``POST {"num_cpus"?: n}``: start a local cluster (``juno start --head``) and make it the
    connection; answers with the connection's state."""

    async def get(self) -> None:  # only POST here
        raise ApiError(405, "POST juno/api/clusters starts a local cluster; GET juno/api/connection shows one.")

    async def put(self) -> None:
        raise ApiError(405, "POST juno/api/clusters starts a local cluster.")

    async def post(self) -> None:
        body = self.juno_body()
        num_cpus = body.get("num_cpus")
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float))
                                     or not math.isfinite(num_cpus) or num_cpus <= 0):
            raise ApiError(400, f"num_cpus must be a positive number, got {num_cpus!r}.")
        loop = asyncio.get_running_loop()
        try:
            address = await loop.run_in_executor(self.juno_registry().executor, start_cluster, num_cpus)
        except Exception as e:  # noqa: BLE001
            raise as_api_error(e) from None
        self.juno_discovery().set_user_address(address)
        self.juno_write(await self.juno_connection_state(None))


def start_cluster(num_cpus: float | None) -> str:
    """``juno start --head`` (default port when free, else any) in this server's environment; its
    GCS address. ApiError 500 with its message if it fails."""
    from juno.dashboard.launch import port_free

    port = 6379 if port_free("127.0.0.1", 6379) else 0
    cmd = [sys.executable, "-m", "juno", "start", "--head", "--port", str(port)]
    if num_cpus is not None:
        cmd += ["--num-cpus", f"{num_cpus:g}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        raise ApiError(500, f"`juno start --head` did not finish within {START_TIMEOUT_S:g} s.") from None
    found = re.search(r"GCS at (\S+?),", done.stdout)
    if done.returncode != 0 or not found:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise ApiError(500, f"`juno start --head` failed: {detail[-1] if detail else 'no output'}")
    return found.group(1)


def handlers(base_url: str) -> list[tuple[str, type]]:
    """Every route of the extension under ``{base_url}juno/api/``."""
    prefix = url_path_join(base_url, "juno", "api") + "/"
    routes = api_routes(prefix, _route_handler, _socket_handler)
    routes.append((prefix + "connection/?$", _route_handler(ConnectionRoute)))
    routes.append((prefix + "clusters/?$", _route_handler(ClustersRoute)))
    return routes


def setup(serverapp: Any) -> None:
    """Mount the routes on ``serverapp``'s web app, with the services they share."""
    web_app = serverapp.web_app
    web_app.settings["juno_registry"] = ServiceRegistry()
    web_app.settings["juno_discovery"] = Discovery(kernel_manager=getattr(serverapp, "kernel_manager", None))
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"]))
