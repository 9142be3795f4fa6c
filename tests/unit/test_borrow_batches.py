"""Borrow bookkeeping in batches (runtime/owner/reference_counter.py): the refs one get unpickles,
the borrowed refs dropped together, one borrower's updates at its owner; all without processes."""
import threading

from juno.object_ref import ObjectRef
from juno.owner.reference_counter import UNBORROW, ReferenceCounter

ME, OWNER, OTHER = "ipc:///me", "ipc:///owner", "ipc:///other"


def borrower():
    scheduled = []
    rc = ReferenceCounter(ME, lambda oid: None, on_pending=lambda: scheduled.append(1))
    return rc, scheduled


def refs(*pairs):
    return [ObjectRef(oid, owner, _count=False) for oid, owner in pairs]


def test_a_batch_counts_each_ref_and_registers_each_object_once_per_owner():
    rc, scheduled = borrower()
    rc.add_borrowed_refs(refs((b"a", OWNER), (b"b", OWNER), (b"a", OWNER), (b"c", OTHER)), [0, 0, 0, 0])
    assert rc.local_count(b"a") == 2 and rc.owner_of(b"c") == OTHER
    assert rc.take_borrow_updates() == {OWNER: ([b"a", b"b"], [0, 0]), OTHER: ([b"c"], [0])}
    assert scheduled == [1], "one flush for the whole batch"
    rc.add_borrowed_refs(refs((b"a", OWNER)), [0])
    assert rc.take_borrow_updates() == {}, "held already: nothing to tell"
    rc.add_borrowed_refs(refs((b"a", OWNER)), [1])
    assert rc.take_borrow_updates() == {OWNER: ([b"a"], [1])}, "but an in-transit claim is passed on"


def test_a_batch_redeems_claims_on_refs_this_process_owns():
    rc, _ = borrower()
    rc.add_owned(b"mine")
    rc.add_in_transit([b"mine"])
    rc.add_borrowed_refs(refs((b"mine", ME)), [1])
    assert rc.snapshot()[b"mine"][3] is False, "the in-transit hold is redeemed"
    assert rc.take_borrow_updates() == {}


def test_dropped_refs_are_applied_in_order_and_released_in_one_update():
    rc, scheduled = borrower()
    rc.add_borrowed_refs(refs((b"a", OWNER), (b"b", OWNER), (b"b", OWNER)), [0, 0, 0])
    rc.take_borrow_updates()
    scheduled.clear()
    for oid in (b"a", b"b", b"b"):
        rc.remove_local_later(oid)
    assert scheduled == [1] and rc.local_count(b"a") == 1, "queued until the flush applies them"
    assert rc.take_borrow_updates() == {OWNER: ([b"a", b"b"], [UNBORROW, UNBORROW])}
    assert rc.take_released() == [b"a", b"b"] and rc.owner_of(b"a") is None


def test_a_ref_borrowed_again_before_its_drop_is_applied_stays_borrowed():
    rc, _ = borrower()
    rc.add_borrowed_refs(refs((b"a", OWNER)), [0])
    rc.take_borrow_updates()
    rc.remove_local_later(b"a")
    rc.add_borrowed_refs(refs((b"a", OWNER)), [0])  # a new copy while the drop waits
    assert rc.take_borrow_updates() == {} and rc.owner_of(b"a") == OWNER


def test_a_release_and_a_new_borrow_reach_the_owner_in_that_order():
    rc, _ = borrower()
    rc.add_borrowed_refs(refs((b"a", OWNER)), [0])
    rc.take_borrow_updates()
    rc.remove_local_later(b"a")
    rc.apply_drops()
    rc.add_borrowed_refs(refs((b"a", OWNER)), [1])
    updates = rc.take_borrow_updates()
    assert updates == {OWNER: ([b"a", b"a"], [UNBORROW, 1])}
    owner = ReferenceCounter(OWNER, lambda oid: None)
    owner.add_owned(b"a")
    owner.add_local(b"a", OWNER)
    owner.add_in_transit([b"a"])
    owner.add_borrower(b"a", ME)
    owner.update_borrowers(*updates[OWNER], ME)
    assert owner.borrowers_of(b"a") == {ME}, "the later borrow wins"
    owner.remove_local(b"a")
    assert owner.owns(b"a")


def test_the_owner_applies_one_borrowers_updates_in_order():
    freed = []
    owner = ReferenceCounter(OWNER, freed.append)
    for oid in (b"a", b"b"):
        owner.add_owned(oid)
        owner.add_in_transit([oid])
    owner.update_borrowers([b"a", b"b", b"a"], [1, 1, UNBORROW], ME)
    assert owner.borrowers_of(b"b") == {ME} and freed == [b"a"]
    owner.update_borrowers([b"b", b"gone"], [UNBORROW, 0], ME)
    assert freed == [b"a", b"b"] and owner.borrowers_of(b"gone") == set()


def test_deferred_updates_wait_for_their_thread_and_queue_after_earlier_ones():
    rc, scheduled = borrower()
    rc.add_borrowed_refs(refs((b"early", OWNER)), [0])
    outer = rc.defer_borrow_updates()
    rc.add_borrowed_refs(refs((b"a", OWNER), (b"c", OTHER)), [1, 1])
    seen = []
    t = threading.Thread(target=lambda: seen.append(rc.take_borrow_updates()))
    t.start()
    t.join(10)
    assert seen == [{OWNER: ([b"early"], [0])}], "another thread's flush doesn't take them"
    rc.undefer_borrow_updates(outer)
    assert rc.take_borrow_updates(keep_owner=OTHER) == {OWNER: ([b"a"], [1])}
    assert rc.take_borrow_updates() == {OTHER: ([b"c"], [1])}, "kept for the next flush"
    assert len(scheduled) == 3


def test_without_a_scheduler_drops_apply_at_once():
    rc = ReferenceCounter(ME, lambda oid: None)
    rc.note_borrowed(b"a", OWNER)
    rc.add_local(b"a", OWNER)
    rc.remove_local_later(b"a")
    assert rc.take_released() == [b"a"]


class _Worker:
    """What unpickling a ref needs of the core worker: its address and its counts."""

    def __init__(self):
        self.address = ME
        self.refs, self.scheduled = borrower()


def test_refs_unpickled_in_a_batch_are_counted_when_it_closes_and_released_in_one_pass():
    import pickle

    from juno import object_ref

    cw = _Worker()
    blob = pickle.dumps([ObjectRef(bytes([i]) * 4, OWNER, _count=False) for i in range(100)])
    object_ref.set_worker(cw)
    try:
        outer = object_ref.batch.open()
        values = pickle.loads(blob)
        inner = object_ref.batch.open()  # a nested batch counts its own refs
        one = pickle.loads(pickle.dumps(ObjectRef(b"solo", OWNER, _count=False)))
        object_ref.batch.close(inner, cw.refs)
        assert cw.refs.local_count(b"solo") == 1 and cw.refs.local_count(b"\0" * 4) == 0
        object_ref.batch.close(outer, cw.refs)
        assert cw.refs.local_count(b"\0" * 4) == 1
        assert cw.refs.take_borrow_updates()[OWNER][0] == [b"solo"] + [bytes([i]) * 4 for i in range(100)]
        del values, one, inner  # (inner: the outer batch, refs and all, as open() handed it back)
        cw.refs.apply_drops()
        updates = cw.refs.take_borrow_updates()
        assert updates[OWNER][1] == [UNBORROW] * 101 and cw.refs.local_count(b"\0" * 4) == 0
    finally:
        object_ref.set_worker(None)
