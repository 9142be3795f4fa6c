"""Serve's Router on the real stack: the controller, real replicas of real deployments, and Routers built
on that controller (as handles and the proxy build them). Spreading load, waiting at max_ongoing_requests,
queue reports, back pressure, membership changes by real rescaling, a killed replica, streaming, no
replica yet, a deployment that fails while requests wait, and a dropped response's slot.

One cluster and one Serve for the module; each application is deployed once, when a test first needs it.
"""
import asyncio
import os
import sys
import time
import uuid

import cloudpickle
import pytest

import juno
from helpers import wait_for_condition
from juno import serve
from juno.exceptions import RayActorError
from juno.serve.controller import CONTROLLER_NAME, SERVE_NAMESPACE
from juno.serve.deployment import build_application
from juno.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestTimeoutError
from juno.serve.router import Router, shared_loop
from juno.util.notebook import known_actor_state

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # replicas can't import this file

JUNO_SHARED_INIT = {"num_cpus": 2}
NO_CPU = {"num_cpus": 0}


@serve.deployment(ray_actor_options=NO_CPU)
class Worker:
    """Answers with its replica id after ``sleep`` seconds; counts its own concurrency."""

    def __init__(self, gate: str = "", fail: bool = False):
        if gate:  # a replica that is slow to start (until the test creates the file), then maybe fails
            deadline = time.monotonic() + 60
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.05)
            if fail:
                raise RuntimeError("no model at /nowhere")
        self.ongoing = self.max_seen = 0

    async def __call__(self, sleep=0.0):
        self.ongoing += 1
        self.max_seen = max(self.max_seen, self.ongoing)
        try:
            await asyncio.sleep(sleep)
            return serve.get_replica_context().replica_id
        finally:
            self.ongoing -= 1

    async def stream(self, n):
        for i in range(n):
            await asyncio.sleep(0.01)
            yield serve.get_replica_context().replica_id, i

    async def stats(self):
        return {"max_seen": self.max_seen, "ongoing": self.ongoing}


_deployed: set = set()
_routers: list = []


def controller():
    return juno.get_actor(CONTROLLER_NAME, namespace=SERVE_NAMESPACE)


def deploy(name, **options):
    """Application ``name`` (a Worker with these options), deployed once for the module."""
    if name not in _deployed:
        serve.run(Worker.options(**options).bind(), name=name, route_prefix=None)
        _deployed.add(name)
    return name


def router(app, timeout_s=None, replicas=None):
    """A Router on the real controller, on the shared loop (as a handle's); stopped after the test."""
    r = Router(controller(), app, "Worker", loop=shared_loop(), request_timeout_s=timeout_s)
    _routers.append(r)
    if replicas is not None:
        wait_for_condition(lambda: r.num_replicas == replicas, timeout=30)
    return r


@pytest.fixture(autouse=True)
def _stop_routers(cluster):
    yield
    while _routers:
        _routers.pop().shutdown()


def replica_actors(app):
    info = juno.get(controller().get_replicas.remote(app, "Worker"), timeout=30)
    return {r["replica_id"]: r["actor"] for r in info["replicas"]}


def stats(actor):
    return juno.get(actor.handle_request.remote(meta(method="stats"), (), {}), timeout=30)


def run(coro, timeout=60):
    return asyncio.run_coroutine_threadsafe(coro, shared_loop()).result(timeout)


def meta(app="", stream=False, method="__call__"):
    return {"request_id": uuid.uuid4().hex, "app": app, "deployment": "Worker", "method": method,
            "stream": stream, "http": False, "route": "", "multiplexed_model_id": ""}


async def call(r, **kwargs):
    ref = await r.assign_request(meta(r.app), (), kwargs)
    return await ref


async def many(r, n, **kwargs):
    return await asyncio.gather(*(call(r, **kwargs) for _ in range(n)))


def test_requests_spread_over_replicas(cluster):
    r = router(deploy("two", num_replicas=2, max_ongoing_requests=100), replicas=2)
    names = run(many(r, 60, sleep=0.05))
    assert len(set(names)) == 2
    assert min(names.count(n) for n in set(names)) >= 15, names
    assert set(r.num_ongoing_requests().values()) == {0}


def test_streaming_request(cluster):
    r = router(deploy("two", num_replicas=2, max_ongoing_requests=100), replicas=2)

    async def scenario():
        gen = await r.assign_request(meta("two", stream=True, method="stream"), (4,), {})
        return [await ref async for ref in gen]

    items = run(scenario())
    assert [i for _, i in items] == [0, 1, 2, 3] and len({rid for rid, _ in items}) == 1
    wait_for_condition(lambda: set(r.num_ongoing_requests().values()) == {0}, timeout=10)


def test_requests_wait_at_max_ongoing_and_report_the_queue(cluster):
    app = deploy("one", max_ongoing_requests=1, max_queued_requests=3)
    r = router(app, replicas=1)
    queued = []

    def sample():
        queued.append(juno.get(controller().get_metrics.remote(), timeout=30)[app]["Worker"]["queued"])
        return queued[-1] >= 1

    future = asyncio.run_coroutine_threadsafe(many(r, 4, sleep=0.4), shared_loop())
    wait_for_condition(sample, timeout=10)  # the router told the controller (for autoscaling)
    assert len(set(future.result(30))) == 1
    [actor] = replica_actors(app).values()
    assert stats(actor)["max_seen"] == 1
    wait_for_condition(lambda: juno.get(controller().get_metrics.remote(), timeout=30)[app]["Worker"]["queued"]
                       == 0, timeout=10)


