"""Workers forked by the node's zygote (runtime/worker/zygote.py) behave as spawned ones do."""
from __future__ import annotations

import os
import signal
import sys
import uuid

import cloudpickle
import psutil
import pytest
from helpers import wait_for_condition

import juno

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2, "num_gpus": 2}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux only")


def forked() -> bool:
    """A forked worker keeps the zygote's command line."""
    with open("/proc/self/cmdline", "rb") as f:
        return b"--zygote" in f.read()


@juno.remote(num_cpus=0)
class Probe:
    def info(self, *names):
        return {"pid": os.getpid(), "ppid": os.getppid(), "forked": forked(),
                "env": {n: os.environ.get(n) for n in names}}

    def say(self, text):
        print(text)
        print(f"err {text}", file=sys.stderr)
        return True


def node_manager_pid() -> int:
    return juno.get(Probe.remote().info.remote())["ppid"]


def zygote_pids() -> list[int]:
    """The node manager's live zygote (a list: none while it is replaced)."""
    out = []
    for proc in psutil.Process(node_manager_pid()).children():
        try:
            # forked workers share its command line, but run threads (zmq's); a zygote never does
            if proc.status() != psutil.STATUS_ZOMBIE and "--zygote" in proc.cmdline() and proc.num_threads() == 1:
                out.append(proc.pid)
        except psutil.Error:
            continue
    return out


def forked_probe(**options):
    """A Probe actor in a forked worker (the zygote may still be importing right after init)."""
    def made() -> bool:
        made.actor = Probe.options(**options).remote()
        made.info = juno.get(made.actor.info.remote(*options.get("runtime_env", {}).get("env_vars", {})))
        if not made.info["forked"]:
            juno.kill(made.actor)
        return made.info["forked"]
    wait_for_condition(made, timeout=30, retry_interval_ms=200)
    return made.actor, made.info


def test_forked_worker_gets_its_env_and_is_the_node_managers_child(cluster):
    actor, info = forked_probe(runtime_env={"env_vars": {"JUNO_TEST_FORKED": "yes", "OMP_NUM_THREADS": "3"}})
    assert info["env"] == {"JUNO_TEST_FORKED": "yes", "OMP_NUM_THREADS": "3"}
    assert psutil.Process(info["pid"]).ppid() == info["ppid"]  # re-parented: the node manager waits for it
    assert info["ppid"] not in zygote_pids()
    juno.kill(actor)


def test_forked_worker_gets_its_gpu_ids(cluster):
    @juno.remote(num_gpus=1, num_cpus=0)
    class GpuProbe:
        def ids(self):
            return forked(), os.environ.get("CUDA_VISIBLE_DEVICES"), juno.get_gpu_ids()

    def forked_gpu_actor() -> bool:
        actor = GpuProbe.remote()
        forked_gpu_actor.out = juno.get(actor.ids.remote())
        juno.kill(actor)
        return forked_gpu_actor.out[0]
    wait_for_condition(forked_gpu_actor, timeout=30, retry_interval_ms=200)
    _, visible, ids = forked_gpu_actor.out
    assert visible in ("0", "1") and [str(i) for i in ids] == [visible]


def test_forked_worker_prints_reach_the_driver(cluster, capfd):
    actor, _ = forked_probe()
    marker = f"forked-says-{uuid.uuid4().hex}"
    assert juno.get(actor.say.remote(marker))
    seen = {"out": "", "err": ""}

    def arrived() -> bool:
        captured = capfd.readouterr()
        seen["out"] += captured.out
        seen["err"] += captured.err
        return marker in seen["out"] and f"err {marker}" in seen["err"]
    wait_for_condition(arrived, timeout=15)
    juno.kill(actor)


def test_killed_forked_worker_is_detected_and_replaced(cluster):
    actor, info = forked_probe(max_restarts=1)
    os.kill(info["pid"], signal.SIGKILL)

    def restarted() -> bool:
        try:
            return juno.get(actor.info.remote(), timeout=10)["pid"] != info["pid"]
        except juno.exceptions.RayActorError:
            return False
    wait_for_condition(restarted, timeout=30)
    assert not psutil.pid_exists(info["pid"]) or psutil.Process(info["pid"]).status() != psutil.STATUS_ZOMBIE
    juno.kill(actor)


def test_a_dead_zygote_falls_back_to_spawning_then_is_replaced(cluster):
    forked_probe()  # the zygote is up
    (zygote,) = zygote_pids()
    os.kill(zygote, signal.SIGKILL)
    wait_for_condition(lambda: zygote not in zygote_pids(), timeout=10)
    actors = [Probe.remote() for _ in range(3)]  # more than the idle pool: workers must start
    infos = juno.get([a.info.remote() for a in actors], timeout=60)
    assert all(info["pid"] != zygote for info in infos)
    for actor in actors:
        juno.kill(actor)
    forked_probe()  # forked again, by a new zygote
    assert zygote_pids() not in ([], [zygote])


def test_the_switch_turns_the_fork_server_off(shutdown_only):
    juno.init(num_cpus=1, _system_config={"worker_fork_server": False})
    infos = []
    for _ in range(3):
        actor = Probe.remote()
        infos.append(juno.get(actor.info.remote()))
        juno.kill(actor)
    assert not any(info["forked"] for info in infos)
    assert zygote_pids() == []
