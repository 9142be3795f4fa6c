"""The controller actor: the I/O shell around ``ServeState``.

One detached async actor named ``SERVE_CONTROLLER`` (namespace ``serve``). Its loop asks the pure
state what to do every LOOP_PERIOD_S, creates, reconfigures, health-checks and stops replica actors,
polls their metrics, asks the autoscaling policy for targets, and wakes the routers' and proxies'
long polls when the replica sets or the routes change.
"""
from __future__ import annotations

import asyncio
import time
import traceback
from typing import Any

import juno
from juno.serve.autoscaling_policy import AutoscalingPolicy
from juno.serve.controller.application_state import ServeState
from juno.serve.controller.deployment_state import (CheckHealth, DeploymentState, Reconfigure, StartReplica,
                                                     StopReplica)
from juno.serve.controller.metrics import DeploymentMetrics
from juno.serve.http.proxy_manager import ProxyManager
from juno.serve.names import SERVE_NAMESPACE, replica_actor_name
from juno.serve.replica import Replica
from juno.util.placement_group import placement_group, remove_placement_group
from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

LOOP_PERIOD_S = 0.1
METRICS_PERIOD_S = 1.0
CONTROL_HEADROOM = 16  # replica concurrency beyond max_ongoing_requests, for control calls
MIN_AUTOSCALE_PERIOD_S = 0.5
PROXY_READY_TIMEOUT_S = 30.0


def infeasible_message(info: dict, nodes: list[dict], totals: dict) -> str | None:
    """Why a replica of this deployment can never be placed on any node, or None if it can."""
    config = info["config"]
    demands_list = config.get("placement_group_bundles") or [_replica_demands(config["ray_actor_options"])]
    capacities = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    for demands in demands_list:
        if any(all(cap.get(k, 0.0) >= v for k, v in demands.items()) for cap in capacities):
            continue
        short = [f"{k}={v:g}" for k, v in demands.items()
                 if not any(cap.get(k, 0.0) >= v for cap in capacities)] or [repr(demands)]
        shown = {k: totals[k] for k in sorted(totals) if not k.startswith("node:")}
        return (f"deployment {info['name']!r} asks for {', '.join(short)} per replica, which no node of the "
                f"cluster has (cluster totals: {shown}); lower ray_actor_options or add resources to the cluster")
    return None


def _replica_demands(options: dict) -> dict[str, float]:
    demands = {"CPU": float(options.get("num_cpus", 1) or 0), "GPU": float(options.get("num_gpus", 0) or 0),
               "memory": float(options.get("memory", 0) or 0)}
    demands.update({k: float(v) for k, v in (options.get("resources") or {}).items()})
    return {k: v for k, v in demands.items() if v > 0}


