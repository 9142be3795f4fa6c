"""The state API (juno.util.state), juno.timeline and the `juno list/summary/memory/timeline`
commands, on real local clusters."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import warnings

import cloudpickle
import numpy as np
import pytest
from helpers import wait_for_condition, wait_for_file

import juno
from juno.owner.core_worker import global_worker
from juno.util import state

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def tasks_named(name: str, **kwargs) -> list:
    return state.list_tasks(filters=[("name", "=", name)], limit=10_000, **kwargs)


def one_task(name: str, wanted_state: str, ran: bool = True, **kwargs):
    """Wait until the task called ``name`` is in ``wanted_state`` and (``ran``) the worker that ran
    it has reported too (owner and worker report separately); return its row."""
    def check():
        rows = tasks_named(name, **kwargs)
        if len(rows) != 1 or rows[0]["state"] != wanted_state:
            return None
        return rows[0] if rows[0]["worker_pid"] or not ran else None

    return wait_for_condition(check, timeout=15)


# ============================================================================ tasks
def test_task_states_after_success_and_failure(cluster):
    ok_name, bad_name = unique("ok"), unique("bad")

    @juno.remote
    def work(x):
        return x * 2

    @juno.remote(max_retries=0)
    def fails():
        raise ValueError("state api boom")

    assert juno.get(work.options(name=ok_name).remote(21)) == 42
    with pytest.raises(ValueError):
        juno.get(fails.options(name=bad_name).remote())

    # Owner and worker report separately: wait until both parts are in.
    full = ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED"]
    done = wait_for_condition(lambda: (t := one_task(ok_name, "FINISHED", detail=True)) and
                              [e["state"] for e in t.events] == full and t, timeout=15)
    assert done.type == "NORMAL_TASK" and done["attempt_number"] == 0
    assert done.job_id == juno.get_runtime_context().get_job_id()
    assert done.node_id == juno.get_runtime_context().get_node_id()
    assert done.worker_pid and done.worker_pid != os.getpid() and done.error_type is None
    assert done.required_resources == {"CPU": 1.0}
    assert done.creation_time_ms <= done.start_time_ms <= done.end_time_ms

    failed = one_task(bad_name, "FAILED", detail=True)
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert "state api boom" in failed.error_message and "ValueError" in failed.error_message
    assert failed.events[-1]["state"] == "FAILED"

    assert [t.task_id for t in state.list_tasks(filters=[("state", "=", "failed"), ("name", "=", bad_name)])] \
        == [failed.task_id]
    assert not state.list_tasks(filters=[("state", "!=", "FAILED"), ("name", "=", bad_name)])
    ref = work.options(name=unique("by_ref")).remote(1)
    juno.get(ref)
    wait_for_condition(lambda: (t := state.get_task(ref)) is not None and t.state == "FINISHED")
    assert state.get_task(ref.task_id().hex()).task_id == ref.task_id().hex()
    assert state.get_task("00" * 16) is None


def test_running_task_shows_running_then_finished(cluster, gate):
    name = unique("blocked")

    @juno.remote
    def blocked(path):
        wait_for_file(path)
        return 1

    ref = blocked.options(name=name).remote(str(gate))
    row = one_task(name, "RUNNING")
    assert row.worker_pid
    gate.touch()
    assert juno.get(ref) == 1
    one_task(name, "FINISHED")


def test_pending_task_and_nested_parent(cluster, gate):
    parent_name, child_name = unique("parent"), unique("child")

    @juno.remote
    def child():
        return 7

    @juno.remote
    def parent():
        return juno.get(child.options(name=child_name).remote())

    assert juno.get(parent.options(name=parent_name).remote()) == 7
    parent_row = one_task(parent_name, "FINISHED")
    child_row = one_task(child_name, "FINISHED")
    assert child_row.parent_task_id == parent_row.task_id

    @juno.remote(num_cpus=64)
    def too_big():
        return 0

    pending_name = unique("pending")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = too_big.options(name=pending_name).remote()
    one_task(pending_name, "PENDING_NODE_ASSIGNMENT", ran=False)
    juno.cancel(ref)
    row = one_task(pending_name, "FAILED", ran=False)
    assert row.error_type == "TASK_CANCELLED"


def test_retried_task_has_one_row_per_attempt(cluster, tmp_path):
    name = unique("flaky")
    marker = tmp_path / "crashed_once"

    @juno.remote(max_retries=2)
    def flaky(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "second time lucky"

    assert juno.get(flaky.options(name=name).remote(str(marker))) == "second time lucky"

    def attempts():
        rows = sorted(tasks_named(name, detail=True), key=lambda r: r.attempt_number)
        ok = [r.state for r in rows] == ["FAILED", "FINISHED"] and rows[0].worker_pid and rows[1].worker_pid
        return rows if ok else None

    first, second = wait_for_condition(attempts, timeout=15)
    assert (first.attempt_number, second.attempt_number) == (0, 1)
    assert first.task_id == second.task_id
    assert first.error_type == "WORKER_DIED"
    assert second.worker_pid != first.worker_pid


# ============================================================================ actors
def test_actor_states_and_actor_tasks_after_kill(cluster):
    @juno.remote
    class Tracked:
        def ping(self):
            return os.getpid()

    name = unique("tracked")
    actor = Tracked.options(name=name).remote()
    pid = juno.get(actor.ping.remote())
    actor_id = actor._actor_id.hex()

    rows = state.list_actors(filters=[("name", "=", name)])
    assert len(rows) == 1
    row = rows[0]
    assert (row.actor_id, row.class_name, row.state, row.pid) == (actor_id, "Tracked", "ALIVE", pid)
    assert row.job_id == juno.get_runtime_context().get_job_id()
    assert "death_cause" not in row  # a detail column

    def actor_tasks():
        rows = state.list_tasks(filters=[("actor_id", "=", actor_id)], limit=100)
        kinds = {(r.type, r.state) for r in rows if r.worker_pid}  # the worker's part is in
        return rows if {("ACTOR_CREATION_TASK", "FINISHED"), ("ACTOR_TASK", "FINISHED")} <= kinds else None

    rows = wait_for_condition(actor_tasks, timeout=15)
    assert {r.worker_pid for r in rows} == {pid}

    juno.kill(actor)

    def dead():
        found = state.get_actor(actor_id)
        return found if found is not None and found.state == "DEAD" else None

    found = wait_for_condition(dead, timeout=15)
    assert "killed" in found.death_cause["error_message"]
    assert [e["state"] for e in found.events] == ["PENDING_CREATION", "ALIVE", "DEAD"]
    assert found.num_restarts == 0 and found.is_detached is False

    summary = state.summarize_actors()["cluster"]
    assert summary["summary"]["Tracked"]["state_counts"].get("DEAD", 0) >= 1
    assert summary["total_actors"] >= 1
    assert state.get_actor("ab" * 16) is None


def test_restarting_actor_reruns_its_creation_task(cluster):
    @juno.remote(max_restarts=1)
    class Phoenix:
        def pid(self):
            return os.getpid()

        def die(self):
            os._exit(1)

    actor = Phoenix.remote()
    first_pid = juno.get(actor.pid.remote())
    actor.die.remote()
    wait_for_condition(lambda: juno.get(actor.pid.remote()) != first_pid, timeout=20)
    actor_id = actor._actor_id.hex()

    def creations():
        rows = state.list_tasks(filters=[("actor_id", "=", actor_id), ("type", "=", "ACTOR_CREATION_TASK")],
                                detail=True)
        rows.sort(key=lambda r: r.attempt_number)
        return rows if [(r.attempt_number, r.state) for r in rows] == [(0, "FINISHED"), (1, "FINISHED")] else None

    wait_for_condition(creations, timeout=15)
    row = state.get_actor(actor_id)
    assert row.num_restarts == 1 and row.state == "ALIVE"
    assert [e["state"] for e in row.events] == ["PENDING_CREATION", "ALIVE", "RESTARTING", "ALIVE"]
    juno.kill(actor)


# ============================================================================ objects
def my_objects(object_id: str) -> list:
    return state.list_objects(filters=[("object_id", "=", object_id)], limit=10_000)


def test_put_object_is_listed_with_size_and_reference_then_disappears(cluster):
    big = juno.put(np.ones(300_000))  # 2.4 MB: shared memory
    small = juno.put("tiny")  # inline
    rows = my_objects(big.hex())
    assert len(rows) == 1
    row = rows[0]
    assert row.reference_type == "LOCAL_REFERENCE" and row.type == "DRIVER"
    assert row.pid == os.getpid() and row.owner_pid == os.getpid()
    assert row.storage == "SHARED_MEMORY" and row.object_size >= 2_400_000
    assert row.call_site == "disabled" and row.task_status == "NIL"
    (srow,) = my_objects(small.hex())
    assert srow.storage == "INLINE" and 0 < srow.object_size < 1000

    summary = state.summarize_objects()["cluster"]
    assert summary["total_objects"] >= 2 and summary["total_size_mb"] >= 2.2
    assert summary["callsite_enabled"] is False

    big_id = big.hex()
    del big
    wait_for_condition(lambda: not my_objects(big_id), timeout=15)
    assert my_objects(small.hex())


def test_object_held_by_pending_task_and_task_result(cluster, gate):
    @juno.remote
    def consume(path, value):
        wait_for_file(path)
        return len(value)

    arg = juno.put(np.zeros(200_000))
    arg_id = arg.hex()
    result = consume.remote(str(gate), arg)
    del arg
    rows = wait_for_condition(lambda: my_objects(arg_id), timeout=10)
    assert [r.reference_type for r in rows] == ["USED_BY_PENDING_TASK"]
    (pending,) = my_objects(result.hex())
    assert pending.storage == "PENDING" and pending.task_status in (
        "PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER")
    gate.touch()
    assert juno.get(result) == 200_000
    wait_for_condition(lambda: not my_objects(arg_id), timeout=10)
    (done,) = my_objects(result.hex())
    assert done.task_status == "FINISHED" and done.storage == "INLINE"


def test_objects_referenced_inside_an_actor(cluster):
    @juno.remote
    class Holder:
        def hold(self):
            self.ref = juno.put(b"x" * 1000)
            return self.ref.hex()

    holder = Holder.remote()
    object_id = juno.get(holder.hold.remote())
    (row,) = wait_for_condition(lambda: my_objects(object_id), timeout=10)
    assert row.type == "WORKER" and row.pid != os.getpid() and row.owner_pid == row.pid
    juno.kill(holder)


# ============================================================================ other resources
def test_nodes_workers_jobs_and_placement_groups(cluster):
    (node,) = state.list_nodes()
    assert node.state == "ALIVE" and node.is_head_node and node.resources_total["CPU"] == 2
    assert node.node_id == juno.get_runtime_context().get_node_id()
    assert state.get_node(node.node_id).node_id == node.node_id

    @juno.remote
    def where():
        return os.getpid()

    worker_pid = juno.get(where.remote())
    workers = state.list_workers(limit=1000)
    drivers = [w for w in workers if w.worker_type == "DRIVER" and w.pid == os.getpid()]
    assert len(drivers) == 1 and drivers[0].is_alive
    assert drivers[0].worker_id == global_worker().worker_id.hex()
    assert any(w.worker_type == "WORKER" and w.is_alive and w.pid == worker_pid for w in workers)
    exited = [w for w in workers if w.worker_type == "WORKER" and not w.is_alive]
    assert all(w.exit_type in ("SYSTEM_ERROR", "INTENDED_USER_EXIT", "INTENDED_SYSTEM_EXIT") for w in exited)

    jobs = state.list_jobs(filters=[("job_id", "=", juno.get_runtime_context().get_job_id())])
    assert [j.status for j in jobs] == ["RUNNING"]
    assert state.list_placement_groups() == []


def test_filters_limits_and_errors(cluster):
    name = unique("many")

    @juno.remote
    def many():
        return 0

    juno.get([many.options(name=name).remote() for _ in range(5)])
    wait_for_condition(lambda: len(tasks_named(name)) == 5 and all(t.state == "FINISHED" for t in tasks_named(name)))
    with pytest.warns(UserWarning, match="showing 2"):
        assert len(state.list_tasks(filters=[("name", "=", name)], limit=2)) == 2
    with pytest.raises(ValueError, match="Unknown filter key"):
        state.list_tasks(filters=[("no_such_column", "=", 1)])
    with pytest.raises(ValueError, match="predicate"):
        state.list_tasks(filters=[("state", ">", "FAILED")])
    assert len(state.list_tasks(filters=["name=" + name], detail=True)) == 5

    summary = state.summarize_tasks()["cluster"]
    assert summary["summary"][name]["state_counts"] == {"FINISHED": 5}
    assert summary["summary"][name]["type"] == "NORMAL_TASK"
    assert summary["total_tasks"] >= 5


def test_timeline_has_a_complete_event_per_finished_task(cluster, tmp_path):
    name = unique("traced")

    @juno.remote
    def traced(i):
        return sum(range(10_000 * (i + 1)))

    refs = [traced.options(name=name).remote(i) for i in range(4)]
    juno.get(refs)
    task_ids = {r.task_id().hex() for r in refs}

    def events():
        found = [e for e in juno.timeline() if e.get("ph") == "X" and e["name"] == name]
        return found if len(found) == 4 else None

    found = wait_for_condition(events, timeout=15)
    assert {e["args"]["task_id"] for e in found} == task_ids
    for e in found:
        assert e["dur"] > 0 and e["ts"] > 0 and isinstance(e["tid"], int) and e["tid"] != os.getpid()
        assert e["pid"].startswith("Node ") and e["args"]["state"] == "FINISHED"

    path = tmp_path / "trace.json"
    assert juno.timeline(filename=str(path)) is None
    loaded = json.loads(path.read_text())
    assert sum(1 for e in loaded if e.get("ph") == "X" and e["name"] == name) == 4
    assert any(e.get("ph") == "M" and e["name"] == "process_name" for e in loaded)


# ============================================================================ the CLI
def run_cli(*args: str) -> subprocess.CompletedProcess:
    address = global_worker().gcs_address.replace("tcp://", "")
    env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "juno", *args, "--address", address], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_list_summary_memory_timeline(cluster, tmp_path):
    ok_name, bad_name = unique("cli_ok"), unique("cli_bad")

    @juno.remote(max_retries=0)
    def cli_task(fail):
        if fail:
            raise KeyError("cli boom")
        return 1

    juno.get(cli_task.options(name=ok_name).remote(False))
    with pytest.raises(KeyError):
        juno.get(cli_task.options(name=bad_name).remote(True))
    one_task(bad_name, "FAILED")
    one_task(ok_name, "FINISHED")
    kept = juno.put(np.ones(50_000))

    out = run_cli("list", "tasks", "--filter", f"name={bad_name}")
    assert out.returncode == 0, out.stderr
    assert "Total: 1" in out.stdout and bad_name in out.stdout and "FAILED" in out.stdout
    assert ok_name not in out.stdout

    out = run_cli("list", "tasks", "--filter", f"name={ok_name}", "--format", "json", "--detail")
    (row,) = json.loads(out.stdout)
    assert row["state"] == "FINISHED" and row["events"][-1]["state"] == "FINISHED"

    out = run_cli("list", "tasks", "--filter", "state=FAILED", "--format", "yaml")
    assert out.returncode == 0 and f"name: {bad_name}" in out.stdout

    out = run_cli("list", "actors", "--limit", "5")
    assert out.returncode == 0 and "CLASS_NAME" in out.stdout
    for resource in ("nodes", "workers", "jobs", "placement-groups", "objects"):
        out = run_cli("list", resource)
        assert out.returncode == 0, (resource, out.stderr)
    assert "DRIVER" in run_cli("list", "workers").stdout

    out = run_cli("list", "tasks", "--filter", "nonsense")
    assert out.returncode == 2 and "key=value" in out.stderr
    out = run_cli("list", "tasks", "--filter", "color=red")
    assert out.returncode == 2 and "Unknown filter key" in out.stderr

    out = run_cli("summary", "tasks")
    assert out.returncode == 0 and bad_name in out.stdout and "FAILED: 1" in out.stdout
    assert run_cli("summary", "actors").returncode == 0
    out = run_cli("summary", "objects", "--format", "json")
    assert json.loads(out.stdout)["cluster"]["total_objects"] >= 1

    out = run_cli("memory")
    assert out.returncode == 0, out.stderr
    assert kept.hex() in out.stdout and f"Owned by driver pid {os.getpid()}" in out.stdout
    assert "LOCAL_REFERENCE" in out.stdout and "Total:" in out.stdout

    trace = tmp_path / "cli_trace.json"
    out = run_cli("timeline", "--output", str(trace))
    assert out.returncode == 0, out.stderr
    events = json.loads(trace.read_text())
    assert any(e.get("ph") == "X" and e["name"] == ok_name for e in events)


def test_cli_without_a_cluster_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("JUNO_ADDRESS", "RAY_ADDRESS")}
    env["JUNO_CLUSTER_FILE"] = str(tmp_path / "none")
    out = subprocess.run([sys.executable, "-m", "juno", "list", "tasks"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "no running Juno cluster" in out.stderr


# ============================================================================ configuration
def test_bounded_task_events_drop_oldest(shutdown_only):
    juno.init(num_cpus=1, _system_config={"task_events_max": 20})

    @juno.remote
    def step(i):
        return i

    refs = [step.remote(i) for i in range(60)]
    juno.get(refs)
    newest = {r.task_id().hex() for r in refs[-20:]}

    def kept():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = state.list_tasks(limit=1000)
        ids = {r.task_id for r in rows}
        return (rows, caught) if ids == newest and all(r.state == "FINISHED" for r in rows) else None

    rows, caught = wait_for_condition(kept, timeout=15)
    assert len(rows) == 20
    assert any("40 task attempt(s) were dropped" in str(w.message) for w in caught)


def test_call_sites_when_recorded(shutdown_only):
    juno.init(num_cpus=1, _system_config={"record_ref_creation_sites": True})

    @juno.remote
    def produce():
        return 1

    put_ref = juno.put(np.zeros(10))
    task_ref = produce.remote()
    juno.get(task_ref)
    (put_row,) = my_objects(put_ref.hex())
    assert put_row.call_site.startswith("(put object) | ") and "test_state_api.py" in put_row.call_site
    (task_row,) = my_objects(task_ref.hex())
    assert task_row.call_site.startswith("(task call) | ") and "test_call_sites_when_recorded" in task_row.call_site
    summary = state.summarize_objects()["cluster"]
    assert summary["callsite_enabled"] is True and put_row.call_site in summary["summary"]


def test_state_api_from_another_process_and_disabled_events(shutdown_only, tmp_path):
    juno.init(num_cpus=1, _system_config={"enable_task_events": False})

    @juno.remote
    def quiet():
        return 1

    assert juno.get(quiet.remote()) == 1
    address = global_worker().gcs_address.replace("tcp://", "")
    code = (f"from juno.util import state; import juno; "
            f"print(len(state.list_tasks(address='{address}')), len(state.list_nodes(address='{address}')), "
            f"juno.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "False"]
