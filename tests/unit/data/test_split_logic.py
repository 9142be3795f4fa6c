"""Where splits cut, and streaming_split's dispatcher: equal shares whatever order the blocks come in."""
import random

import pytest

from juno.data.block import BlockMetadata
from juno.data.split_logic import (End, Give, NeedInput, SplitDispatcher, balanced_block_cuts, check_indices,
                                   equal_indices, plan_row_ranges, proportion_indices)


def blocks(*sizes):
    return [(f"b{k}", BlockMetadata(num_rows=n, size_bytes=8 * n)) for k, n in enumerate(sizes)]


def spans(outputs):
    return [[(ref, start, stop) for ref, _, start, stop in out] for out in outputs]


def test_row_ranges_cut_inside_blocks_and_keep_whole_ones():
    outs = plan_row_ranges(blocks(4, 0, 6), [2, 4, 9])
    assert spans(outs) == [[("b0", 0, 2)], [("b0", 2, 4)], [("b2", 0, 5)], [("b2", 5, 6)]]


def test_row_ranges_past_the_end_are_empty_outputs():
    assert spans(plan_row_ranges(blocks(3), [5, 7])) == [[("b0", 0, 3)], [], []]
    assert spans(plan_row_ranges(blocks(), [0])) == [[], []]
    assert spans(plan_row_ranges(blocks(3), [0])) == [[], [("b0", 0, 3)]]


def test_indices_must_be_ascending_non_negative_ints():
    assert check_indices((1, 1, 3)) == [1, 1, 3]
    with pytest.raises(ValueError, match="ascending"):
        check_indices([3, 1])
    with pytest.raises(ValueError, match=">= 0"):
        check_indices([-1])
    with pytest.raises(TypeError, match="int row indices"):
        check_indices([1.5])


def test_equal_indices_drop_the_remainder():
    assert equal_indices(10, 3) == ([3, 6], 9)
    assert equal_indices(2, 3) == ([0, 0], 0)


def test_balanced_block_cuts_never_cut_a_block():
    assert balanced_block_cuts([5, 5, 5, 5], 2) == [2]
    assert balanced_block_cuts([10, 1, 1], 2) == [1]
    assert balanced_block_cuts([3], 3) == [0, 1]  # fewer blocks than splits: some are empty


def test_proportion_indices_like_ray():
    assert proportion_indices(10, [0.5]) == [5]
    assert proportion_indices(10, [0.2, 0.3]) == [2, 5]
    assert proportion_indices(4, [0.5, 0.1]) == [1, 2]  # every split keeps a row: a coinciding cut moves down
    with pytest.raises(ValueError, match="cannot make 3 non-empty"):
        proportion_indices(2, [0.1, 0.1])
    with pytest.raises(ValueError, match="sum to less than 1"):
        proportion_indices(10, [0.5, 0.5])
    with pytest.raises(ValueError, match="> 0"):
        proportion_indices(10, [0])


def drain(dispatcher, incoming, order):
    """Consumers ask in ``order`` (cycled) until each got End; the stream yields blocks on NeedInput."""
    incoming = list(incoming)
    got = {i: [] for i in range(dispatcher.n)}
    done = set()
    for i in order:
        while i not in done:
            answer = dispatcher.request(i)
            if isinstance(answer, NeedInput):
                if incoming:
                    dispatcher.add(*incoming.pop(0))
                else:
                    dispatcher.finish_input()
                continue
            if isinstance(answer, End):
                done.add(i)
            else:
                assert isinstance(answer, Give) and answer.pieces
                got[i].extend(answer.pieces)
            break
        if len(done) == dispatcher.n:
            return got
    raise AssertionError("the consumers never all finished")


def rows(pieces):
    return sum(stop - start for _, _, start, stop in pieces)


def test_unequal_split_hands_out_every_block_once():
    d = SplitDispatcher(2, equal=False)
    got = drain(d, blocks(3, 0, 4, 5), [0, 0, 0, 1] * 10)
    assert sorted(ref for pieces in got.values() for ref, *_ in pieces) == ["b0", "b2", "b3"]
    assert rows(got[0]) + rows(got[1]) == 12


@pytest.mark.parametrize("seed", range(20))
def test_equal_split_gives_every_consumer_the_same_rows(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 4)
    sizes = [rng.randint(0, 30) for _ in range(rng.randint(0, 12))]
    order = [rng.randrange(n) for _ in range(2000)]
    got = drain(SplitDispatcher(n, equal=True), blocks(*sizes), order)
    counts = [rows(got[i]) for i in range(n)]
    assert len(set(counts)) == 1 and counts[0] == sum(sizes) // n
    seen = [(ref, r) for pieces in got.values() for ref, _, start, stop in pieces for r in range(start, stop)]
    assert len(seen) == len(set(seen))  # no row twice


def test_equal_split_hands_out_whole_blocks_while_it_can():
    d = SplitDispatcher(2, equal=True)
    for b in blocks(4, 4, 4):
        d.add(*b)
    assert d.request(0) == Give([("b0", blocks(4)[0][1], 0, 4)])
    assert isinstance(d.request(0), NeedInput)  # 8 vs 0 could no longer be levelled by what is left (4)
    assert rows(d.request(1).pieces) == 4
    d.finish_input()
    last0, last1 = d.request(0), d.request(1)  # the held-back block, cut in two
    assert 4 + rows(last0.pieces) == 4 + rows(last1.pieces) == 6
    assert d.given == [6, 6] and isinstance(d.request(0), End)


def test_bad_consumer_index():
    with pytest.raises(ValueError, match="out of range"):
        SplitDispatcher(2, equal=False).request(2)
