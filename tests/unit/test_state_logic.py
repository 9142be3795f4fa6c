"""The state API's pure logic: the GCS's bounded event tables, the owner-side recorder, task
states, filters, summaries, the timeline and the output formats. No cluster needed."""
from __future__ import annotations

import json
import os
import pickle
import time
import warnings

import pytest

from juno import exceptions as exc
from juno.observability import state_schema as schema
from juno.observability import task_events as te
from juno.owner import task_spec as ts
from juno.config import Config
from juno.gcs.events import BoundedLog, GcsEvents, TaskEventStore
from juno.owner.task_spec import TaskEntry

HEADER = ("node-1", b"w" * 16, 4242)


def info(name="f", job=1, kind=te.NORMAL_TASK, actor=None, parent=None):
    return (name, name, kind, job, actor, parent, (("CPU", 1.0),), None)


def owner_report(tid, attempt=0, with_info=True, t=100.0, final=None, error=(None, None), run=(None, None, None),
                 **kw):
    return (tid, attempt, info(**kw) if with_info else None, t, t + 1, t + 2, t + 4 if final else None, final,
            *error, *run)


def tid(i: int) -> bytes:
    return i.to_bytes(16, "little")


def blob(owner=(), runs=(), errors=()):
    return pickle.dumps((list(owner), list(runs), list(errors)))


def new_by_job(owner):
    out: dict = {}
    for rep in owner:
        if rep[2] is not None:
            out[rep[2][3]] = out.get(rep[2][3], 0) + 1
    return out


# ============================================================================ the GCS's task table
def test_store_merges_owner_and_worker_reports_into_one_record():
    store = TaskEventStore(100)
    store.add_reports(HEADER, [owner_report(tid(1))], [], [])
    store.add_reports(HEADER, [], [(tid(1), 0, 102.5, 103.5)], [])
    store.add_reports(HEADER, [owner_report(tid(1), with_info=False, final=te.FINISHED)], [], [])
    (rec,) = store.snapshot()
    assert rec[te.NAME] == "f" and rec[te.FINAL] == te.FINISHED and rec[te.T_END] == 104.0
    assert (rec[te.T_START], rec[te.T_RUN_END]) == (102.5, 103.5)
    assert (rec[te.NODE_ID], rec[te.WORKER_ID], rec[te.WORKER_PID]) == HEADER


def test_store_drops_oldest_first_and_counts_per_job():
    store = TaskEventStore(3)
    for i in range(5):
        store.add_reports(HEADER, [owner_report(tid(i), job=1 if i < 2 else 2)], [], [])
    assert [r[te.TASK_ID] for r in store.snapshot()] == [tid(2), tid(3), tid(4)]
    assert store.num_dropped == 2 and store.dropped_by_job == {1: 2}
    # a later report of a dropped attempt is ignored, not resurrected without its info
    store.add_reports(HEADER, [owner_report(tid(0), with_info=False, final=te.FINISHED)], [], [])
    assert len(store.snapshot()) == 3 and store.num_dropped == 2


def test_run_reported_by_the_owner_fills_the_worker_part():
    store = TaskEventStore(10)
    store.add_reports(HEADER, [], [(tid(3), 0, 1.0, None)], [])  # the worker said: running
    store.add_reports(HEADER, [owner_report(tid(3))], [], [])  # the owner, before the result
    (rec,) = store.snapshot()
    assert rec[te.T_START] == 1.0 and rec[te.T_RUN_END] is None
    store.add_reports(HEADER, [owner_report(tid(3), with_info=False, final=te.FINISHED, run=(1.0, 2.0, b"x"))],
                      [], [])
    assert (rec[te.T_START], rec[te.T_RUN_END], rec[te.WORKER_ID]) == (1.0, 2.0, b"x")


def test_worker_report_before_the_owner_report_waits_for_it():
    store = TaskEventStore(10)
    store.add_reports(HEADER, [], [(tid(7), 0, 5.0, 6.0)], [(tid(7), 0, "TASK_EXECUTION_EXCEPTION", "boom")])
    assert store.snapshot() == []
    store.add_reports(HEADER, [owner_report(tid(7), final=te.FAILED)], [], [])
    (rec,) = store.snapshot()
    assert rec[te.T_START] == 5.0 and rec[te.WORKER_PID] == 4242 and rec[te.WORKER_ERROR_MESSAGE] == "boom"


