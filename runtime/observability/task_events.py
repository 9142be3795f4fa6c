"""Task state transitions, recorded where they happen and sent to the GCS in batches.

Every process runs one :class:`TaskEventRecorder` (unless ``enable_task_events`` is off):

* As an **owner** it stamps the transitions of the tasks it submits on their TaskEntry
  (``entry.ev``: created, arguments ready, pushed to a worker, ended, final state, error,
  and the run's start and end, which the executing worker sends back with the result),
  one clock read each, and builds one report tuple when the task ends. A task still
  unfinished one interval after it was submitted is reported then too, and again when
  it changes, so long waits show up.
* As the **executing worker** it reports what the owner cannot know in time: tasks
  running right now (so long tasks show RUNNING), errors with their type and text, and
  the runs of calls on threaded and async actors and of actor constructors.

Every ``task_events_report_interval_s`` (or once ``task_events_report_batch`` tasks
ended) the IO thread sends one ``report_task_events`` message to the GCS, which merges
the pieces into one record per task attempt when someone asks (runtime/gcs/events.py).
The record layout below is shared by both ends.
"""
from __future__ import annotations

import collections
import os
import pickle
import sys
import time
from typing import Any

from juno import exceptions as exc
from juno.owner import task_spec as ts
from juno.owner.task_spec import TaskSpec

_now = time.time

# ---- one task attempt, as the GCS keeps it (a list) ----
TASK_ID, ATTEMPT = 0, 1
# info: written once, by the owner's first report
NAME, FUNC_NAME, TYPE, JOB_ID, ACTOR_ID, PARENT_TASK_ID, RESOURCES, CALL_SITE = range(2, 10)
INFO = slice(2, 10)
# owner state: every owner report overwrites it (same order as TaskEntry.ev)
T_CREATED, T_READY, T_PUSHED, T_END, FINAL, ERROR_TYPE, ERROR_MESSAGE = range(10, 17)
OWNER = slice(10, 17)
# executing worker (its run's start and end come with the task's result to the owner, which
# reports them with its own, as the last three items of TaskEntry.ev: start, end, worker id)
T_START, T_RUN_END = 17, 18
RUN = slice(17, 19)
NODE_ID, WORKER_ID, WORKER_PID = 19, 20, 21
WORKER = slice(19, 22)
WORKER_ERROR_TYPE, WORKER_ERROR_MESSAGE = 22, 23
WORKER_ERROR = slice(22, 24)
NUM_FIELDS = 24

NORMAL_TASK, ACTOR_CREATION_TASK, ACTOR_TASK = "NORMAL_TASK", "ACTOR_CREATION_TASK", "ACTOR_TASK"
TYPE_OF_KIND = {ts.KIND_TASK: NORMAL_TASK, ts.KIND_ACTOR_CALL: ACTOR_TASK, ts.KIND_ACTOR_CREATE: ACTOR_CREATION_TASK}
FINISHED, FAILED = "FINISHED", "FAILED"

MAX_ERROR_MESSAGE = 8000  # characters kept per error (the GCS keeps thousands of tasks)


def error_type_of(error: BaseException | None) -> str:
    """Ray's ErrorType name for an exception a task ended with."""
    if isinstance(error, exc.RayTaskError):
        # A user exception, or a system error raised inside the task (cancellation...).
        cause = error.cause
        return "TASK_EXECUTION_EXCEPTION" if cause is None or isinstance(cause, exc.RayTaskError) \
            else error_type_of(cause)
    table = (
        (exc.TaskCancelledError, "TASK_CANCELLED"),
        (exc.OutOfMemoryError, "OUT_OF_MEMORY"),
        (exc.WorkerCrashedError, "WORKER_DIED"),
        (exc.ActorDiedError, "ACTOR_DIED"),
        (exc.ActorUnschedulableError, "ACTOR_UNSCHEDULABLE_ERROR"),
        (exc.RuntimeEnvSetupError, "RUNTIME_ENV_SETUP_FAILED"),
        (exc.TaskUnschedulableError, "TASK_UNSCHEDULABLE_ERROR"),
        (exc.ObjectLostError, "OBJECT_LOST"),
    )
    for cls, name in table:
        if isinstance(error, cls):
            return name
    return "TASK_EXECUTION_EXCEPTION"


