"""The GCS's bounded event tables: task attempts and actor state changes.

:class:`TaskEventStore` merges the pieces processes report about a task attempt
(the owner's transitions, the executing worker's run and error; see
runtime/observability/task_events.py for the layout) into one record per (task id, attempt).
It keeps at most ``max_tasks`` records: the oldest attempt is dropped first and
counted, per job too, so the state API can say what it no longer has.

:class:`BoundedLog` is a plain capped log (actor state changes).

:class:`GcsEvents` ties both to the GCS: the reports processes send, and the
actor life cycle the GCS sees itself (an actor's creation task is scheduled by
the GCS, so the GCS records it).
"""
from __future__ import annotations

import collections
import pickle
import time
from typing import Any, Iterable

from juno.observability import task_events as te
from juno.gcs.task_summary import TaskSummary


class TaskEventStore:
    """Task attempts, merged lazily.

    Reports arrive as pickled batches (``add_batch``) and wait, undecoded, until a query
    needs them; then only the newest batches that can still be kept are decoded and merged.
    Each batch says how many new attempts it starts, per job, so when more than
    ``PENDING_FACTOR`` times ``max_tasks`` are waiting the oldest batches are dropped and
    counted without being read. Receiving a report thus costs the GCS almost nothing,
    however many tasks the cluster runs.
    """

    PENDING_FACTOR = 2

    def __init__(self, max_tasks: int):
        self.max_tasks = max(1, int(max_tasks))
        self.records: dict[tuple, list] = {}
        self._order: collections.deque = collections.deque()
        self.num_dropped = 0
        self.dropped_by_job: dict[Any, int] = {}
        self._pending: collections.deque = collections.deque()  # (header, blob, new attempts per job)
        self._early: dict[tuple, dict] = {}  # worker reports that came before their owner's
        self._early_order: collections.deque = collections.deque()
        self._pending_new = 0
        self.summary: TaskSummary | None = None  # counts kept current once someone asked (task_summary)

    def __len__(self) -> int:
        self.compact()
        return len(self.records)

    def add_batch(self, header: tuple, blob: bytes, new_by_job: dict) -> None:
        """Keep one pickled ``(owner, runs, errors)`` report to merge later."""
        self._pending.append((header, blob, new_by_job))
        self._pending_new += sum(new_by_job.values())
        if self._pending_new > self.PENDING_FACTOR * self.max_tasks:
            self._trim()

    def _trim(self) -> None:
        """More is waiting than can be kept: forget the oldest batches unread (and count them),
        keeping the newest ``max_tasks`` new attempts. Everything merged before is older still."""
        self._drop_all_records()
        pending = self._pending
        while pending and self._pending_new - sum(pending[0][2].values()) >= self.max_tasks:
            _, _, new_by_job = pending.popleft()
            for job, n in new_by_job.items():
                self._pending_new -= n
                self._count_dropped(job, n)

    def _drop_all_records(self) -> None:
        """Forget every merged record, counting each as dropped (and in the summary's totals)."""
        if self.summary is not None:
            self.summary.removed_all(self.records)
        for rec in self.records.values():
            self._count_dropped(rec[te.JOB_ID], 1)
        self.records.clear()
        self._order.clear()

    def compact(self) -> None:
        """Merge what is pending, skipping (and counting) batches too old to be kept."""
        pending = self._pending
        if not pending:
            return
        self._pending = collections.deque()
        self._pending_new = 0
        # Newest first: find the oldest batch still within the newest max_tasks new attempts.
        keep_from, seen = 0, 0
        for i in range(len(pending) - 1, -1, -1):
            seen += sum(pending[i][2].values())
            if seen >= self.max_tasks:
                keep_from = i
                break
        while keep_from > 0 and not pending[keep_from - 1][2]:
            keep_from -= 1  # workers' news just before the cut may be about attempts kept
        for i in range(keep_from):
            for job, n in pending[i][2].items():
                self._count_dropped(job, n)
        if seen >= self.max_tasks:  # the batches kept fill the table: every older record goes
            self._drop_all_records()
        for i in range(keep_from, len(pending)):
            header, blob, _ = pending[i]
            owner, runs, errors = pickle.loads(blob)
            self.add_reports(header, owner, runs, errors)

    def _count_dropped(self, job: Any, n: int) -> None:
        if n:
            self.num_dropped += n
            self.dropped_by_job[job] = self.dropped_by_job.get(job, 0) + n

    def _record(self, task_id: bytes, attempt: int) -> list:
        key = (task_id, attempt)
        rec = self.records.get(key)
        if rec is None:
            rec = [None] * te.NUM_FIELDS
            rec[te.TASK_ID] = task_id
            rec[te.ATTEMPT] = attempt
            self.records[key] = rec
            self._order.append(key)
            if len(self.records) > self.max_tasks:
                self._drop_oldest()
        return rec

    def _drop_oldest(self) -> None:
        while len(self.records) > self.max_tasks:
            key = self._order.popleft()
            old = self.records.pop(key, None)
            if old is not None:
                self._count_dropped(old[te.JOB_ID], 1)
                if self.summary is not None:
                    self.summary.removed(key, old)

    def add_reports(self, header: tuple, owner: Iterable[tuple], runs: Iterable[tuple],
                    errors: Iterable[tuple]) -> None:
        """Merge one report (see TaskEventRecorder.flush). An attempt starts with its owner's first
        report (the one with its info); a later owner report of an attempt no longer here (dropped)
        is ignored, and what the executing worker says before the owner did waits aside."""
        records = self.records
        touched = self.summary.touched if self.summary is not None else set()
        for rep in owner:
            key = (rep[0], rep[1])
            rec = records.get(key)
            if rec is None:
                if rep[2] is None:
                    continue  # its first report was dropped: so is the attempt
                rec = self._record(rep[0], rep[1])
                early = self._early.pop(key, None)
                if early is not None:
                    for index, value in early.items():
                        rec[index] = value
            touched.add(key)
            if rep[2] is not None:
                rec[te.INFO] = rep[2]
            rec[te.OWNER] = rep[3:10]
            if rep[10] is not None:  # the run, as the result brought it to the owner
                rec[te.T_START], rec[te.T_RUN_END] = rep[10:12]
            if rep[12] is not None and rec[te.WORKER_ID] != rep[12]:  # the worker it was pushed to
                rec[te.WORKER_ID] = rep[12]
                rec[te.NODE_ID] = rec[te.WORKER_PID] = None  # the state API looks them up by worker id
        for run in runs:
            rec = records.get((run[0], run[1]))
            if rec is None:
                self._hold(run[0], run[1], {te.T_START: run[2], te.T_RUN_END: run[3], te.NODE_ID: header[0],
                                            te.WORKER_ID: header[1], te.WORKER_PID: header[2]})
                continue
            if run[3] is None and rec[te.T_RUN_END] is not None:
                continue  # a late "still running" after the end arrived
            touched.add((run[0], run[1]))
            rec[te.RUN] = run[2:4]
            rec[te.WORKER] = header
        for err in errors:
            rec = records.get((err[0], err[1]))
            if rec is None:
                self._hold(err[0], err[1], {te.WORKER_ERROR_TYPE: err[2], te.WORKER_ERROR_MESSAGE: err[3],
                                            te.NODE_ID: header[0], te.WORKER_ID: header[1],
                                            te.WORKER_PID: header[2]})
                continue
            touched.add((err[0], err[1]))
            rec[te.WORKER_ERROR] = err[2:4]
            rec[te.WORKER] = header

    def _hold(self, task_id: bytes, attempt: int, fields: dict) -> None:
        """A worker's news of an attempt whose owner has not reported it yet (bounded)."""
        key = (task_id, attempt)
        held = self._early.get(key)
        if held is None:
            self._early[key] = held = {}
            self._early_order.append(key)
            while len(self._early) > self.max_tasks:
                self._early.pop(self._early_order.popleft(), None)
            if len(self._early_order) > 2 * self.max_tasks:  # keys whose owner report came since
                self._early_order = collections.deque(k for k in self._early_order if k in self._early)
        if fields.get(te.T_RUN_END, 0) is None and held.get(te.T_RUN_END) is not None:
            return
        held.update(fields)

    def update(self, task_id: bytes, attempt: int, fields: dict[int, Any]) -> None:
        """Set some fields of one attempt (the GCS's own observations); nothing if it was dropped."""
        rec = self.records.get((task_id, attempt))
        if rec is None:
            return
        if self.summary is not None:
            self.summary.touched.add((task_id, attempt))
        for index, value in fields.items():
            rec[index] = value

    def task_summary(self, limit: int, dead_jobs: Iterable) -> dict:
        """Counts by state and function, cumulative totals, newest running and failed records
        (runtime/gcs/task_summary.py): the first call counts every record, later ones what changed."""
        self.compact()
        if self.summary is None:
            self.summary = TaskSummary()
            self.summary.touched.update(self.records)
        self.summary.refresh(self.records, dead_jobs)
        out = self.summary.result(self.records, limit)
        out["num_dropped"] = self.num_dropped
        return out

    def get(self, task_id: bytes, attempt: int) -> list | None:
        return self.records.get((task_id, attempt))

    def snapshot(self, job_id: Any = None) -> list[list]:
        """Every kept attempt, oldest first."""
        self.compact()
        return [r for r in self.records.values() if job_id is None or r[te.JOB_ID] == job_id]


