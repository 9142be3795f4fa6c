"""The receive path (EventLoop.dispatch) survives any frame: random bytes, truncated and
mutated pickles, wrong shapes, unknown ops, wrong arity, a pickle whose unpickling raises
SystemExit. No process is started: a loop bound to an ipc socket in tmp_path, never run;
frames go straight to dispatch, as the loop's receive path hands them over."""
from __future__ import annotations

import pickle
import pickletools
import random
import warnings

import pytest

from juno.comm.rpc import RpcNode
from juno.comm.transport import EventLoop, MessageTooLargeError


class Exits:
    """Unpickling this raises SystemExit (what a hostile pickle could do to an unguarded loop)."""

    def __reduce__(self):
        import sys

        return (sys.exit, (3,))


class Adder(RpcNode):
    def __init__(self, loop: EventLoop):
        self.install_rpc(loop)
        self.calls: list = []
        loop.handlers["note"] = self.note

    def note(self, a, b):
        self.calls.append((a, b))

    def rpc_add(self, reply, a, b):
        return a + b


@pytest.fixture
def node(tmp_path):
    loop = EventLoop(f"ipc://{tmp_path}/fuzz.sock", name="fuzz", max_message_bytes=1 << 20)
    adder = Adder(loop)
    try:
        yield adder
    finally:
        loop._close_sockets()


def valid_frames() -> list[bytes]:
    return [pickle.dumps(m, 5) for m in (
        ("note", 1, 2),
        ("rpc", 7, None, "add", (1, 2)),
        ("rpc", 8, None, "add", ([1], [2])),
        ("rpc_reply", 3, True, {"x": b"y" * 50}),
    )]


def memo_bomb(frame: bytes) -> bool:
    """True if ``frame`` stores into the unpickler's memo at an index above 255 (PUT, LONG_BINPUT):
    CPython then grows its memo to twice that index at once, so a 30-byte frame can allocate
    gigabytes. Juno's senders never emit these opcodes (protocol 5 uses MEMOIZE); a member of the
    cluster is trusted not to (it could as well run code: see docs/cluster.md), so the fuzz leaves
    them out rather than eat this machine's memory."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickletools on garbage: invalid escape sequences
        try:
            for op, arg, _ in pickletools.genops(frame):
                if op.name in ("PUT", "LONG_BINPUT") and not (isinstance(arg, int) and arg < 256):
                    return True
        except Exception:  # noqa: BLE001 - the unpickler stops at the same point
            pass
    return False


def still_works(node: Adder) -> None:
    before = len(node.calls)
    assert node.loop.dispatch(pickle.dumps(("note", "ok", before), 5)) is True
    assert node.calls[-1] == ("ok", before)


def test_bad_shapes_unknown_ops_and_wrong_arity_are_dropped(node):
    loop = node.loop
    bad = [
        b"", b"\x00", b"not a pickle at all", b"\x80\x05",                       # not pickles
        pickle.dumps(("note", 1, 2), 5)[:-3],                                   # truncated
        pickle.dumps(["note", 1, 2]), pickle.dumps({"op": "note"}), pickle.dumps(42),
        pickle.dumps(None), pickle.dumps(()), pickle.dumps("note"), pickle.dumps(b"note"),  # wrong shapes
        pickle.dumps(("no_such_op", 1)), pickle.dumps(([1, 2], 3)),             # unknown / unhashable op
        pickle.dumps(("note",)), pickle.dumps(("note", 1, 2, 3)),               # wrong arity
        pickle.dumps(("rpc", 1)), pickle.dumps(("rpc", "x", None, 5, None)),    # rpc with nonsense
        pickle.dumps(("rpc_reply",)), pickle.dumps(("rpc_reply", 1)),
        pickle.dumps(Exits()),                                                  # unpickling raises SystemExit
        pickle.dumps(("note", Exits(), 1)),
    ]
    for frame in bad:
        assert loop.dispatch(frame) is False, frame
    # Garbage payload frames on a handler that takes none: a TypeError, dropped.
    assert loop.dispatch(pickle.dumps(("note", 1, 2)), [b"extra"]) is False
    counts = loop._drops.counts
    assert counts["undecodable"] >= 5 and counts["malformed"] >= 6 and counts["unknown-op"] >= 2
    assert counts["handler-failed"] >= 4
    assert node.calls == []
    still_works(node)


def test_a_reply_to_a_bogus_address_opens_no_socket(node):
    loop = node.loop
    for reply_to in ("not-an-address", 12345, ["ipc://x"], "udp://1.2.3.4:5"):
        assert loop.dispatch(pickle.dumps(("rpc", 1, reply_to, "add", (1, 2)))) is False
    assert loop._peers == {}
    still_works(node)


@pytest.mark.parametrize("seed", range(4))
def test_random_and_mutated_frames_never_escape(node, seed):
    rng = random.Random(seed)
    loop = node.loop
    seeds = valid_frames()
    for i in range(1500):
        kind = i % 3
        if kind == 0:
            frame = rng.randbytes(rng.randrange(0, 200))
        else:
            frame = bytearray(rng.choice(seeds))
            if kind == 1:
                for _ in range(rng.randrange(1, 6)):  # flip, insert or delete a few bytes
                    pos = rng.randrange(len(frame))
                    op = rng.randrange(3)
                    if op == 0:
                        frame[pos] = rng.randrange(256)
                    elif op == 1:
                        frame.insert(pos, rng.randrange(256))
                    elif len(frame) > 1:
                        del frame[pos]
            else:
                frame = frame[: rng.randrange(len(frame))]  # truncated
            frame = bytes(frame)
        if memo_bomb(frame):
            continue
        loop.dispatch(frame)  # must not raise, whatever it returns
    # Mutated rpc messages may name a reply address: none is anything but ipc:// or tcp://.
    assert all(a.startswith(("ipc://", "tcp://")) for a in loop._peers)
    still_works(node)


def test_senders_refuse_messages_the_receivers_would_refuse(node):
    loop = node.loop
    with pytest.raises(MessageTooLargeError, match="max_message_bytes"):
        loop.send(loop.address, ("note", b"x" * (2 << 20), 0))
    got = []
    node.call(loop.address, "add", b"x" * (2 << 20), b"", callback=lambda ok, value: got.append((ok, value)))
    assert len(got) == 1 and got[0][0] is False and isinstance(got[0][1], MessageTooLargeError)
