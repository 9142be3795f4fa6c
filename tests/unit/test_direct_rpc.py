"""call_direct / notify_direct: a thread's own connection to a peer, answered on that connection
(transport.DirectSocket, rpc.Reply with reply_to DIRECT_REPLY). Two event loops in this process on
ipc sockets under tmp_path; the server's loop runs on its thread, the caller is the test's thread."""
from __future__ import annotations

import threading

import pytest

from juno.comm.rpc import DEFER, RpcNode
from juno.comm.transport import EventLoop


class Server(RpcNode):
    def __init__(self, loop: EventLoop):
        self.install_rpc(loop)
        self.seen: list = []

    def rpc_add(self, reply, a, b):
        self.seen.append(("add", a, b))
        return a + b

    def rpc_fail(self, reply):
        raise KeyError("no such thing")

    def rpc_later(self, reply, delay, value):
        self.loop.call_later(delay, reply.send, value)
        return DEFER

    def rpc_note(self, reply, value):
        self.seen.append(("note", value))


class Caller(RpcNode):
    def __init__(self, loop: EventLoop):
        self.install_rpc(loop)


@pytest.fixture
def pair(tmp_path):
    server_loop = EventLoop(f"ipc://{tmp_path}/server.sock", name="server")
    server = Server(server_loop)
    server_loop.start_thread()
    caller_loop = EventLoop(f"ipc://{tmp_path}/caller.sock", name="caller")
    caller = Caller(caller_loop)
    try:
        yield server, caller
    finally:
        caller.close_direct_sockets()
        caller_loop._close_sockets()
        server_loop.stop()
        server_loop.join(timeout=5)


def test_a_direct_call_is_answered_on_the_callers_connection(pair):
    server, caller = pair
    assert caller.call_direct(server.loop.address, "add", 2, 3, timeout=10) == 5
    assert caller.loop._peers == {}, "the answer came back without the caller's own loop"
    with pytest.raises(KeyError, match="no such thing"):
        caller.call_direct(server.loop.address, "fail", timeout=10)


def test_a_deferred_answer_comes_back_on_the_same_connection(pair):
    server, caller = pair
    assert caller.call_direct(server.loop.address, "later", 0.2, "done", timeout=10) == "done"


def test_a_late_answer_to_a_timed_out_call_is_not_taken_for_the_next_one(pair):
    server, caller = pair
    with pytest.raises(TimeoutError, match="did not answer 'later'"):
        caller.call_direct(server.loop.address, "later", 0.5, "stale", timeout=0.1)
    assert caller.call_direct(server.loop.address, "later", 0.8, "fresh", timeout=10) == "fresh"


def test_notifications_arrive_before_the_call_that_follows_them(pair):
    server, caller = pair
    for i in range(50):
        caller.notify_direct(server.loop.address, "note", i)
    caller.call_direct(server.loop.address, "add", 0, 0, timeout=10)
    assert server.seen == [("note", i) for i in range(50)] + [("add", 0, 0)]


def test_each_thread_has_its_own_connection(pair):
    server, caller = pair
    results: dict[int, int] = {}

    def work(k: int) -> None:
        results[k] = sum(caller.call_direct(server.loop.address, "add", k, i, timeout=10) for i in range(100))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == {k: 100 * k + sum(range(100)) for k in range(4)}


def test_sends_from_any_thread_share_the_loops_connection_in_order(pair):
    # send_threadsafe: threads and the loop's own thread send on one connection to the peer, so
    # each sender's messages arrive in its order, and nothing is lost (the first one of the
    # threads opens the connection itself).
    server, caller = pair
    caller.loop.start_thread()
    address = server.loop.address

    def from_thread(t):
        for i in range(200):
            caller.notify_any_thread(address, "note", (t, i))

    def from_loop():
        for i in range(200):
            caller.notify(address, "note", ("loop", i))

    threads = [threading.Thread(target=from_thread, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    caller.loop.call_soon(from_loop)
    for th in threads:
        th.join(30)
    assert caller.call_sync(address, "add", 0, 0, timeout=10) == 0
    notes = [value for kind, *value in server.seen if kind == "note"]
    for sender in (0, 1, 2, "loop"):
        assert [i for (s, i), in notes if s == sender] == list(range(200))
    assert list(caller.loop._peers) == [address], "one connection, shared"
    caller.loop.stop()
    caller.loop.join(timeout=5)