def error_message_of(error: BaseException | None) -> str:
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break reporting
        text = repr(error)
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE] + "... (truncated)"
    return text


def _is_error_value(value: Any) -> bool:
    """Whether a result value holds an error (flag bit of the object layout's header)."""
    return value is not None and value[0] == "v" and len(value[1]) > 4 and bool(value[1][4] & 1)


def _error_in(blob: bytes) -> tuple[str, str | None]:
    """Type and text of the error a failed task's result holds (failures only: it unpickles)."""
    from juno.owner import serialization

    try:
        error, _ = serialization.deserialize_bytes(blob)
    except Exception:  # noqa: BLE001 - its class may not load here; the worker reports it too
        return "TASK_EXECUTION_EXCEPTION", None
    return error_type_of(error), error_message_of(error)


def attempt_of(extra: Any) -> int:
    return extra.get("attempt", 0) if type(extra) is dict else 0


def with_attempt(spec: TaskSpec, attempt: int) -> TaskSpec:
    """``spec`` with its attempt number in its extra fields, so the executing worker reports the right one."""
    return spec.replace(extra={**(spec.extra or {}), "attempt": attempt})


class TaskEventRecorder:
    """Buffers this process's task events and sends them to the GCS from the IO thread.

    Owner side, per task: a clock read per transition into ``entry.ev``, and one report
    tuple built when the task ends, while its entry is still in the cache. A task still
    unfinished one interval after its submission is reported as pending too, and again
    whenever it changes after that (``changed``), so long tasks show their progress.
    """

    def __init__(self, cw):
        self.cw = cw
        config = cw.config
        self.interval = config.task_events_report_interval_s
        self.batch = max(1, config.task_events_report_batch)
        # owner side (IO thread only)
        self.unreported: dict[bytes, Any] = {}  # unfinished entries never reported, oldest first
        self.changed: dict[bytes, Any] = {}  # entries reported as pending that changed since
        self.done: list[tuple] = []  # reports of attempts that ended
        self.fresh: collections.deque = collections.deque()  # pushed_by_caller's, not filed yet
        self._infos: dict[tuple, tuple] = {}  # shared info tuples: (scheduling key, info) (see _snapshot)
        # executing side (any thread: deques are safe to append to and drain concurrently)
        self.runs: collections.deque = collections.deque()
        self.errors: collections.deque = collections.deque()
        self.running_probe = None  # set by the executor: () -> [(task_id, attempt, start)]
        self.actor_attempt = 0  # the executor's actor incarnation (attempt of its creation task)
        self._flush_soon = False
        self.header = (cw.node_id, cw.worker_id, os.getpid())
        cw.loop.call_later(self.interval, self._tick)

    # ------------------------------------------------------------------ owner (IO thread)
    def created(self, entry) -> None:
        """A task was submitted; unless waiting_for_args() follows, its arguments are ready."""
        now = _now()
        entry.ev = [now, now, None, None, None, None, None, None, None, None]
        self.unreported[entry.task_id] = entry

    def pushed_by_caller(self, entry) -> None:
        """Any thread: an actor call sent by the thread that made it (created, ready and pushed at
        once). The IO thread files it with the others (``_file_fresh``) before it next reports
        or ends a task."""
        now = _now()
        entry.ev = [now, now, now, None, None, None, None, None, None, None]
        self.fresh.append(entry)

    def _file_fresh(self) -> None:
        fresh, unreported = self.fresh, self.unreported
        while fresh:
            entry = fresh.popleft()
            unreported[entry.task_id] = entry

    def waiting_for_args(self, entry) -> None:
        """Some arguments are results of tasks not finished yet (PENDING_ARGS_AVAIL)."""
        entry.ev[1] = None

    def ready(self, entry) -> None:
        """Its arguments are ready: it waits for a worker (PENDING_NODE_ASSIGNMENT)."""
        entry.ev[1] = _now()

    def pushed(self, entry) -> None:
        """Sent to a worker (SUBMITTED_TO_WORKER)."""
        entry.ev[2] = _now()
        if entry.ev_info_sent:
            self.changed[entry.task_id] = entry

    def ran_remotely(self, entry, run: tuple, worker_id: bytes) -> None:
        """The result brought the run's (start, end) from the worker that ran it (TaskSubmitter
        stores them itself, inline, on the hot path; this is the same)."""
        ev = entry.ev
        if ev is not None:
            ev[7], ev[8] = run
            ev[9] = worker_id

    def failed(self, entry, error: BaseException) -> None:
        """The owner failed the task itself (worker died, cancelled, actor died...)."""
        ev = entry.ev
        if ev is not None and ev[4] is None:
            ev[3] = _now()
            ev[4] = FAILED
            ev[5] = error_type_of(error)
            ev[6] = error_message_of(error)

    def finished(self, entry, results: list) -> None:
        """The final results arrived (or failed() came first)."""
        ev = entry.ev
        if ev is None:
            return
        if self.fresh:
            self._file_fresh()
        if ev[4] is None:
            ev[3] = _now()
            ev[4] = FINISHED
            if results:  # an error is inline, with the error flag in its header (runtime/store/format.py)
                first = results[0]
                if first[0] == "v" and first[1][4] & 1:
                    ev[4] = FAILED
                    ev[5], ev[6] = _error_in(first[1])
        done = self.done
        if entry.ev_info_sent:
            self.changed.pop(entry.task_id, None)
            done.append((entry.task_id, entry.attempt, None, *ev))
        else:
            self.unreported.pop(entry.task_id, None)
            done.append(self._snapshot(entry))
        if len(done) >= self.batch:
            self.flush()

    def retry(self, entry, error_type: str, message: str) -> None:
        """The attempt failed and the task runs again as attempt + 1."""
        ev = entry.ev
        if ev is None:
            return
        if self.fresh:
            self._file_fresh()
        ev[3] = _now()
        ev[4] = FAILED
        ev[5] = error_type
        ev[6] = message[:MAX_ERROR_MESSAGE]
        self.changed.pop(entry.task_id, None)
        self.unreported.pop(entry.task_id, None)
        self.done.append(self._snapshot(entry))
        entry.ev_info_sent = False  # the next attempt is a record of its own
        entry.attempt += 1
        entry.spec = with_attempt(entry.spec, entry.attempt)
        self.created(entry)

    def _snapshot(self, entry) -> tuple:
        info = None
        if not entry.ev_info_sent:
            entry.ev_info_sent = True
            spec = entry.spec
            # Tasks of one function, job, parent and scheduling key (entries share the key's one
            # tuple) share one info tuple: built once, and pickled once per report.
            cache_key = (spec.name, spec.job_id, entry.actor_id, entry.parent, id(entry.key))
            cached = self._infos.get(cache_key)
            if cached is not None and cached[0] is entry.key and self.cw.call_sites is None:
                info = cached[1]
            else:
                info = self._info(entry)
                if len(self._infos) >= 1024:
                    self._infos.clear()
                self._infos[cache_key] = (entry.key, info)
        ev = entry.ev
        return (entry.task_id, entry.attempt, info, *ev)

    def _info(self, entry) -> tuple:
        spec = entry.spec
        kind = spec.kind
        name = spec.name
        call_site = None
        sites = self.cw.call_sites
        if sites is not None and entry.return_ids:
            call_site = sites.get(entry.return_ids[0])
        return (name, name, TYPE_OF_KIND.get(kind, NORMAL_TASK), spec.job_id, entry.actor_id, entry.parent,
                entry.key[0] if kind == ts.KIND_TASK and entry.key else None, call_site)

    # ------------------------------------------------------------------ executing worker (any thread)
    def ran(self, task_id: bytes, attempt: int, start: float, end: float) -> None:
        self.runs.append((task_id, attempt, start, end))
        if len(self.runs) >= self.batch and not self._flush_soon:
            self._flush_soon = True
            self.cw.loop.call_soon(self.flush)

    def worker_error(self, spec: TaskSpec, error: BaseException) -> None:
        """The task this worker ran ended with ``error`` (reported with the error's type and text)."""
        if spec.kind == ts.KIND_ACTOR_CREATE:
            attempt = self.actor_attempt
        else:
            attempt = attempt_of(spec.extra)
        self.errors.append((spec.task_id, attempt, error_type_of(error), error_message_of(error)))

    # ------------------------------------------------------------------ reporting (IO thread)
    def _tick(self) -> None:
        try:
            self.flush()
        finally:
            if not self.cw.shutting_down:
                self.cw.loop.call_later(self.interval, self._tick)

    def flush(self, force: bool = False) -> None:
        """Send what changed. A task submitted less than one interval ago that has not finished
        waits for the next report (unless ``force``): most tasks are then reported once, done."""
        self._flush_soon = False
        if self.fresh:
            self._file_fresh()
        owner, self.done = self.done, []
        unreported = self.unreported
        if unreported:
            # Oldest first: stop at the first one submitted less than an interval ago.
            young = _now() - self.interval
            due = []
            for task_id, entry in unreported.items():
                if entry.ev[0] > young and not force:
                    break
                due.append(task_id)
            for task_id in due:
                owner.append(self._snapshot(unreported.pop(task_id)))
        if self.changed:
            changed, self.changed = self.changed, {}
            owner.extend(self._snapshot(entry) for entry in changed.values() if entry.ev[4] is None)
        runs: list = []
        probe = self.running_probe
        if probe is not None:  # before draining: a run that ends now is drained after its start
            runs.extend((tid, attempt, start, None) for tid, attempt, start in probe())
        q = self.runs
        while q:
            runs.append(q.popleft())
        errors: list = []
        q = self.errors
        while q:
            errors.append(q.popleft())
        if owner or runs or errors:
            # Pickled here, unpickled by the GCS only when someone asks (runtime/gcs/events.py).
            new_by_job: dict = {}
            for rep in owner:
                info = rep[2]
                if info is not None:
                    new_by_job[info[3]] = new_by_job.get(info[3], 0) + 1
            blob = pickle.dumps((owner, runs, errors), pickle.HIGHEST_PROTOCOL)
            self.cw.notify(self.cw.gcs_address, "report_task_events", self.header, blob, new_by_job)


