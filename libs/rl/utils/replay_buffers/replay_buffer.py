"""Replay buffers of single transitions: uniform (FIFO) and prioritized.

A transition batch is a flat dict of numpy arrays sharing their first dimension (one row per
transition): what :func:`n_step_transitions` makes of a runner's time-major batch. Storage is
preallocated from the first batch added (one array per column, ``capacity`` rows), written as a
ring so the oldest rows are evicted first.
"""
from __future__ import annotations

import numpy as np

from juno.rl.utils.replay_buffers.sum_tree import SumTree


def _batch_size(batch: dict[str, np.ndarray]) -> int:
    if not isinstance(batch, dict) or not batch:
        raise TypeError("A replay buffer adds a dict of numpy arrays, one row per transition; "
                        f"got {type(batch).__name__}.")
    sizes = {key: len(value) for key, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Every column of a transition batch needs the same number of rows; got {sizes}.")
    return next(iter(sizes.values()))


class ReplayBuffer:
    """Uniform replay: ``add(batch)`` appends rows, evicting the oldest past ``capacity``;
    ``sample(n, rng)`` draws ``n`` rows uniformly with replacement."""

    def __init__(self, capacity: int = 50000) -> None:
        if not isinstance(capacity, (int, np.integer)) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"replay buffer capacity must be a positive int, got {capacity!r}.")
        self.capacity = int(capacity)
        self._storage: dict[str, np.ndarray] | None = None
        self._next = 0  # the slot the next row goes to
        self._size = 0
        self.num_added = 0  # rows added over the buffer's life

    def __len__(self) -> int:
        return self._size

    def _allocate(self, batch: dict[str, np.ndarray]) -> None:
        self._storage = {}
        for key, value in batch.items():
            value = np.asarray(value)
            self._storage[key] = np.zeros((self.capacity,) + value.shape[1:], dtype=value.dtype)

    def add(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Store the rows of ``batch``; returns the slots they went to."""
        n = _batch_size(batch)
        if self._storage is None:
            self._allocate(batch)
        elif set(batch) != set(self._storage):
            raise ValueError(f"A replay buffer's batches need the same columns as its first one: expected "
                             f"{sorted(self._storage)}, got {sorted(batch)}.")
        if n > self.capacity:  # only the newest rows can fit
            batch = {key: np.asarray(value)[n - self.capacity:] for key, value in batch.items()}
            self.num_added += n - self.capacity
            n = self.capacity
        slots = (self._next + np.arange(n)) % self.capacity
        for key, value in batch.items():
            column = self._storage[key]
            value = np.asarray(value)
            if value.shape[1:] != column.shape[1:]:
                raise ValueError(f"Column {key!r} has rows of shape {value.shape[1:]}, but this buffer stores "
                                 f"{column.shape[1:]}.")
            column[slots] = value
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)
        self.num_added += n
        return slots

    def _check_can_sample(self, num_items: int) -> None:
        if self._size == 0:
            raise ValueError("Cannot sample from an empty replay buffer: add transitions first "
                             "(num_steps_sampled_before_learning_starts keeps training until it has some).")
        if num_items < 1:
            raise ValueError(f"sample() needs num_items >= 1, got {num_items}.")

    def _rows(self, indexes: np.ndarray) -> dict[str, np.ndarray]:
        return {key: column[indexes] for key, column in self._storage.items()}

    def sample(self, num_items: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        self._check_can_sample(num_items)
        indexes = rng.integers(0, self._size, size=num_items)
        batch = self._rows(indexes)
        batch["batch_indexes"] = indexes
        batch["weights"] = np.ones(num_items, dtype=np.float32)
        return batch

    def update_priorities(self, indexes: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay has no priorities; accepted so a learner need not ask which buffer it has."""

    def get_state(self) -> dict:
        return {"capacity": self.capacity, "storage": self._storage, "next": self._next,
                "size": self._size, "num_added": self.num_added}

    def set_state(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"A saved replay buffer of capacity {state['capacity']} cannot be restored into "
                             f"one of capacity {self.capacity}.")
        self._storage = state["storage"]
        self._next, self._size, self.num_added = state["next"], state["size"], state["num_added"]


class PrioritizedReplayBuffer(ReplayBuffer):
    """Prioritized replay (Schaul et al. 2016): row i is drawn with probability p_i^alpha / sum p^alpha,
    and weighted by (N * P(i))^-beta / max weight to correct the bias. New rows get the highest
    priority seen so far, so each is replayed at least about once."""

    def __init__(self, capacity: int = 50000, alpha: float = 0.6, beta: float = 0.4, epsilon: float = 1e-6) -> None:
        super().__init__(capacity)
        if not 0 <= alpha:
            raise ValueError(f"prioritized replay needs alpha >= 0, got {alpha}.")
        if not 0 <= beta <= 1:
            raise ValueError(f"prioritized replay needs 0 <= beta <= 1, got {beta}.")
        self.alpha, self.beta, self.epsilon = float(alpha), float(beta), float(epsilon)
        self._tree = SumTree(self.capacity)
        self._max_priority = 1.0

    def add(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        slots = super().add(batch)
        self._tree.set(slots, self._max_priority ** self.alpha)
        return slots

    def sample(self, num_items: int, rng: np.random.Generator, beta: float | None = None) -> dict[str, np.ndarray]:
        self._check_can_sample(num_items)
        beta = self.beta if beta is None else beta
        total = self._tree.total
        # Stratified: one draw in each of num_items equal slices of [0, total).
        bounds = (np.arange(num_items) + rng.random(num_items)) * (total / num_items)
        indexes = np.minimum(self._tree.find_prefix_sum(np.minimum(bounds, np.nextafter(total, 0))), self._size - 1)
        probabilities = self._tree.get(indexes) / total
        stored = self._tree.get(np.arange(self._size))
        min_probability = stored[stored > 0].min() / total
        weights = (self._size * probabilities) ** -beta / (self._size * min_probability) ** -beta
        batch = self._rows(indexes)
        batch["batch_indexes"] = indexes
        batch["weights"] = weights.astype(np.float32)
        return batch

    def update_priorities(self, indexes: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priorities of sampled rows from their new TD errors: p = |td| + epsilon."""
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)).ravel() + self.epsilon
        if priorities.size:
            self._max_priority = max(self._max_priority, float(priorities.max()))
        self._tree.set(indexes, priorities ** self.alpha)

    def get_state(self) -> dict:
        state = super().get_state()
        state["priorities"] = self._tree.get(np.arange(self.capacity))
        state["max_priority"] = self._max_priority
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._tree.set(np.arange(self.capacity), state["priorities"])
        self._max_priority = state["max_priority"]
