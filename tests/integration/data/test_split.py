"""Splitting datasets on a real cluster: materialized splits at row level, streaming_split to actors."""
import sys

import cloudpickle
import pytest

from juno.data.context import DataContext

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import this file

JUNO_SHARED_INIT = {"num_cpus": 4}


@pytest.fixture(autouse=True)
def in_order():
    """Row-index splits follow the dataset's order, which is the execution's: keep it the input's."""
    options = DataContext.get_current().execution_options
    before, options.preserve_order = options.preserve_order, True
    yield
    options.preserve_order = before


def ids(ds):
    return [row["id"] for row in ds.take_all()]


def test_split_at_indices_cuts_inside_blocks(cluster):
    import juno.data as rd
    from juno.data.split import split_at_indices

    parts = split_at_indices(rd.range(20, override_num_blocks=3), [5, 12, 30])
    assert [ids(p) for p in parts] == [list(range(5)), list(range(5, 12)), list(range(12, 20)), []]
    assert all(type(p).__name__ == "MaterializedDataset" for p in parts)
    with pytest.raises(ValueError, match="ascending"):
        split_at_indices(rd.range(5), [3, 1])


def test_split_equal_and_unequal(cluster):
    import juno.data as rd
    from juno.data.split import split

    ds = rd.range(20, override_num_blocks=4)
    whole_blocks = split(ds, 3)
    assert sorted(i for p in whole_blocks for i in ids(p)) == list(range(20))
    assert [p.num_blocks() for p in whole_blocks] == [1, 2, 1]
    assert [ids(p) for p in split(ds, 3, equal=True)] == [list(range(0, 6)), list(range(6, 12)),
                                                          list(range(12, 18))]
    assert [p.count() for p in split(rd.range(0), 2, equal=True)] == [0, 0]
    with pytest.raises(ValueError, match="locality_hints"):
        split(ds, 2, locality_hints=["a"])


def test_split_proportionately_and_train_test_split(cluster):
    import juno.data as rd
    from juno.data.split import split_proportionately, train_test_split

    ds = rd.range(10, override_num_blocks=2)
    assert [p.count() for p in split_proportionately(ds, [0.2, 0.5])] == [2, 5, 3]
    train, test = train_test_split(ds, 0.3)
    assert ids(train) == list(range(7)) and ids(test) == [7, 8, 9]
    train, test = train_test_split(ds, 4)
    assert (train.count(), test.count()) == (6, 4)
    with pytest.raises(ValueError, match="between 0 and the dataset's 10 rows"):
        train_test_split(ds, 10)
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_test_split(ds, 1.5)


def test_train_test_split_shuffled(cluster):
    import juno.data as rd
    from juno.data.split import train_test_split

    train, test = train_test_split(rd.range(40, override_num_blocks=2), 10, shuffle=True, seed=1)
    assert sorted(ids(train) + ids(test)) == list(range(40)) and ids(test) != list(range(30, 40))


def start_consumers(juno, iterators):
    @juno.remote(num_cpus=0)
    class Consumer:
        def __init__(self, iterator):
            self.iterator = iterator

        def epoch(self):
            return [i for batch in self.iterator.iter_batches(batch_size=3) for i in batch["id"].tolist()]

    return [Consumer.remote(it) for it in iterators]


@pytest.mark.parametrize("equal", [False, True])
def test_streaming_split_feeds_two_actors_over_two_epochs(cluster, equal):
    import juno.data as rd
    from juno.data.split import streaming_split

    ds = rd.range(101, override_num_blocks=7).map_batches(lambda b: {"id": b["id"]})
    consumers = start_consumers(cluster, streaming_split(ds, 2, equal=equal))
    for _ in range(2):  # each epoch is a new execution, started once both consumers finished the last
        got = cluster.get([c.epoch.remote() for c in consumers], timeout=120)
        if equal:
            assert len(got[0]) == len(got[1]) == 50
            assert len(set(got[0] + got[1])) == 100
        else:
            assert sorted(got[0] + got[1]) == list(range(101))


def test_streaming_split_fails_clearly_when_a_consumer_never_finishes(cluster):
    import juno.data as rd
    from juno.data.split import streaming_split

    ctx = DataContext.get_current()
    ctx.streaming_split_wait_s = 2.0
    try:
        first, _absent = streaming_split(rd.range(10, override_num_blocks=2), 2)
    finally:
        ctx.streaming_split_wait_s = DataContext.streaming_split_wait_s
    assert len(list(first.iter_rows())) == 10  # consumer 1 never asks: consumer 0 gets everything
    with pytest.raises(TimeoutError, match=r"consumer\(s\) \[1\] of 2 have not finished epoch 0"):
        list(first.iter_rows())
    assert first.schema().names == ["id"]
