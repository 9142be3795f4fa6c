"""A deployment's request figures over a sliding window, fed from replicas' get_metrics() (pure)."""
from __future__ import annotations

import collections

WINDOW_S = 10.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class DeploymentMetrics:
    """Totals that survive replicas coming and going, and rates over the last WINDOW_S seconds."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self.requests = 0
        self.errors = 0
        self._last: dict[str, tuple[int, int]] = {}  # replica id -> its (requests, errors) last seen
        self._ongoing: dict[str, int] = {}
        self._events: collections.deque[tuple[float, int, list[float]]] = collections.deque()

    def record(self, replica_id: str, sample: dict, now: float) -> None:
        """One replica's ``get_metrics()`` answer."""
        last_req, last_err = self._last.get(replica_id, (0, 0))
        new_req = max(0, sample["requests"] - last_req)
        self.requests += new_req
        self.errors += max(0, sample["errors"] - last_err)
        self._last[replica_id] = (sample["requests"], sample["errors"])
        self._ongoing[replica_id] = sample["ongoing"]
        self._events.append((now, new_req, list(sample.get("latencies_ms", ()))))
        self._trim(now)

    def forget(self, live_replica_ids: set[str]) -> None:
        for rid in list(self._ongoing):
            if rid not in live_replica_ids:
                self._ongoing.pop(rid, None)
                self._last.pop(rid, None)

    def ongoing(self) -> int:
        return sum(self._ongoing.values())

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()

    def summary(self, now: float) -> dict:
        self._trim(now)
        latencies = [ms for _, _, batch in self._events for ms in batch]
        count = sum(n for _, n, _ in self._events)
        return {"requests": self.requests, "errors": self.errors, "ongoing": self.ongoing(),
                "qps": count / self.window_s, "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99)}