def test_late_running_report_does_not_undo_the_end():
    store = TaskEventStore(10)
    store.add_reports(HEADER, [owner_report(tid(1))], [(tid(1), 0, 1.0, 2.0)], [])
    store.add_reports(HEADER, [], [(tid(1), 0, 1.0, None)], [])
    assert store.snapshot()[0][te.T_RUN_END] == 2.0


def test_lazy_batches_skip_what_cannot_be_kept():
    store = TaskEventStore(10)
    for b in range(6):  # 6 batches of 5 new attempts; only the newest 10 can stay
        owner = [owner_report(tid(b * 5 + i), final=te.FINISHED) for i in range(5)]
        runs = [(tid(b * 5 + i), 0, 1.0, 2.0) for i in range(5)]
        store.add_batch(HEADER, blob(runs=runs), {})
        store.add_batch(HEADER, blob(owner=owner), new_by_job(owner))
    assert store._pending  # nothing merged until asked
    records = store.snapshot()
    assert [r[te.TASK_ID] for r in records] == [tid(i) for i in range(20, 30)]
    assert store.num_dropped == 20 and store.dropped_by_job == {1: 20}
    assert all(r[te.T_RUN_END] == 2.0 for r in records)


def test_lazy_batches_compact_on_their_own_past_the_bound():
    store = TaskEventStore(5)
    for b in range(30):
        owner = [owner_report(tid(b))]
        store.add_batch(HEADER, blob(owner=owner), new_by_job(owner))
        assert len(store._pending) <= TaskEventStore.PENDING_FACTOR * 5 + 1
    assert len(store.snapshot()) == 5 and store.num_dropped == 25


def test_bounded_log_drops_oldest_and_counts():
    log = BoundedLog(3)
    for i in range(5):
        log.append(i)
    assert list(log) == [2, 3, 4] and log.num_dropped == 2 and len(log) == 3


class _Record:
    """Stands in for the actor manager's ActorRecord."""

    def __init__(self):
        self.actor_id = b"a" * 16
        self.spec = ts.make_spec(task_id=tid(99), kind=ts.KIND_ACTOR_CREATE, name="Counter.__init__", job_id=3)
        self.info = {"class_name": "Counter", "resources": {"CPU": 1.0}}
        self.state, self.num_restarts, self.node_id, self.worker_id = "PENDING_CREATION", 0, "n", b"w"
        self.death_cause, self.last_death = "", ""


def test_gcs_records_actor_creation_tasks_and_state_changes():
    events = GcsEvents(Config())
    record = _Record()
    events.actor_registered(record)
    events.actor_creation_sent(record)
    record.state = "ALIVE"
    events.actor_created(record, None)
    events.actor_changed(record)
    record.state, record.num_restarts, record.last_death = "RESTARTING", 1, "it crashed"
    events.actor_changed(record)
    record.state, record.death_cause = "DEAD", "killed"
    events.actor_changed(record)
    first, second = sorted(events.tasks.snapshot(), key=lambda r: r[te.ATTEMPT])
    assert first[te.TYPE] == te.ACTOR_CREATION_TASK and first[te.FINAL] == te.FINISHED
    assert second[te.FINAL] == te.FAILED and second[te.ERROR_TYPE] == "ACTOR_DIED"
    states = [e[2] for e in events.actor_events()["events"]]
    assert states == ["PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"]


# ============================================================================ the owner's recorder
class _Loop:
    def call_later(self, *args):
        pass

    def call_soon(self, fn, *args):
        fn(*args)


class _CoreWorker:
    def __init__(self):
        self.config = Config(task_events_report_batch=1000)
        self.node_id, self.worker_id, self.loop = "node-1", b"w" * 16, _Loop()
        self.call_sites, self.shutting_down, self.gcs_address = None, False, "gcs"
        self.sent: list = []

    def notify(self, address, method, *args):
        self.sent.append(args)


def make_entry(i: int) -> TaskEntry:
    spec = ts.make_spec(task_id=tid(i), kind=ts.KIND_TASK, name="work", job_id=1, extra={"namespace": "x"})
    entry = TaskEntry(tid(i), spec, [tid(i) + b"\x01\0\0\0"], [], 3)
    entry.key = ((("CPU", 1.0),), None, None, 0, True)
    return entry