class BoundedLog:
    """At most ``maxlen`` entries; appending past it drops the oldest, counted in ``num_dropped``."""

    def __init__(self, maxlen: int):
        self.entries: collections.deque = collections.deque(maxlen=max(1, int(maxlen)))
        self.num_dropped = 0

    def append(self, entry: Any) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.num_dropped += 1
        self.entries.append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)


class GcsEvents:
    """The GCS's task and actor event tables, and the hooks the actor manager calls."""

    def __init__(self, config):
        self.tasks = TaskEventStore(config.task_events_max)
        self.actor_log = BoundedLog(config.actor_events_max)
        self.num_reports = 0
        self.report_bytes = 0

    # ---- reports from processes ----
    def report(self, header, blob: bytes, new_by_job: dict) -> None:
        self.num_reports += 1
        self.report_bytes += len(blob)
        self.tasks.add_batch(header, blob, new_by_job)

    # ---- actors: state changes and their creation tasks ----
    def actor_state(self, record, message: str = "") -> None:
        self.actor_log.append((time.time(), record.actor_id, record.state, message))

    def actor_registered(self, record) -> None:
        spec = record.spec
        now = time.time()
        resources = record.info.get("resources") or {}
        info = (spec.name, spec.name, te.ACTOR_CREATION_TASK, spec.job_id,
                record.actor_id, None, tuple(sorted(resources.items())), None)
        self.tasks.add_reports((None, None, None), [(spec.task_id, 0, info, now, now, None, None, None, None,
                                                     None, None, None, None)], (), ())
        self.actor_state(record)

    def actor_creation_sent(self, record) -> None:
        self.tasks.update(record.spec.task_id, record.num_restarts, {te.T_PUSHED: time.time(),
                                                                          te.NODE_ID: record.node_id,
                                                                          te.WORKER_ID: record.worker_id})

    def actor_created(self, record, error_text: str | None) -> None:
        if error_text is None:
            fields = {te.T_END: time.time(), te.FINAL: te.FINISHED}
        else:
            fields = {te.T_END: time.time(), te.FINAL: te.FAILED, te.ERROR_TYPE: "TASK_EXECUTION_EXCEPTION",
                      te.ERROR_MESSAGE: error_text[:te.MAX_ERROR_MESSAGE]}
        self.tasks.update(record.spec.task_id, record.num_restarts, fields)

    def actor_restarting(self, record, reason: str) -> None:
        """The actor's process died and it restarts: its creation task runs again as a new attempt."""
        task_id = record.spec.task_id
        self._fail_creation(task_id, record.num_restarts - 1, reason)
        old = self.tasks.get(task_id, record.num_restarts - 1)
        now = time.time()
        info = tuple(old[te.INFO]) if old is not None else None
        self.tasks.add_reports((None, None, None), [(task_id, record.num_restarts, info, now, now, None, None,
                                                     None, None, None, None, None, None)], (), ())
        self.actor_state(record, reason)

    def actor_changed(self, record) -> None:
        """The actor manager publishes a new state (ALIVE, RESTARTING or DEAD)."""
        if record.state == "RESTARTING":
            self.actor_restarting(record, getattr(record, "last_death", "") or "")
        elif record.state == "DEAD":
            self.actor_dead(record)
        else:
            self.actor_state(record)

    def actor_dead(self, record) -> None:
        self._fail_creation(record.spec.task_id, record.num_restarts, record.death_cause)
        self.actor_state(record, record.death_cause)

    def _fail_creation(self, task_id: bytes, attempt: int, reason: str) -> None:
        rec = self.tasks.get(task_id, attempt)
        if rec is not None and rec[te.FINAL] is None:
            self.tasks.update(task_id, attempt, {te.T_END: time.time(), te.FINAL: te.FAILED,
                                                 te.ERROR_TYPE: "ACTOR_DIED",
                                                 te.ERROR_MESSAGE: (reason or "the actor died")[:te.MAX_ERROR_MESSAGE]})

    # ---- queries ----
    def task_snapshot(self, job_id: Any = None) -> dict:
        records = self.tasks.snapshot(job_id)
        return {"records": records, "num_dropped": self.tasks.num_dropped,
                "dropped_by_job": dict(self.tasks.dropped_by_job), "max_tasks": self.tasks.max_tasks,
                "num_reports": self.num_reports, "report_bytes": self.report_bytes,
                "now": time.time()}

    def task_summary(self, limit: int, dead_jobs: Iterable) -> dict:
        out = self.tasks.task_summary(limit, dead_jobs)
        out["now"] = time.time()
        return out

    def actor_events(self, actor_id: bytes | None = None) -> dict:
        entries = [e for e in self.actor_log if actor_id is None or e[1] == actor_id]
        return {"events": entries, "num_dropped": self.actor_log.num_dropped}

    def actor_table(self, records: Iterable) -> list[dict]:
        history: dict[bytes, list] = {}
        for ts_, actor_id, state, message in self.actor_log:
            history.setdefault(actor_id, []).append({"state": state, "time_ms": int(ts_ * 1000),
                                                     "message": message or None})
        out = []
        for record in records:
            row = record.public()
            row["resources"] = record.info.get("resources") or {}
            row["runtime_env"] = record.info.get("runtime_env")
            row["events"] = history.get(record.actor_id, [])
            row["max_restarts"] = record.info.get("max_restarts", 0)
            row["worker_id"] = record.worker_id
            out.append(row)
        return out
