"""Actor failures on a real cluster: juno.kill, killed processes, restarts and
retried calls, failing constructors, exit_actor, and actors freed with their handles."""
from __future__ import annotations

import gc
import os
import signal
import threading

import psutil
import pytest

import juno
from juno.exceptions import ActorDiedError, RayActorError
from helpers import wait_for_condition

JUNO_SHARED_INIT = {"num_cpus": 4}


@juno.remote
class Worker:
    def __init__(self, marker_dir=None):
        self.marker_dir = marker_dir
        self.calls = 0
        self.release = threading.Event()

    def pid(self):
        return os.getpid()

    def incr(self):
        self.calls += 1
        return self.calls

    def reconstructed(self):
        return juno.get_runtime_context().was_current_actor_reconstructed

    def hang_first_life(self, tag):
        """Blocks forever in the first incarnation (after leaving a marker file);
        returns at once in a restarted one."""
        if juno.get_runtime_context().was_current_actor_reconstructed:
            return f"{tag} done after restart"
        open(os.path.join(self.marker_dir, tag), "w").close()
        threading.Event().wait()

    def block(self):
        self.release.wait(600)
        return "released"


@juno.remote
class Signal:
    """An async actor whose wait() returns once send() ran."""

    def __init__(self):
        import asyncio

        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def send(self):
        self.event.set()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _call_new_incarnation(actor, old_pid):
    """The actor's pid once a call reaches a process other than ``old_pid``."""
    try:
        pid = juno.get(actor.pid.remote(), timeout=30)
    except ActorDiedError:
        return None
    return pid if pid != old_pid else None


def _marker(path, tag):
    return lambda: os.path.exists(os.path.join(path, tag))


# ------------------------------------------------------------------ juno.kill

def test_kill_fails_running_and_queued_calls(juno_shared):
    a = Worker.options(max_restarts=2).remote()
    pid = juno.get(a.pid.remote())
    running = a.block.remote()
    queued = [a.incr.remote() for _ in range(3)]
    juno.kill(a)
    for ref in [running] + queued:
        with pytest.raises(ActorDiedError, match="killed") as info:
            juno.get(ref, timeout=30)
        assert isinstance(info.value, RayActorError)
    wait_for_condition(lambda: _gone(pid))
    # no_restart=True (the default) means dead for good, whatever max_restarts says.
    with pytest.raises(ActorDiedError, match="killed"):
        juno.get(a.incr.remote(), timeout=30)


def test_kill_with_no_restart_false_restarts(juno_shared):
    a = Worker.options(max_restarts=1).remote()
    pid = juno.get(a.pid.remote())
    assert juno.get(a.incr.remote()) == 1
    assert juno.get(a.reconstructed.remote()) is False
    juno.kill(a, no_restart=False)
    # A call sent before the caller hears of the restart may fail (at-most-once,
    # max_task_retries=0); once restarted, calls reach the new process.
    new_pid = wait_for_condition(lambda: _call_new_incarnation(a, pid), timeout=30)
    assert new_pid != pid and _gone(pid)
    assert juno.get(a.reconstructed.remote()) is True
    # A restarted actor runs its constructor again: state starts over.
    assert juno.get(a.incr.remote()) == 1
    # The one allowed restart is used up: the next kill is final.
    juno.kill(a, no_restart=False)
    with pytest.raises(ActorDiedError):
        juno.get(a.incr.remote(), timeout=30)


def test_kill_rejects_non_actors(juno_shared):
    with pytest.raises(ValueError):
        juno.kill(juno.put(1))


# ------------------------------------------------------------------ killed processes

def test_sigkilled_actor_with_no_restarts_dies_with_reason(juno_shared):
    a = Worker.remote()
    pid = juno.get(a.pid.remote())
    running = a.block.remote()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError, match="SIGKILL"):
        juno.get(running, timeout=30)
    with pytest.raises(ActorDiedError, match="SIGKILL"):
        juno.get(a.incr.remote(), timeout=30)


