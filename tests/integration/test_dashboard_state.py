"""The dashboard's state service against real clusters: every payload of the state API
contract, its keys and values, the 400/404/502 paths, and the event hub on a live cluster.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import cloudpickle
import numpy as np
import pytest
from helpers import multi_node_cluster, wait_for_condition, wait_for_file

import juno
from juno.comm import auth
from juno.owner.core_worker import global_worker
from juno.dashboard.event_hub import EventHub
from juno.dashboard.state_service import BadRequest, NotFound, StateService, Unreachable
from juno.util.placement_group import placement_group, remove_placement_group

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}

SUMMARY_KEYS = {"address", "time", "version", "nodes", "resources", "object_store", "tasks", "actors",
                "placement_groups", "jobs"}
NODE_KEYS = {"node_id", "alive", "state", "death_reason", "is_head", "ip", "hostname", "address", "pid",
             "start_time", "end_time", "resources", "gpu_ids", "object_store"}
STORE_KEYS = {"used", "total", "spilled", "num_objects"}
TASK_KEYS = {"task_id", "name", "func_or_class_name", "state", "type", "job_id", "actor_id", "node_id", "worker_id",
             "worker_pid", "attempt_number", "creation_time", "start_time", "end_time", "error_type",
             "error_message"}
ACTOR_KEYS = {"actor_id", "class_name", "name", "namespace", "state", "num_restarts", "max_restarts", "node_id",
              "pid", "job_id", "is_detached", "death_cause", "required_resources"}
WORKER_KEYS = {"worker_id", "pid", "node_id", "is_alive", "worker_type", "actor_id", "job_id", "start_time",
               "end_time"}
MB = 1 << 20


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def my_address() -> str:
    return global_worker().gcs_address.replace("tcp://", "")


@pytest.fixture
def service(cluster):
    svc = StateService(my_address(), timeout=10)
    yield svc
    svc.close()


def by_function(tasks: dict, name: str) -> dict:
    return next((f for f in tasks["by_function"] if f["name"] == name), {"by_state": {}, "total": 0})


# ============================================================================ summary, nodes, resources
def test_summary_and_nodes_show_a_cpu_in_use_while_a_task_holds_it(service, gate):
    @juno.remote(num_cpus=1)
    def hold(path):
        wait_for_file(path)
        return 1

    ref = hold.options(name=unique("hold")).remote(str(gate))
    summary = wait_for_condition(lambda: (s := service.summary())["resources"]["CPU"]["used"] >= 1 and s,
                                 timeout=15)
    assert set(summary) == SUMMARY_KEYS
    assert summary["address"] == my_address() and summary["version"] == juno.__version__
    assert abs(summary["time"] - time.time()) < 60
    assert summary["nodes"] == {"alive": 1, "dead": 0}
    assert summary["resources"]["CPU"]["total"] == 2
    assert set(summary["object_store"]) == STORE_KEYS and summary["object_store"]["total"] > 0
    assert summary["jobs"]["running"] >= 1
    (node,) = service.nodes()["nodes"]
    assert set(node) == NODE_KEYS
    assert node["alive"] is True and node["state"] == "ALIVE" and node["death_reason"] is None
    assert node["is_head"] is True and node["gpu_ids"] == [] and node["pid"] > 0
    assert node["resources"]["CPU"]["used"] >= 1 and node["resources"]["CPU"]["total"] == 2
    assert "object_store_memory" not in node["resources"]
    gate.touch()
    assert juno.get(ref) == 1
    wait_for_condition(lambda: service.summary()["resources"]["CPU"]["used"] == 0, timeout=15)


def test_object_store_usage_of_every_node_reaches_the_node_table(_juno_leak_guard):
    """Both nodes' store usage comes from their heartbeats (no ipc socket needed)."""
    with multi_node_cluster(_juno_leak_guard, {"num_cpus": 1}, {"num_cpus": 1, "resources": {"second": 1}}) \
            as (cluster, (second,)):
        @juno.remote(resources={"second": 1}, num_cpus=0)
        class Holder:
            def __init__(self):
                self.ref = juno.put(np.ones(24 * MB, dtype=np.uint8))

            def node(self):
                return juno.get_runtime_context().get_node_id()

        svc = StateService(cluster.address, timeout=10)
        try:
            before = {n["node_id"]: n["object_store"]["used"] for n in svc.nodes()["nodes"]}
            head_ref = juno.put(np.ones(16 * MB, dtype=np.uint8))
            holder = Holder.remote()
            second_id = juno.get(holder.node.remote())
            head_id = global_worker().node_id
            assert second_id != head_id and second_id == second.info["node_id"]

            def both_used():
                nodes = {n["node_id"]: n for n in svc.nodes()["nodes"]}
                return (nodes[head_id]["object_store"]["used"] >= before[head_id] + 16 * MB and
                        nodes[second_id]["object_store"]["used"] >= before[second_id] + 24 * MB and nodes)

            nodes = wait_for_condition(both_used, timeout=15)
            for n in nodes.values():
                assert set(n["object_store"]) == STORE_KEYS
                assert n["object_store"]["num_objects"] >= 1 and n["object_store"]["total"] > 24 * MB
            assert [n["node_id"] for n in svc.nodes()["nodes"]][0] == head_id, "the head comes first"
            summary = svc.summary()
            assert summary["nodes"] == {"alive": 2, "dead": 0}
            assert summary["object_store"]["used"] >= 40 * MB
            assert summary["object_store"]["total"] == sum(n["object_store"]["total"] for n in nodes.values())
            del head_ref
            wait_for_condition(lambda: {n["node_id"]: n for n in svc.nodes()["nodes"]}[head_id]["object_store"]
                               ["used"] < 16 * MB, timeout=15)
            juno.kill(holder)
        finally:
            svc.close()


