"""Serve's Router against real actors: spreading load, waiting at max_ongoing_requests, back
pressure, membership changes, a killed replica, streaming, and a deployment with no replica.

The replica and controller here are test doubles with the contract's methods (the real ones are
CORE's), so the router is tested alone on a real cluster."""
import asyncio
import sys
import time
import uuid

import cloudpickle
import pytest

import juno
from juno.exceptions import RayActorError
from juno.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestTimeoutError
from juno.serve.router import Router, shared_loop
from juno.util.notebook import known_actor_state

from helpers import wait_for_condition

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 2}


@juno.remote(num_cpus=0)
class ToyReplica:
    """The contract's replica methods; a request sleeps ``kwargs["sleep"]`` seconds."""

    def __init__(self, name):
        self.name = name
        self.ongoing = 0
        self.max_seen = 0
        self.count = 0

    async def handle_request(self, meta, args, kwargs):
        self.ongoing += 1
        self.count += 1
        self.max_seen = max(self.max_seen, self.ongoing)
        try:
            await asyncio.sleep(kwargs.get("sleep", 0))
            return self.name
        finally:
            self.ongoing -= 1

    async def handle_request_streaming(self, meta, args, kwargs):
        self.ongoing += 1
        try:
            for i in range(args[0]):
                await asyncio.sleep(0.01)
                yield (self.name, i)
        finally:
            self.ongoing -= 1

    async def get_num_ongoing_requests(self):
        return self.ongoing

    async def stats(self):
        return {"count": self.count, "max_seen": self.max_seen, "ongoing": self.ongoing}


@juno.remote(num_cpus=0)
class ToyController:
    """get_replicas / wait_for_replicas (long poll) / record_queued_requests, set by the test."""

    def __init__(self):
        self.version = 0
        self.replicas = []
        self.max_queued = -1
        self.status = "UPDATING"
        self.changed = None
        self.reports = []

    def _info(self):
        return {"version": self.version, "replicas": self.replicas, "max_queued_requests": self.max_queued,
                "status": self.status}

    async def set_replicas(self, replicas, max_queued=-1, status="HEALTHY"):
        self.replicas = [{"replica_id": rid, "actor": actor, "node_id": "", "max_ongoing_requests": m}
                         for rid, actor, m in replicas]
        self.max_queued = max_queued
        self.status = status
        self.version += 1
        if self.changed is not None:
            self.changed.set()

    async def get_replicas(self, app, deployment):
        return self._info()

    async def wait_for_replicas(self, app, deployment, known_version, timeout_s):
        deadline = time.monotonic() + timeout_s
        while self.version == known_version and time.monotonic() < deadline:
            self.changed = asyncio.Event()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        return self._info()

    async def record_queued_requests(self, app, deployment, router_id, queued):
        self.reports.append(queued)

    async def get_reports(self):
        return list(self.reports)


def run(coro, timeout=60):
    return asyncio.run_coroutine_threadsafe(coro, shared_loop()).result(timeout)


def meta(stream=False):
    return {"request_id": uuid.uuid4().hex, "app": "app", "deployment": "d", "method": "__call__",
            "stream": stream, "http": False, "route": "", "multiplexed_model_id": ""}


async def call(router, **kwargs):
    ref = await router.assign_request(meta(), (), kwargs)
    return await ref


async def many(router, n, **kwargs):
    return await asyncio.gather(*(call(router, **kwargs) for _ in range(n)))


@pytest.fixture
def setup(cluster):
    made = []

    def make(*specs, max_queued=-1, timeout_s=None):
        """specs: (name, max_ongoing) per replica; returns (controller, router, {name: actor})."""
        controller = ToyController.remote()
        actors = {name: ToyReplica.remote(name) for name, _ in specs}
        juno.get(controller.set_replicas.remote([(n, actors[n], m) for n, m in specs], max_queued), timeout=30)
        router = Router(controller, "app", "d", loop=shared_loop(), request_timeout_s=timeout_s)
        made.append((router, controller, actors))
        wait_for_condition(lambda: router.num_replicas == len(specs), timeout=30)
        return controller, router, actors

    yield make
    for router, controller, actors in made:
        router.shutdown()
        for actor in [controller, *actors.values()]:
            juno.kill(actor)


def test_requests_spread_over_replicas(setup):
    _, router, actors = setup(("a", 100), ("b", 100))

    names = run(many(router, 60, sleep=0.05))
    assert set(names) == {"a", "b"}
    assert min(names.count("a"), names.count("b")) >= 15, names
    assert router.num_ongoing_requests() == {"a": 0, "b": 0}


def test_requests_wait_at_max_ongoing_and_report_the_queue(setup):
    controller, router, actors = setup(("a", 2))

    assert run(many(router, 6, sleep=0.3)) == ["a"] * 6
    assert juno.get(actors["a"].stats.remote(), timeout=30)["max_seen"] == 2
    wait_for_condition(lambda: juno.get(controller.get_reports.remote(), timeout=30)[-1:] == [0], timeout=10)
    assert max(juno.get(controller.get_reports.remote(), timeout=30)) >= 1


