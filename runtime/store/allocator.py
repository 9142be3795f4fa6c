"""Best-fit allocation of page-aligned ranges in the node's shared-memory arena.

Freed ranges coalesce with their neighbours, so a store that cycles through
objects of one size keeps reusing the same (already faulted-in) pages: that
reuse is what makes repeated large puts run at memcpy speed.
"""
from __future__ import annotations

import bisect

PAGE = 4096


def round_up(n: int, align: int = PAGE) -> int:
    return (n + align - 1) // align * align


class Allocator:
    def __init__(self, capacity: int):
        self.capacity = capacity - capacity % PAGE
        self._starts: list[int] = [0] if self.capacity else []
        self._sizes: dict[int, int] = {0: self.capacity} if self.capacity else {}
        self.used = 0

    @property
    def available(self) -> int:
        return self.capacity - self.used

    def largest_free(self) -> int:
        return max(self._sizes.values(), default=0)

    def allocate(self, size: int) -> int | None:
        """The offset of a free range of ``size`` bytes (rounded up to pages), or None."""
        size = round_up(max(size, 1))
        best = None
        best_size = 0
        for start in self._starts:
            free = self._sizes[start]
            if free >= size and (best is None or free < best_size):
                best, best_size = start, free
                if free == size:
                    break
        if best is None:
            return None
        i = bisect.bisect_left(self._starts, best)
        del self._starts[i]
        del self._sizes[best]
        if best_size > size:
            rest = best + size
            bisect.insort(self._starts, rest)
            self._sizes[rest] = best_size - size
        self.used += size
        return best

    def free(self, offset: int, size: int) -> None:
        size = round_up(max(size, 1))
        if offset in self._sizes or offset < 0 or offset + size > self.capacity:
            raise ValueError(f"bad free of [{offset}, {offset + size})")
        self.used -= size
        i = bisect.bisect_left(self._starts, offset)
        # merge with the next free range
        if i < len(self._starts) and self._starts[i] == offset + size:
            nxt = self._starts.pop(i)
            size += self._sizes.pop(nxt)
        # merge with the previous free range
        if i > 0:
            prev = self._starts[i - 1]
            if prev + self._sizes[prev] == offset:
                self._sizes[prev] += size
                return
            if prev + self._sizes[prev] > offset:
                raise ValueError(f"double free of [{offset}, {offset + size})")
        self._starts.insert(i, offset)
        self._sizes[offset] = size

    def free_ranges(self) -> list[tuple[int, int]]:
        return [(s, self._sizes[s]) for s in self._starts]