def test_sigkilled_actor_restarts_and_fails_in_flight_calls_without_retries(juno_shared, tmp_path):
    a = Worker.options(max_restarts=1).remote(str(tmp_path))
    pid = juno.get(a.pid.remote())
    assert juno.get(a.incr.remote()) == 1
    in_flight = a.hang_first_life.remote("x")
    wait_for_condition(_marker(tmp_path, "x"))
    os.kill(pid, signal.SIGKILL)
    # max_task_retries=0: the call that was running when the process died fails...
    with pytest.raises(ActorDiedError):
        juno.get(in_flight, timeout=30)
    # ...but the actor itself comes back (fresh state) and later calls run.
    assert juno.get(a.incr.remote(), timeout=30) == 1
    assert juno.get(a.reconstructed.remote()) is True
    assert juno.get(a.pid.remote()) != pid


def test_sigkilled_actor_replays_in_flight_calls_with_task_retries(juno_shared, tmp_path):
    a = Worker.options(max_restarts=1, max_task_retries=1).remote(str(tmp_path))
    pid = juno.get(a.pid.remote())
    in_flight = a.hang_first_life.remote("y")
    queued = a.incr.remote()
    wait_for_condition(_marker(tmp_path, "y"))
    os.kill(pid, signal.SIGKILL)
    assert juno.get(in_flight, timeout=30) == "y done after restart"
    assert juno.get(queued, timeout=30) == 1
    # Out of restarts: the next death is final.
    os.kill(juno.get(a.pid.remote()), signal.SIGKILL)
    with pytest.raises(ActorDiedError, match="max_restarts"):
        juno.get(a.incr.remote(), timeout=30)


def test_method_level_max_task_retries_overrides_actor(juno_shared, tmp_path):
    a = Worker.options(max_restarts=-1, max_task_retries=0).remote(str(tmp_path))
    pid = juno.get(a.pid.remote())
    retried = a.hang_first_life.options(max_task_retries=1).remote("z")
    wait_for_condition(_marker(tmp_path, "z"))
    os.kill(pid, signal.SIGKILL)
    assert juno.get(retried, timeout=30) == "z done after restart"


def test_restarts_repeat_up_to_max_restarts(juno_shared):
    a = Worker.options(max_restarts=2).remote()
    pids = [juno.get(a.pid.remote())]
    for _ in range(2):
        os.kill(pids[-1], signal.SIGKILL)
        pids.append(wait_for_condition(lambda: _call_new_incarnation(a, pids[-1]), timeout=30))
    assert len(set(pids)) == 3
    os.kill(pids[-1], signal.SIGKILL)
    wait_for_condition(lambda: _gone(pids[-1]))
    with pytest.raises(ActorDiedError, match="max_restarts=2"):
        juno.get(a.pid.remote(), timeout=30)


# ------------------------------------------------------------------ constructors and exit_actor

def test_failing_constructor(juno_shared):
    @juno.remote(max_restarts=3)
    class Broken:
        def __init__(self, why):
            raise ValueError(f"cannot build: {why}")

        def ping(self):
            return "pong"

    b = Broken.remote("no disk")
    with pytest.raises(ActorDiedError, match="cannot build: no disk") as info:
        juno.get(b.ping.remote(), timeout=30)
    assert "ValueError" in str(info.value)
    # A constructor failure is final (no restarts); every later call fails too.
    with pytest.raises(ActorDiedError, match="cannot build"):
        juno.get(b.ping.remote(), timeout=30)


def test_exit_actor(juno_shared):
    @juno.remote(max_restarts=2)
    class Quitter:
        def pid(self):
            return os.getpid()

        def quit(self):
            juno.actor.exit_actor()
            return "never returned"

        def ping(self):
            return "pong"

    q = Quitter.remote()
    pid = juno.get(q.pid.remote())
    with pytest.raises(RayActorError):
        juno.get(q.quit.remote(), timeout=30)
    wait_for_condition(lambda: _gone(pid))
    # Exiting on purpose is final: no restart despite max_restarts.
    with pytest.raises(ActorDiedError, match="exit_actor"):
        juno.get(q.ping.remote(), timeout=30)


