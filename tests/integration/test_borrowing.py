"""Distributed reference counting: borrowers, refs inside values, owners that die."""
import gc
import sys

import cloudpickle
import numpy as np
import pytest

import juno
from juno import internal_api
from juno.exceptions import OwnerDiedError
from helpers import pid_gone, wait_for_condition, wait_for_file

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}
BIG = 200_000  # float64s: 1.6 MB, well above the inline limit


def store_empty() -> bool:
    gc.collect()
    return internal_api.store_stats()["num_objects"] == 0


@juno.remote
def make_refs(n):
    return [juno.put(np.full(BIG, i, dtype=np.float64)) for i in range(n)]


@juno.remote
def total(refs):
    return sum(float(juno.get(r).sum()) for r in refs)


@juno.remote
class Keeper:
    def keep(self, refs):
        self.refs = refs  # a borrowed ref held past the call
        return len(refs)

    def read(self):
        return float(juno.get(self.refs[0])[0])

    def drop(self):
        self.refs = None


def test_refs_returned_by_a_task_survive_the_task_and_are_freed_after(cluster):
    refs = juno.get(make_refs.remote(3))
    assert [float(juno.get(r)[0]) for r in refs] == [0.0, 1.0, 2.0]
    assert juno.get(total.remote(refs)) == float(BIG * 3)
    del refs
    wait_for_condition(store_empty)


def test_a_borrower_keeps_an_object_alive_after_the_owner_drops_it(cluster):
    ref = juno.put(np.full(BIG, 7.0))
    k = Keeper.remote()
    assert juno.get(k.keep.remote([ref])) == 1
    oid = ref.binary()
    del ref
    gc.collect()
    assert juno.get(k.read.remote()) == 7.0, "the actor still borrows it"
    assert internal_api.object_info(juno.ObjectRef(oid, "", _count=False)) is not None
    juno.get(k.drop.remote())
    wait_for_condition(store_empty)


def test_refs_inside_a_put_value_live_as_long_as_the_value(cluster):
    inner = juno.put(np.full(BIG, 3.0))
    outer = juno.put({"data": inner})
    del inner
    gc.collect()
    assert float(juno.get(juno.get(outer)["data"])[0]) == 3.0
    assert juno.get(total.remote([juno.get(outer)["data"]])) == 3.0 * BIG
    del outer
    wait_for_condition(store_empty)


def test_passing_a_borrowed_ref_on_to_another_task(cluster):
    @juno.remote
    def forward(refs):
        return juno.get(total.remote(refs))

    refs = juno.get(make_refs.remote(2))
    assert juno.get(forward.remote(refs)) == float(BIG)
    del refs
    wait_for_condition(store_empty)


def test_a_loop_over_nested_refs_stays_bounded(cluster):
    for i in range(20):
        ref = juno.put(np.full(BIG, i, dtype=np.float64))
        assert juno.get(total.remote([ref])) == float(i * BIG)
        del ref
    wait_for_condition(store_empty)


@juno.remote
class Maker:
    def make(self):
        self.big = juno.put(np.ones(BIG))
        return [self.big, juno.put("small")]


def test_objects_of_a_dead_owner_raise_owner_died(cluster):
    m = Maker.remote()
    big, small = juno.get(m.make.remote())
    assert float(juno.get(big)[0]) == 1.0
    juno.kill(m)
    with pytest.raises(OwnerDiedError, match="owner"):
        juno.get(small, timeout=30)
    # The dead owner's objects are freed from the store too.
    del big
    wait_for_condition(store_empty)


# ------------------------------------------------------------------ actor handles

# An actor's handles are counted as references by the process that created it: borrowers keep a
# non-detached actor alive, and it stops once no handle is left anywhere.

@juno.remote
class Counted:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def pid(self):
        import os

        return os.getpid()


@juno.remote
class HandleKeeper:
    def __init__(self, handle=None):
        self.handle = handle

    def keep(self, handles):
        self.handle = handles[0]  # nested in a list: the handle arrives as it is

    def incr(self):
        return juno.get(self.handle.incr.remote())

    def drop(self):
        self.handle = None


@juno.remote
def incr_when_told(counter, gate):
    wait_for_file(gate)
    return juno.get(counter.incr.remote())


@juno.remote
def incr_in_a_nested_task(counter, gate):
    return juno.get(incr_when_told.remote(counter, gate))


@juno.remote
def make_counted():
    counter = Counted.remote()
    juno.get(counter.incr.remote())
    return counter  # this task made it; the caller holds the only handle once the task is done


def test_tasks_holding_an_actor_handle_keep_the_actor_until_they_finish(cluster, gate):
    counter = Counted.remote()
    pid = juno.get(counter.pid.remote())
    ref = incr_in_a_nested_task.remote(counter, str(gate))
    del counter
    gc.collect()
    gate.touch()
    assert juno.get(ref, timeout=60) == 1
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_an_actor_holding_a_handle_keeps_the_actor_until_it_lets_go(cluster):
    counter = Counted.remote()
    pid = juno.get(counter.pid.remote())
    keeper = HandleKeeper.remote()
    juno.get(keeper.keep.remote([counter]))
    del counter
    gc.collect()
    assert juno.get(keeper.incr.remote()) == 1
    assert juno.get(keeper.incr.remote()) == 2, "the same actor, alive, its state kept"
    juno.get(keeper.drop.remote())
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_a_handle_stored_in_an_object_keeps_the_actor_while_the_object_lives(cluster):
    counter = Counted.remote()
    pid = juno.get(counter.pid.remote())
    box = juno.put([counter])
    del counter
    gc.collect()
    assert juno.get(juno.get(box)[0].incr.remote()) == 1
    assert juno.get(HandleKeeper.remote().keep.remote(box)) is None  # a borrower of the box, too
    gc.collect()
    assert not pid_gone(pid)
    del box
    gc.collect()
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_an_actor_made_by_a_task_lives_while_its_caller_holds_the_handle(cluster):
    counter = juno.get(make_counted.remote())
    pid = juno.get(counter.pid.remote())
    assert juno.get(counter.incr.remote()) == 2
    assert juno.get(counter.incr.remote()) == 3
    del counter
    gc.collect()
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


