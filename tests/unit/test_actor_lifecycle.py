"""The GCS actor table's decisions (runtime/gcs/actor_lifecycle.py), tested without sockets or processes."""
import pytest

from juno.gcs.actor_lifecycle import (
    ALIVE, DEAD, OUT_OF_SCOPE, PENDING, RESTARTING, ActorLifecycle, Answer, AskToExit, CancelLease, CreationReported,
    KillWorker, Persist, Place, Publish, Registered, RequestLease, SendCreation, Warn)

NODE_A = {"node_id": "a" * 28, "address": "ipc://nm-a"}
NODE_B = {"node_id": "b" * 28, "address": "ipc://nm-b"}


def kinds(actions):
    return [type(a) for a in actions]


def register(life, aid, **info):
    info.setdefault("namespace", "ns")
    info.setdefault("owner", "ipc://owner")
    answer, actions = life.register(aid, ("spec", aid), info)
    assert answer[0] == "created" and kinds(actions) == [Registered, Place]
    return life.actors[aid]


def lease(life, record, node=NODE_A, worker=b"w1"):
    """Place the actor on ``node``, grant the lease and report the constructor done."""
    actions = life.request_lease(record, node, 1)
    assert kinds(actions) == [Persist, RequestLease] and record.pending_request == (node["address"], actions[1].rid)
    value = (7, f"ipc://{worker.decode()}", worker, [], {"CPU": 1.0}, node["address"])
    actions = life.on_lease_reply(record, node, True, value, 1)
    assert kinds(actions) == [SendCreation] and record.pending_request is None
    actions = life.on_created(record.actor_id, worker, f"ipc://{worker.decode()}", None, pid=42)
    assert kinds(actions) == [CreationReported, Publish] and record.state == ALIVE
    assert record.node_id == node["node_id"] and record.info["pid"] == 42
    return record


def test_the_restart_budget_is_counted_per_death_then_the_actor_is_dead_with_the_cause():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=2, class_name="Counter"))
    for n in (1, 2):
        actions = life.on_worker_died(b"A", record.worker_id, "it crashed")
        assert kinds(actions) == [Publish, Place] and record.state == RESTARTING and record.num_restarts == n
        assert actions[1].node is None and record.last_death == "it crashed"
        lease(life, record, worker=f"w{n + 1}".encode())
        assert record.can_restart() is (n < 2)  # sent with each lease request: the OOM killer asks
    actions = life.on_worker_died(b"A", record.worker_id, "it crashed again")
    assert kinds(actions) == [Publish] and record.state == DEAD and record.num_restarts == 2
    assert record.death_cause == "it crashed again (it was restarted 2 times, max_restarts=2)"
    assert life.on_worker_died(b"A", record.worker_id, "late report") == []  # dead stays dead


def test_a_late_report_of_an_old_incarnations_death_is_ignored():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=-1))
    life.on_worker_died(b"A", b"w1", "crash")
    lease(life, record, worker=b"w2")
    assert life.on_worker_died(b"A", b"w1", "crash") == [] and record.num_restarts == 1 and record.state == ALIVE


def test_oom_kills_warn_the_owner_with_the_budget_left():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=-1, class_name="Big"))
    actions = life.on_worker_died(b"A", b"w1", "node memory 96%", kind="oom")
    assert kinds(actions) == [Warn, Publish, Place] and actions[0].owner == "ipc://owner"
    assert "Restarting it (restart 1 of infinite)" in actions[0].text
    assert record.last_death == "it was killed due to memory use: node memory 96%"


def test_node_death_restarts_restartable_actors_and_kills_the_rest_naming_the_node():
    life = ActorLifecycle()
    keeps = lease(life, register(life, b"R", max_restarts=1))
    dies = lease(life, register(life, b"D"), worker=b"w2")
    elsewhere = lease(life, register(life, b"E"), node=NODE_B, worker=b"w3")
    waiting = register(life, b"W")
    life.request_lease(waiting, NODE_A, 1)  # its lease request was at the dead node
    actions = life.on_node_died(dict(NODE_A, death_reason="it stopped sending heartbeats"))
    assert keeps.state == RESTARTING and keeps.worker_id is None
    assert dies.state == DEAD and dies.worker_id is None
    assert dies.death_cause == f"the node it ran on ({'a' * 12}) died: it stopped sending heartbeats"
    assert elsewhere.state == ALIVE and waiting.pending_request is None
    places = [a.record.actor_id for a in actions if isinstance(a, Place)]
    assert places == [b"R", b"W"]
    assert life.on_worker_died(b"R", b"w1", "its node manager reported it late") == []  # not counted twice


def test_kill_with_no_restart_waits_for_the_process_then_answers():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=5))
    actions = life.kill(b"A", True, "juno.kill() was called", waiter="reply")
    assert kinds(actions) == [Persist, KillWorker] and actions[1].worker_id == b"w1"
    assert record.state == ALIVE and record.no_restart  # dead once the node reports the process gone
    actions = life.on_worker_died(b"A", b"w1", "killed")
    assert kinds(actions) == [Publish, Answer] and actions[1].waiters == ("reply",)
    assert record.state == DEAD and record.death_cause == "The actor was killed: juno.kill() was called."
    assert life.kill(b"A", True, "again", waiter="r2") == [Answer(("r2",))]


def test_kill_allowing_restart_restarts_it():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=1))
    assert kinds(life.kill(b"A", False, "test")) == [KillWorker]
    assert kinds(life.on_worker_died(b"A", b"w1", "killed")) == [Publish, Place] and record.state == RESTARTING


