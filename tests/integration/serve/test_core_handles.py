"""Serve's handles on a real cluster: calls, methods, composition, unresolved responses, streaming,
timeouts, pickled handles, the handle getters and two applications side by side."""
import asyncio

import pytest


JUNO_SHARED_INIT = {"num_cpus": 4}
NO_CPU = {"ray_actor_options": {"num_cpus": 0}}


def test_class_and_function_through_handles(serve):
    @serve.deployment(num_replicas=2, **NO_CPU)
    class Adder:
        def __init__(self, base):
            self.base = base

        def __call__(self, x):
            return self.base + x

        async def times(self, x, k=2):
            return x * k

    @serve.deployment(**NO_CPU)
    def negate(x):
        return -x

    handle = serve.run(Adder.bind(10), name="adder", route_prefix="/adder")
    assert handle.remote(5).result(timeout_s=30) == 15
    assert handle.times.remote(4, k=3).result(timeout_s=30) == 12
    assert handle.options(method_name="times").remote(2).result(timeout_s=30) == 4
    assert [r.result(timeout_s=30) for r in [handle.remote(i) for i in range(10)]] == list(range(10, 20))
    neg = serve.run(negate.bind(), name="negate", route_prefix="/negate")
    assert neg.remote(3).result(timeout_s=30) == -3
    # two applications side by side, found again by name
    assert serve.get_app_handle("adder").remote(1).result(timeout_s=30) == 11
    assert serve.get_deployment_handle("negate", "negate").remote(1).result(timeout_s=30) == -1
    with pytest.raises(ValueError, match="applications are"):
        serve.get_app_handle("nope")
    with pytest.raises(ValueError, match="no deployment 'Nope'"):
        serve.get_deployment_handle("Nope", "adder")


def test_unknown_method_names_method_and_deployment(serve):
    @serve.deployment(**NO_CPU)
    class Small:
        def __call__(self):
            return 1

    handle = serve.run(Small.bind(), name="small", route_prefix=None)
    with pytest.raises(Exception, match="deployment 'Small' has no method 'missing'"):
        handle.missing.remote().result(timeout_s=30)


def test_composition_and_unresolved_responses(serve):
    @serve.deployment(**NO_CPU)
    class Doubler:
        def __call__(self, x):
            return 2 * x

    @serve.deployment(**NO_CPU)
    class Incr:
        def __call__(self, x):
            return x + 1

    @serve.deployment(**NO_CPU)
    class Pipeline:
        def __init__(self, doubler, incr):
            self.doubler = doubler
            self.incr = incr

        async def __call__(self, x):
            doubled = self.doubler.remote(x)  # passed on unresolved
            return await self.incr.remote(doubled)

        def sync_path(self, x):
            return self.incr.remote(self.doubler.remote(x)).result(timeout_s=30)

    handle = serve.run(Pipeline.bind(Doubler.bind(), Incr.bind()), name="pipe", route_prefix=None)
    assert handle.remote(5).result(timeout_s=30) == 11
    assert handle.sync_path.remote(1).result(timeout_s=30) == 3
    # and from the driver: a response as another call's argument
    doubler = serve.get_deployment_handle("Doubler", "pipe")
    incr = serve.get_deployment_handle("Incr", "pipe")
    assert incr.remote(doubler.remote(20)).result(timeout_s=30) == 41

    async def both():
        return await incr.remote(doubler.remote(1))

    assert asyncio.run(both()) == 3


def test_streaming_handle_sync_and_async(serve):
    @serve.deployment(**NO_CPU)
    class Streamer:
        def __call__(self, n):
            for i in range(n):
                yield i

        async def letters(self, word):
            for ch in word:
                await asyncio.sleep(0)
                yield ch

    handle = serve.run(Streamer.bind(), name="stream", route_prefix=None)
    assert list(handle.options(stream=True).remote(4)) == [0, 1, 2, 3]

    async def collect():
        return [ch async for ch in handle.options(stream=True, method_name="letters").remote("abc")]

    assert asyncio.run(collect()) == ["a", "b", "c"]


def test_result_timeout_and_cancel(serve):
    @serve.deployment(**NO_CPU)
    class Slow:
        async def __call__(self, s):
            await asyncio.sleep(s)
            return s

    handle = serve.run(Slow.bind(), name="slow", route_prefix=None)
    with pytest.raises(TimeoutError):
        handle.remote(5).result(timeout_s=0.3)
    response = handle.remote(5)
    response.cancel()
    with pytest.raises(Exception):
        response.result(timeout_s=30)
    assert handle.remote(0).result(timeout_s=30) == 0


def test_handle_pickles_into_a_task(serve):
    import juno

    @serve.deployment(**NO_CPU)
    def echo(x):
        return x

    handle = serve.run(echo.bind(), name="echo", route_prefix=None)

    @juno.remote(num_cpus=0)
    def call_through(h, x):
        return h.remote(x).result(timeout_s=30)

    assert juno.get(call_through.remote(handle, "hi"), timeout=60) == "hi"


def test_rolling_update_through_a_handle_loses_no_request(serve):
    import threading
    import time

    @serve.deployment(num_replicas=2, graceful_shutdown_timeout_s=5, **NO_CPU)
    class Versioned:
        def __init__(self, version):
            self.version = version

        async def __call__(self):
            await asyncio.sleep(0.02)
            return self.version

    handle = serve.run(Versioned.bind("v1"), name="hroll", route_prefix=None)
    results, errors = [], []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                results.append(handle.remote().result(timeout_s=30))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    serve.run(Versioned.bind("v2"), name="hroll", route_prefix=None)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert results[-1] == "v2" and "v1" in results
