"""A sum tree over priorities: O(log n) updates and prefix-sum search, vectorised over a batch.

Prioritized replay samples index i with probability p_i / sum(p); walking a binary tree of
partial sums finds the index for a uniform draw in [0, sum) without a cumsum over the whole
buffer each time.
"""
from __future__ import annotations

import numpy as np


class SumTree:
    """Leaves hold the priorities of ``capacity`` slots; every inner node holds its children's sum."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}.")
        self.capacity = int(capacity)
        self._leaves = 1
        while self._leaves < self.capacity:
            self._leaves *= 2
        # Node k has children 2k and 2k+1; leaves start at index self._leaves; node 0 is unused.
        self._nodes = np.zeros(2 * self._leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self._nodes[1])

    def get(self, indexes: np.ndarray) -> np.ndarray:
        return self._nodes[np.asarray(indexes, dtype=np.int64) + self._leaves]

    def set(self, indexes: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaf priorities and repair the sums above them, one tree level per numpy call."""
        indexes = np.asarray(indexes, dtype=np.int64).ravel()
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64).ravel(), indexes.shape)
        if indexes.size == 0:
            return
        if np.any(priorities < 0) or not np.all(np.isfinite(priorities)):
            raise ValueError("priorities must be finite and >= 0.")
        if indexes.min() < 0 or indexes.max() >= self.capacity:
            raise IndexError(f"SumTree index out of range [0, {self.capacity}).")
        nodes = indexes + self._leaves
        self._nodes[nodes] = priorities  # with repeated indexes, the last write wins
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self._nodes[nodes] = self._nodes[2 * nodes] + self._nodes[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def find_prefix_sum(self, values: np.ndarray) -> np.ndarray:
        """For each value v in [0, total), the leaf index i with sum(p[:i]) <= v < sum(p[:i+1])."""
        values = np.array(values, dtype=np.float64, copy=True).ravel()
        nodes = np.ones(values.shape, dtype=np.int64)
        while nodes[0] < self._leaves:  # all nodes sit on the same level
            left = 2 * nodes
            left_sum = self._nodes[left]
            go_right = values >= left_sum
            values = np.where(go_right, values - left_sum, values)
            nodes = np.where(go_right, left + 1, left)
        # Rounding can land on an empty leaf past the filled ones; clamp into range.
        return np.minimum(nodes - self._leaves, self.capacity - 1)
