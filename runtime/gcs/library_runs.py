"""The GCS's table of library runs (``juno.util.progress``): what the dashboard's "Libraries" shows.

Drivers publish snapshots of their runs (plain dicts, see ``RunSnapshot.to_dict``) at most once a
second; this keeps the latest of each, bounded: every running run (up to ``max_running``, the
least recently updated dropped first) and the last ``max_ended`` ended ones. Snapshots may arrive
out of order (intermediate ones are fire-and-forget, the final one is a request): an older
version, or a running snapshot of an ended run, never replaces what is kept. A run whose job ends
while it still runs is marked failed, so no run stays "running" after its driver is gone.
Kept in memory only: a restarted GCS starts with an empty table. Pure: no I/O, the clock is passed in.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Callable

REQUIRED = ("run_id", "kind", "title", "state", "version")
STATES = ("running", "finished", "failed")


class LibraryRunTable:
    def __init__(self, max_ended: int = 100, max_running: int = 1000,
                 wall_clock: Callable[[], float] = time.time):
        self.max_ended = max_ended
        self.max_running = max_running
        self._wall = wall_clock
        self._running: OrderedDict[str, dict] = OrderedDict()  # least recently updated first
        self._ended: OrderedDict[str, dict] = OrderedDict()    # oldest ended first

    def publish(self, run: dict) -> bool:
        """Keep ``run`` if it is news; False when it is malformed or older than what is kept."""
        if not isinstance(run, dict) or any(k not in run for k in REQUIRED) or run["state"] not in STATES:
            return False
        run_id = run["run_id"]
        if run_id in self._ended:
            return False  # an ended run never changes again
        old = self._running.get(run_id)
        if old is not None and old["version"] >= run["version"]:
            return False
        if run["state"] == "running":
            self._running[run_id] = run
            self._running.move_to_end(run_id)
            while len(self._running) > self.max_running:
                self._running.popitem(last=False)
        else:
            self._running.pop(run_id, None)
            self._ended[run_id] = run
            while len(self._ended) > self.max_ended:
                self._ended.popitem(last=False)
        return True

    def on_job_finished(self, job_hex: str) -> None:
        """The job's driver is gone: its runs that never ended end failed."""
        for run in [r for r in self._running.values() if r.get("job_id") == job_hex]:
            self.publish({**run, "state": "failed", "version": run["version"] + 1, "end_time": self._wall(),
                          "error": run.get("error") or "the driver exited before the run ended"})

    def runs(self, kind: str | None = None, series: bool = True) -> list[dict[str, Any]]:
        """Every kept run, oldest start first; only those of ``kind`` when given. Without ``series``
        each run carries only the last value of each chart series (``series_last``): what the
        dashboard polls every second stays small."""
        rows = [r for r in (*self._ended.values(), *self._running.values()) if kind is None or r["kind"] == kind]
        rows.sort(key=lambda r: r.get("start_time") or 0)
        if not series:
            rows = [{**{k: v for k, v in r.items() if k != "series"},
                     "series_last": {n: pts[-1][1] for n, pts in (r.get("series") or {}).items() if pts}}
                    for r in rows]
        return rows