def decoded(cw):
    out = []
    for header, data, new in cw.sent:
        owner, runs, errors = pickle.loads(data)
        out.append((header, owner, runs, errors, new))
    return out


def test_recorder_reports_a_quick_task_once_when_done():
    cw = _CoreWorker()
    rec = te.TaskEventRecorder(cw)
    entry = make_entry(1)
    rec.created(entry)
    rec.ready(entry)
    rec.flush()  # submitted just now and not finished: waits for the next report
    assert cw.sent == []
    rec.pushed(entry)
    rec.ran_remotely(entry, (5.0, 6.0), b"x" * 16)  # the run came back with the result
    rec.finished(entry, [("v", b"JNO1\0\0\0\0" + b"\0" * 20)])
    rec.flush()
    rec.flush()  # nothing new: nothing sent
    ((_, owner, runs, errors, new),) = decoded(cw)
    assert new == {1: 1} and runs == [] and errors == []
    ((task_id, attempt, info, created, ready, pushed, end, final, etype, emsg, start, run_end, worker),) = owner
    assert (task_id, attempt, info[0], info[2], info[3]) == (tid(1), 0, "work", te.NORMAL_TASK, 1)
    assert created <= ready <= pushed <= end and final == te.FINISHED and etype is None
    assert (start, run_end, worker) == (5.0, 6.0, b"x" * 16)


def test_recorder_reports_a_long_pending_task_then_its_end(monkeypatch):
    cw = _CoreWorker()
    rec = te.TaskEventRecorder(cw)
    entry = make_entry(1)
    rec.created(entry)
    later = time.time() + 1
    monkeypatch.setattr(te, "_now", lambda: later)
    rec.flush()
    rec.pushed(entry)
    rec.finished(entry, [("s", "node")])
    rec.flush()
    (_, first, _, _, new1), (_, second, _, _, new2) = decoded(cw)
    assert new1 == {1: 1} and new2 == {}
    assert first[0][2][0] == "work" and first[0][7] is None  # info once, state pending
    assert second[0][2] is None and second[0][7] == te.FINISHED and second[0][5] == later


def test_recorder_flushes_once_a_batch_of_tasks_finished():
    cw = _CoreWorker()
    cw.config.task_events_report_batch = 3
    rec = te.TaskEventRecorder(cw)
    entries = [make_entry(i) for i in range(3)]
    for e in entries:
        rec.created(e)
    for e in entries[:2]:
        rec.finished(e, [])
    assert cw.sent == []
    rec.finished(entries[2], [])
    ((_, owner, _, _, new),) = decoded(cw)
    assert len(owner) == 3 and new == {1: 3}
    rec.created(make_entry(9))
    rec.flush(force=True)  # shutting down: everything goes
    assert len(decoded(cw)) == 2


def test_recorder_marks_error_results_failed_and_retries_as_new_attempts():
    cw = _CoreWorker()
    rec = te.TaskEventRecorder(cw)
    entry = make_entry(2)
    rec.created(entry)
    rec.retry(entry, "WORKER_DIED", "worker 12 died")
    assert entry.attempt == 1 and entry.spec[ts.EXTRA] == {"namespace": "x", "attempt": 1}
    assert te.attempt_of(entry.spec[ts.EXTRA]) == 1
    rec.finished(entry, [("v", b"JNO1\x01\0\0\0" + b"\0" * 20)])
    rec.flush()
    ((_, owner, _, _, new),) = decoded(cw)
    by_attempt = {r[1]: r for r in owner}
    assert by_attempt[0][7] == te.FAILED and by_attempt[0][8:10] == ("WORKER_DIED", "worker 12 died")
    assert by_attempt[1][7] == te.FAILED and by_attempt[1][2] is not None  # each attempt has its info
    assert new == {1: 2}


def test_recorder_reads_the_error_a_failed_result_holds():
    from juno.owner import serialization

    cw = _CoreWorker()
    rec = te.TaskEventRecorder(cw)
    entry = make_entry(3)
    rec.created(entry)
    error = exc.RayTaskError("work", "Traceback...\nValueError: bad input", ValueError("bad input"))
    rec.finished(entry, [("v", serialization.serialize(error, error=True).to_bytes())])
    rec.flush()
    ((_, (report,), _, _, _),) = decoded(cw)
    assert report[7] == te.FAILED and report[8] == "TASK_EXECUTION_EXCEPTION" and "bad input" in report[9]


