"""The pure batcher behind iter_batches: exact sizes across block edges, drop_last, the shuffle buffer."""
import pyarrow as pa
import pytest

from juno.data.batcher import Batcher


def blocks(*sizes):
    start = 0
    for n in sizes:
        yield pa.table({"id": list(range(start, start + n))})
        start += n


def run(batcher, tables):
    out = []
    for t in tables:
        out.extend(batcher.add(t))
    out.extend(batcher.finish())
    return out


def ids(batches):
    return [i for b in batches for i in b.column("id").to_pylist()]


def test_exact_batches_across_block_edges():
    batches = run(Batcher(4), blocks(3, 0, 5, 1, 2))
    assert [b.num_rows for b in batches] == [4, 4, 3]
    assert ids(batches) == list(range(11))


def test_batches_are_emitted_as_soon_as_complete():
    b = Batcher(4)
    assert [t.num_rows for t in b.add(next(blocks(10)))] == [4, 4]
    assert b.buffered_rows == 2
    assert [t.num_rows for t in b.finish()] == [2]


def test_drop_last_drops_the_partial_batch():
    assert [b.num_rows for b in run(Batcher(4, drop_last=True), blocks(3, 6))] == [4, 4]
    assert run(Batcher(4, drop_last=True), blocks(3)) == []


def test_batch_size_none_yields_whole_nonempty_blocks():
    assert [b.num_rows for b in run(Batcher(None), blocks(3, 0, 7))] == [3, 7]


def test_empty_input_gives_no_batches():
    assert run(Batcher(4), []) == []
    assert run(Batcher(4, local_shuffle_buffer_size=8), blocks(0, 0)) == []


def test_local_shuffle_keeps_every_row_once_and_sizes_exact():
    batches = run(Batcher(5, local_shuffle_buffer_size=10, local_shuffle_seed=0), blocks(7, 7, 7, 2))
    assert [b.num_rows for b in batches] == [5, 5, 5, 5, 3]
    got = ids(batches)
    assert sorted(got) == list(range(23)) and got != list(range(23))


def test_local_shuffle_draws_from_a_buffer_of_at_least_the_given_size():
    b = Batcher(2, local_shuffle_buffer_size=6, local_shuffle_seed=1)
    assert list(b.add(next(blocks(7)))) == []  # 7 - 2 < 6: holds back until the buffer is big enough
    [first] = b.add(pa.table({"id": [7]}))
    assert b.buffered_rows == 6
    assert len(first) == 2


def test_local_shuffle_seed_is_reproducible():
    def order(seed):
        return ids(run(Batcher(3, local_shuffle_buffer_size=4, local_shuffle_seed=seed), blocks(5, 5, 5)))
    assert order(7) == order(7)
    assert order(7) != order(8)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"batch_size": 2.5}, "batch_size must be a positive int"),
    ({"batch_size": None, "local_shuffle_buffer_size": 4}, "needs a batch_size"),
    ({"local_shuffle_buffer_size": 0}, "local_shuffle_buffer_size must be a positive int"),
    ({"local_shuffle_seed": 3}, "only used with local_shuffle_buffer_size"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batcher(**kwargs)
