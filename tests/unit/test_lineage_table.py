"""Lineage bookkeeping (runtime/owner/object_recovery.py) and the GCS's process directory
(runtime/gcs/process_directory.py): pure logic, no processes."""
from __future__ import annotations

from juno import ids
from juno.owner import task_spec as ts
from juno.gcs.process_directory import ProcessDirectory
from juno.owner.object_recovery import KIND_ACTOR, LineageTable, is_put_object


def _spec(task_id: bytes, args_bytes: int = 10) -> tuple:
    return ts.make_spec(task_id=task_id, name="f", args=("v", b"x" * args_bytes), deps=[])


def _task(n: int) -> bytes:
    return n.to_bytes(16, "little")


def test_entry_lives_while_a_result_is_owned_and_unpins_its_arguments_when_it_goes():
    unpinned = []
    table = LineageTable(1 << 20, unpinned.extend)
    t = _task(1)
    r1, r2 = ids.object_id(t, 1), ids.object_id(t, 2)
    assert table.record(t, _spec(t), "key", [r1, r2], {r1, r2}, 3, [b"arg"])
    table.object_freed(r1)
    assert table.get(t) is not None and unpinned == []
    table.object_freed(r2)
    assert table.get(t) is None and unpinned == [b"arg"]
    assert not table.was_evicted(t) and len(table) == 0 and table.bytes == 0


def test_a_rerun_updates_retries_without_pinning_again():
    unpinned = []
    table = LineageTable(1 << 20, unpinned.extend)
    t = _task(2)
    r = ids.object_id(t, 1)
    assert table.record(t, _spec(t), "key", [r], {r}, 3, [b"arg"])
    assert not table.record(t, _spec(t), "key", [r], {r}, 2, [b"arg"])
    assert table.get(t).retries_left == 2
    table.object_freed(r)
    assert unpinned == [b"arg"]  # released once, as taken once


def test_budget_evicts_oldest_first_and_remembers_them():
    unpinned = []
    table = LineageTable(3000, unpinned.extend)
    tasks = [_task(10 + i) for i in range(3)]
    for i, t in enumerate(tasks):
        r = ids.object_id(t, 1)
        table.record(t, _spec(t, args_bytes=1000), "key", [r], {r}, 1, [bytes([i])])
    assert table.bytes <= 3000
    assert table.get(tasks[0]) is None and table.was_evicted(tasks[0])
    assert table.get(tasks[2]) is not None
    assert unpinned[0] == bytes([0])


def test_markers_and_nothing_live():
    table = LineageTable(1 << 20, lambda _: None)
    t = _task(20)
    r = ids.object_id(t, 1)
    assert not table.record(t, _spec(t), "key", [r], set(), 3, [])  # nothing owned: nothing kept
    assert table.record(t, None, None, [r], {r}, 0, [], KIND_ACTOR)
    assert table.get(t).kind == KIND_ACTOR


def test_put_objects_have_no_lineage():
    t = _task(30)
    assert is_put_object(t + b"\xff\xff\xff\xff")
    assert not is_put_object(ids.object_id(t, 1))


def test_process_directory_tracks_nodes_and_deaths():
    d = ProcessDirectory(max_dead=2)
    d.started("ipc://a", "n1", "driver")
    d.started("ipc://b", "n1")
    d.started("ipc://c", "n2")
    assert d.node_of("ipc://a") == "n1" and d.kind_of("ipc://a") == "driver"
    assert sorted(d.node_died("n1")) == [("ipc://a", "driver"), ("ipc://b", "worker")]
    assert d.is_dead("ipc://a") and d.live() == ["ipc://c"]
    assert d.died("ipc://c") == ("n2", "worker")
    assert d.died("ipc://c") is None
    assert not d.is_dead("ipc://a")  # only the last max_dead deaths are remembered
