"""The object store's side of transfers between nodes, without processes: secondary copies
written chunk by chunk, sealed for waiting readers, dropped before primaries are spilled,
and the free callback the transfer layer uses to forward deletes."""
import pytest

from juno.store.allocator import PAGE


def _oid(i: int) -> bytes:
    return bytes([i]) * 20


def _put(store, i: int, size: int, secondary: bool = False) -> None:
    store.create(_oid(i), size, "writer", secondary=secondary)
    store.write_chunk(_oid(i), 0, bytes([i]) * size)
    store.seal(_oid(i))


def test_a_copy_written_in_chunks_reads_back_and_is_pinned_for_waiting_readers(store):
    oid = _oid(1)
    store.create(oid, 3 * PAGE, "pull:A", secondary=True)
    for k in range(3):
        assert store.write_chunk(oid, k * PAGE, bytes([k + 1]) * PAGE)
    assert store.chunk(oid, 0, PAGE) is None  # not readable before it is sealed
    location = store.seal(oid, pin_for=["reader-1", "reader-2"])
    assert location[0] == "arena" and location[2] == 3 * PAGE
    assert bytes(store.chunk(oid, PAGE, 2)) == b"\x02\x02"
    assert store.info(oid)["pinned_by"] == 2 and store.info(oid)["secondary"]
    store.create(_oid(2), PAGE, "pull:A", secondary=True)
    with pytest.raises(ValueError, match="past the end"):
        store.write_chunk(_oid(2), PAGE - 1, b"xy")


def test_copies_are_dropped_before_any_primary_is_spilled(store):
    _put(store, 1, 3 * PAGE)                    # primary, least recently used
    _put(store, 2, 3 * PAGE, secondary=True)    # a copy of another node's object
    _put(store, 3, 3 * PAGE)                    # needs room: the copy goes, the primary stays
    assert _oid(2) not in store.entries and store.num_copies_evicted == 1
    assert store.num_spilled == 0 and store.info(_oid(1))["where"] == "shared_memory"
    _put(store, 4, 3 * PAGE)                    # no copies left: now a primary is spilled
    assert store.num_spilled == 1


def test_a_pinned_copy_is_not_dropped(store):
    _put(store, 2, 6 * PAGE, secondary=True)
    assert store.pin(_oid(2), "reader") is not None
    _put(store, 3, 3 * PAGE)                    # no room in the arena: goes to disk instead
    assert _oid(2) in store.entries and store.info(_oid(3))["where"] == "disk"


def test_free_callback_sees_deletes_and_aborted_pulls(store):
    freed = []
    store.on_free = freed.append
    _put(store, 1, PAGE)
    store.pin(_oid(1), "reader")
    store.delete(_oid(1))
    assert freed == []                          # still read by someone
    store.unpin(_oid(1), "reader")
    assert freed == [_oid(1)]
    store.create(_oid(2), PAGE, "pull:A", secondary=True)
    store.abort(_oid(2))
    assert freed == [_oid(1), _oid(2)] and store.allocator.used == 0


def test_sealing_a_copy_freed_while_it_was_written_reports_it_gone(store):
    store.create(_oid(1), PAGE, "pull:A", secondary=True)
    store.delete(_oid(1))                       # the owner freed it meanwhile
    assert store.seal(_oid(1)) is None and _oid(1) not in store.entries


def test_an_object_written_here_replaces_a_stale_unread_copy(store):
    _put(store, 1, PAGE, secondary=True)
    _put(store, 1, PAGE)                        # rebuilt here after its primary's node died
    assert not store.info(_oid(1))["secondary"]
    _put(store, 2, PAGE, secondary=True)
    store.pin(_oid(2), "reader")
    with pytest.raises(ValueError, match="already exists"):
        store.create(_oid(2), PAGE, "writer")   # a copy someone still reads is never replaced