# ============================================================================ tasks
def test_tasks_by_state_and_by_function_while_running_and_after_failing(service, gate):
    ok_name, bad_name, slow_name = unique("ok"), unique("bad"), unique("slow")

    @juno.remote
    def ok(x):
        return x

    @juno.remote(max_retries=0)
    def bad():
        raise ValueError("this batch is broken")

    @juno.remote
    def slow(path):
        wait_for_file(path)

    assert juno.get([ok.options(name=ok_name).remote(i) for i in range(3)]) == [0, 1, 2]
    failures = [bad.options(name=bad_name).remote() for _ in range(2)]
    for ref in failures:
        with pytest.raises(ValueError):
            juno.get(ref)
    running = slow.options(name=slow_name).remote(str(gate))

    def settled():
        tasks = service.tasks(limit=100)
        done = (by_function(tasks, ok_name)["by_state"] == {"FINISHED": 3} and
                by_function(tasks, bad_name)["by_state"] == {"FAILED": 2} and
                by_function(tasks, slow_name)["by_state"] == {"RUNNING": 1})
        slow_rows = [t for t in tasks["running"] if t["name"] == slow_name]
        return done and slow_rows and slow_rows[0]["worker_pid"] and tasks

    tasks = wait_for_condition(settled, timeout=20)
    assert set(tasks) == {"by_state", "by_function", "finished_total", "failed_total", "running", "failed",
                          "num_dropped"}
    assert tasks["num_dropped"] == 0
    assert by_function(tasks, ok_name)["total"] == 3
    assert tasks["finished_total"] >= 3 and tasks["failed_total"] >= 2
    assert tasks["by_state"]["RUNNING"] >= 1 and tasks["by_state"]["FAILED"] >= 2
    (slow_row,) = [t for t in tasks["running"] if t["name"] == slow_name]
    assert set(slow_row) == TASK_KEYS
    assert slow_row["state"] == "RUNNING" and slow_row["type"] == "NORMAL_TASK" and slow_row["end_time"] is None
    assert slow_row["node_id"] == global_worker().node_id and slow_row["start_time"] >= slow_row["creation_time"]
    failed = [t for t in tasks["failed"] if t["name"] == bad_name]
    assert len(failed) == 2
    for row in failed:
        assert set(row) == TASK_KEYS
        assert row["error_type"] == "TASK_EXECUTION_EXCEPTION" and "this batch is broken" in row["error_message"]
        assert row["end_time"] >= row["creation_time"] and row["job_id"] == tasks["failed"][0]["job_id"]
        assert row["node_id"] == global_worker().node_id and row["worker_pid"]
    # newest first (the latest to fail, the latest to start), at most `limit`
    ends = [t["end_time"] for t in tasks["failed"]]
    assert ends == sorted(ends, reverse=True)
    starts = [t["start_time"] for t in tasks["running"]]
    assert starts == sorted(starts, reverse=True)
    assert len(service.tasks(limit=1)["failed"]) == 1
    summary = service.summary()["tasks"]
    assert summary["failed_total"] >= 2 and summary["by_state"]["FAILED"] >= 2
    gate.touch()
    juno.get(running)
    wait_for_condition(lambda: by_function(service.tasks(), slow_name)["by_state"] == {"FINISHED": 1}, timeout=15)
    with pytest.raises(BadRequest, match="limit"):
        service.tasks(limit=0)
    with pytest.raises(BadRequest, match="limit"):
        service.tasks(limit="many")
    assert len(service.tasks(limit=10**6)["failed"]) <= 1000


