"""Task counts kept up to date as task events merge (the dashboard's ``task_summary`` RPC).

The dashboard asks once a second for counts by state and by function, and the newest
running and failed attempts. Recomputing those over every kept record (up to
``task_events_max``, 100k and more) each second would cost the GCS tens of milliseconds
per poll; instead the :class:`~juno.gcs.events.TaskEventStore` tells this table which
records it touched (merged a report into, or dropped), and a query recomputes only those.
The table exists only once someone asked, so clusters without a dashboard pay nothing.

The cumulative finished/failed totals are the kept records plus those dropped (oldest
first, past ``task_events_max``) since the table exists; attempts whose reports were
dropped unread, before anyone asked, are counted only in the store's ``num_dropped``.
"""
from __future__ import annotations

from typing import Any, Iterable

from juno.observability import task_events as te
from juno.observability.state_schema import task_state_of

RUNNING = "RUNNING"


def _when(rec: list | None) -> float:
    """When a record last moved: its end, else its start, else its creation."""
    if rec is None:
        return 0.0
    for index in (te.T_END, te.T_RUN_END, te.T_START, te.T_CREATED):
        if rec[index] is not None:
            return rec[index]
    return 0.0


class TaskSummary:
    def __init__(self) -> None:
        self.touched: set[tuple] = set()  # keys whose record changed (or went) since the last query
        self._known: dict[tuple, tuple[str, str]] = {}  # key -> (state, function name) as counted
        self.by_state: dict[str, int] = {}
        self.by_function: dict[str, dict[str, int]] = {}
        # Keys in the order they entered the state: newest last (dicts keep insertion order).
        self._running: dict[tuple, None] = {}
        self._failed: dict[tuple, None] = {}
        self.dropped_finished = 0
        self.dropped_failed = 0
        self._dead_jobs: frozenset = frozenset()

    # ------------------------------------------------------------------ bookkeeping
    @staticmethod
    def _entry(rec: list, dead_jobs: Any) -> tuple[str, str]:
        state = task_state_of(rec, dead_jobs)[0]
        return state, rec[te.FUNC_NAME] or rec[te.NAME] or ""

    def _set(self, key: tuple, entry: tuple[str, str] | None) -> None:
        old = self._known.get(key)
        if old == entry:
            return
        if old is not None:
            state, name = old
            self.by_state[state] -= 1
            if not self.by_state[state]:
                del self.by_state[state]
            counts = self.by_function[name]
            counts[state] -= 1
            if not counts[state]:
                del counts[state]
                if not counts:
                    del self.by_function[name]
            if state == RUNNING:
                self._running.pop(key, None)
            elif state == te.FAILED:
                self._failed.pop(key, None)
        if entry is None:
            self._known.pop(key, None)
            return
        self._known[key] = entry
        state, name = entry
        self.by_state[state] = self.by_state.get(state, 0) + 1
        counts = self.by_function.setdefault(name, {})
        counts[state] = counts.get(state, 0) + 1
        if state == RUNNING:
            self._running[key] = None
        elif state == te.FAILED:
            self._failed[key] = None

    def removed(self, key: tuple, rec: list) -> None:
        """The store dropped this record: it still counts in the cumulative totals."""
        self.touched.discard(key)
        state = self._entry(rec, self._dead_jobs)[0]
        if state == te.FINISHED:
            self.dropped_finished += 1
        elif state == te.FAILED:
            self.dropped_failed += 1
        self._set(key, None)

    def removed_all(self, records: dict) -> None:
        for key, rec in records.items():
            self.removed(key, rec)

    def refresh(self, records: dict, dead_jobs: Iterable) -> None:
        """Recount what changed since the last query (everything when the finished jobs changed:
        an unfinished task of a finished job counts as failed)."""
        dead_jobs = frozenset(dead_jobs)
        if dead_jobs != self._dead_jobs or len(self.touched) > len(records) // 2:
            self._dead_jobs = dead_jobs
            self._rebuild(records)
            return
        touched, self.touched = self.touched, set()
        # In time order, so that the running and failed lists (insertion ordered) stay newest last.
        for key in sorted(touched, key=lambda k: _when(records.get(k))):
            rec = records.get(key)
            self._set(key, None if rec is None else self._entry(rec, dead_jobs))

    def _rebuild(self, records: dict) -> None:
        """Count every record afresh (the first query, or most records changed): one pass."""
        self.touched = set()
        known: dict[tuple, tuple[str, str]] = {}
        by_state: dict[str, int] = {}
        by_function: dict[str, dict[str, int]] = {}
        running: dict[tuple, None] = {}
        failed: dict[tuple, None] = {}
        dead_jobs, func, name_i = self._dead_jobs, te.FUNC_NAME, te.NAME
        for key, rec in records.items():
            state = task_state_of(rec, dead_jobs)[0]
            name = rec[func] or rec[name_i] or ""
            known[key] = (state, name)
            by_state[state] = by_state.get(state, 0) + 1
            counts = by_function.get(name)
            if counts is None:
                by_function[name] = counts = {}
            counts[state] = counts.get(state, 0) + 1
            if state == RUNNING:
                running[key] = None
            elif state == te.FAILED:
                failed[key] = None
        self._known, self.by_state, self.by_function = known, by_state, by_function
        self._running, self._failed = running, failed

    # ------------------------------------------------------------------ the answer
    def result(self, records: dict, limit: int) -> dict:
        """Counts, cumulative totals, and the newest ``limit`` running and failed records."""
        def newest(keys: dict) -> list[list]:
            out = []
            for key in reversed(keys):
                if len(out) >= limit:
                    break
                rec = records.get(key)
                if rec is not None:
                    out.append(rec)
            out.sort(key=_when, reverse=True)
            return out

        by_state = dict(self.by_state)
        return {
            "by_state": by_state,
            "by_function": {name: dict(counts) for name, counts in self.by_function.items()},
            "finished_total": by_state.get(te.FINISHED, 0) + self.dropped_finished,
            "failed_total": by_state.get(te.FAILED, 0) + self.dropped_failed,
            "running": newest(self._running), "failed": newest(self._failed),
        }
