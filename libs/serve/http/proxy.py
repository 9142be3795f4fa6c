"""The HTTP proxy actor: one per node (``SERVE_PROXY::<node_id>``, namespace "serve", num_cpus=0), running
uvicorn (uvloop + httptools; benchmarks/serve/README.md says why) on a thread and event loop of its own.

On that loop: the ASGI app (``server.ProxyApp``), one Router per ingress deployment, and the long poll that
keeps the route table current (``controller.wait_for_routes``). The actor's methods (``ready``,
``get_address``, ``check_health``, ``shutdown``) only read or stop that thread, so they answer at once.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import juno
from juno.serve.http import require
from juno.serve.http.routes import RouteTable
from juno.serve.http.server import ProxyApp, ProxyOptions, RouterPool
from juno.serve.names import CONTROLLER_NAME, SERVE_NAMESPACE

logger = logging.getLogger(__name__)

ROUTES_POLL_TIMEOUT_S = 30.0
ROUTES_RETRY_S = 0.5
START_TIMEOUT_S = 30.0


def default_router(controller, app: str, deployment: str, loop: asyncio.AbstractEventLoop,
                   request_timeout_s: float | None = None):
    """ROUTING's Router: power of two choices over the deployment's replicas; a request waits for a free
    replica at most request_timeout_s (then 504, or 503 when the deployment has no replica at all)."""
    from juno.serve.router import Router

    return Router(controller, app, deployment, loop=loop, request_timeout_s=request_timeout_s)


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so port 0 gives its real port before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"the Serve proxy cannot listen on {host}:{port} ({exc.strerror}); pick another "
                                 f"port with serve.start(http_options={{'port': ...}}) (0 picks a free one)") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class ProxyActor:
    """The proxy. ``controller_name``/``namespace`` find the controller; ``make_router(controller, app,
    deployment, loop, request_timeout_s=...)`` makes a deployment's router (ROUTING's Router unless told
    otherwise)."""

    def __init__(self, http_options: dict | None = None, controller_name: str = CONTROLLER_NAME,
                 namespace: str = SERVE_NAMESPACE, make_router=None) -> None:
        require("uvicorn")
        self.options = ProxyOptions.from_dict(http_options)
        self.controller = juno.get_actor(controller_name, namespace=namespace)
        self._make_router = make_router or default_router
        self.routes = RouteTable()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.error: BaseException | None = None
        self._sock = bind_socket(self.options.host, self.options.port)
        self.address = self._sock.getsockname()[:2]
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="serve-proxy", daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError(f"the Serve proxy's server did not start within {START_TIMEOUT_S:g} s")
        if self.error is not None:
            raise RuntimeError(f"the Serve proxy's server failed to start: {self.error!r}") from self.error

    # --- the server thread ---------------------------------------------------------------------------------------

    def _serve(self) -> None:
        import uvicorn

        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:  # uvicorn[standard] brings uvloop; plain asyncio still works
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        routers = RouterPool(lambda app, dep: self._make_router(self.controller, app, dep, self.loop,
                                                                request_timeout_s=self.options.request_timeout_s))
        self.routers = routers
        config = uvicorn.Config(ProxyApp(self.routes, routers, self.options), loop="none", http="httptools",
                                lifespan="off", access_log=False, log_level="warning",
                                timeout_keep_alive=self.options.keep_alive_timeout_s, server_header=False)
        self.server = uvicorn.Server(config)
        poll = self.loop.create_task(self._poll_routes(routers))
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001  (reported by check_health)
            self.error = exc
            self._started.set()
        finally:
            poll.cancel()
            routers.shutdown()
            self.loop.run_until_complete(asyncio.gather(poll, return_exceptions=True))
            self.loop.close()

    async def _poll_routes(self, routers: RouterPool) -> None:
        """Keep the route table current: the controller answers when the routes change (or on timeout)."""
        while True:
            try:
                answer = await self.controller.wait_for_routes.remote(self.routes.version, ROUTES_POLL_TIMEOUT_S)
                if self.routes.update(answer):
                    routers.keep_only(self.routes.deployments())
                    logger.info("routes now %s", self.routes.prefixes())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001  (the controller restarting: try again shortly)
                logger.warning("polling the controller's routes failed; retrying", exc_info=True)
                await asyncio.sleep(ROUTES_RETRY_S)

    # --- the actor's methods -------------------------------------------------------------------------------------

    def ready(self) -> list:
        """[host, port] once serving (the manager's readiness call)."""
        self.check_health()
        return list(self.address)

    def get_address(self) -> list:
        """[host, port] the proxy listens on (the real port when port 0 was asked for)."""
        return list(self.address)

    def get_routes(self) -> dict:
        """The route table as it is now: {prefix: app} (the controller's wait_for_proxy_routes asks)."""
        return self.routes.prefixes()

    def wait_for_routes(self, min_routes: int = 1, timeout_s: float = 10.0) -> dict:
        """Until the table has ``min_routes`` routes (tests and serve.run use it); {prefix: app}."""
        deadline = time.monotonic() + timeout_s
        while len(self.routes) < min_routes and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.routes.prefixes()

    def check_health(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the Serve proxy's server stopped: {self.error!r}")
        if not self._thread.is_alive():
            raise RuntimeError("the Serve proxy's server thread is not running")

    def shutdown(self) -> None:
        """Stop listening and stop the routers (the manager kills the actor after)."""
        if self.server is not None:
            self.server.should_exit = True
        self._thread.join(timeout=10)