def test_recorder_worker_side_runs_running_and_errors():
    cw = _CoreWorker()
    rec = te.TaskEventRecorder(cw)
    rec.running_probe = lambda: [(tid(5), 0, 9.0)]
    rec.ran(tid(4), 0, 1.0, 2.0)
    spec = ts.make_spec(task_id=tid(4), kind=ts.KIND_TASK, extra={"attempt": 2})
    rec.worker_error(spec, exc.TaskCancelledError("x"))
    rec.flush()
    ((header, owner, runs, errors, _),) = decoded(cw)
    assert header == ("node-1", b"w" * 16, os.getpid()) and owner == []
    assert runs == [(tid(5), 0, 9.0, None), (tid(4), 0, 1.0, 2.0)]
    assert errors[0][:3] == (tid(4), 2, "TASK_CANCELLED")


def test_error_types_follow_ray():
    assert te.error_type_of(exc.WorkerCrashedError("x")) == "WORKER_DIED"
    assert te.error_type_of(exc.ActorDiedError("a", "b")) == "ACTOR_DIED"
    assert te.error_type_of(exc.OutOfMemoryError("x")) == "OUT_OF_MEMORY"
    assert te.error_type_of(ValueError("x")) == "TASK_EXECUTION_EXCEPTION"
    wrapped = exc.RayTaskError("f", "tb", exc.TaskCancelledError("t"))
    assert te.error_type_of(wrapped) == "TASK_CANCELLED"
    assert te.error_type_of(exc.RayTaskError("f", "tb", KeyError("k"))) == "TASK_EXECUTION_EXCEPTION"
    assert len(te.error_message_of(ValueError("x" * 100_000))) < 10_000


# ============================================================================ task states
def record(**fields) -> list:
    rec = [None] * te.NUM_FIELDS
    rec[te.TASK_ID], rec[te.ATTEMPT], rec[te.TYPE], rec[te.JOB_ID] = tid(1), 0, te.NORMAL_TASK, 1
    for name, value in fields.items():
        rec[getattr(te, name.upper())] = value
    return rec


@pytest.mark.parametrize("fields, expected", [
    ({"t_created": 1.0}, "PENDING_ARGS_AVAIL"),
    ({"t_created": 1.0, "t_ready": 2.0}, "PENDING_NODE_ASSIGNMENT"),
    ({"t_created": 1.0, "t_ready": 2.0, "t_pushed": 3.0}, "SUBMITTED_TO_WORKER"),
    ({"t_pushed": 3.0, "t_start": 4.0}, "RUNNING"),
    ({"t_start": 4.0, "t_run_end": 5.0}, "FINISHED"),
    ({"t_start": 4.0, "final": "FINISHED"}, "FINISHED"),
    ({"final": "FINISHED", "worker_error_type": "TASK_EXECUTION_EXCEPTION"}, "FAILED"),
    ({"final": "FAILED"}, "FAILED"),
])
def test_task_state_derivation(fields, expected):
    assert schema.task_state_of(record(**fields))[0] == expected


def test_failed_task_error_prefers_the_precise_source():
    worker = record(final="FAILED", worker_error_type="TASK_CANCELLED", worker_error_message="cancelled")
    assert schema.task_state_of(worker)[1:] == ("TASK_CANCELLED", "cancelled")
    owner = record(final="FAILED", error_type="WORKER_DIED", error_message="died",
                   worker_error_type="TASK_EXECUTION_EXCEPTION", worker_error_message="partial")
    assert schema.task_state_of(owner)[1:] == ("WORKER_DIED", "died")
    assert schema.task_state_of(record(final="FAILED"))[1] == "TASK_EXECUTION_EXCEPTION"
    dead_job = record(t_created=1.0)
    assert schema.task_state_of(dead_job, {1})[:2] == ("FAILED", "WORKER_DIED")


