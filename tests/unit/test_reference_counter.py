"""Owner-side reference counting, without processes."""
from juno.object_ref import ObjectRef
from juno.owner.reference_counter import UNBORROW, ReferenceCounter

ME = "ipc:///me"


def make():
    freed = []
    rc = ReferenceCounter(ME, freed.append)
    return rc, freed


def sent(rc) -> list[tuple]:
    """What the borrower tells its owners now, as (owner, object id, claims or UNBORROW)."""
    return [(owner, oid, claim) for owner, (oids, claims) in rc.take_borrow_updates().items()
            for oid, claim in zip(oids, claims)]


def test_owned_object_is_freed_when_the_last_local_ref_goes():
    rc, freed = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_local(b"a", ME)
    rc.remove_local(b"a")
    assert freed == []
    rc.remove_local(b"a")
    assert freed == [b"a"]
    assert not rc.owns(b"a")


def test_pending_task_keeps_its_argument_alive():
    rc, freed = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_submitted([b"a"])
    rc.remove_local(b"a")
    assert freed == []
    rc.remove_submitted([b"a"])
    assert freed == [b"a"]


def test_borrowed_copy_is_released_not_freed():
    rc, freed = make()
    rc.note_borrowed(b"b", "ipc:///other")
    rc.add_local(b"b", "ipc:///other")
    rc.remove_local(b"b")
    assert freed == [] and rc.take_released() == [b"b"]


def test_unknown_ids_are_ignored():
    rc, freed = make()
    rc.add_local(b"z", ME)
    rc.remove_local(b"z")
    rc.remove_submitted([b"z"])
    assert freed == [] and rc.take_released() == [] and sent(rc) == []


def test_borrowers_keep_an_owned_object_alive():
    rc, freed = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_borrower(b"a", "ipc:///b1")
    rc.add_borrower(b"a", "ipc:///b2")
    rc.remove_local(b"a")
    rc.remove_borrower(b"a", "ipc:///b1")
    assert freed == []
    rc.remove_borrower(b"a", "ipc:///b2")
    assert freed == [b"a"]


def test_in_transit_hold_lasts_until_the_receiver_claims_it():
    rc, freed = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_in_transit([b"a"])          # serialized into a task result
    rc.remove_local(b"a")              # the task's own variable is gone
    assert freed == []
    rc.add_borrower(b"a", "ipc:///driver", claims=1)
    assert freed == [] and rc.borrowers_of(b"a") == {"ipc:///driver"}
    rc.remove_borrower(b"a", "ipc:///driver")
    assert freed == [b"a"]


def test_a_value_keeps_the_refs_inside_it_alive():
    rc, freed = make()
    for oid in (b"in", b"out"):
        rc.add_owned(oid)
        rc.add_local(oid, ME)
    rc.add_captured(b"out", [b"in"])
    rc.remove_local(b"in")
    assert freed == []
    rc.remove_local(b"out")
    assert sorted(freed) == [b"in", b"out"]


def test_borrower_registers_once_and_unregisters_when_done():
    rc, _ = make()
    owner = "ipc:///owner"
    rc.add_local(b"x", owner)
    rc.note_borrowed(b"x", owner)
    rc.add_local(b"x", owner)
    rc.note_borrowed(b"x", owner)            # a second copy: no new registration
    rc.note_borrowed(b"x", owner, claims=1)  # but an in-transit claim is passed on
    assert sent(rc) == [(owner, b"x", 0), (owner, b"x", 1)]
    rc.remove_local(b"x")
    rc.remove_local(b"x")
    assert rc.take_released() == [b"x"] and sent(rc) == [(owner, b"x", UNBORROW)]


def test_a_dead_borrower_stops_counting_and_a_dead_owner_is_reported():
    rc, freed = make()
    rc.add_owned(b"a")
    rc.add_borrower(b"a", "ipc:///gone")
    rc.note_borrowed(b"theirs", "ipc:///gone")
    assert rc.remove_process("ipc:///gone") == [b"theirs"]
    assert freed == [b"a"]


def test_late_registration_for_a_freed_object_is_ignored():
    rc, freed = make()
    rc.add_borrower(b"never-owned", "ipc:///b")
    assert rc.borrowers_of(b"never-owned") == set() and freed == []


# ---- refs inside a task result: the result's owner borrows them while the result lives

OTHER = "ipc:///worker"


def result_with_refs(rc, outer=b"out"):
    rc.add_owned(outer)
    rc.add_local(outer, ME)
    rc.add_owned(b"mine")
    rc.add_in_transit([b"mine"])  # a ref this process passed to the task, returned in the result
    rc.adopt_contents(outer, [b"theirs", b"mine"], [OTHER, ME])


def test_a_result_borrows_its_refs_once_and_reads_of_it_borrow_nothing_more():
    rc, freed = make()
    result_with_refs(rc)
    assert sent(rc) == [(OTHER, b"theirs", 1)] and rc.owns(b"mine")
    for _ in range(2):  # each get of the result unpickles the refs again, and drops them
        refs = [ObjectRef(b"theirs", OTHER, _count=False), ObjectRef(b"mine", ME, _count=False)]
        rc.add_borrowed_refs(refs)
        rc.remove_local_later(b"theirs")
        rc.remove_local(b"mine")
    assert sent(rc) == [] and freed == []
    rc.remove_local(b"out")  # the result goes: so do the refs inside it
    assert sorted(freed) == [b"mine", b"out"] and sent(rc) == [(OTHER, b"theirs", UNBORROW)]


def test_a_result_stored_again_replaces_the_refs_of_the_one_before():
    rc, freed = make()
    result_with_refs(rc)
    assert sent(rc) == [(OTHER, b"theirs", 1)]
    rc.adopt_contents(b"out", [b"rebuilt"], [OTHER])  # a re-run made other objects
    assert sent(rc) == [(OTHER, b"theirs", UNBORROW), (OTHER, b"rebuilt", 1)] and freed == [b"mine"]
    rc.remove_local(b"out")
    assert sent(rc) == [(OTHER, b"rebuilt", UNBORROW)]


def test_a_result_nobody_holds_any_more_redeems_and_releases_its_refs_at_once():
    rc, freed = make()
    rc.add_owned(b"mine")
    rc.add_in_transit([b"mine"])
    rc.adopt_contents(b"gone", [b"theirs", b"mine"], [OTHER, ME])
    assert freed == [b"mine"]
    updates = rc.take_borrow_updates()
    assert updates == {OTHER: ([b"theirs", b"theirs"], [1, UNBORROW])}, "the hold is redeemed, then let go"