# ============================================================================ actors, kill, logs
def test_actors_with_restarts_and_kill_actor(service):
    @juno.remote(max_restarts=1)
    class Phoenix:
        def pid(self):
            return os.getpid()

        def die(self):
            os._exit(1)

    name = unique("phoenix")
    actor = Phoenix.options(name=name).remote()
    first_pid = juno.get(actor.pid.remote())
    actor_id = actor._actor_id.hex()

    def row():
        return next(a for a in service.actors()["actors"] if a["actor_id"] == actor_id)

    entry = row()
    assert set(entry) == ACTOR_KEYS
    assert entry["class_name"] == "Phoenix" and entry["name"] == name and entry["state"] == "ALIVE"
    assert entry["max_restarts"] == 1 and entry["num_restarts"] == 0 and entry["pid"] == first_pid
    assert entry["is_detached"] is False and entry["death_cause"] is None and entry["node_id"]
    actor.die.remote()
    wait_for_condition(lambda: juno.get(actor.pid.remote()) != first_pid, timeout=20)
    entry = wait_for_condition(lambda: (r := row())["num_restarts"] == 1 and r["state"] == "ALIVE" and r,
                               timeout=15)
    assert entry["pid"] != first_pid
    assert service.summary()["actors"]["by_state"]["ALIVE"] >= 1

    assert service.kill_actor(actor_id, no_restart=True) == {"ok": True}
    dead = wait_for_condition(lambda: (r := row())["state"] == "DEAD" and r, timeout=15)
    assert "killed" in dead["death_cause"] and "dashboard" in dead["death_cause"]
    with pytest.raises(juno.exceptions.RayActorError):
        juno.get(actor.pid.remote(), timeout=15)

    with pytest.raises(NotFound, match="No actor"):
        service.kill_actor("ab" * 16)
    with pytest.raises(BadRequest, match="hex"):
        service.kill_actor("not-hex!")
    with pytest.raises(BadRequest, match="hex"):
        service.kill_actor("abc")  # a prefix shorter than 8


def test_logs_of_an_actor_that_printed_and_of_its_worker(service):
    marker = unique("marker")

    @juno.remote
    class Talker:
        def talk(self, n):
            for i in range(n):
                print(f"{marker} line {i}", flush=True)
            return os.getpid()

    talker = Talker.remote()
    pid = juno.get(talker.talk.remote(5))
    actor_id = talker._actor_id.hex()

    logs = wait_for_condition(
        lambda: (got := service.logs(actor_id=actor_id))["lines"][-1:] == [f"{marker} line 4"] and got, timeout=15)
    assert set(logs) == {"source", "lines", "truncated"}
    source = logs["source"]
    assert source["kind"] == "actor" and source["id"] == actor_id and source["pid"] == pid
    assert source["node_id"] == global_worker().node_id and source["path"].endswith(".log")
    assert [line for line in logs["lines"] if marker in line] == [f"{marker} line {i}" for i in range(5)]
    assert logs["truncated"] is False

    tail = service.logs(actor_id=actor_id[:8], tail=2)
    assert tail["lines"] == [f"{marker} line 3", f"{marker} line 4"] and tail["truncated"] is True

    worker = next(w for w in service.workers()["workers"] if w["pid"] == pid)
    assert set(worker) == WORKER_KEYS and worker["actor_id"] == actor_id and worker["is_alive"]
    by_worker = service.logs(worker_id=worker["worker_id"][:10], tail=200)
    assert by_worker["source"]["kind"] == "worker" and by_worker["source"]["id"] == worker["worker_id"]
    assert by_worker["source"]["pid"] == pid and by_worker["lines"] == logs["lines"]

    with pytest.raises(NotFound, match="No worker"):
        service.logs(worker_id="0123456789abcdef")
    with pytest.raises(NotFound, match="No actor"):
        service.logs(actor_id="ab" * 16)
    with pytest.raises(BadRequest):
        service.logs(worker_id="abc")
    with pytest.raises(BadRequest):
        service.logs()
    with pytest.raises(BadRequest):
        service.logs(actor_id=actor_id, worker_id=worker["worker_id"])
    with pytest.raises(BadRequest, match="tail"):
        service.logs(actor_id=actor_id, tail=0)
    assert len(service.logs(actor_id=actor_id, tail=10**6)["lines"]) <= 5000
    juno.kill(talker)