def test_task_row_has_rays_columns_and_events():
    rec = record(name="f", func_name="f", t_created=1.0, t_ready=1.5, t_pushed=2.0, t_start=3.0, t_run_end=4.0,
                 t_end=4.5, final="FINISHED", resources=(("CPU", 1.0),), node_id="n", worker_pid=7)
    row = schema.task_row(rec)
    assert set(schema.TaskState.BASE) <= set(row)
    assert row["task_id"] == tid(1).hex() and row["job_id"] == "01000000" and row["required_resources"] == {"CPU": 1.0}
    assert [e["state"] for e in row["events"]] == ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT",
                                                   "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED"]
    assert (row["creation_time_ms"], row["start_time_ms"], row["end_time_ms"]) == (1000, 3000, 4500)
    plain = schema.project([row], schema.TaskState, detail=False)[0]
    assert list(plain) == list(schema.TaskState.BASE) and plain.state == "FINISHED" and plain["worker_pid"] == 7
    with pytest.raises(AttributeError):
        plain.events


# ============================================================================ filters, limits, summaries
ROWS = [
    {"name": "f", "state": "FINISHED", "worker_pid": 10, "is_alive": True, "actor_id": None},
    {"name": "g", "state": "FAILED", "worker_pid": 11, "is_alive": False, "actor_id": "ab"},
    {"name": "F", "state": "RUNNING", "worker_pid": 10, "is_alive": True, "actor_id": None},
]


@pytest.mark.parametrize("filters, names", [
    ([("state", "=", "failed")], ["g"]),
    ([("name", "=", "f")], ["f", "F"]),
    ([("name", "!=", "f")], ["g"]),
    ([("worker_pid", "=", "10")], ["f", "F"]),
    ([("worker_pid", "=", 11)], ["g"]),
    ([("is_alive", "=", "false")], ["g"]),
    ([("is_alive", "=", True)], ["f", "F"]),
    ([("actor_id", "=", "None")], ["f", "F"]),
    ([("name", "=", "f"), ("state", "=", "RUNNING")], ["F"]),
    (["state!=FINISHED"], ["g", "F"]),
])
def test_filters(filters, names):
    checked = schema.check_filters(filters, ROWS[0].keys())
    assert [r["name"] for r in schema.apply_filters(ROWS, checked)] == names


def test_filter_errors_and_parsing():
    assert schema.parse_filter("state = FAILED") == ("state", "=", "FAILED")
    assert schema.parse_filter("name!=a=b") == ("name", "!=", "a=b")
    for bad in ("state", "=x", ""):
        with pytest.raises(ValueError):
            schema.parse_filter(bad)
    with pytest.raises(ValueError, match="Unknown filter key 'x'"):
        schema.check_filters([("x", "=", 1)], ["a"])
    with pytest.raises(ValueError, match="predicate"):
        schema.check_filters([("a", "~", 1)], ["a"])
    with pytest.raises(ValueError, match="key, predicate, value"):
        schema.check_filters([("a", "=")], ["a"])


def test_limit_warns_when_it_truncates():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert schema.limited([1, 2, 3], 2, "tasks") == [1, 2]
        assert schema.limited([1, 2], 2, "tasks") == [1, 2]
    assert len(caught) == 1 and "3 tasks match; showing 2" in str(caught[0].message)


def test_summaries_count_by_group_and_state():
    tasks = [{"func_or_class_name": "f", "type": te.NORMAL_TASK, "state": "FINISHED"}] * 3 + [
        {"func_or_class_name": "f", "type": te.NORMAL_TASK, "state": "FAILED"},
        {"func_or_class_name": "A.m", "type": te.ACTOR_TASK, "state": "RUNNING"},
        {"func_or_class_name": "A.__init__", "type": te.ACTOR_CREATION_TASK, "state": "FINISHED"}]
    s = schema.summarize_task_rows(tasks)["cluster"]
    assert s["summary"]["f"]["state_counts"] == {"FINISHED": 3, "FAILED": 1}
    assert (s["total_tasks"], s["total_actor_tasks"], s["total_actor_scheduled"]) == (4, 1, 1)
    actors = schema.summarize_actor_rows([{"class_name": "A", "state": "ALIVE"}, {"class_name": "A", "state": "DEAD"}])
    assert actors["cluster"]["summary"]["A"]["state_counts"] == {"ALIVE": 1, "DEAD": 1}
    assert actors["cluster"]["total_actors"] == 2
    objects = [
        {"object_id": "1", "object_size": 2**20, "call_site": "a.py:1", "task_status": "NIL",
         "reference_type": "LOCAL_REFERENCE", "pid": 1, "node_id": "n"},
        {"object_id": "1", "object_size": 2**20, "call_site": "a.py:1", "task_status": "NIL",
         "reference_type": "USED_BY_PENDING_TASK", "pid": 2, "node_id": "n"},
        {"object_id": "2", "object_size": None, "call_site": None, "task_status": "FINISHED",
         "reference_type": "LOCAL_REFERENCE", "pid": 1, "node_id": "n"},
    ]
    o = schema.summarize_object_rows(objects, True)["cluster"]
    assert o["total_objects"] == 2 and o["total_size_mb"] == 1.0 and o["callsite_enabled"]
    group = o["summary"]["a.py:1"]
    assert group["total_objects"] == 1 and group["total_num_workers"] == 2
    assert group["ref_type_counts"] == {"LOCAL_REFERENCE": 1, "USED_BY_PENDING_TASK": 1}


