"""Every connection opens with a version handshake (transport.HELLO): a process of another Juno
version is refused on both sides, over ipc and tcp, and processes of one version talk as before.

Real event loops in this process on real sockets (ipc under tmp_path, tcp on loopback). "Another
version" is the documented test-only hook $JUNO_TEST_ANNOUNCE_VERSION, read when a loop is made,
or a raw ZeroMQ socket that speaks the handshake with a protocol version of its own."""
from __future__ import annotations

import logging
import pickle
import time

import pytest
import zmq

from helpers import wait_for_condition
from juno.comm import auth
from juno.comm.rpc import RpcNode
from juno.comm.transport import (ANNOUNCE_VERSION_ENV, HELLO, HELLO_ANSWER, PROTOCOL_VERSION, EventLoop,
                                 VersionMismatchError, juno_version)

TOKEN = "t" * 32


class Node(RpcNode):
    """A process's loop: answers ``add`` and records ``note`` messages and refusals it hears of."""

    def __init__(self, bind: str, name: str):
        self.notes: list = []
        self.refusals: list = []
        self.install_rpc(EventLoop(bind, name=name, token=TOKEN,
                                   on_refused=lambda address, error: self.refusals.append((address, error))))
        self.loop.serve({"note": self.notes.append})
        self.loop.start_thread()

    def rpc_add(self, reply, a, b):
        return a + b

    def send(self, address: str, msg: tuple) -> None:
        self.loop.call_soon(self.loop.send, address, msg)

    def close(self) -> None:
        self.close_direct_sockets()
        self.loop.stop()
        self.loop.join(5)


def bind_address(kind: str, tmp_path, name: str) -> str:
    return f"ipc://{tmp_path}/{name}.sock" if kind == "ipc" else "tcp://127.0.0.1:0"


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    made: list[Node] = []

    def make(kind: str, name: str, version: str | None = None) -> Node:
        if version is None:
            monkeypatch.delenv(ANNOUNCE_VERSION_ENV, raising=False)
        else:
            monkeypatch.setenv(ANNOUNCE_VERSION_ENV, version)
        node = Node(bind_address(kind, tmp_path, name), name)
        monkeypatch.delenv(ANNOUNCE_VERSION_ENV, raising=False)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


@pytest.mark.parametrize("kind", ["ipc", "tcp"])
def test_the_same_version_talks(nodes, kind):
    server, client = nodes(kind, "server"), nodes(kind, "client")
    client.send(server.loop.address, ("note", "hello there"))
    wait_for_condition(lambda: server.notes == ["hello there"], timeout=10)
    assert client.call_sync(server.loop.address, "add", 2, 3, timeout=10) == 5
    assert client.call_direct(server.loop.address, "add", 4, 5, timeout=10) == 9
    wait_for_condition(lambda: not client.loop._unanswered, timeout=10)  # the handshake was answered
    assert client.refusals == [] and server.refusals == []


@pytest.mark.parametrize("kind", ["ipc", "tcp"])
def test_another_version_is_refused_on_both_sides(nodes, kind, caplog):
    server = nodes(kind, "server")
    client = nodes(kind, "client", version="9.9.9")
    mine = juno_version()
    with caplog.at_level(logging.WARNING, logger="juno.comm"):
        client.send(server.loop.address, ("note", "from another release"))
        wait_for_condition(lambda: client.refusals, timeout=10)
        address, error = client.refusals[0]
        assert address == server.loop.address and isinstance(error, VersionMismatchError)
        message = str(error)
        assert f"runs Juno {mine} (protocol {PROTOCOL_VERSION})" in message  # the server's version...
        assert f"this process runs Juno 9.9.9 (protocol {PROTOCOL_VERSION})" in message  # ... and ours
        assert "use the same Juno version on every node and driver" in message
        # The listener logged the refusal once, naming both versions; what the peer sent was dropped.
        wait_for_condition(lambda: any("refused a connection" in r.getMessage() for r in caplog.records),
                           timeout=10)
        refused = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
        assert len(refused) == 1 and "server: refused a connection from" in refused[0]
        assert f"it runs Juno 9.9.9 (protocol {PROTOCOL_VERSION}) and this process runs Juno {mine}" in refused[0]
    time.sleep(0.2)
    assert server.notes == []
    # A blocking call over the thread's own connection fails at once, with the same message.
    start = time.monotonic()
    with pytest.raises(VersionMismatchError, match="use the same Juno version"):
        client.call_direct(server.loop.address, "add", 1, 2, timeout=30)
    assert time.monotonic() - start < 5


def test_a_raw_socket_with_another_protocol_is_refused_and_ignored(nodes):
    server = nodes("tcp", "server")
    keys = auth.curve_keys(TOKEN)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        auth.configure_client(sock, keys)
        sock.connect(server.loop.address)
        sock.send(pickle.dumps((HELLO, PROTOCOL_VERSION + 1, juno_version(), "raw", "tcp://elsewhere:1"), 2))
        sock.send(pickle.dumps(("note", "must not arrive"), 2))
        assert sock.poll(10_000), "the listener must answer the handshake"
        answer = pickle.loads(sock.recv())
        assert answer[:3] == (HELLO_ANSWER, PROTOCOL_VERSION, juno_version()) and answer[-1] is False
        time.sleep(0.2)
        assert server.notes == [] and server.loop._drops.counts["refused-version"] == 1
    finally:
        sock.close(linger=0)
        ctx.term()
