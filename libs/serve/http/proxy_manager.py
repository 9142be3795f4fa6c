"""One HTTP proxy per alive node, kept by the controller: ``ProxyManager(http_options).reconcile()`` each
loop starts proxies on new nodes, replaces failed ones and drops those of dead nodes; ``status()`` is the
proxies' part of ``serve.status()``.

The decisions are ``ProxyStates`` (pure: node sets and call outcomes in, actions out); ``ProxyManager`` is
the shell that creates, checks and kills the actors. It never blocks: it looks at call futures' state.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import juno
from juno.serve.http.proxy import ProxyActor
from juno.serve.names import CONTROLLER_NAME, SERVE_NAMESPACE, proxy_name

logger = logging.getLogger(__name__)

HEALTHY, STARTING, UNHEALTHY = "HEALTHY", "STARTING", "UNHEALTHY"
HEALTH_CHECK_PERIOD_S = 10.0
HEALTH_CHECK_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
WILDCARD_HOSTS = ("0.0.0.0", "::")  # every interface: a client connects to loopback instead
RESTART_BACKOFF_S = 2.0


@dataclass
class ProxyRecord:
    state: str = STARTING
    since: float = 0.0  # when it entered this state
    last_check: float = 0.0
    address: list | None = None
    error: str = ""
    failures: int = 0


@dataclass
class ProxyStates:
    """What the manager knows of each node's proxy, and what to do next. Times are passed in."""

    records: dict[str, ProxyRecord] = field(default_factory=dict)

    def plan(self, alive: set[str], now: float) -> tuple[list[str], list[str]]:
        """(nodes to start a proxy on, nodes whose proxy to stop): new or restartable nodes, and dead
        nodes or proxies that failed (stopped now, started again after a backoff)."""
        start = [n for n in sorted(alive) if n not in self.records]
        stop = [n for n in self.records if n not in alive]
        for node, rec in self.records.items():
            if node in alive and rec.state == UNHEALTHY and now - rec.since >= RESTART_BACKOFF_S * rec.failures:
                start.append(node)
        for node in stop:
            del self.records[node]
        return start, stop

    def starting(self, node: str, now: float) -> None:
        old = self.records.get(node)
        self.records[node] = ProxyRecord(STARTING, now, now, failures=old.failures if old else 0)

    def started(self, node: str, address: list, now: float) -> None:
        rec = self.records[node]
        rec.state, rec.since, rec.last_check, rec.address, rec.error, rec.failures = HEALTHY, now, now, address, "", 0

    def failed(self, node: str, error: str, now: float) -> None:
        rec = self.records[node]
        rec.state, rec.since, rec.error, rec.failures = UNHEALTHY, now, error, rec.failures + 1

    def due_for_check(self, node: str, now: float) -> bool:
        rec = self.records[node]
        return rec.state == HEALTHY and now - rec.last_check >= HEALTH_CHECK_PERIOD_S

    def checked(self, node: str, now: float) -> None:
        self.records[node].last_check = now

    def timed_out(self, node: str, now: float, pending_since: float) -> bool:
        limit = START_TIMEOUT_S if self.records[node].state == STARTING else HEALTH_CHECK_TIMEOUT_S
        return now - pending_since > limit

    def status(self) -> dict[str, str]:
        return {node: rec.state for node, rec in self.records.items()}


class ProxyManager:
    """Starts and watches the proxy actors (detached, named ``SERVE_PROXY::<node_id>``, pinned to their node,
    num_cpus=0)."""

    def __init__(self, http_options: dict | None = None, controller_name: str = CONTROLLER_NAME,
                 namespace: str = SERVE_NAMESPACE, *, only_node: str | None = None) -> None:
        self.http_options = dict(http_options or {})
        self.only_node = only_node  # proxy_location="HeadOnly": the controller's node only
        self.controller_name = controller_name
        self.namespace = namespace
        self.states = ProxyStates()
        self.handles: dict[str, object] = {}
        self.pending: dict[str, tuple[object, float]] = {}  # node -> (future of ready/check_health, since)

    def reconcile(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        alive = {n["NodeID"] for n in juno.nodes() if n.get("Alive")}
        if self.only_node is not None:
            alive &= {self.only_node}
        start, stop = self.states.plan(alive, now)
        for node in stop:
            self._kill(node)
        for node in start:
            self._start(node, now)
        for node, (future, since) in list(self.pending.items()):
            if future.done():
                del self.pending[node]
                self._settle(node, future, now)
            elif self.states.timed_out(node, now, since):
                del self.pending[node]
                self._fail(node, f"no answer in {now - since:.0f} s", now)
        for node in list(self.handles):
            if node not in self.pending and self.states.due_for_check(node, now):
                self.states.checked(node, now)
                self.pending[node] = (self.handles[node].check_health.remote().future(), now)

    def _start(self, node: str, now: float) -> None:
        from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._kill(node)
        name = proxy_name(node)
        try:
            handle = juno.get_actor(name, namespace=self.namespace)  # left by an earlier controller
        except ValueError:
            handle = juno.remote(ProxyActor).options(
                name=name, namespace=self.namespace, lifetime="detached", num_cpus=0, max_concurrency=8,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(self.http_options, self.controller_name, self.namespace)
        self.handles[node] = handle
        self.states.starting(node, now)
        self.pending[node] = (handle.ready.remote().future(), now)

    def _settle(self, node: str, future, now: float) -> None:
        error = future.exception()
        if error is not None:
            self._fail(node, f"{type(error).__name__}: {error}", now)
        elif self.states.records[node].state == STARTING:
            self.states.started(node, future.result(), now)
            logger.info("Serve proxy on node %s listens on %s", node[:8], future.result())

    def _fail(self, node: str, error: str, now: float) -> None:
        logger.warning("Serve proxy on node %s is unhealthy (%s); restarting it", node[:8], error)
        self.states.failed(node, error, now)
        self._kill(node)

    def _kill(self, node: str) -> None:
        self.pending.pop(node, None)
        handle = self.handles.pop(node, None)
        if handle is not None:
            try:
                juno.kill(handle)
            except Exception:  # noqa: BLE001  (already gone with its node)
                logger.debug("killing proxy of %s failed", node, exc_info=True)

    def status(self) -> dict[str, str]:
        return self.states.status()

    def serving_handles(self) -> list:
        """The proxies that answered ready (or their last health check)."""
        return [self.handles[node] for node, rec in self.states.records.items()
                if rec.state == HEALTHY and node in self.handles]

    def serving(self) -> bool:
        return bool(self.serving_handles())

    def http_address(self) -> str:
        """The address of a healthy proxy, this node's first ("http://host:port"); http_options' before any."""
        local = juno.get_runtime_context().get_node_id()
        records = sorted(self.states.records.items(), key=lambda item: item[0] != local)
        for _, rec in records:
            if rec.state == HEALTHY and rec.address:
                host = "127.0.0.1" if rec.address[0] in WILDCARD_HOSTS else rec.address[0]  # also on loopback
                return f"http://{host}:{rec.address[1]}"
        return f"http://{self.http_options.get('host', '127.0.0.1')}:{self.http_options.get('port', 8000)}"

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop every proxy: close its server (within ``timeout_s``), then kill the actor."""
        calls = [asyncio.wrap_future(handle.shutdown.remote().future()) for handle in self.handles.values()]
        if calls:
            await asyncio.wait(calls, timeout=timeout_s)  # killed below all the same
        for node in list(self.handles):
            self._kill(node)
        self.states.records.clear()
