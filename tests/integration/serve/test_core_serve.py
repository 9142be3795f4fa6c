"""Serve's core on a real cluster: deploy, status, failures, replacement, reconfigure, rolls, delete.

One cluster and one Serve for the module (each Serve start costs seconds on 2 cores); every test
deploys its own application names. These tests call replicas straight through the controller's
replica set, so they need no router; the handle tests are in test_core_handles.py.
"""
import os
import threading
import time

import pytest

from helpers import wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 4}
NO_CPU = {"ray_actor_options": {"num_cpus": 0}}


def controller():
    import juno

    return juno.get_actor("SERVE_CONTROLLER", namespace="serve")


def replicas(app, deployment):
    import juno

    return juno.get(controller().get_replicas.remote(app, deployment), timeout=30)["replicas"]


def call_replica(replica, *args, method="__call__", **kwargs):
    import juno

    meta = {"request_id": "t", "app": "", "deployment": "", "method": method, "stream": False, "http": False,
            "route": "", "multiplexed_model_id": ""}
    return juno.get(replica["actor"].handle_request.remote(meta, args, kwargs), timeout=30)


def test_function_and_class_deployments_serve_and_report_status(serve):
    @serve.deployment(num_replicas=2, **NO_CPU)
    class Greeter:
        def __init__(self, greeting):
            self.greeting = greeting

        def __call__(self, name):
            return f"{self.greeting}, {name}"

        async def shout(self, name):
            return f"{self.greeting.upper()}, {name.upper()}!"

    @serve.deployment(**NO_CPU)
    def square(x):
        return x * x

    serve.run(Greeter.bind("hello"), name="greet", route_prefix="/greet")
    serve.run(square.bind(), name="square", route_prefix=None)
    reps = replicas("greet", "Greeter")
    assert len(reps) == 2 and all(r["max_ongoing_requests"] == 5 for r in reps)
    assert call_replica(reps[0], "ann") == "hello, ann"
    assert call_replica(reps[1], "bob", method="shout") == "HELLO, BOB!"
    assert call_replica(replicas("square", "square")[0], 7) == 49
    with pytest.raises(Exception, match="no method 'nope'"):
        call_replica(reps[0], method="nope")

    st = serve.status()
    app = st.applications["greet"]
    assert app.status == "RUNNING" and app.route_prefix == "/greet"
    dep = app.deployments["Greeter"]
    assert dep.status == "HEALTHY" and dep.replica_states == {"RUNNING": 2}
    assert st.applications["square"].status == "RUNNING"
    import juno

    routes = juno.get(controller().get_routes.remote(), timeout=30)["routes"]
    assert routes["/greet"] == {"app": "greet", "deployment": "Greeter", "stream": False} and None not in routes

    def counted():  # the controller polls the replicas' get_metrics() every second
        m = juno.get(controller().get_metrics.remote(), timeout=30)["greet"]["Greeter"]
        return m["requests"] >= 3 and m["errors"] >= 1 and m["p99_ms"] > 0

    wait_for_condition(counted, timeout=15)


def test_route_prefix_clash_names_the_app(serve):
    @serve.deployment(**NO_CPU)
    def f():
        return 1

    serve.run(f.bind(), name="owner", route_prefix="/taken")
    with pytest.raises(ValueError, match="already used by application 'owner'"):
        serve.run(f.bind(), name="thief", route_prefix="/taken")


def test_constructor_failure_is_deploy_failed_with_the_traceback(serve):
    @serve.deployment(**NO_CPU)
    class Broken:
        def __init__(self):
            raise ValueError("bad weights file")

    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        serve.run(Broken.bind(), name="broken", route_prefix="/broken")
    text = str(info.value)
    assert "Deploying app 'broken' failed" in text and "bad weights file" in text and "Traceback" in text
    assert f'File "{__file__}"' in text and 'raise ValueError("bad weights file")' in text  # the user's frame
    assert time.monotonic() - start < 30
    assert serve.status().applications["broken"].status == "DEPLOY_FAILED"
    time.sleep(1.0)  # no retry loop: still failed, no replica starting
    dep = serve.status().applications["broken"].deployments["Broken"]
    assert dep.status == "DEPLOY_FAILED" and dep.replica_states.get("STARTING", 0) == 0