def new_recorder(cw) -> TaskEventRecorder | None:
    return TaskEventRecorder(cw) if cw.config.enable_task_events else None


# ---------------------------------------------------------------------------- call sites
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # juno's, not observability/'s


def user_frame(depth: int = 1):
    """``(frame, level)``: the first frame at or above the caller's ``sys._getframe(depth)`` that
    is user code, not juno's nor importlib's, and its depth as the caller counts it (so
    ``warnings.warn(..., stacklevel=level + 1)`` in the caller points at it)."""
    frame, level = sys._getframe(depth + 1), depth
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and "importlib" not in filename:
            return frame, level
        frame, level = frame.f_back, level + 1
    return None, level


def call_site(kind: str) -> str:
    """Where user code created a ref: ``(put object) | file.py:12:func``, first frame outside juno."""
    frame, _ = user_frame()
    if frame is None:
        return f"({kind}) | <unknown>"
    return f"({kind}) | {frame.f_code.co_filename}:{frame.f_lineno}:{frame.f_code.co_name}"


def note_call_site(cw, object_ids: list, kind: str) -> None:
    """Remember where ``object_ids`` were created (record_ref_creation_sites); forgets freed ones."""
    sites = cw.call_sites
    site = call_site(kind)
    for oid in object_ids:
        sites[oid] = site
    if len(sites) > 4096 and len(sites) > 4 * (cw.refs.num_owned() + 1024):
        owns = cw.refs.owns
        for oid in [o for o in sites if not owns(o)]:
            sites.pop(oid, None)
