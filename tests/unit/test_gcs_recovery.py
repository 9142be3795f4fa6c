"""GCS recovery on its storage, without processes: what a GCS writes comes back in a new
one (runtime/gcs/recovery.py), and the decisions taken when nodes check in again."""
from __future__ import annotations

import concurrent.futures
import signal
import time

import pytest

from helpers import wait_for_condition
from juno.owner import task_spec as ts
from juno.config import Config
from juno.gcs.client import GcsClient, GcsUnavailableError
from juno.gcs.actor_manager import ALIVE, DEAD, PENDING, RESTARTING, ActorRecord
from juno.gcs.node_table import UNKNOWN_NODE, NodeTable
from juno.gcs.recovery import (AWAIT_CREATION, CANCEL_AND_PLACE, KEEP, PLACE, GcsPersistence, load_tables,
                               named_actors, plan_actor, reconcile_node)
from juno.gcs.storage import MemoryStorage, SqliteStorage
from juno.comm.rpc import DEFER, Reply, RpcNode
from juno.comm.transport import EventLoop


def actor(aid: bytes, state: str = ALIVE, name: str | None = None, node: str | None = "n1",
          worker: bytes | None = b"w", namespace: str = "ns") -> ActorRecord:
    record = ActorRecord(aid, ("spec", aid), {"name": name, "namespace": namespace, "meta": {"m": aid},
                                               "max_restarts": 1})
    record.state, record.node_id, record.worker_id = state, node, worker
    return record


def test_tables_written_through_come_back(tmp_path):
    storage = SqliteStorage(str(tmp_path / "gcs.db"))
    persist = GcsPersistence(storage)
    persist.node({"node_id": "n1", "address": "ipc://a", "alive": True, "last_heartbeat": 12.0, "resources": {}})
    persist.job({"job_id": 3, "driver_address": "ipc://d", "is_dead": False})
    persist.kv_put("fn", b"f1", b"code")
    persist.kv_put("fn", b"f2", b"more")
    persist.kv_delete("fn", b"f2")
    record = actor(b"a1", PENDING, name="keeper", worker=None)
    persist.actor_registered(record)
    record.state, record.address, record.worker_id = ALIVE, "ipc://actor", b"w1"
    record.subscribers.add("ipc://caller")
    persist.actor_subscriber(record, "ipc://caller")
    record.info["pid"] = 4242
    persist.actor(record)
    storage.close()

    tables = load_tables(SqliteStorage(str(tmp_path / "gcs.db")))
    assert tables.nodes == {"n1": {"node_id": "n1", "address": "ipc://a", "alive": True, "resources": {}}}
    assert tables.jobs[3]["driver_address"] == "ipc://d"
    assert tables.kv == {("fn", b"f1"): b"code"}
    [back] = tables.actors
    assert (back.actor_id, back.spec, back.state, back.address, back.worker_id) == \
        (b"a1", ("spec", b"a1"), ALIVE, "ipc://actor", b"w1")
    assert back.subscribers == {"ipc://caller"} and back.info["pid"] == 4242 and back.info["name"] == "keeper"


def test_a_live_actor_keeps_its_name_over_dead_ones():
    old = actor(b"old", DEAD, name="x")
    new = actor(b"new", ALIVE, name="x")
    later_dead = actor(b"late", DEAD, name="x")
    other_ns = actor(b"o", ALIVE, name="x", namespace="other")
    assert named_actors([old, new, later_dead, other_ns]) == {("ns", "x"): b"new", ("other", "x"): b"o"}
    assert named_actors([old, later_dead]) == {("ns", "x"): b"late"}


def test_what_each_recovered_actor_needs():
    assert plan_actor(actor(b"a", ALIVE)) == KEEP
    assert plan_actor(actor(b"d", DEAD)) == KEEP
    creating = actor(b"c", PENDING)  # lease granted, creation sent: its worker's report decides
    GcsPersistence(MemoryStorage()).actor_creation_sent(creating)
    assert plan_actor(creating) == AWAIT_CREATION
    asked = actor(b"r", RESTARTING, worker=b"old")
    asked.pending_request = ("ipc://node", 7)
    assert plan_actor(asked) == CANCEL_AND_PLACE
    assert plan_actor(actor(b"p", PENDING, node=None, worker=None)) == PLACE
    # Restarting and waiting to be placed (its placement group is being rescheduled, or no node
    # fits): the worker it names is the previous incarnation's, which is dead.
    waiting = actor(b"w", ALIVE, worker=b"dead")
    GcsPersistence(MemoryStorage()).actor_creation_sent(waiting)
    waiting.state, waiting.num_restarts = RESTARTING, 1
    assert plan_actor(waiting) == PLACE
    waiting.worker_id = b"new"  # a new worker was leased and is creating it
    GcsPersistence(MemoryStorage()).actor_creation_sent(waiting)
    assert plan_actor(waiting) == AWAIT_CREATION


