"""Splitting a dataset among consumers: ``split``, ``split_at_indices``, ``split_proportionately``,
``train_test_split`` and ``streaming_split`` (Ray's semantics; the Dataset methods call these).

The materialized splits cut blocks at row boundaries with small tasks (a block and its metadata
each), so no block travels to the driver. ``streaming_split`` runs the dataset's execution in a
coordinator actor, which hands the blocks out to ``n`` consumers as they ask (each typically a
Train worker); a new epoch starts a new execution once all ``n`` finished the previous one, and
a consumer that never finishes makes the others fail after ``DataContext.streaming_split_wait_s``
with an error naming it, instead of hanging. Which block goes where is decided by
juno.data.split_logic.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator, Sequence

import juno
from juno.data.block import RefBundle
from juno.data.context import DataContext
from juno.data.dataset import Dataset, MaterializedDataset
from juno.data.execution.remote import slice_block
from juno.data.iterator import DataIterator
from juno.data.split_logic import (End, Give, NeedInput, Piece, SplitDispatcher, balanced_block_cuts,
                                   check_indices, check_locality_hints, check_n, equal_indices, is_whole,
                                   plan_row_ranges, proportion_indices)

_GET_MARGIN_S = 60.0  # a consumer waits this much longer than the coordinator's own deadline


# ============================================================================ materialized splits
def split_at_indices(ds: Dataset, indices: Sequence[int]) -> list[MaterializedDataset]:
    """``len(indices) + 1`` datasets: rows [0, i0), [i0, i1), ... [ik, end); indices past the end give
    empty datasets."""
    indices = check_indices(indices)
    blocks = _materialized_blocks(ds)
    return _datasets(plan_row_ranges(blocks, indices), "SplitAtIndices")


def split(ds: Dataset, n: int, *, equal: bool = False,
          locality_hints: list | None = None) -> list[MaterializedDataset]:
    """``n`` datasets. ``equal=False`` keeps blocks whole, cutting the block list where the row
    counts are most even; ``equal=True`` gives each exactly ``count // n`` rows (the rest is dropped)."""
    check_n(n)
    check_locality_hints(locality_hints, n)
    blocks = _materialized_blocks(ds)
    if equal:
        indices, end = equal_indices(sum(m.num_rows for _, m in blocks), n)
        return _datasets(plan_row_ranges(blocks, indices + [end])[:n], "Split")
    cuts = [0] + balanced_block_cuts([m.num_rows for _, m in blocks], n) + [len(blocks)]
    outputs = [[(ref, meta, 0, meta.num_rows) for ref, meta in blocks[a:b]] for a, b in zip(cuts, cuts[1:])]
    return _datasets(outputs, "Split")


def split_proportionately(ds: Dataset, proportions: Sequence[float]) -> list[MaterializedDataset]:
    """``len(proportions) + 1`` datasets holding those fractions of the rows (rounded down), the
    last the rest; each keeps at least one row."""
    blocks = _materialized_blocks(ds)
    indices = proportion_indices(sum(m.num_rows for _, m in blocks), proportions)
    return _datasets(plan_row_ranges(blocks, indices), "SplitProportionately")


def train_test_split(ds: Dataset, test_size: float | int, *, shuffle: bool = False,
                     seed: int | None = None) -> tuple[MaterializedDataset, MaterializedDataset]:
    """(train, test): the test set is the last ``test_size`` rows (a fraction when a float), after a
    random shuffle when ``shuffle``."""
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int number of rows, got {test_size!r}")
    if isinstance(test_size, float) and not 0 < test_size < 1:
        raise ValueError(f"test_size as a float is a fraction and must be between 0 and 1 (exclusive), "
                         f"got {test_size}")
    if shuffle:
        ds = ds.random_shuffle(seed=seed)
    elif seed is not None:
        raise ValueError("train_test_split: seed is only used with shuffle=True")
    blocks = _materialized_blocks(ds)
    total = sum(m.num_rows for _, m in blocks)
    if isinstance(test_size, float):
        indices = proportion_indices(total, [1 - test_size])
    else:
        if not 0 < test_size < total:
            raise ValueError(f"test_size as an int is a row count and must be between 0 and the dataset's {total} "
                             f"rows (exclusive), got {test_size}")
        indices = [total - test_size]
    train, test = _datasets(plan_row_ranges(blocks, indices), "TrainTestSplit")
    return train, test


def _materialized_blocks(ds: Dataset) -> list[tuple[Any, Any]]:
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a juno.data Dataset, got {type(ds).__module__}.{type(ds).__qualname__}")
    return [block for bundle in ds.materialize().iter_internal_ref_bundles() for block in bundle.blocks]


def _datasets(outputs: list[list[Piece]], name: str) -> list[MaterializedDataset]:
    bundles = realize(outputs)
    return [Dataset.from_bundles([b] if b.blocks else [], name=name) for b in bundles]


def realize(outputs: list[list[Piece]]) -> list[RefBundle]:
    """A bundle per output: whole blocks as they are, pieces cut by slice tasks (all at once; the
    driver waits only for the small metadata)."""
    slices = [[slice_block.options(num_returns=2).remote(ref, start, stop - start)
               if not is_whole((ref, meta, start, stop)) else None for ref, meta, start, stop in pieces]
              for pieces in outputs]
    metas = juno.get([s[1] for out in slices for s in out if s is not None])
    metas.reverse()
    bundles = []
    for pieces, cut in zip(outputs, slices):
        blocks = []
        for (ref, meta, _, _), s in zip(pieces, cut):
            blocks.append((ref, meta) if s is None else (s[0], metas.pop()))
        bundles.append(RefBundle(tuple(blocks)))
    return bundles


