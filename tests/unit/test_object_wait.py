"""wait()'s decisions without processes: the owner's watch of many ids, the counter it wakes,
and the split of refs into ready and not ready in input order; get()'s wait for values."""
import threading

import pytest

from juno import exceptions as exc

from juno.owner.owned_values import OwnedValues
from juno.object_ref import ObjectRef
from juno.owner.object_wait import ReadyCounter, split_ready, wait_values


def refs(n):
    return [ObjectRef(bytes([i]) * 28, "ipc:///me", _count=False) for i in range(n)]


def test_watch_returns_the_stored_ids_and_calls_back_each_later_one_once():
    store = OwnedValues()
    store.put(b"a", ("v", b"1"))
    seen = []
    ready = store.watch({b"a", b"b", b"c"}, lambda oid, value: seen.append((oid, value)))
    assert ready == {b"a"}
    store.put(b"b", ("v", b"2"))
    store.put(b"x", ("v", b"3"))  # not watched
    assert seen == [(b"b", ("v", b"2"))]
    assert store.ready_among([b"a", b"b", b"c"]) == {b"a", b"b"}


def test_unwatch_stops_the_callbacks_and_keeps_the_other_watches():
    store = OwnedValues()
    first, second = [], []
    cb1, cb2 = (lambda oid, _v: first.append(oid)), (lambda oid, _v: second.append(oid))
    store.watch({b"a", b"b"}, cb1)
    store.watch({b"b"}, cb2)
    store.unwatch(cb1)
    store.put(b"a", ("v", b""))
    store.put(b"b", ("v", b""))
    assert first == [] and second == [b"b"]
    store.unwatch(cb2)
    assert store._watchers == ()


def test_watch_and_concurrent_puts_count_each_id_exactly_once():
    """Each id is either reported ready by watch() or called back, never both nor neither."""
    for _ in range(20):
        store = OwnedValues()
        ids = [bytes([i % 256, i // 256]) for i in range(2000)]
        called = []
        writer = threading.Thread(target=lambda: [store.put(oid, ("v", b"")) for oid in ids])
        writer.start()
        ready = store.watch(set(ids), lambda oid, _v: called.append(oid))
        writer.join(10)
        assert not writer.is_alive()
        assert len(ready) + len(called) == len(ids)
        assert ready.isdisjoint(called)


def test_ready_counter_sets_its_event_once_enough_arrive_whenever_it_learns_the_need():
    counter = ReadyCounter()
    counter(b"a", ())
    assert not counter.event.is_set()  # the need is not known yet
    counter.expect(2)
    assert not counter.event.is_set()
    counter(b"b", ())
    assert counter.event.is_set()

    early = ReadyCounter()
    early(b"a", ())
    early.expect(1)  # already enough arrived before the need was known
    assert early.event.is_set()
    none_needed = ReadyCounter()
    none_needed.expect(0)
    assert none_needed.event.is_set()

    again = ReadyCounter()  # a value stored twice (rebuilt from its lineage) is still one ref
    again.expect(2)
    again(b"a", ())
    again(b"a", ())
    assert not again.event.is_set()


def test_split_keeps_input_order_and_takes_the_first_ready_ones():
    r = refs(6)
    ready = {r[4]._id, r[1]._id, r[5]._id}
    assert split_ready(r, ready, 2) == ([r[1], r[4]], [r[0], r[2], r[3], r[5]])
    assert split_ready(r, ready, 1) == ([r[1]], [r[0], r[2], r[3], r[4], r[5]])
    assert split_ready(r, ready, 6) == ([r[1], r[4], r[5]], [r[0], r[2], r[3]])
    assert split_ready(r, set(), 1) == ([], r)
    assert split_ready(r, {x._id for x in r}, 6) == (r, [])
    not_ready = split_ready(r, ready, 1)[1]
    assert not_ready is not r  # a new list: the caller's list is never changed


def test_wait_values_waits_for_the_missing_ones_and_asks_for_them():
    store = OwnedValues()
    a, b, c = refs(3)
    store.put(a.binary(), ("v", b"1"))
    fetched, blocked = [], []
    storer = threading.Timer(0.05, lambda: (store.put(b.binary(), ("v", b"2")), store.put(c.binary(), ("v", b"3"))))
    storer.start()
    values = wait_values(store, [a, b, c, b], 10, fetched.append, blocked.append)
    storer.join(5)
    assert values == [("v", b"1"), ("v", b"2"), ("v", b"3"), ("v", b"2")]
    assert {r.binary() for r in fetched} == {b.binary(), c.binary()}  # nobody promised them: ask their owners
    assert blocked == [True, False]
    assert wait_values(store, [a], 0, fetched.append, blocked.append) == [("v", b"1")]
    assert blocked == [True, False]  # all there: no wait


def test_wait_values_times_out_and_leaves_no_waiter_behind():
    store = OwnedValues()
    (a,) = refs(1)
    with pytest.raises(exc.GetTimeoutError):
        wait_values(store, [a], 0.01, lambda ref: None, lambda blocked: None)
    seen = []
    store.on_ready(a.binary(), lambda oid, value: seen.append(oid))
    store.put(a.binary(), ("v", b"1"))
    assert seen == [a.binary()]