def test_resources_that_never_fit_fail_within_seconds(serve):
    @serve.deployment(ray_actor_options={"num_cpus": 64})
    def huge():
        return 1

    @serve.deployment(ray_actor_options={"num_cpus": 0, "num_gpus": 1})
    def gpu():
        return 1

    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"CPU=64.*cluster totals"):
        serve.run(huge.bind(), name="huge", route_prefix=None)
    with pytest.raises(RuntimeError, match=r"GPU=1"):
        serve.run(gpu.bind(), name="gpu", route_prefix=None)
    assert time.monotonic() - start < 10
    assert serve.status().applications["huge"].status == "DEPLOY_FAILED"


def test_user_config_reconfigures_without_restart(serve):
    @serve.deployment(user_config={"threshold": 1}, **NO_CPU)
    class Model:
        def __init__(self):
            self.threshold = None

        def reconfigure(self, config):
            self.threshold = config["threshold"]

        def __call__(self):
            return self.threshold, os.getpid()

    serve.run(Model.bind(), name="cfg", route_prefix=None)
    before = replicas("cfg", "Model")[0]
    value, pid = call_replica(before)
    assert value == 1
    serve.run(Model.options(user_config={"threshold": 5}).bind(), name="cfg", route_prefix=None)
    after = replicas("cfg", "Model")
    assert [r["replica_id"] for r in after] == [before["replica_id"]]
    assert call_replica(after[0]) == (5, pid)


def test_killed_replica_is_replaced(serve):
    import juno

    @serve.deployment(health_check_period_s=0.2, health_check_timeout_s=5, **NO_CPU)
    def alive():
        return "ok"

    serve.run(alive.bind(), name="phoenix", route_prefix=None)
    victim = replicas("phoenix", "alive")[0]
    juno.kill(victim["actor"])

    def replaced():
        reps = replicas("phoenix", "alive")
        return len(reps) == 1 and reps[0]["replica_id"] != victim["replica_id"]

    wait_for_condition(replaced, timeout=30)
    assert call_replica(replicas("phoenix", "alive")[0]) == "ok"
    wait_for_condition(lambda: serve.status().applications["phoenix"].status == "RUNNING", timeout=30)


def test_rolling_update_keeps_serving(serve):
    @serve.deployment(num_replicas=2, graceful_shutdown_timeout_s=5, **NO_CPU)
    class Versioned:
        def __init__(self, version):
            self.version = version

        def __call__(self):
            time.sleep(0.02)
            return self.version

    serve.run(Versioned.bind("v1"), name="roll", route_prefix=None)
    old_ids = {r["replica_id"] for r in replicas("roll", "Versioned")}
    results, errors = [], []
    stop = threading.Event()

    def client():
        while not stop.is_set():  # a router's view: the replica set as the controller gives it now
            for r in replicas("roll", "Versioned"):
                try:
                    results.append(call_replica(r))
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    serve.run(Versioned.bind("v2"), name="roll", route_prefix=None)
    time.sleep(0.3)
    stop.set()
    thread.join(30)
    new = replicas("roll", "Versioned")
    assert len(new) == 2 and not ({r["replica_id"] for r in new} & old_ids)
    assert {call_replica(r) for r in new} == {"v2"}
    assert "v1" in results and "v2" in results
    # A request to a replica that was leaving either finished or found it gone (the router retries those).
    assert all("ActorDied" in type(e).__name__ or "died" in str(e).lower() for e in errors), errors


def test_replica_context_inside_a_replica(serve):
    @serve.deployment(**NO_CPU)
    class WhoAmI:
        def __call__(self):
            from juno import serve as s

            ctx = s.get_replica_context()
            return ctx.app_name, ctx.deployment, ctx.replica_tag, ctx.servable_object is self

    serve.run(WhoAmI.bind(), name="ctx", route_prefix=None)
    rep = replicas("ctx", "WhoAmI")[0]
    assert call_replica(rep) == ("ctx", "WhoAmI", rep["replica_id"], True)