def test_exit_actor_in_constructor(juno_shared):
    @juno.remote(max_restarts=2)
    class NeverMind:
        def __init__(self):
            juno.exit_actor()

        def ping(self):
            return "pong"

    n = NeverMind.remote()
    with pytest.raises(ActorDiedError, match="exit_actor"):
        juno.get(n.ping.remote(), timeout=30)


def test_exit_actor_from_threaded_actor(juno_shared):
    @juno.remote(max_concurrency=2)
    class Quitter:
        def pid(self):
            return os.getpid()

        def quit(self):
            juno.exit_actor()

    q = Quitter.remote()
    pid = juno.get(q.pid.remote())
    with pytest.raises(RayActorError):
        juno.get(q.quit.remote(), timeout=30)
    wait_for_condition(lambda: _gone(pid))
    with pytest.raises(ActorDiedError):
        juno.get(q.pid.remote(), timeout=30)


@juno.remote(max_restarts=2)
class Stoppable:
    """Counts its calls and says goodbye from an exit handler; sync, threaded or async."""

    def __init__(self, path):
        import atexit

        self.calls = 0
        self.lock = threading.Lock()  # threaded: calls run side by side
        atexit.register(lambda: open(path, "w").write(str(self.calls)))

    def pid(self):
        return os.getpid()

    def work(self):
        import time

        time.sleep(0.02)
        with self.lock:
            self.calls += 1
            return self.calls


@juno.remote(max_restarts=2)
class AsyncStoppable:
    def __init__(self, path):
        import atexit

        self.calls = 0
        atexit.register(lambda: open(path, "w").write(str(self.calls)))

    async def pid(self):
        return os.getpid()

    async def work(self):
        import asyncio

        await asyncio.sleep(0.02)
        self.calls += 1
        return self.calls


@pytest.mark.parametrize("kind", ["sync", "threaded", "async"])
def test_ray_terminate_runs_earlier_calls_then_exits_gracefully(juno_shared, tmp_path, kind):
    marker = str(tmp_path / "bye")
    if kind == "async":
        a = AsyncStoppable.remote(marker)
    else:
        a = Stoppable.options(max_concurrency=4 if kind == "threaded" else 1).remote(marker)
    pid = juno.get(a.pid.remote())
    before = [a.work.remote() for _ in range(5)]
    stop = a.__ray_terminate__.remote()
    after = a.work.remote()
    assert sorted(juno.get(before, timeout=30)) == [1, 2, 3, 4, 5]  # the calls made before it ran
    with pytest.raises(ActorDiedError, match="__ray_terminate__"):
        juno.get(stop, timeout=30)
    with pytest.raises(ActorDiedError):
        juno.get(after, timeout=30)
    wait_for_condition(lambda: _gone(pid), timeout=30)
    wait_for_condition(lambda: os.path.exists(marker), timeout=10)  # exit handlers ran, after the calls
    assert open(marker).read() == "5"
    # Stopped on purpose: no restart despite max_restarts.
    with pytest.raises(ActorDiedError, match="__ray_terminate__"):
        juno.get(a.pid.remote(), timeout=30)


# ------------------------------------------------------------------ handles going away

def test_actor_is_killed_when_its_handles_are_gone(juno_shared):
    a = Worker.remote()
    pid = juno.get(a.pid.remote())
    b = a  # a second local reference keeps it alive
    del a
    gc.collect()
    assert juno.get(b.incr.remote()) == 1
    del b
    gc.collect()
    wait_for_condition(lambda: _gone(pid))


def test_pending_calls_finish_before_an_unreferenced_actor_stops(juno_shared):
    a = Worker.remote()
    pid = juno.get(a.pid.remote())
    refs = [a.incr.remote() for _ in range(20)]
    del a
    gc.collect()
    assert juno.get(refs, timeout=30) == list(range(1, 21))
    wait_for_condition(lambda: _gone(pid))