# ============================================================================ streaming_split
def streaming_split(ds: Dataset, n: int, *, equal: bool = False,
                    locality_hints: list | None = None) -> list[DataIterator]:
    """``n`` iterators over one execution of ``ds``, each for a different consumer (actor or task).

    Each may be iterated once per epoch; a new epoch starts once all ``n`` finished the last one.
    ``equal=True``: every consumer gets the same number of rows (the rest is dropped).
    ``locality_hints`` (one node id per consumer) is accepted; on one node it changes nothing."""
    check_n(n, "streaming_split")
    check_locality_hints(locality_hints, n)
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a juno.data Dataset, got {type(ds).__module__}.{type(ds).__qualname__}")
    ctx = DataContext.get_current()
    wait_s = float(ctx.streaming_split_wait_s)
    from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=juno.get_runtime_context().get_node_id(), soft=True)
    coordinator = SplitCoordinator.options(max_concurrency=n + 2, scheduling_strategy=here).remote(
        ds, n, equal, wait_s, ctx)
    schema = _CoordinatorSchema(coordinator, wait_s)
    return [DataIterator(_SplitStream(coordinator, i, wait_s), schema_fn=schema, name=f"split {i} of {n}")
            for i in range(n)]


class _SplitStream:
    """A consumer's bundle stream: one epoch of its share per call."""

    def __init__(self, coordinator, index: int, wait_s: float):
        self._coordinator, self._index, self._wait_s = coordinator, index, wait_s

    def __call__(self) -> Iterator[RefBundle]:
        epoch = juno.get(self._coordinator.begin.remote(self._index), timeout=self._wait_s + _GET_MARGIN_S)
        while True:
            bundle = juno.get(self._coordinator.next.remote(self._index, epoch),
                              timeout=self._wait_s + _GET_MARGIN_S)
            if bundle is None:
                return
            yield bundle


class _CoordinatorSchema:
    def __init__(self, coordinator, wait_s: float):
        self._coordinator, self._wait_s = coordinator, wait_s

    def __call__(self):
        return juno.get(self._coordinator.schema.remote(), timeout=self._wait_s + _GET_MARGIN_S)


@juno.remote(num_cpus=0)
class SplitCoordinator:
    """Runs ``ds``'s execution (once per epoch) and answers the consumers' requests for blocks.

    Threaded (a call per consumer at once): one lock guards the execution and the dispatcher;
    a consumer waiting for the next epoch waits on its condition, not holding it."""

    def __init__(self, ds: Dataset, n: int, equal: bool, wait_s: float, ctx: DataContext):
        DataContext._set_current(ctx)  # the driver's knobs, for the executions run here
        self._ds, self._n, self._equal, self._wait_s = ds, n, equal, wait_s
        self._cond = threading.Condition(threading.RLock())
        self._epoch = 0
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._dispatcher = SplitDispatcher(n, equal)
        self._stream: Iterator[RefBundle] | None = None

    def begin(self, i: int) -> int:
        """Consumer ``i`` starts iterating: its first epoch, or the next once every consumer is done."""
        with self._cond:
            if i in self._started:  # i already had this epoch: wait for the others to finish it
                self._finished.add(i)  # (if i stopped early, its share is given up)
                self._cond.notify_all()
                deadline, target = time.monotonic() + self._wait_s, self._epoch + 1
                while self._epoch < target:
                    if len(self._finished) == self._n:
                        self._next_epoch()
                        break
                    if time.monotonic() >= deadline:
                        late = sorted(set(range(self._n)) - self._finished)
                        raise TimeoutError(
                            f"streaming_split: consumer {i} waited {self._wait_s:.0f}s for epoch {target} but "
                            f"consumer(s) {late} of {self._n} have not finished epoch {self._epoch}. Every split "
                            "must be iterated to the end before the next epoch starts; a consumer that died or "
                            "stopped holds the others (DataContext.streaming_split_wait_s sets this wait).")
                    self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            self._started.add(i)
            return self._epoch

    def next(self, i: int, epoch: int) -> RefBundle | None:
        """Consumer ``i``'s next bundle of ``epoch``; None when its share of the epoch is complete."""
        with self._cond:
            if epoch != self._epoch or i in self._finished:
                return None
            while True:
                answer = self._dispatcher.request(i)
                if isinstance(answer, NeedInput):
                    self._pull()
                elif isinstance(answer, End):
                    self._finished.add(i)
                    self._cond.notify_all()
                    return None
                else:
                    assert isinstance(answer, Give)
                    return realize([answer.pieces])[0]

    def schema(self):
        return self._ds.schema()

    def _pull(self) -> None:
        if self._stream is None:
            self._stream = self._ds.iter_internal_ref_bundles()
        bundle = next(self._stream, None)
        if bundle is None:
            self._dispatcher.finish_input()
            return
        for ref, meta in bundle.blocks:
            self._dispatcher.add(ref, meta)

    def _next_epoch(self) -> None:
        if self._stream is not None:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        self._stream = None
        self._epoch += 1
        self._started.clear()
        self._finished.clear()
        self._dispatcher = SplitDispatcher(self._n, self._equal)
        self._cond.notify_all()