def test_object_rows_fill_sizes_and_owner_pids():
    table = {"refs": [(b"\x01" * 20, "LOCAL_REFERENCE", "SHARED_MEMORY", "n", None, "ipc://d", "disabled", "NIL", 0),
                      (b"\x02" * 20, "USED_BY_PENDING_TASK", None, None, None, "ipc://w", "disabled",
                       "SUBMITTED_TO_WORKER", 1)],
             "type": "DRIVER", "pid": 5, "ip": "127.0.0.1", "node_id": "n", "worker_id": b"\x09" * 16}
    first, second = schema.object_rows([table], {b"\x01" * 20: 4096}, {"ipc://d": 5})
    assert first["object_size"] == 4096 and first["owner_pid"] == 5 and first["storage"] == "SHARED_MEMORY"
    assert second["storage"] == "PENDING" and second["owner_pid"] is None and second["attempt_number"] == 1


# ============================================================================ timeline and formats
def test_timeline_has_one_complete_event_per_finished_run():
    now = time.time()
    done = record(name="f", func_name="f", t_start=now, t_run_end=now + 0.25, final="FINISHED", node_id="n1",
                  worker_pid=33)
    running = record(name="g", t_start=now)
    events = schema.timeline_events([done, running], {"n1": "Node n1 (127.0.0.1)"})
    (x,) = [e for e in events if e["ph"] == "X"]
    assert x["name"] == "f" and x["tid"] == 33 and x["pid"] == "Node n1"
    assert x["ts"] == pytest.approx(now * 1e6) and x["dur"] == pytest.approx(250_000)
    assert x["args"]["task_id"] == tid(1).hex() and x["args"]["state"] == "FINISHED"
    meta = {(e["name"], e["args"]["name"]) for e in events if e["ph"] == "M"}
    assert meta == {("process_name", "Node n1 (127.0.0.1)"), ("thread_name", "Worker pid 33")}
    json.dumps(events)


def test_output_formats():
    rows = [{"task_id": "ab", "state": "FAILED", "events": [{"state": "X"}], "error_message": "line1\nline2",
             "worker_pid": None, "raw": b"\x01"}]
    table = schema.format_table(rows)
    header, line = table.splitlines()
    assert header.split() == ["TASK_ID", "STATE", "EVENTS", "ERROR_MESSAGE", "WORKER_PID", "RAW"]
    assert "line1 line2" in line and '[{"state":"X"}]' in line
    assert schema.format_table([]) == "(no rows)"
    assert json.loads(schema.format_json(rows))[0]["raw"] == "01"
    yaml = schema.format_yaml({"cluster": {"summary": {"f": {"state_counts": {"FINISHED": 3}}}, "empty": [],
                                           "text": "a: b", "flag": True, "none": None, "num": "12"}})
    assert yaml.splitlines() == [
        "cluster:", "  summary:", "    f:", "      state_counts:", "        FINISHED: 3", "  empty: []",
        '  text: "a: b"', "  flag: true", "  none: null", '  num: "12"']
    assert schema.format_yaml([{"a": 1, "b": [1, 2]}]).splitlines() == ["- a: 1", "  b:", "    - 1", "    - 2"]
    assert schema.human_bytes(512) == "512 B" and schema.human_bytes(3 * 2**20) == "3.0 MiB"
    assert schema.human_bytes(None) == "?"