def test_autoscaling_scales_up_under_load_and_back_down(serve):
    auto = {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 1, "upscale_delay_s": 0.5,
            "downscale_delay_s": 1.0, "metrics_interval_s": 0.5, "look_back_period_s": 1.0}

    @serve.deployment(max_ongoing_requests=4, autoscaling_config=auto, **NO_CPU)
    class Slow:
        async def __call__(self):
            import asyncio

            await asyncio.sleep(0.3)
            return os.getpid()

    handle = serve.run(Slow.bind(), name="auto", route_prefix=None)
    seen, stop = [], threading.Event()

    def watch():  # every status the deployment shows, as fast as serve.status() answers
        while not stop.is_set():
            d = serve.status().applications["auto"].deployments["Slow"]
            seen.append((d.status, d.status_trigger, d.replica_states.get("RUNNING", 0), sum(d.replica_states.values())))

    def load():  # about 6 requests in flight until the replicas are up
        while not stop.is_set() and max((s[2] for s in seen), default=0) < 3:
            for response in [handle.remote() for _ in range(6)]:
                response.result(timeout_s=30)

    threads = [threading.Thread(target=watch), threading.Thread(target=load)]
    for t in threads:
        t.start()
    try:
        wait_for_condition(lambda: any(s[2] == 3 for s in seen), timeout=60)  # up to max_replicas
        threads[1].join(60)  # the load ends: back down to min_replicas
        wait_for_condition(lambda: seen and seen[-1][2:] == (1, 1) and seen[-1][0] == "HEALTHY", timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    statuses = [s[0] for s in seen]
    assert "UPSCALING" in statuses and "DOWNSCALING" in statuses  # serve.status() shows each move
    assert seen[-1][1] == "DOWNSCALE_COMPLETED"
    serve.delete("auto")


def test_a_failing_check_health_replaces_the_replica(serve, tmp_path):
    sick = tmp_path / "sick"

    @serve.deployment(health_check_period_s=0.2, health_check_timeout_s=5, **NO_CPU)
    class Fragile:
        def __init__(self, flag):
            self.flag = flag

        def check_health(self):
            if os.path.exists(self.flag):
                raise RuntimeError("the model server is gone")

        def __call__(self):
            return os.getpid()

    handle = serve.run(Fragile.bind(str(sick)), name="fragile", route_prefix=None)
    first = handle.remote().result(timeout_s=30)
    deployment = lambda: serve.status().applications["fragile"].deployments["Fragile"]  # noqa: E731
    sick.touch()
    unhealthy = wait_for_condition(lambda: (d := deployment()).status == "UNHEALTHY" and d, timeout=30)
    assert "failed its health check" in unhealthy.message and "the model server is gone" in unhealthy.message
    assert serve.status().applications["fragile"].status == "UNHEALTHY"
    sick.unlink()
    wait_for_condition(lambda: deployment().status == "HEALTHY", timeout=60)
    assert handle.remote().result(timeout_s=30) != first  # a new replica (process) serves
    assert serve.status().applications["fragile"].status == "RUNNING"
    serve.delete("fragile")


def test_blocking_run_ends_cleanly_on_ctrl_c(serve, capsys):
    import _thread
    import sys

    @serve.deployment(**NO_CPU)
    def hello():
        return "hi"

    main = threading.get_ident()

    def interrupt_once_blocking():
        def blocking():
            frame = sys._current_frames().get(main)
            while frame is not None:
                if frame.f_code.co_name == "_block_until_interrupted":
                    return True
                frame = frame.f_back
            return False

        wait_for_condition(blocking, timeout=60)
        _thread.interrupt_main()  # what Ctrl-C (or a kernel interrupt) does

    interrupter = threading.Thread(target=interrupt_once_blocking)
    interrupter.start()
    handle = serve.run(hello.bind(), name="blocking", route_prefix=None, blocking=True)
    interrupter.join(10)
    assert handle.remote().result(timeout_s=30) == "hi"  # it keeps running
    assert "interrupted; application 'blocking' keeps running" in capsys.readouterr().out
    serve.delete("blocking")


def test_delete_removes_app_and_replicas(serve):
    import juno

    @serve.deployment(num_replicas=2, **NO_CPU)
    def gone():
        return 1

    serve.run(gone.bind(), name="doomed", route_prefix="/doomed")
    actors = [r["actor"] for r in replicas("doomed", "gone")]
    serve.delete("doomed")
    assert "doomed" not in serve.status().applications
    routes = juno.get(controller().get_routes.remote(), timeout=30)["routes"]
    assert "/doomed" not in routes
    for actor in actors:
        with pytest.raises(Exception):
            juno.get(actor.get_num_ongoing_requests.remote(), timeout=30)
    with pytest.raises(ValueError, match="no application named 'doomed'"):
        serve.get_app_handle("doomed")


def test_shutdown_then_run_starts_afresh(serve):
    import juno

    @serve.deployment(**NO_CPU)
    def again():
        return "again"

    serve.run(again.bind(), name="again", route_prefix=None)
    serve.shutdown()
    assert serve.status().applications == {}
    with pytest.raises(ValueError):
        juno.get_actor("SERVE_CONTROLLER", namespace="serve")
    serve.run(again.bind(), name="again", route_prefix=None)
    assert call_replica(replicas("again", "again")[0]) == "again"
