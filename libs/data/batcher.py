"""Cutting a stream of blocks into batches: the pure core of ``DataIterator.iter_batches``.

Blocks arrive with whatever row counts the executor made; a consumer wants batches of exactly
``batch_size`` rows (the last one smaller unless ``drop_last``). ``Batcher`` takes tables in and
gives batches out, with no I/O, so its arithmetic is tested without a cluster. Slices of Arrow
tables are zero-copy: a batch inside one block costs nothing, a batch across a block edge is a
table of the pieces' chunks.

``local_shuffle_buffer_size`` follows Ray: rows are drawn at random from a buffer that holds at
least that many rows (until the input ends), so neighbours in the input are spread across batches
without a global shuffle.
"""
from __future__ import annotations

import collections
from typing import Iterator

import numpy as np
import pyarrow as pa

from juno.data.block import concat

DEFAULT_BATCH_SIZE = 256  # Ray's iter_batches default


def check_batch_args(batch_size, drop_last, local_shuffle_buffer_size, local_shuffle_seed) -> None:
    """Raise a clear error for bad batching arguments before anything runs."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None (whole blocks), got {batch_size!r}")
    if not isinstance(drop_last, bool):
        raise TypeError(f"drop_last must be True or False, got {drop_last!r}")
    if local_shuffle_buffer_size is not None:
        if (isinstance(local_shuffle_buffer_size, bool) or not isinstance(local_shuffle_buffer_size, int)
                or local_shuffle_buffer_size < 1):
            raise ValueError("local_shuffle_buffer_size must be a positive int (rows) or None, "
                             f"got {local_shuffle_buffer_size!r}")
        if batch_size is None:
            raise ValueError("a local shuffle needs a batch_size: pass batch_size=<rows> with "
                             "local_shuffle_buffer_size (batch_size=None yields whole blocks, unshuffled)")
    elif local_shuffle_seed is not None:
        raise ValueError("local_shuffle_seed is only used with local_shuffle_buffer_size; pass both or neither")


class Batcher:
    """Tables in (``add``), batches out; ``finish`` flushes what is left at the end of the input."""

    def __init__(self, batch_size: int | None = DEFAULT_BATCH_SIZE, *, drop_last: bool = False,
                 local_shuffle_buffer_size: int | None = None, local_shuffle_seed: int | None = None):
        check_batch_args(batch_size, drop_last, local_shuffle_buffer_size, local_shuffle_seed)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._pending: collections.deque[pa.Table] = collections.deque()  # in input order
        self._pending_rows = 0
        self._shuffle_min = local_shuffle_buffer_size
        self._rng = np.random.default_rng(local_shuffle_seed) if local_shuffle_buffer_size else None
        self._shuffled: pa.Table | None = None  # the shuffle buffer's rows, already in random order

    @property
    def buffered_rows(self) -> int:
        return self._pending_rows + (self._shuffled.num_rows if self._shuffled is not None else 0)

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """Add one block; yields the batches that are complete."""
        if table.num_rows == 0:
            return
        if self.batch_size is None:
            yield table
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._rng is None:
            while self._pending_rows >= self.batch_size:
                yield self._take_in_order(self.batch_size)
        else:
            # Hold back a buffer of at least the shuffle size, so each batch is drawn from that many rows.
            while self.buffered_rows - self.batch_size >= self._shuffle_min:
                yield self._take_shuffled(self.batch_size)

    def finish(self) -> Iterator[pa.Table]:
        """The input ended: the rest as full batches, then the last smaller one unless ``drop_last``."""
        take = self._take_in_order if self._rng is None else self._take_shuffled
        size = self.batch_size
        while size is not None and self.buffered_rows >= size:
            yield take(size)
        if self.buffered_rows and not self.drop_last:
            yield take(self.buffered_rows)
        self._pending.clear()
        self._pending_rows, self._shuffled = 0, None

    def _take_in_order(self, rows: int) -> pa.Table:
        pieces, needed = [], rows
        while needed:
            head = self._pending[0]
            if head.num_rows <= needed:
                pieces.append(self._pending.popleft())
                needed -= head.num_rows
            else:
                pieces.append(head.slice(0, needed))
                self._pending[0] = head.slice(needed)
                needed = 0
        self._pending_rows -= rows
        return pieces[0] if len(pieces) == 1 else concat(pieces)

    def _take_shuffled(self, rows: int) -> pa.Table:
        if self._pending:  # new rows joined: mix them into the buffer (a random order of all of it)
            merged = concat(([self._shuffled] if self._shuffled is not None else []) + list(self._pending))
            self._pending.clear()
            self._pending_rows = 0
            self._shuffled = merged.take(self._rng.permutation(merged.num_rows))
        batch = self._shuffled.slice(0, rows)
        self._shuffled = self._shuffled.slice(rows)
        return batch
