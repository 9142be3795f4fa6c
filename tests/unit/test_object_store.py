"""The node's object store and its arena allocator, without processes."""
import os

import pytest

from juno import exceptions as exc
from juno.store.allocator import PAGE, Allocator
from juno.store.object_store import ObjectStore


# ---------------------------------------------------------------------------- allocator

def test_allocations_are_page_aligned_and_do_not_overlap():
    a = Allocator(64 * PAGE)
    offsets = [a.allocate(n) for n in (1, PAGE, PAGE + 1, 3 * PAGE)]
    assert all(o % PAGE == 0 for o in offsets)
    spans = sorted(zip(offsets, (PAGE, PAGE, 2 * PAGE, 3 * PAGE)))
    for (o1, n1), (o2, _) in zip(spans, spans[1:]):
        assert o1 + n1 <= o2
    assert a.used == 7 * PAGE


def test_freed_neighbours_coalesce_so_a_big_object_fits_again():
    a = Allocator(4 * PAGE)
    offs = [a.allocate(PAGE) for _ in range(4)]
    assert a.allocate(PAGE) is None
    for o in (offs[1], offs[2], offs[0], offs[3]):
        a.free(o, PAGE)
    assert a.free_ranges() == [(0, 4 * PAGE)]
    assert a.allocate(4 * PAGE) == 0


def test_best_fit_reuses_the_same_range_for_the_same_size():
    a = Allocator(16 * PAGE)
    big = a.allocate(8 * PAGE)
    small = a.allocate(2 * PAGE)
    a.free(small, 2 * PAGE)
    # The 2-page hole left by ``small`` is the best fit, not the 6-page tail.
    assert a.allocate(2 * PAGE) == small
    assert big == 0


def test_double_free_is_refused():
    a = Allocator(8 * PAGE)
    o = a.allocate(PAGE)
    a.free(o, PAGE)
    with pytest.raises(ValueError):
        a.free(o, PAGE)


# ---------------------------------------------------------------------------- store

def oid(i: int) -> bytes:
    return bytes([i]) * 20


def write(store, i, size=2 * PAGE, who="w"):
    loc = store.create(oid(i), size, who)
    assert loc[0] == "arena"
    _, offset, n = loc
    store._view[offset: offset + n] = bytes([i]) * n
    store.seal(oid(i))
    return offset


def read(store, i, who="r"):
    loc = store.pin(oid(i), who)
    if loc[0] == "arena":
        data = bytes(store._view[loc[1]: loc[1] + loc[2]])
    else:
        with open(loc[1], "rb") as f:
            data = f.read()
    store.unpin(oid(i), who)
    return data


def test_create_seal_pin_read(store):
    write(store, 1)
    assert read(store, 1) == bytes([1]) * 2 * PAGE
    assert store.info(oid(1))["state"] == "SEALED"


def test_pin_of_unsealed_object_waits_for_seal(store):
    store.create(oid(1), PAGE, "w")
    sealed = []
    assert store.pin(oid(1), "r", on_sealed=lambda: sealed.append(1)) == ("pending",)
    store.seal(oid(1))
    assert sealed == [1]


def test_delete_waits_for_pins(store):
    write(store, 1)
    store.pin(oid(1), "r")
    store.delete(oid(1))
    assert store.info(oid(1))["deleted"] is True
    assert store.allocator.used == 2 * PAGE
    store.unpin(oid(1), "r")
    assert store.info(oid(1)) is None and store.allocator.used == 0


def test_full_arena_spills_least_recently_used_and_restores_on_read(store):
    for i in range(4):
        write(store, i)           # fills the 8 pages
    read(store, 0)                # 0 becomes the most recently used
    write(store, 4)               # needs room: 1 (least recently used) goes to disk
    assert store.info(oid(1))["where"] == "disk"
    assert store.info(oid(0))["where"] == "shared_memory"
    assert store.num_spilled == 1
    assert read(store, 1) == bytes([1]) * 2 * PAGE   # restored, spilling another
    assert store.info(oid(1))["where"] == "shared_memory"
    assert store.num_restored == 1
    for i in range(5):
        assert read(store, i) == bytes([i]) * 2 * PAGE


def test_pinned_objects_are_never_spilled(store):
    for i in range(4):
        write(store, i)
        store.pin(oid(i), "task")
    loc = store.create(oid(9), 2 * PAGE, "w")
    assert loc[0] == "file"  # nothing could move: the new object goes to disk instead
    for i in range(4):
        assert store.info(oid(i))["where"] == "shared_memory"


def test_object_bigger_than_the_arena_goes_to_disk(store):
    loc = store.create(oid(1), 100 * PAGE, "w")
    assert loc[0] == "file" and os.path.getsize(loc[1]) == 100 * PAGE
    store.seal(oid(1))
    store.delete(oid(1))
    assert not os.path.exists(loc[1]) and store.disk_bytes == 0


def test_full_when_disk_budget_is_exhausted_too(tmp_path):
    s = ObjectStore(str(tmp_path / "shm"), 4 * PAGE, spill_dir=str(tmp_path / "spill"), spill_limit_bytes=4 * PAGE)
    try:
        write(s, 1, 4 * PAGE)
        s.pin(oid(1), "task")
        s.create(oid(2), 4 * PAGE, "w")          # fallback to disk: fits the budget
        with pytest.raises(exc.ObjectStoreFullError, match="object_store_memory"):
            s.create(oid(3), 4 * PAGE, "w")
    finally:
        s.close()


def test_a_dead_process_releases_its_pins_writes_and_objects(store):
    write(store, 1, who="owner")
    store.pin(oid(1), "reader")
    store.create(oid(2), PAGE, "writer")        # never sealed
    store.create(oid(3), PAGE, "w2", owner="owner")
    store.seal(oid(3))
    store.release_holder("reader")
    store.release_holder("writer")
    assert store.info(oid(2)) is None
    assert store.info(oid(1))["pinned_by"] == 0
    store.release_holder("owner")              # its objects go with it
    assert store.info(oid(1)) is None and store.info(oid(3)) is None
    assert store.allocator.used == 0