class ServeController:
    """Owns the applications and their replicas (see the module docstring)."""

    def __init__(self, http_options: dict) -> None:
        self._state = ServeState()
        self._http_options = dict(http_options)
        self._handles: dict[str, Any] = {}  # replica id -> actor handle
        self._pgs: dict[str, Any] = {}  # replica id -> its placement group
        self._metrics: dict[tuple[str, str], DeploymentMetrics] = {}
        self._policies: dict[tuple[str, str], tuple[Any, Any]] = {}  # -> (autoscaling config, policy)
        self._last_autoscale: dict[tuple[str, str], float] = {}
        self._changed: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._last_metrics = 0.0
        self._proxy_manager: Any = None

    # ------------------------------------------------------------------ the loop
    def _ensure_loop(self) -> None:
        if self._loop_task is None and not self._stopping:
            self._changed = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run_loop())
            self._start_proxies()

    def _notify(self) -> None:
        """Wake every long poll (they compare versions themselves)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _run_loop(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            try:
                self._step(now)
            except Exception:  # noqa: BLE001 - the loop must survive a bug in one step; say what happened
                traceback.print_exc()
            await asyncio.sleep(LOOP_PERIOD_S)

    def _step(self, now: float) -> None:
        before = self._versions()
        if now - self._last_metrics >= METRICS_PERIOD_S:
            self._last_metrics = now
            self._spawn(self._poll_metrics())
            self._reconcile_proxies()
        self._autoscale(now)
        for dep, action in self._state.reconcile(now):
            self._spawn(self._act(dep, action))
        for app in self._state.apps.values():
            for dep in app.deployments.values():
                dep.status()  # settles triggers and clears recovered health messages
        if self._versions() != before:
            self._notify()

    def _versions(self) -> tuple:
        return (self._state.routes_version, tuple(sorted(
            (a.name, d.name, d.version) for a in self._state.apps.values() for d in a.deployments.values())))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _act(self, dep: DeploymentState, action: Any) -> None:
        try:
            if isinstance(action, StartReplica):
                await self._start_replica(dep, action.replica_id)
            elif isinstance(action, StopReplica):
                await self._stop_replica(dep, action.replica_id, action.graceful)
            elif isinstance(action, CheckHealth):
                await self._check_health(dep, action.replica_id)
            elif isinstance(action, Reconfigure):
                await self._reconfigure(dep, action)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        self._notify()

    async def _start_replica(self, dep: DeploymentState, replica_id: str) -> None:
        info, config = dep.info, dep.config
        options = {k: v for k, v in config["ray_actor_options"].items() if v is not None}
        options.setdefault("num_cpus", 1)
        options.update(name=replica_actor_name(dep.app, dep.name, replica_id), namespace=SERVE_NAMESPACE,
                       lifetime="detached", max_restarts=0,
                       max_concurrency=int(config["max_ongoing_requests"]) + CONTROL_HEADROOM)
        try:
            if config.get("placement_group_bundles"):
                pg = placement_group(config["placement_group_bundles"], config["placement_group_strategy"])
                self._pgs[replica_id] = pg
                await pg.ready()
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(pg, 0)
            handle = juno.remote(Replica).options(**options).remote(
                dep.app, dep.name, replica_id, info["serialized_def"], info["init_args"], info["init_kwargs"],
                dict(config), info["is_function"])
            self._handles[replica_id] = handle
            result = await handle.initialize.remote()
        except Exception as exc:  # noqa: BLE001 - the user's constructor error, with its traceback
            dep.on_replica_start_failed(replica_id, str(exc), time.monotonic())
            return
        dep.on_replica_running(replica_id, result.get("node_id", ""), time.monotonic())

    async def _stop_replica(self, dep: DeploymentState, replica_id: str, graceful: bool) -> None:
        handle = self._handles.get(replica_id)
        if handle is not None:
            if graceful:
                timeout = float(dep.config["graceful_shutdown_timeout_s"]) + 5.0
                try:
                    await asyncio.wait_for(_awaitable(handle.prepare_for_shutdown.remote()), timeout)
                except Exception:  # noqa: BLE001 - dead or stuck: killed below all the same
                    pass
            try:
                juno.kill(handle)
            except Exception:  # noqa: BLE001 - already gone
                pass
        pg = self._pgs.pop(replica_id, None)
        if pg is not None:
            try:
                remove_placement_group(pg)
            except Exception:  # noqa: BLE001
                pass
        self._handles.pop(replica_id, None)
        dep.on_replica_stopped(replica_id)

    async def _check_health(self, dep: DeploymentState, replica_id: str) -> None:
        handle = self._handles.get(replica_id)
        error = None
        try:
            await asyncio.wait_for(_awaitable(handle.check_health.remote()),
                                   float(dep.config["health_check_timeout_s"]))
        except asyncio.TimeoutError:
            error = f"no answer within health_check_timeout_s={dep.config['health_check_timeout_s']}"
        except Exception as exc:  # noqa: BLE001 - the user's check_health error or a dead actor
            error = str(exc)
        dep.on_health_check(replica_id, error, time.monotonic())

    async def _reconfigure(self, dep: DeploymentState, action: Reconfigure) -> None:
        handle = self._handles.get(action.replica_id)
        error = None
        try:
            await handle.reconfigure.remote(action.user_config)
        except Exception as exc:  # noqa: BLE001
            error = str(exc)
        dep.on_reconfigured(action.replica_id, action.user_config, error, time.monotonic())

    # ------------------------------------------------------------------ metrics and autoscaling
    async def _poll_metrics(self) -> None:
        jobs = []
        for app in self._state.apps.values():
            for dep in app.deployments.values():
                window = self._metrics.setdefault((app.name, dep.name), DeploymentMetrics())
                members = dep.members()
                window.forget({r.replica_id for r in members})
                for r in members:
                    handle = self._handles.get(r.replica_id)
                    if handle is not None:
                        jobs.append((window, r.replica_id, handle.get_metrics.remote()))
        if not jobs:
            return
        results = await asyncio.gather(*(asyncio.wait_for(_awaitable(ref), 5.0) for _, _, ref in jobs),
                                       return_exceptions=True)
        now = time.monotonic()
        for (window, replica_id, _), sample in zip(jobs, results):
            if isinstance(sample, dict):
                window.record(replica_id, sample, now)

    def _autoscale(self, now: float) -> None:
        for app in self._state.apps.values():
            for dep in app.deployments.values():
                cfg = dep.config.get("autoscaling_config")
                key = (app.name, dep.name)
                if cfg is None or dep.deleting or dep.failed_message:
                    self._policies.pop(key, None)
                    continue
                period = max(MIN_AUTOSCALE_PERIOD_S, float(cfg.get("metrics_interval_s", 10.0)))
                if now - self._last_autoscale.get(key, 0.0) < period:
                    continue
                self._last_autoscale[key] = now
                known = self._policies.get(key)
                if known is None or known[0] != cfg:
                    known = self._policies[key] = (cfg, AutoscalingPolicy.from_config(cfg))
                window = self._metrics.get(key)
                ongoing = (window.ongoing() if window is not None else 0) + dep.total_queued()
                target = known[1].decide(now, dep.target, ongoing, len(dep.members()))
                dep.set_autoscaled_target(int(target))

    # ------------------------------------------------------------------ proxies (the HTTP piece)
    def _start_proxies(self) -> None:
        location = self._http_options.get("proxy_location") or "EveryNode"
        if location == "Disabled":  # handles only
            return
        only = juno.get_runtime_context().get_node_id() if location == "HeadOnly" else None
        self._proxy_manager = ProxyManager(self._http_options, only_node=only)

    def _reconcile_proxies(self) -> None:
        if self._proxy_manager is None:
            return
        try:
            result = self._proxy_manager.reconcile()
            if asyncio.iscoroutine(result):
                self._spawn(result)
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    # ------------------------------------------------------------------ the contract's methods
    async def deploy_application(self, name: str, route_prefix: str | None, deployments: list[dict],
                                 ingress: str) -> None:
        self._ensure_loop()
        now = time.monotonic()
        self._state.deploy(name, route_prefix, deployments, ingress, now)
        nodes, totals = juno.nodes(), juno.cluster_resources()
        for info in deployments:
            message = infeasible_message(info, nodes, totals)
            if message is not None:
                self._state.deployment(name, info["name"]).fail(message)
        self._step(now)

    async def delete_application(self, name: str) -> None:
        self._ensure_loop()
        self._state.delete(name)
        self._step(time.monotonic())

    async def get_ingresses(self) -> dict[str, str]:
        """Application name -> its ingress deployment."""
        return {name: app.ingress for name, app in self._state.apps.items()}

    async def shutdown(self) -> None:
        """Stop every replica and proxy; the caller then kills this actor."""
        self._ensure_loop()
        for name in list(self._state.apps):
            self._state.delete(name)
        self._stopping = True
        stops = []
        for app in self._state.apps.values():
            for dep in app.deployments.values():
                for rid in list(dep.replicas):
                    stops.append(self._stop_replica(dep, rid, graceful=False))
        await asyncio.gather(*stops, return_exceptions=True)
        if self._proxy_manager is not None:
            await self._proxy_manager.shutdown()
        self._state.apps.clear()
        self._notify()

    def _replicas_answer(self, app: str, deployment: str) -> dict:
        dep = self._state.deployment(app, deployment)
        if dep is None:
            return {"version": -1, "replicas": [], "max_queued_requests": -1, "status": "NOT_FOUND"}
        replicas = [{"replica_id": r.replica_id, "actor": self._handles[r.replica_id], "node_id": r.node_id,
                     "max_ongoing_requests": int(dep.config["max_ongoing_requests"])}
                    for r in dep.members() if r.replica_id in self._handles]
        return {"version": dep.version, "replicas": replicas,
                "max_queued_requests": int(dep.config["max_queued_requests"]), "status": dep.status()[0]}

    async def get_replicas(self, app: str, deployment: str) -> dict:
        self._ensure_loop()
        return self._replicas_answer(app, deployment)

    async def wait_for_replicas(self, app: str, deployment: str, known_version: int, timeout_s: float) -> dict:
        self._ensure_loop()
        return await self._wait(lambda: self._replicas_answer(app, deployment), known_version, timeout_s)

    def _routes_answer(self) -> dict:
        return {"version": self._state.routes_version, "routes": self._state.routes()}

    async def get_routes(self) -> dict:
        self._ensure_loop()
        return self._routes_answer()

    async def wait_for_routes(self, known_version: int, timeout_s: float) -> dict:
        self._ensure_loop()
        return await self._wait(self._routes_answer, known_version, timeout_s)

    async def _wait(self, answer: Any, known_version: int, timeout_s: float) -> dict:
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        while True:
            current = answer()
            remaining = deadline - time.monotonic()
            if current["version"] != known_version or remaining <= 0 or self._stopping:
                return current
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def get_http_options(self) -> dict:
        self._ensure_loop()  # serve.start() calls this first: the loop (and the proxies) start now
        return dict(self._http_options)

    async def get_http_address(self, timeout_s: float = PROXY_READY_TIMEOUT_S) -> str:
        """Where the proxies listen: once one is serving (so the real port when port 0 was asked for),
        waiting up to ``timeout_s`` for it; the configured address when proxies are disabled."""
        manager = self._proxy_manager
        if manager is None:
            return f"http://{self._http_options['host']}:{self._http_options['port']}"
        deadline = time.monotonic() + timeout_s
        while not manager.serving() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if not manager.serving():
            raise TimeoutError(f"no Serve HTTP proxy was serving after {timeout_s:g} s: {manager.status()}; "
                               f"check that port {self._http_options['port']} is free on "
                               f"{self._http_options['host']}")
        return manager.http_address()

    async def wait_for_proxy_routes(self, route_prefix: str, timeout_s: float = PROXY_READY_TIMEOUT_S) -> None:
        """Until every serving proxy routes ``route_prefix`` (serve.run returns only then, so a request
        sent right after it is never a 404)."""
        manager = self._proxy_manager
        if manager is None:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            tables = await asyncio.gather(*(asyncio.wrap_future(h.get_routes.remote().future())
                                            for h in manager.serving_handles()), return_exceptions=True)
            if tables and all(isinstance(t, dict) and route_prefix in t for t in tables):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the Serve HTTP proxies did not route {route_prefix!r} within {timeout_s:g} s")
            await asyncio.sleep(0.02)

    async def record_queued_requests(self, app: str, deployment: str, router_id: str, queued: int) -> None:
        dep = self._state.deployment(app, deployment)
        if dep is not None:
            if queued:
                dep.queued[router_id] = int(queued)
            else:
                dep.queued.pop(router_id, None)

    async def get_status(self) -> dict:
        self._ensure_loop()
        proxies = {}
        if self._proxy_manager is not None:
            proxies = dict(self._proxy_manager.status())
        return {"proxies": proxies, "applications": self._state.status(), "target_capacity": None}

    async def get_metrics(self) -> dict:
        now = time.monotonic()
        out: dict[str, dict] = {}
        for app in self._state.apps.values():
            for dep in app.deployments.values():
                window = self._metrics.get((app.name, dep.name)) or DeploymentMetrics()
                summary = window.summary(now)
                summary["queued"] = dep.total_queued()  # waiting in routers for a replica (routers report it)
                out.setdefault(app.name, {})[dep.name] = summary
        return out


async def _awaitable(ref: Any) -> Any:
    return await ref