# ============================================================================ placement groups, jobs, workers, objects
def test_placement_groups_payload(service):
    name = unique("pg")
    pg = placement_group([{"CPU": 0.5}, {"CPU": 0.5}], strategy="SPREAD", name=name)
    juno.get(pg.ready(), timeout=15)
    try:
        def entry():
            return next(p for p in service.placement_groups()["placement_groups"] if p["name"] == name)

        row = entry()
        assert set(row) == {"placement_group_id", "name", "strategy", "state", "is_detached", "bundles"}
        assert row["placement_group_id"] == pg.id.hex() and row["strategy"] == "SPREAD"
        assert row["state"] == "CREATED" and row["is_detached"] is False
        assert row["bundles"] == [{"index": i, "resources": {"CPU": 0.5}, "node_id": global_worker().node_id}
                                  for i in range(2)]
        assert service.summary()["placement_groups"]["by_state"]["CREATED"] >= 1
    finally:
        remove_placement_group(pg)
    wait_for_condition(lambda: entry()["state"] == "REMOVED", timeout=15)


def test_jobs_and_workers_payloads(service, tmp_path):
    jobs = service.jobs()["jobs"]
    mine = next(j for j in jobs if j["pid"] == os.getpid())
    assert set(mine) == {"job_id", "status", "entrypoint", "pid", "namespace", "start_time", "end_time"}
    assert mine["status"] == "RUNNING" and mine["end_time"] is None and mine["start_time"] <= time.time()
    driver = next(w for w in service.workers()["workers"] if w["pid"] == os.getpid())
    assert driver["worker_type"] == "DRIVER" and driver["is_alive"] and driver["job_id"] == mine["job_id"]

    code = f"import juno; juno.init(address={my_address()!r}); print(juno.get_runtime_context().get_job_id())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().splitlines()[-1]
    finished = wait_for_condition(
        lambda: next((j for j in service.jobs()["jobs"] if j["job_id"] == job_id and j["status"] == "SUCCEEDED"),
                     None), timeout=15)
    assert finished["end_time"] >= finished["start_time"]
    assert service.summary()["jobs"]["finished"] >= 1


def test_objects_payload(service):
    ref = juno.put(np.ones(4 * MB, dtype=np.uint8))
    small = juno.put(123)
    oid = ref.hex()

    def listed():
        objects = service.objects()
        return next((o for o in objects["objects"] if o["object_id"] == oid), None) and objects

    objects = wait_for_condition(listed, timeout=15)
    assert set(objects) == {"summary", "objects", "truncated"}
    row = next(o for o in objects["objects"] if o["object_id"] == oid)
    assert set(row) == {"object_id", "object_size", "reference_type", "storage", "node_id", "pid", "call_site",
                        "task_status"}
    assert row["object_size"] >= 4 * MB and row["storage"] == "SHARED_MEMORY" and row["pid"] == os.getpid()
    assert row["reference_type"] == "LOCAL_REFERENCE" and row["node_id"] == global_worker().node_id
    assert objects["summary"]["count"] >= 2 and objects["summary"]["total_bytes"] >= 4 * MB
    assert objects["summary"]["by_storage"]["SHARED_MEMORY"] >= 1
    limited = service.objects(limit=1)
    assert len(limited["objects"]) == 1 and limited["truncated"] is True
    del ref, small