def test_detached_actor_survives_its_handle(juno_shared):
    name = "detached-survivor"
    a = Worker.options(name=name, lifetime="detached").remote()
    pid = juno.get(a.pid.remote())
    assert juno.get(a.incr.remote()) == 1
    del a
    gc.collect()
    # Still there, same process, same state.
    b = juno.get_actor(name)
    assert juno.get(b.pid.remote()) == pid
    assert juno.get(b.incr.remote()) == 2
    juno.kill(b)
    wait_for_condition(lambda: _gone(pid))

    def name_released():
        try:
            juno.get_actor(name)
        except ValueError:
            return True
        return False

    wait_for_condition(name_released)


@juno.remote(num_cpus=0)
def _pid_through_a_task(actor):
    return juno.get(actor.pid.remote())


def test_a_loop_that_creates_and_drops_actors_frees_their_cpus_and_processes(juno_shared):
    total = juno.cluster_resources()["CPU"]
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == total)
    pids = []
    for _ in range(20):  # 20 one-CPU actors on 4 CPUs: each must go before the fifth can start
        actor = Worker.options(num_cpus=1).remote()
        pids.append(juno.get(_pid_through_a_task.remote(actor), timeout=60))  # lent to a task too
    del actor
    wait_for_condition(lambda: all(_gone(pid) for pid in pids), timeout=60)
    wait_for_condition(lambda: juno.available_resources().get("CPU", 0) == total, timeout=30)


@juno.remote(max_restarts=2)
class Farewell:
    """Writes ``path`` from an exit handler, so a test sees the actor exited gracefully."""

    def __init__(self, path):
        import atexit

        atexit.register(lambda: open(path, "w").write("bye"))

    def pid(self):
        return os.getpid()

    def slow(self, i):
        import time

        time.sleep(0.05)
        return i


def test_an_actor_out_of_scope_exits_gracefully_and_is_dead_for_good(juno_shared, tmp_path):
    from juno.util.state import get_actor as actor_state

    marker = str(tmp_path / "farewell")
    a = Farewell.remote(marker)
    pid = juno.get(a.pid.remote())
    actor_hex = a._actor_id.hex()
    refs = [a.slow.remote(i) for i in range(5)]
    del a
    gc.collect()
    # Calls made before the last handle went still return; then exit handlers run, no restart.
    assert juno.get(refs, timeout=30) == list(range(5))
    wait_for_condition(lambda: _gone(pid), timeout=30)
    wait_for_condition(lambda: os.path.exists(marker), timeout=10)
    wait_for_condition(lambda: actor_state(actor_hex).state == "DEAD", timeout=10)
    assert "out of scope" in actor_state(actor_hex).death_cause["error_message"]


def test_an_out_of_scope_actor_that_does_not_exit_is_killed_after_the_grace_period(shutdown_only, tmp_path):
    from juno.util.state import get_actor as actor_state

    juno.init(num_cpus=2, _system_config={"actor_graceful_exit_timeout_s": 1.0})
    a = Worker.options(name="stuck").remote(str(tmp_path))
    pid = juno.get(a.pid.remote())
    actor_hex = a._actor_id.hex()

    @juno.remote(num_cpus=0)
    def hang_it_by_name():
        # A handle found by name in another process does not keep the actor alive.
        juno.get_actor("stuck").hang_first_life.remote("stuck")

    juno.get(hang_it_by_name.remote())
    wait_for_condition(_marker(str(tmp_path), "stuck"), timeout=30)  # its one thread is busy for good
    del a
    gc.collect()
    wait_for_condition(lambda: _gone(pid), timeout=30)
    wait_for_condition(lambda: actor_state(actor_hex).state == "DEAD", timeout=10)
    assert "out of scope" in actor_state(actor_hex).death_cause["error_message"]


# ------------------------------------------------------------------ more failure paths

def test_kill_while_constructor_runs(juno_shared, tmp_path):
    @juno.remote
    class SlowStart:
        def __init__(self, marker):
            open(marker, "w").close()
            threading.Event().wait()

        def ping(self):
            return "pong"

    marker = str(tmp_path / "constructing")
    s = SlowStart.remote(marker)
    queued = s.ping.remote()
    wait_for_condition(lambda: os.path.exists(marker))
    juno.kill(s)
    with pytest.raises(ActorDiedError, match="killed"):
        juno.get(queued, timeout=30)


