"""The decisions behind splitting a dataset, with no I/O: where to cut, and who gets which block.

``split``, ``split_at_indices`` and friends cut materialized data at global row indices: a plan
of row ranges per output (``plan_row_ranges``), which the shell (juno.data.split) turns into
whole blocks passed through and small slice tasks for the blocks a cut falls inside.

``SplitDispatcher`` decides for ``streaming_split``: consumers ask for data one at a time while
the execution streams blocks in. With ``equal=True`` every consumer must end with the same row
count; since the stream can end at any moment, a block goes to a consumer only when the blocks
still held back could top up every other consumer to the new leader's count. When the stream
ends, the held-back rows are cut so that all reach the same total, and the remainder is dropped
(as Ray does).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Sequence

from juno.data.block import BlockMetadata

# A piece of an output: rows [start, stop) of one block; a whole block when they span it.
Piece = tuple[Any, BlockMetadata, int, int]


def is_whole(piece: Piece) -> bool:
    _, meta, start, stop = piece
    return start == 0 and stop == meta.num_rows


def check_n(n, what: str = "split") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}(n=...) needs a positive number of splits, got {n!r}")


def check_locality_hints(locality_hints, n: int) -> None:
    if locality_hints is not None and len(locality_hints) != n:
        raise ValueError(f"locality_hints must name one node per split: {n} splits, "
                         f"{len(locality_hints)} hints")


def plan_row_ranges(blocks: Sequence[tuple[Any, BlockMetadata]], indices: Sequence[int]) -> list[list[Piece]]:
    """The pieces of each of ``len(indices) + 1`` outputs when the rows are cut at ``indices``
    (ascending, clamped to the row count: a cut past the end gives empty outputs)."""
    total = sum(m.num_rows for _, m in blocks)
    bounds = [0] + [min(max(i, 0), total) for i in indices] + [total]
    outputs: list[list[Piece]] = [[] for _ in range(len(bounds) - 1)]
    out, offset = 0, 0  # the output being filled; the global row index where the current block starts
    for ref, meta in blocks:
        start = 0
        while start < meta.num_rows:
            while offset + start >= bounds[out + 1]:
                out += 1
            stop = min(meta.num_rows, bounds[out + 1] - offset)
            outputs[out].append((ref, meta, start, stop))
            start = stop
        offset += meta.num_rows
    return outputs


def check_indices(indices) -> list[int]:
    indices = list(indices)
    if any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
        raise TypeError(f"split_at_indices needs a list of int row indices, got {indices!r}")
    if any(i < 0 for i in indices):
        raise ValueError(f"split_at_indices: indices must be >= 0, got {indices!r}")
    if indices != sorted(indices):
        raise ValueError(f"split_at_indices: indices must be in ascending order, got {indices!r}")
    return indices


def equal_indices(total: int, n: int) -> tuple[list[int], int]:
    """Cuts that give ``n`` outputs of ``total // n`` rows each, and where the dropped rest begins."""
    size = total // n
    return [size * k for k in range(1, n)], size * n


def balanced_block_cuts(block_rows: Sequence[int], n: int) -> list[int]:
    """For ``split(equal=False)``: block boundaries (no block is cut) nearest to even row shares;
    returns the first block index of outputs 1..n-1, never decreasing."""
    total = sum(block_rows)
    ends, acc = [], 0
    for rows in block_rows:
        acc += rows
        ends.append(acc)  # rows before block i+1
    cuts = []
    for k in range(1, n):
        target = total * k / n
        best = min(range(len(block_rows) + 1),
                   key=lambda i: (abs((ends[i - 1] if i else 0) - target), i))
        cuts.append(max(best, cuts[-1] if cuts else 0))
    return cuts


