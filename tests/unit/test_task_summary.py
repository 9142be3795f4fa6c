"""The GCS's task summary (the dashboard's ``task_summary`` RPC): kept current as events merge.

Its counts must equal a full recount of the kept records after any mix of reports,
updates and drops, and a query must cost what changed, not what is kept.
"""
from __future__ import annotations

import random
import time

from juno.observability import task_events as te
from juno.gcs import task_summary as ts_mod
from juno.gcs.events import TaskEventStore
from juno.observability.state_schema import task_state_of

HEADER = (None, None, None)


def owner(i: int, final: str | None = None, start: float | None = None, end: float | None = None,
          info: bool = True, job: int = 1, attempt: int = 0) -> tuple:
    now = time.time()
    name = f"f{i % 7}"
    fields = (name, name, te.NORMAL_TASK, job, None, None, (("CPU", 1.0),), None) if info else None
    return (i.to_bytes(16, "little"), attempt, fields, now, now, now, now if final else None, final,
            "TASK_EXECUTION_EXCEPTION" if final == te.FAILED else None, "boom" if final == te.FAILED else None,
            start, end, None)


def recount(store: TaskEventStore, dead_jobs=frozenset()) -> tuple[dict, dict]:
    by_state: dict = {}
    by_function: dict = {}
    for rec in store.records.values():
        state = task_state_of(rec, dead_jobs)[0]
        by_state[state] = by_state.get(state, 0) + 1
        counts = by_function.setdefault(rec[te.FUNC_NAME], {})
        counts[state] = counts.get(state, 0) + 1
    return by_state, by_function


def test_counts_match_a_full_recount_through_reports_updates_and_drops():
    rng = random.Random(7)
    store = TaskEventStore(300)
    next_id = 0
    for round_ in range(40):
        reports = []
        for _ in range(rng.randint(1, 30)):  # new tasks, some already done
            final = rng.choice([None, None, te.FINISHED, te.FAILED])
            start = time.time() if final or rng.random() < 0.5 else None
            reports.append(owner(next_id, final, start, time.time() if final else None, job=rng.choice([1, 2])))
            next_id += 1
        for _ in range(rng.randint(0, 20)):  # later news of existing ones
            i = rng.randrange(max(1, next_id))
            reports.append(owner(i, rng.choice([te.FINISHED, te.FAILED]), time.time(), time.time(), info=False))
        store.add_reports(HEADER, reports, (), ())  # past 300 records the oldest are dropped
        if round_ % 3 == 0:
            dead = {2} if round_ > 20 else set()
            got = store.task_summary(50, dead)
            by_state, by_function = recount(store, frozenset(dead))
            assert got["by_state"] == by_state
            assert got["by_function"] == by_function
            assert len(got["running"]) <= 50 and len(got["failed"]) <= 50
            assert all(task_state_of(r, dead)[0] == "RUNNING" for r in got["running"])
            assert all(task_state_of(r, dead)[0] == te.FAILED for r in got["failed"])
            assert got["num_dropped"] == store.num_dropped


def test_cumulative_totals_count_dropped_records():
    store = TaskEventStore(10)
    store.task_summary(10, [])
    store.add_reports(HEADER, [owner(i, te.FINISHED if i % 2 else te.FAILED, 1.0, 2.0) for i in range(30)], (), ())
    got = store.task_summary(10, [])
    assert sum(got["by_state"].values()) == 10
    assert got["finished_total"] == 15 and got["failed_total"] == 15
    newest = [int.from_bytes(r[te.TASK_ID], "little") for r in got["failed"]]
    assert newest == sorted(newest, reverse=True) and newest[0] == 28


def test_a_query_costs_what_changed_not_what_is_kept(monkeypatch):
    n = 20_000
    store = TaskEventStore(n)
    store.add_reports(HEADER, [owner(i, None, 1.0) for i in range(n)], (), ())
    started = time.perf_counter()
    first = store.task_summary(100, [])
    full_s = time.perf_counter() - started
    assert first["by_state"] == {"RUNNING": n}
    calls = []
    real = ts_mod.task_state_of
    monkeypatch.setattr(ts_mod, "task_state_of", lambda rec, dead=frozenset(): calls.append(1) or real(rec, dead))
    store.add_reports(HEADER, [owner(i, te.FINISHED, 1.0, 2.0, info=False) for i in range(0, 500)], (), ())
    started = time.perf_counter()
    got = store.task_summary(100, [])
    incremental_s = time.perf_counter() - started
    assert len(calls) == 500, "only the records that changed are recounted"
    assert got["by_state"] == {"RUNNING": n - 500, "FINISHED": 500}
    calls.clear()
    assert store.task_summary(100, [])["by_state"] == got["by_state"] and calls == []
    print(f"task_summary over {n} records: first {full_s * 1e3:.1f} ms, after 500 changes "
          f"{incremental_s * 1e3:.2f} ms")