def test_a_handle_given_to_an_actors_constructor_is_released_when_that_actor_dies(cluster):
    counter = Counted.remote()
    pid = juno.get(counter.pid.remote())
    keeper = HandleKeeper.remote(counter)
    del counter
    gc.collect()
    assert juno.get(keeper.incr.remote()) == 1
    del keeper  # the keeper goes out of scope; its constructor's arguments go with it
    gc.collect()
    wait_for_condition(lambda: pid_gone(pid), timeout=30)


# ------------------------------------------------------------------ many refs at once

# A get of a list of refs registers all of them with their owner in one message, and a dropped
# list releases them in one; a release followed by a new borrow must reach the owner in order.

@juno.remote
class ManyOwner:
    def make(self, n):
        self.refs = [juno.put(i) for i in range(n)]
        return self.refs

    def forget(self):
        self.refs = None

    def owned(self):
        from juno.owner.core_worker import global_worker

        return global_worker().refs.num_owned()


@juno.remote
def sum_refs(refs):
    return sum(juno.get(refs))


def test_a_list_of_borrowed_refs_keeps_every_object_until_dropped(cluster):
    owner = ManyOwner.remote()
    refs = juno.get(owner.make.remote(2000))
    juno.get(owner.forget.remote())  # from now on only the borrowers hold them
    assert juno.get(owner.owned.remote()) == 2000
    assert juno.get(sum_refs.remote(refs)) == sum(range(2000)), "passed on to a third process"
    assert juno.get(refs[1999]) == 1999
    del refs
    gc.collect()
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)


def test_a_borrow_released_and_taken_again_stays_registered(cluster):
    owner = ManyOwner.remote()
    holder = owner.make.remote(500)
    for _ in range(5):
        refs = juno.get(holder)  # each get borrows, each del releases, queued behind the last
        del refs
    refs = juno.get(holder)
    juno.get(owner.forget.remote())
    gc.collect()
    assert juno.get(owner.owned.remote()) == 500, "the driver's borrow is still registered"
    assert sum(juno.get(refs, timeout=30)) == sum(range(500))
    del refs, holder  # the result holds the refs inside it too (as in Ray): both must go
    gc.collect()
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)


# ------------------------------------------------------------------ refs inside task results

# As in Ray, the owner of a task's result borrows the refs inside it for as long as the result
# lives: a get of the result may be dropped and made again, and a result never read leaks nothing.

@juno.remote
class LooseOwner:
    """Puts objects and hands them out without keeping refs to them."""

    def make(self, n):
        return [juno.put(i) for i in range(n)]

    def stream(self, n):
        for i in range(n):
            yield [juno.put(i)]

    def owned(self):
        from juno.owner.core_worker import global_worker

        return global_worker().refs.num_owned()


def test_refs_inside_a_result_live_as_long_as_the_result(cluster):
    owner = LooseOwner.remote()
    result = owner.make.remote(100)
    for _ in range(3):  # each get's refs are dropped before the next get
        refs = juno.get(result)
        assert juno.get(refs, timeout=30) == list(range(100))
        del refs
        gc.collect()
    assert juno.get(owner.owned.remote()) == 100
    del result
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)


def test_big_objects_inside_a_task_result_are_freed_with_the_result(cluster):
    result = make_refs.remote(2)
    del juno.get(result)[:]
    gc.collect()
    assert [float(juno.get(r)[0]) for r in juno.get(result)] == [0.0, 1.0]
    del result
    wait_for_condition(store_empty)


def test_a_result_never_read_does_not_keep_the_refs_inside_it(cluster):
    owner = LooseOwner.remote()
    result = owner.make.remote(50)
    juno.wait([result], timeout=30)
    del result
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)
    owner.make.remote(50)  # dropped before its result can arrive
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)


def test_refs_inside_generator_items_live_as_long_as_the_items(cluster):
    owner = LooseOwner.remote()
    items = list(owner.stream.remote(3))
    for item in items:
        inner = juno.get(item)
        del inner
    gc.collect()
    assert [juno.get(juno.get(item)[0], timeout=30) for item in items] == [0, 1, 2]
    assert juno.get(owner.owned.remote()) == 3
    del items, item
    wait_for_condition(lambda: juno.get(owner.owned.remote()) == 0)
    gen = make_refs_stream.remote(2)
    first = next(gen)
    del juno.get(first)[:]
    gc.collect()
    assert float(juno.get(juno.get(first)[0])[0]) == 0.0
    del gen, first
    wait_for_condition(store_empty)


@juno.remote
def make_refs_stream(n):
    for i in range(n):
        yield [juno.put(np.full(BIG, i, dtype=np.float64))]


@juno.remote
def pass_back(refs):
    return refs


def test_the_callers_own_refs_returned_inside_a_result_live_as_long_as_it(cluster):
    mine = juno.put(np.full(BIG, 5.0))
    result = pass_back.remote([mine])
    del mine
    gc.collect()
    for _ in range(2):
        assert float(juno.get(juno.get(result)[0])[0]) == 5.0
        gc.collect()
    del result
    wait_for_condition(store_empty)