def test_snapshot_has_every_key_of_the_live_updates(service):
    snap = service.snapshot()
    probe = service._probe
    assert probe is not None and probe is not global_worker(), "a private probe, even beside a driver"
    assert set(snap) == {"summary", "nodes", "tasks", "actors", "placement_groups", "jobs",
                         "library_runs"}
    assert snap["nodes"] == service.nodes()
    assert set(snap["summary"]) == SUMMARY_KEYS
    assert snap["jobs"] == service.jobs()
    service.workers()
    assert service._probe is probe, "one long-lived connection per service"


def test_event_hub_on_a_live_cluster_reports_a_failed_task(service):
    name = unique("doomed")

    @juno.remote(max_retries=0)
    def doomed():
        raise RuntimeError("doomed on purpose")

    async def main():
        hub = EventHub(service, interval=0.2)
        got: list = []
        sub = hub.subscribe(got.append)
        deadline = time.monotonic() + 20
        while not any(m["type"] == "update" for m in got):
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.02)
        first = next(m for m in got if m["type"] == "update")
        assert set(first["data"]) == {"summary", "nodes", "tasks", "actors", "placement_groups", "jobs",
                         "library_runs"}
        ref = doomed.options(name=name).remote()
        with pytest.raises(RuntimeError):
            await asyncio.get_running_loop().run_in_executor(None, juno.get, ref)

        def failed_event():
            return next((m["event"] for m in got if m["type"] == "event" and m["event"]["kind"] == "task_failed"
                         and name in m["event"]["message"]), None)

        while failed_event() is None:
            assert time.monotonic() < deadline, [m for m in got if m["type"] != "update"]
            await asyncio.sleep(0.02)
        assert "doomed on purpose" in failed_event()["message"]
        sub.close()
        hub.close()

    asyncio.run(main())


# ============================================================================ unreachable clusters
def test_a_cluster_that_is_gone_is_unreachable_at_once(shutdown_only):
    """A stopped cluster (or a port nothing listens on) refuses the connection: the service says
    so in well under its timeout instead of waiting the timeout out."""
    juno.init(num_cpus=1)
    address = my_address()
    svc = StateService(address, timeout=10)
    try:
        assert svc.summary()["nodes"]["alive"] == 1
        juno.shutdown()
        started = time.monotonic()
        with pytest.raises(Unreachable, match="Nothing listens at .*no Juno cluster runs there"):
            svc.summary()
        assert time.monotonic() - started < 5
    finally:
        svc.close()
    nowhere = StateService("127.0.0.1:1", timeout=10)
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="Nothing listens at 127.0.0.1:1"):
            nowhere.nodes()
        assert time.monotonic() - started < 5
    finally:
        nowhere.close()


def test_a_cluster_that_does_not_answer_is_unreachable_within_the_timeout(tmp_path):
    """Something listens but never answers (a hung GCS): the call ends after the timeout."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        svc = StateService(f"127.0.0.1:{silent.getsockname()[1]}", timeout=2)
        try:
            started = time.monotonic()
            with pytest.raises(Unreachable, match="did not answer within 2 s"):
                svc.summary()
            assert time.monotonic() - started < 2 + 1.5
        finally:
            svc.close()


def test_a_wrong_token_is_unreachable_and_says_so(service):
    wrong = StateService(my_address(), timeout=5, token=auth.new_token())
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="token"):
            wrong.summary()
        assert time.monotonic() - started < 5 + 1.5
    finally:
        wrong.close()


def test_gpu_ids_and_gpu_use_of_a_node(juno_start_gpus, gate):
    """Logical GPUs (no device needed): the node lists its GPU ids; a task holding one shows as used."""
    svc = StateService(my_address(), timeout=10)
    try:
        (node,) = svc.nodes()["nodes"]
        assert node["gpu_ids"] == [0, 1] and node["resources"]["GPU"] == {"used": 0, "total": 2}

        @juno.remote(num_gpus=1)
        def hold_gpu(path):
            wait_for_file(path)

        ref = hold_gpu.remote(str(gate))
        summary = wait_for_condition(lambda: (s := svc.summary())["resources"]["GPU"]["used"] == 1 and s,
                                     timeout=15)
        assert summary["resources"]["GPU"]["total"] == 2
        gate.touch()
        juno.get(ref)
    finally:
        svc.close()