def test_reconcile_a_node_that_registers_again():
    kept = actor(b"kept", ALIVE, worker=b"w-kept")
    died = actor(b"died", ALIVE, worker=b"w-died")
    creating = actor(b"creating", PENDING, worker=b"w-creating")
    elsewhere = actor(b"elsewhere", ALIVE, node="n2", worker=b"w-e")
    held = actor(b"held", RESTARTING, worker=b"w-held-old")
    dead = actor(b"dead", DEAD, worker=b"w-dead")
    hosted = {b"kept": b"w-kept", b"creating": b"w-creating", b"stray": b"w-stray", b"dead": b"w-dead",
              b"held": b"w-held-old"}
    gone, stray = reconcile_node("n1", hosted, [kept, died, creating, elsewhere, held, dead], held={b"held"})
    assert [r.actor_id for r in gone] == [b"died"]
    assert sorted(stray) == [b"w-dead", b"w-held-old", b"w-stray"]


def test_restored_nodes_must_register_again_or_expire():
    table = NodeTable(death_timeout_s=5)
    table.restore({"node_id": "a", "address": "ipc://a", "resources": {"CPU": 1}, "available": {"CPU": 1},
                   "alive": True})
    table.restore({"node_id": "b", "address": "ipc://b", "resources": {}, "available": {}, "alive": False,
                   "death_reason": "gone"})
    assert set(table.view()) == {"a"} and table.nodes["a"]["unconfirmed"]
    assert table.heartbeat("a", {"CPU": 1}, [], -1) == UNKNOWN_NODE  # say what you host first
    assert table.heartbeat("b", {}, [], -1) == UNKNOWN_NODE
    table.nodes["a"]["last_heartbeat"] -= 10
    assert table.expired() == ["a"]
    table.register({"node_id": "a", "address": "ipc://a", "resources": {"CPU": 1}})
    assert table.expired() == [] and table.heartbeat("a", {"CPU": 1}, [], -1) != UNKNOWN_NODE


@pytest.fixture
def gcs_servers(tmp_path):
    """GcsServers built in this process on one session folder (their loops never run)."""
    from juno.gcs.server import GcsServer

    previous = signal.getsignal(signal.SIGTERM)
    made = []

    def make():
        if made:
            made[-1].storage.close()
        server = GcsServer(bind=f"ipc://{tmp_path}/gcs-{len(made)}", session_dir=str(tmp_path), config=Config(),
                           owner_pid=None)
        made.append(server)
        return server

    yield make
    for server in made:
        if server.loop.thread is not None:
            server.loop.stop()
            server.loop.join(5)
        server.loop._close_sockets()
    signal.signal(signal.SIGTERM, previous)


def creation_spec(aid: bytes) -> tuple:
    return (b"T" * 16, ts.KIND_ACTOR_CREATE, b"F" * 20, "Keeper.__init__", ("v", b""), [], 0, "ipc://driver",
            None, 1, None, None, aid, {})


def test_a_new_gcs_recovers_the_tables(gcs_servers):
    first = gcs_servers()
    reply = Reply(first.loop, None, 0)  # answers go nowhere: the handlers' return values are checked
    node = {"node_id": "n1", "address": "ipc:///nonexistent/n1", "resources": {"CPU": 1.0}}
    assert first.rpc_register_node(reply, dict(node)) is True
    assert first.rpc_register_job(reply, "ipc://driver", 1, "ns", "x") == 1
    assert first.rpc_register_job(reply, "ipc://driver", 1, "ns", "x") == 1  # sent again: the same job
    assert first.rpc_register_job(reply, "ipc://driver2", 2, "ns", "x") == 2
    first.rpc_kv_put(reply, "fn", b"f", b"code")
    aid = b"A" * 16
    spec = creation_spec(aid)
    info = {"name": "keeper", "namespace": "ns", "meta": {"k": 1}, "job_id": 1, "class_name": "Keeper"}
    status, actor_id, _ = first.rpc_register_actor(reply, aid, spec, dict(info))
    assert status == "created"
    assert first.rpc_register_actor(reply, aid, spec, dict(info))[0] == "created"  # sent again: no name clash
    pending = first.actors.actors[actor_id].pending_request
    assert pending is not None and pending[0] == node["address"]  # the GCS asked n1 for a worker

    second = gcs_servers()
    assert second.epoch != first.epoch
    assert second.nodes["n1"]["alive"] and second.nodes["n1"]["unconfirmed"]
    assert second.rpc_register_job(reply, "ipc://driver3", 3, "ns", "y") == 3  # ids continue
    assert second.rpc_kv_get(reply, "fn", b"f") == b"code"
    assert second.rpc_get_named_actor(reply, "keeper", "ns") == (actor_id, {"k": 1})
    record = second.actors.actors[actor_id]
    # Its lease request was cancelled at the node; placement waits until n1 checks in again.
    assert record.pending_request is None and second.recovery.held == [actor_id]
    assert second.rpc_node_heartbeat(reply, "n1", {"CPU": 1.0}, [], -1) == UNKNOWN_NODE
    assert second.rpc_register_node(reply, dict(node, hosted_actors={})) is True
    assert not second.recovery.unconfirmed and not second.recovery.held
    assert record.pending_request is not None and record.pending_request[1] > pending[1]
    assert second.rpc_node_heartbeat(reply, "n1", {"CPU": 1.0}, [], -1) != UNKNOWN_NODE


