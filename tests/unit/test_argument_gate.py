"""ArgumentGate: an actor call waits for its ObjectRef arguments without holding other callers."""
from __future__ import annotations

from juno.owner import task_spec as ts
from juno.worker.argument_gate import ArgumentGate


def call(name: str, caller: str, *waits_for: str) -> tuple:
    deps = [("r", oid.encode(), "owner") for oid in waits_for]
    return ts.make_spec(task_id=name.encode(), kind=ts.KIND_ACTOR_CALL, owner=caller, deps=deps)


class Harness:
    def __init__(self, ordered: bool = True):
        self.released: list[str] = []
        self.waiting: dict[bytes, list] = {}  # object id -> callbacks
        self.local: set[bytes] = set()
        self.gate = ArgumentGate(self.wait_for, lambda spec, pins: self.released.append(spec[ts.TASK_ID].decode()))
        self.gate.ordered = ordered

    def wait_for(self, deps, done):
        missing = [d[1] for d in deps if d[1] not in self.local]
        if not missing:
            done("pins")
            return
        remaining = [len(missing)]

        def one_ready():
            remaining[0] -= 1
            if remaining[0] == 0:
                done("pins")

        for oid in missing:
            self.waiting.setdefault(oid, []).append(one_ready)

    def arrive(self, oid: str) -> None:
        self.local.add(oid.encode())
        for cb in self.waiting.pop(oid.encode(), []):
            cb()


def test_calls_without_pending_arguments_run_at_once():
    h = Harness()
    h.gate.submit(call("a1", "A"))
    h.gate.submit(call("b1", "B"))
    assert h.released == ["a1", "b1"]


def test_a_pending_argument_holds_only_its_own_callers_later_calls():
    h = Harness()
    h.gate.submit(call("a1", "A", "x"))
    h.gate.submit(call("a2", "A"))
    h.gate.submit(call("b1", "B"))
    assert h.released == ["b1"]
    h.arrive("x")
    assert h.released == ["b1", "a1", "a2"]
    h.gate.submit(call("a3", "A"))  # nothing held any more: straight through
    assert h.released == ["b1", "a1", "a2", "a3"]


def test_order_within_a_caller_when_arguments_arrive_out_of_order():
    h = Harness()
    h.gate.submit(call("a1", "A", "x"))
    h.gate.submit(call("a2", "A", "y"))
    h.arrive("y")
    assert h.released == []
    h.arrive("x")
    assert h.released == ["a1", "a2"]


def test_unordered_actors_run_each_call_when_its_own_arguments_are_here():
    h = Harness(ordered=False)
    h.gate.submit(call("a1", "A", "x"))
    h.gate.submit(call("a2", "A"))
    h.gate.submit(call("a3", "A", "y"))
    h.arrive("y")
    assert h.released == ["a2", "a3"]
    h.arrive("x")
    assert h.released == ["a2", "a3", "a1"]


def test_cancelling_a_held_call_releases_the_calls_behind_it():
    h = Harness()
    h.gate.submit(call("a1", "A", "x"))
    h.gate.submit(call("a2", "A"))
    assert h.gate.cancel(b"a1")[ts.TASK_ID] == b"a1"
    assert h.released == ["a2"]
    h.arrive("x")  # its argument arrives after all: it stays cancelled
    assert h.released == ["a2"]
    assert h.gate.cancel(b"a2") is None