def test_back_pressure_past_max_queued_requests(setup):
    _, router, _ = setup(("a", 1), max_queued=2)

    async def scenario():
        running = [asyncio.ensure_future(call(router, sleep=0.5)) for _ in range(3)]  # 1 runs, 2 wait
        await asyncio.sleep(0.1)
        assert router.num_queued_requests == 2
        with pytest.raises(BackPressureError, match="max_queued_requests=2"):
            await router.assign_request(meta(), (), {})
        return await asyncio.gather(*running)

    assert run(scenario()) == ["a"] * 3


def test_membership_changes_mid_stream(setup):
    controller, router, actors = setup(("a", 10))
    b = ToyReplica.remote("b")
    actors["b"] = b  # killed by the fixture

    async def stream_of_requests(n):
        return [await call(router) for _ in range(n)]

    assert set(run(stream_of_requests(10))) == {"a"}
    juno.get(controller.set_replicas.remote([("a", actors["a"], 10), ("b", b, 10)]), timeout=30)
    wait_for_condition(lambda: router.num_replicas == 2, timeout=30)
    assert set(run(stream_of_requests(40))) == {"a", "b"}
    juno.get(controller.set_replicas.remote([("b", b, 10)]), timeout=30)
    wait_for_condition(lambda: router.num_replicas == 1, timeout=30)
    assert set(run(stream_of_requests(10))) == {"b"}


def test_a_killed_replicas_waiting_requests_go_to_another(setup):
    _, router, actors = setup(("a", 1), ("b", 1))

    async def scenario():
        first = [await router.assign_request(meta(), (), {"sleep": 3}) for _ in range(2)]  # one on each
        waiting = [asyncio.ensure_future(call(router)) for _ in range(4)]
        await asyncio.sleep(0.2)
        assert router.num_queued_requests == 4
        juno.kill(actors["a"])
        outcomes = await asyncio.gather(*first, return_exceptions=True)
        return outcomes, await asyncio.gather(*waiting)

    outcomes, later = run(scenario())
    assert sorted(map(str, outcomes)).count("b") == 1
    assert sum(isinstance(o, RayActorError) for o in outcomes) == 1  # accepted by a: lost with it
    assert later == ["b"] * 4
    assert router.num_replicas == 1  # dropped at once, though the controller still lists it


def test_a_replica_known_dead_gets_no_new_request(setup):
    _, router, actors = setup(("a", 10), ("b", 10))
    assert set(run(many(router, 20))) == {"a", "b"}
    juno.kill(actors["a"])
    wait_for_condition(lambda: known_actor_state(actors["a"]) == "DEAD", timeout=30)
    assert run(many(router, 20)) == ["b"] * 20


def test_streaming_request(setup):
    _, router, _ = setup(("a", 5))

    async def scenario():
        gen = await router.assign_request(meta(stream=True), (4,), {})
        items = [await ref async for ref in gen]
        return items

    assert run(scenario()) == [("a", i) for i in range(4)]
    wait_for_condition(lambda: router.num_ongoing_requests() == {"a": 0}, timeout=10)


def test_no_replica_yet_waits_then_times_out_or_proceeds(setup):
    controller, router, _ = setup(timeout_s=0.5)
    with pytest.raises(DeploymentUnavailableError, match="no running replica"):
        run(call(router))

    _, patient, _ = setup()
    late = ToyReplica.remote("late")
    future = asyncio.run_coroutine_threadsafe(call(patient), shared_loop())
    time.sleep(0.3)
    assert not future.done()
    controller2 = patient._controller
    juno.get(controller2.set_replicas.remote([("late", late, 2)]), timeout=30)
    assert future.result(30) == "late"
    juno.kill(late)


def test_busy_replicas_past_the_timeout_raise(setup):
    _, router, _ = setup(("a", 1), timeout_s=0.3)

    async def scenario():
        first = asyncio.ensure_future(call(router, sleep=1.0))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestTimeoutError):
            await call(router)
        return await first

    assert run(scenario()) == "a"


def test_a_failed_deployment_fails_waiting_requests(setup):
    controller, router, _ = setup()
    future = asyncio.run_coroutine_threadsafe(call(router), shared_loop())
    time.sleep(0.2)
    juno.get(controller.set_replicas.remote([], status="DEPLOY_FAILED"), timeout=30)
    with pytest.raises(DeploymentUnavailableError, match="DEPLOY_FAILED"):
        future.result(30)
    with pytest.raises(DeploymentUnavailableError):
        run(call(router))


def test_a_dropped_response_still_gives_its_slot_back(setup):
    _, router, actors = setup(("a", 1))

    async def fire_and_forget():
        await router.assign_request(meta(), (), {"sleep": 0.2})  # the ref is dropped at once

    run(fire_and_forget())
    wait_for_condition(lambda: router.num_ongoing_requests() == {"a": 0}, timeout=10)
    assert run(call(router)) == "a"