def proportion_indices(total: int, proportions: Sequence[float]) -> list[int]:
    """``split_proportionately``'s cuts: each output gets its share (rounded down), the last the rest;
    every output keeps at least one row, or a ValueError says the data is too small."""
    proportions = list(proportions)
    if not proportions:
        raise ValueError("split_proportionately needs at least one proportion, e.g. [0.8]")
    if any(isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0 for p in proportions):
        raise ValueError(f"split_proportionately: every proportion must be a number > 0, got {proportions!r}")
    if sum(proportions) >= 1:
        raise ValueError(f"split_proportionately: the proportions must sum to less than 1 (the last split gets the "
                         f"rest), got {proportions!r} (sum {sum(proportions)})")
    acc, indices = 0.0, []
    for p in proportions:
        acc += p
        indices.append(int(total * acc))
    # Each output needs a row of its own: move cuts down where two coincide, from the end.
    upper = total
    for k in range(len(indices) - 1, -1, -1):
        indices[k] = min(indices[k], upper - 1)
        upper = indices[k]
    if not indices or indices[0] < 1:
        raise ValueError(f"split_proportionately({proportions!r}): {total} rows cannot make {len(proportions) + 1} "
                         "non-empty splits")
    return indices


# ============================================================================ streaming_split
@dataclass(frozen=True)
class Give:
    pieces: list  # list[Piece]; empty never (an empty share is End)


@dataclass(frozen=True)
class NeedInput:
    """The stream must yield another block (or say it has ended) before this request can be answered."""


@dataclass(frozen=True)
class End:
    """This consumer's share of the epoch is complete."""


class SplitDispatcher:
    """One epoch of ``streaming_split``: blocks in (``add``, ``input_done``), answers to ``request(i)`` out."""

    def __init__(self, n: int, equal: bool):
        check_n(n, "streaming_split")
        self.n, self.equal = n, equal
        self.given = [0] * n  # rows handed to each consumer
        self._held: collections.deque = collections.deque()  # (ref, meta) not handed out yet
        self._held_rows = 0
        self._input_done = False
        self._final: list[list[Piece]] | None = None  # equal=True: each consumer's last share

    @property
    def input_done(self) -> bool:
        return self._input_done

    def add(self, ref, meta: BlockMetadata) -> None:
        if meta.num_rows:
            self._held.append((ref, meta))
            self._held_rows += meta.num_rows

    def finish_input(self) -> None:
        self._input_done = True

    def request(self, i: int) -> Give | NeedInput | End:
        if not 0 <= i < self.n:
            raise ValueError(f"consumer index {i} out of range for {self.n} splits")
        if self._final is not None:
            share, self._final[i] = self._final[i], []
            return Give(share) if share else End()
        if not self.equal:
            if self._held:
                return Give([self._give(i, 0)])
            return End() if self._input_done else NeedInput()
        for k, (_, meta) in enumerate(self._held):
            if self._can_give(i, meta.num_rows):
                return Give([self._give(i, k)])
        if not self._input_done:
            return NeedInput()
        self._final = self._final_shares()
        return self.request(i)

    def _give(self, i: int, k: int) -> Piece:
        ref, meta = self._held[k]
        del self._held[k]
        self._held_rows -= meta.num_rows
        self.given[i] += meta.num_rows
        return (ref, meta, 0, meta.num_rows)

    def _can_give(self, i: int, rows: int) -> bool:
        """After consumer ``i`` takes ``rows``, can the rest held back still level everyone up?"""
        after = list(self.given)
        after[i] += rows
        leader = max(after)
        return sum(leader - g for g in after) <= self._held_rows - rows

    def _final_shares(self) -> list[list[Piece]]:
        target = (sum(self.given) + self._held_rows) // self.n
        needs = [target - g for g in self.given]
        shares: list[list[Piece]] = [[] for _ in range(self.n)]
        consumer = 0
        for ref, meta in self._held:
            start = 0
            while start < meta.num_rows and consumer < self.n:
                if needs[consumer] == 0:
                    consumer += 1
                    continue
                stop = min(meta.num_rows, start + needs[consumer])
                shares[consumer].append((ref, meta, start, stop))
                needs[consumer] -= stop - start
                start = stop
        self._held.clear()
        self._held_rows = 0
        for k, share in enumerate(shares):
            self.given[k] += sum(stop - start for _, _, start, stop in share)
        return shares