def test_back_pressure_past_max_queued_requests(cluster):
    r = router(deploy("one", max_ongoing_requests=1, max_queued_requests=3), replicas=1)

    async def scenario():
        running = [asyncio.ensure_future(call(r, sleep=0.5)) for _ in range(4)]  # 1 runs, 3 wait
        await asyncio.sleep(0.1)
        assert r.num_queued_requests == 3
        with pytest.raises(BackPressureError, match="max_queued_requests=3"):
            await r.assign_request(meta("one"), (), {})
        return await asyncio.gather(*running)

    assert len(run(scenario())) == 4


def test_busy_replicas_past_the_timeout_raise(cluster):
    r = router(deploy("one", max_ongoing_requests=1, max_queued_requests=3), timeout_s=0.3, replicas=1)

    async def scenario():
        first = asyncio.ensure_future(call(r, sleep=1.0))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestTimeoutError):
            await call(r)
        return await first

    assert run(scenario())


def test_a_dropped_response_still_gives_its_slot_back(cluster):
    r = router(deploy("one", max_ongoing_requests=1, max_queued_requests=3), replicas=1)

    async def fire_and_forget():
        await r.assign_request(meta("one"), (), {"sleep": 0.2})  # the ref is dropped at once

    run(fire_and_forget())
    wait_for_condition(lambda: set(r.num_ongoing_requests().values()) == {0}, timeout=10)
    assert run(call(r))


def test_membership_follows_real_rescaling(cluster):
    app = deploy("scale", num_replicas=1)
    r = router(app, replicas=1)

    async def in_turn(n):
        return [await call(r) for _ in range(n)]

    [first] = set(run(in_turn(10)))
    serve.run(Worker.options(num_replicas=2).bind(), name=app, route_prefix=None)  # same code: only scales
    wait_for_condition(lambda: r.num_replicas == 2, timeout=30)
    seen = set(run(in_turn(40)))
    assert len(seen) == 2 and first in seen
    serve.run(Worker.options(num_replicas=1).bind(), name=app, route_prefix=None)
    wait_for_condition(lambda: r.num_replicas == 1, timeout=30)
    assert len(set(run(in_turn(10)))) == 1


def test_a_killed_replicas_waiting_requests_go_to_another(cluster):
    app = deploy("kill", num_replicas=2, max_ongoing_requests=1, health_check_period_s=0.5)
    r = router(app, replicas=2)
    actors = replica_actors(app)

    async def scenario():
        first = [await r.assign_request(meta(app), (), {"sleep": 1.5}) for _ in range(2)]  # one on each
        waiting = [asyncio.ensure_future(call(r)) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert r.num_queued_requests == 4
        victim = next(iter(actors))
        juno.kill(actors[victim])
        outcomes = await asyncio.gather(*first, return_exceptions=True)
        return victim, outcomes, await asyncio.gather(*waiting)

    victim, outcomes, later = run(scenario())
    assert sum(isinstance(o, RayActorError) for o in outcomes) == 1  # accepted by the victim: lost with it
    assert sum(o in actors and o != victim for o in outcomes) == 1
    assert len(later) == 4 and victim not in later

    # A replica known dead gets no new request, though the controller may still list it for a moment.
    wait_for_condition(lambda: known_actor_state(actors[victim]) == "DEAD", timeout=30)
    assert victim not in run(many(r, 20))
    # The controller replaces it (its health check finds it dead).
    wait_for_condition(lambda: len(replica_actors(app)) == 2 and victim not in replica_actors(app), timeout=60)


def test_no_replica_yet_times_out_or_proceeds(cluster, tmp_path):
    gate = str(tmp_path / "gate")
    ingress, infos = build_application(Worker.bind(gate), "late")
    juno.get(controller().deploy_application.remote("late", None, infos, ingress), timeout=30)
    impatient = router("late", timeout_s=0.5)
    with pytest.raises(DeploymentUnavailableError, match="no running replica"):
        run(call(impatient))

    patient = router("late")
    future = asyncio.run_coroutine_threadsafe(call(patient), shared_loop())
    time.sleep(0.3)
    assert not future.done()
    open(gate, "w").close()  # the replica's constructor ends: it becomes RUNNING
    assert future.result(60)
    serve.delete("late")


def test_a_failed_deployment_fails_waiting_requests(cluster, tmp_path):
    gate = str(tmp_path / "gate")
    ingress, infos = build_application(Worker.bind(gate, fail=True), "doomed")
    juno.get(controller().deploy_application.remote("doomed", None, infos, ingress), timeout=30)
    r = router("doomed")
    future = asyncio.run_coroutine_threadsafe(call(r), shared_loop())
    time.sleep(0.2)
    assert not future.done()
    open(gate, "w").close()  # the constructor raises: DEPLOY_FAILED
    with pytest.raises(DeploymentUnavailableError, match="DEPLOY_FAILED"):
        future.result(30)
    with pytest.raises(DeploymentUnavailableError):
        run(call(r))
    serve.delete("doomed")