# ---------------------------------------------------------------------- the client side
class GcsStandIn(RpcNode):
    """Answers like a GCS: its incarnation id, and ``echo`` unless told to swallow it (as a GCS
    that dies before answering does). In-process loops over ipc sockets, no processes."""

    def __init__(self, address: str):
        self.install_rpc(EventLoop(address, name="gcs-stand-in"))
        self.epoch, self.swallow, self.seen = "first", True, []

    def rpc_gcs_epoch(self, reply):
        return self.epoch

    def rpc_echo(self, reply, value):
        self.seen.append(value)
        return DEFER if self.swallow else value


class Caller(RpcNode):
    def __init__(self, address: str):
        self.install_rpc(EventLoop(address, name="caller"))


@pytest.fixture
def gcs_and_client(tmp_path):
    gcs, caller = GcsStandIn(f"ipc://{tmp_path}/gcs"), Caller(f"ipc://{tmp_path}/caller")
    for node in (gcs, caller):
        node.loop.start_thread()
    client = GcsClient(caller, gcs.loop.address, reconnect_timeout_s=2.0)  # checks every 0.2 s
    yield gcs, client
    for node in (gcs, caller):
        node.loop.stop()
        node.loop.join(5)


def test_calls_the_old_gcs_swallowed_are_sent_to_the_new_one(gcs_and_client):
    gcs, client = gcs_and_client
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(client.call_sync, "echo", 7)
        wait_for_condition(lambda: gcs.seen == [7], timeout=5)
        gcs.epoch, gcs.swallow = "second", False  # "restarted": a new incarnation that answers
        assert answer.result(5) == 7
    assert gcs.seen == [7, 7] and client.restarts_seen == 1 and client.epoch == "second"


def test_a_slow_gcs_is_not_asked_twice_and_silence_fails_clearly(gcs_and_client):
    gcs, client = gcs_and_client
    start = time.monotonic()
    with pytest.raises(GcsUnavailableError, match="did not answer 'echo' for 1 s.*gcs_reconnect_timeout_s"):
        client.call_sync("echo", 1, timeout=1.0)
    assert 0.9 < time.monotonic() - start < 5
    assert gcs.seen == [1] and client.restarts_seen == 0  # same incarnation: the request was not lost


def test_subscribers_hear_the_state_again_after_a_restart(gcs_servers, tmp_path):
    """The previous GCS may have died between writing ALIVE and publishing it: the new one tells
    every subscriber the state it recovered."""
    heard = []
    caller = Caller(f"ipc://{tmp_path}/subscriber")
    caller.loop.handlers["actor_update"] = lambda actor_id, info: heard.append((actor_id, info["state"]))
    caller.loop.start_thread()
    try:
        first = gcs_servers()
        reply = Reply(first.loop, None, 0)
        node = {"node_id": "n1", "address": f"ipc://{tmp_path}/n1", "resources": {"CPU": 1.0}}
        first.rpc_register_node(reply, dict(node))
        aid = b"B" * 16
        first.rpc_register_actor(reply, aid, creation_spec(aid), {"namespace": "ns", "class_name": "Keeper"})
        first.rpc_subscribe_actor(reply, aid, caller.loop.address)
        record = first.actors.actors[aid]
        first.actors._on_lease(record, first.nodes["n1"], True, (1, "ipc://w", b"w", [], {}, node["address"]))
        record.state = ALIVE  # written ...
        first.persist.actor(record)  # ... but never published: the GCS died here
        heard.clear()

        second = gcs_servers()
        second.loop.start_thread()
        wait_for_condition(lambda: heard == [(aid, ALIVE)], timeout=5)
    finally:
        caller.loop.stop()
        caller.loop.join(5)
