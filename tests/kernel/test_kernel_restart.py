"""A notebook kernel's local cluster outlives a kernel restart (runtime/cluster/kernel_cluster.py):
the restarted kernel's juno.init() attaches to it; juno.shutdown() stops it; a kernel gone
for good leaves a cluster that stops by itself after kernel_cluster_linger_s."""
from __future__ import annotations

from helpers import wait_for_condition
from kernel_harness import KernelHarness

START = """
import os, juno
ctx = juno.init(num_cpus=1, namespace="nb")

@juno.remote(num_cpus=0)
class Keeper:
    def __init__(self):
        self.items = []
    def add(self, x):
        self.items.append(x)
        return len(self.items)

keeper = Keeper.options(name="keeper", lifetime="detached").remote()
print("added", juno.get(keeper.add.remote("before restart")))
print("address", ctx.address)
print("gcs_pid", juno.owner.core_worker.global_worker().gcs_call("cluster_info")["pid"])
"""


def _value(text: str, key: str) -> str:
    return next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(key + " "))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_restarted_kernel_attaches_to_the_cluster_it_left(own_kernel):
    first = own_kernel.run_ok(START).stdout
    address, gcs = _value(first, "address"), int(_value(first, "gcs_pid"))
    own_kernel.restart()
    again = own_kernel.run_ok("""
import juno
ctx = juno.init(namespace="nb")  # detached actors live in a named namespace
keeper = juno.get_actor("keeper")
print("address", ctx.address)
print("added", juno.get(keeper.add.remote("after restart")))
""").stdout
    assert _value(again, "address") == address  # the same cluster, not a new one
    assert _value(again, "added") == "2"  # the detached actor kept its state
    assert _alive(gcs)
    own_kernel.run_ok("juno.shutdown()")  # stops the cluster it attached to
    wait_for_condition(lambda: not _alive(gcs), timeout=15)


def test_a_cluster_whose_dashboard_exited_is_still_attached_after_a_restart(own_kernel):
    """The dashboard gives up on a GCS that stays silent (a loaded machine); the cluster itself,
    with its detached actor, must still be the one the restarted kernel attaches to."""
    import psutil

    first = own_kernel.run_ok(START + """
import psutil
from juno.owner.core_worker import global_worker
session = global_worker().node["session_dir"]
dash = [p.pid for p in psutil.process_iter(["cmdline"])
        if "juno.dashboard" in (p.info["cmdline"] or []) and session in (p.info["cmdline"] or [])]
print("dashboard", dash[0])
""").stdout
    address, dashboard = _value(first, "address"), int(_value(first, "dashboard"))
    psutil.Process(dashboard).kill()
    wait_for_condition(lambda: not _alive(dashboard), timeout=10)
    own_kernel.restart()
    again = own_kernel.run_ok("""
import juno
ctx = juno.init(namespace="nb")
print("address", ctx.address)
print("added", juno.get(juno.get_actor("keeper").add.remote("after restart")))
""").stdout
    assert _value(again, "address") == address
    assert _value(again, "added") == "2"
    own_kernel.run_ok("juno.shutdown()")


def test_a_kernel_gone_for_good_leaves_a_cluster_that_stops_by_itself(_juno_leak_guard):
    kernel = KernelHarness(env={"JUNO_KERNEL_CLUSTER_LINGER_S": "1"})
    try:
        gcs = int(_value(kernel.run_ok(START).stdout, "gcs_pid"))
    finally:
        kernel._stop.set()
        kernel.kc.stop_channels()
        kernel._kill()  # no juno.shutdown() in the kernel: it exits as a closed notebook's does
    assert _alive(gcs)  # the kernel is gone; its cluster waits to be claimed
    wait_for_condition(lambda: not _alive(gcs), timeout=20)  # 1 s linger, then it stops by itself


def test_a_killed_kernel_leaves_nothing_once_its_cluster_stops(_juno_leak_guard):
    """SIGKILL of the kernel: after the linger time, its cluster (GCS, node manager, workers,
    dashboard), its node's store in /dev/shm and its session folder are all gone."""
    import json
    import os
    import signal

    import psutil

    kernel = KernelHarness(env={"JUNO_KERNEL_CLUSTER_LINGER_S": "1"})
    try:
        out = kernel.run_ok(START + """
import json, psutil
from juno.owner.core_worker import global_worker
node = global_worker().node
started = [p.pid for p in psutil.process_iter(["cmdline"]) if node["session_dir"] in (p.info["cmdline"] or [])]
children = [c.pid for c in psutil.Process(node["pid"]).children(recursive=True)]
print("cluster", json.dumps({"kernel": os.getpid(), "pids": started + children, "paths": [node["store_dir"],
                                                                                          node["session_dir"]]}))
""").stdout
        cluster = json.loads(_value(out, "cluster"))
        os.kill(cluster["kernel"], signal.SIGKILL)
        wait_for_condition(lambda: not psutil.pid_exists(cluster["kernel"]) or not _alive(cluster["kernel"]),
                           timeout=10)
    finally:
        kernel._stop.set()
        kernel.kc.stop_channels()
        kernel._kill()
    assert len(cluster["pids"]) >= 3 and all(os.path.exists(p) for p in cluster["paths"])

    def left():
        return [pid for pid in cluster["pids"] if _alive(pid)] + [p for p in cluster["paths"] if os.path.exists(p)]

    wait_for_condition(lambda: not left(), timeout=30)  # 1 s linger, then it stops by itself