def test_kill_before_a_lease_cancels_the_request_and_a_late_lease_is_killed():
    life = ActorLifecycle()
    record = register(life, b"A")
    rid = life.request_lease(record, NODE_A, 1)[1].rid
    actions = life.kill(b"A", True, "test", waiter="reply")
    assert actions[1:] == [CancelLease(NODE_A["address"], rid), Publish(record), Answer(("reply",))]
    assert record.state == DEAD
    late = (3, "ipc://w", b"w9", [], {}, NODE_A["address"])
    assert life.on_lease_reply(record, NODE_A, True, late, 1) == [
        KillWorker(NODE_A["address"], b"w9", "the actor was killed before it started")]


def test_spillback_places_again_one_hop_further_and_failures_are_final():
    life = ActorLifecycle()
    record = register(life, b"A")
    life.request_lease(record, NODE_A, 1)
    actions = life.on_lease_reply(record, NODE_A, True, ("spillback", NODE_B["node_id"], NODE_B["address"]), 1)
    assert actions == [Place(record, {"node_id": NODE_B["node_id"], "address": NODE_B["address"]}, 2)]
    life.request_lease(record, NODE_B, 2)
    actions = life.on_lease_reply(record, NODE_B, False, "no such resource", 2)
    assert kinds(actions) == [Publish] and record.state == DEAD
    assert record.death_cause == "the actor could not be scheduled: no such resource"


def test_a_constructor_error_is_final_and_its_worker_killed():
    life = ActorLifecycle()
    record = register(life, b"A", max_restarts=3)
    life.request_lease(record, NODE_A, 1)
    life.on_lease_reply(record, NODE_A, True, (1, "ipc://w", b"w1", [], {}, NODE_A["address"]), 1)
    actions = life.on_created(b"A", b"w1", "ipc://w", "ZeroDivisionError: division by zero")
    assert kinds(actions) == [CreationReported, Publish, KillWorker] and record.state == DEAD
    assert record.death_cause.startswith("its constructor raised an exception:\nZeroDivisionError")


def test_out_of_scope_collects_only_non_detached_actors():
    life = ActorLifecycle()
    live = lease(life, register(life, b"L"))
    detached = lease(life, register(life, b"D", detached=True), worker=b"w2")
    unplaced = register(life, b"U")
    assert life.on_out_of_scope(b"D") == [] and detached.state == ALIVE
    actions = life.on_out_of_scope(b"L")  # asked to exit gracefully, killed after the grace period
    assert actions == [Persist(live), AskToExit(live, "ipc://w1", b"w1", OUT_OF_SCOPE)]
    assert live.no_restart and live.state == ALIVE
    assert kinds(life.exit_deadline_passed(b"L", b"w1")) == [KillWorker]
    assert kinds(life.on_worker_died(b"L", b"w1", "exited")) == [Publish] and live.death_cause == OUT_OF_SCOPE
    assert life.exit_deadline_passed(b"L", b"w1") == []
    assert kinds(life.on_out_of_scope(b"U")) == [Persist, Publish]  # not created yet: dead at once
    assert unplaced.state == DEAD and unplaced.death_cause == OUT_OF_SCOPE


def test_detached_actors_survive_their_job():
    life = ActorLifecycle()
    attached = lease(life, register(life, b"A", job_id=1))
    detached = lease(life, register(life, b"D", job_id=1, detached=True), worker=b"w2")
    other_job = lease(life, register(life, b"O", job_id=2), worker=b"w3")
    actions = life.on_job_finished(1)
    assert [a.worker_id for a in actions if isinstance(a, KillWorker)] == [b"w1"]
    assert attached.no_restart and attached.death_cause == "The actor was killed: its job (driver) finished."
    assert not detached.no_restart and not other_job.no_restart


def test_exiting_on_purpose_is_not_restarted():
    life = ActorLifecycle()
    record = lease(life, register(life, b"A", max_restarts=-1))
    assert kinds(life.on_exiting(b"A")) == [Persist]
    life.on_worker_died(b"A", b"w1", "exited")
    assert record.state == DEAD and record.death_cause == "The actor exited intentionally by calling exit_actor()."


def test_named_actors_conflict_within_a_namespace_only():
    life = ActorLifecycle()
    first = register(life, b"A", name="keeper")
    with pytest.raises(ValueError, match="An actor named 'keeper' already exists in namespace 'ns'"):
        life.register(b"B", ("spec",), {"name": "keeper", "namespace": "ns"})
    assert life.register(b"B", ("spec",), {"name": "keeper", "namespace": "ns", "get_if_exists": True}) == (
        ("existing", b"A", None), [])
    register(life, b"C", name="keeper", namespace="other")
    assert life.get_named("keeper", "ns") == (b"A", None)
    assert sorted(d["namespace"] for d in life.list_named(None)) == ["ns", "other"]
    assert life.list_named("other") == [{"name": "keeper", "namespace": "other"}]
    assert life.register(b"A", ("spec",), {"name": "keeper"}) == (("created", b"A", None), [])  # sent again
    life.mark_dead(first, "gone")
    assert life.get_named("keeper", "ns") is None
    register(life, b"D", name="keeper")  # the name is free again once its actor is dead
    assert life.get_named("keeper", "ns") == (b"D", None) and first.state == DEAD


def test_subscribers_are_counted_once():
    life = ActorLifecycle()
    record = register(life, b"A")
    assert life.subscribe(b"A", "ipc://c") == (record, True)
    assert life.subscribe(b"A", "ipc://c") == (record, False)
    assert life.subscribe(b"X", "ipc://c") == (None, False)
    assert record.state == PENDING