def test_kill_actor_that_cannot_be_placed(juno_shared):
    s = Worker.options(num_cpus=1000).remote()
    queued = s.incr.remote()
    assert juno.wait([queued], timeout=0.2)[0] == []
    juno.kill(s)
    with pytest.raises(ActorDiedError, match="killed"):
        juno.get(queued, timeout=30)


def test_restart_reruns_constructor_with_same_arguments(juno_shared):
    @juno.remote(max_restarts=1)
    class Configured:
        def __init__(self, config, *, scale):
            self.value = config["base"] * scale
            # The constructor can tell a restart (to restore from a checkpoint, say).
            self.restored = juno.get_runtime_context().was_current_actor_reconstructed

        def value_and_pid(self):
            return self.value, os.getpid()

        def was_restored(self):
            return self.restored

    a = Configured.remote(juno.put({"base": 7}), scale=juno.put(3))
    value, pid = juno.get(a.value_and_pid.remote())
    assert value == 21
    assert juno.get(a.was_restored.remote()) is False
    os.kill(pid, signal.SIGKILL)

    def restarted():
        try:
            return juno.get(a.value_and_pid.remote(), timeout=30)
        except ActorDiedError:
            return None

    value, new_pid = wait_for_condition(restarted, timeout=30)
    assert (value, new_pid != pid) == (21, True)
    assert juno.get(a.was_restored.remote()) is True


def test_generator_of_killed_actor_ends_with_actor_died(juno_shared):
    @juno.remote
    class Gen:
        def pid(self):
            return os.getpid()

        def stream(self):
            yield "one"
            threading.Event().wait()
            yield "never"

    g = Gen.remote()
    pid = juno.get(g.pid.remote())
    gen = g.stream.remote()
    assert juno.get(next(gen), timeout=30) == "one"
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        juno.get(next(gen), timeout=30)


def test_retry_exceptions_on_actor_methods(juno_shared):
    @juno.remote(max_task_retries=2)
    class Flaky:
        def __init__(self):
            self.attempts = 0

        @juno.method(retry_exceptions=[ConnectionError])
        def flaky(self, fail_times):
            self.attempts += 1
            if self.attempts <= fail_times:
                raise ConnectionError(f"attempt {self.attempts}")
            return self.attempts

        @juno.method(retry_exceptions=[ConnectionError])
        def wrong_kind(self):
            self.attempts += 1
            raise KeyError("not retried")

        def reset(self):
            self.attempts = 0

    f = Flaky.remote()
    # Two failures, two retries: the third attempt succeeds.
    assert juno.get(f.flaky.remote(2)) == 3
    juno.get(f.reset.remote())
    # Three failures exhaust max_task_retries=2.
    with pytest.raises(ConnectionError, match="attempt 3"):
        juno.get(f.flaky.remote(3))
    juno.get(f.reset.remote())
    # Exceptions not listed are not retried.
    with pytest.raises(KeyError):
        juno.get(f.wrong_kind.remote())
    juno.get(f.reset.remote())
    # Without retry_exceptions an application error is never retried.
    with pytest.raises(ConnectionError, match="attempt 1"):
        juno.get(f.flaky.options(retry_exceptions=False).remote(1))


def test_cancel_queued_call_on_sync_actor(juno_shared):
    @juno.remote
    class Busy:
        def __init__(self):
            self.ran = []

        def hold(self, signal):
            juno.get(signal.wait.remote())
            self.ran.append("hold")

        def work(self, tag):
            self.ran.append(tag)
            return tag

        def log(self):
            return self.ran

    signal = Signal.remote()
    b = Busy.remote()
    holding = b.hold.remote(signal)
    doomed = b.work.remote("doomed")
    juno.cancel(doomed)
    with pytest.raises(juno.exceptions.TaskCancelledError):
        juno.get(doomed, timeout=30)
    signal.send.remote()
    juno.get(holding, timeout=30)
    assert juno.get(b.work.remote("after")) == "after"
    assert juno.get(b.log.remote()) == ["hold", "after"]
