"""Owner-side reference counting, without processes."""
from juno.reference_counter import ReferenceCounter

ME = "ipc:///me"


def make():
    freed, released = [], []
    return ReferenceCounter(ME, freed.append, released.append), freed, released


def test_owned_object_is_freed_when_the_last_local_ref_goes():
    rc, freed, _ = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_local(b"a", ME)
    rc.remove_local(b"a")
    assert freed == []
    rc.remove_local(b"a")
    assert freed == [b"a"]
    assert not rc.owns(b"a")


def test_pending_task_keeps_its_argument_alive():
    rc, freed, _ = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.add_submitted([b"a"])
    rc.remove_local(b"a")
    assert freed == []
    rc.remove_submitted([b"a"])
    assert freed == [b"a"]


def test_escaped_object_stays_pinned():
    rc, freed, _ = make()
    rc.add_owned(b"a")
    rc.add_local(b"a", ME)
    rc.mark_escaped([b"a"])
    rc.remove_local(b"a")
    assert freed == []
    assert rc.owns(b"a")


def test_borrowed_copy_is_released_not_freed():
    rc, freed, released = make()
    rc.note_borrowed(b"b", "ipc:///other")
    rc.add_local(b"b", "ipc:///other")
    rc.remove_local(b"b")
    assert freed == [] and released == [b"b"]


def test_unknown_ids_are_ignored():
    rc, freed, released = make()
    rc.add_local(b"z", ME)
    rc.remove_local(b"z")
    rc.remove_submitted([b"z"])
    assert freed == [] and released == []
