"""The owner's decisions for its normal tasks, with no sockets, no threads and no clock.

Tasks with the same resource shape, runtime env and strategy share a
scheduling key. For each key the owner asks node managers for worker leases,
pushes tasks straight to leased workers (a few in flight each, so the round
trip is hidden), asks an overloaded lease to hand back unstarted tasks when
another lease of its key sits idle, retries tasks that failed in a way they
may be retried for, and hands a lease back once its queue has stayed empty
for a moment.

:class:`TaskScheduling` takes each of those happenings as a method call with
plain data (``now`` passed in where time matters) and returns the actions to
carry out, as small records. :class:`juno.owner.task_submitter.TaskSubmitter`
is the shell around it: it turns messages into these calls and performs the
actions (sends, completes, fails). tests/unit/test_task_scheduling.py drives
it directly.
"""
from __future__ import annotations

import collections
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from juno import exceptions as exc
from juno.owner.task_spec import TaskEntry

# ---------------------------------------------------------------------- actions
# Plain slotted records: one is made per push and per result, and a NamedTuple costs twice as much.


@dataclass(slots=True)
class RequestLease:
    """Ask ``node_manager`` for a worker lease for ``key_state``; ``head`` is the task at the front
    of its queue (its name and argument locality go with the request)."""
    key_state: KeyState
    rid: int
    node_manager: str
    hops: int
    head: TaskEntry | None


@dataclass(slots=True)
class CancelLeaseRequest:
    """The key no longer needs the lease it asked ``node_manager`` for."""
    node_manager: str
    rid: int


@dataclass(slots=True)
class PushTask:
    """Send the task to the leased worker (it runs after those already in flight there)."""
    entry: TaskEntry
    lease: Lease


@dataclass(slots=True)
class StealTasks:
    """Ask the lease's worker to hand back the tasks it has not started."""
    lease: Lease


@dataclass(slots=True)
class ReturnLease:
    """Give the lease back to its node manager (already forgotten here)."""
    lease: Lease


@dataclass(slots=True)
class CheckIdleLater:
    """Call :meth:`TaskScheduling.idle_timer` for this lease after ``lease_idle_s``."""
    lease_id: Any


@dataclass(slots=True)
class RetryTask:
    """The task was queued again to retry it (for task events: why; ``warning``: tell the user)."""
    entry: TaskEntry
    cause: str
    reason: str
    warning: str | None


@dataclass(slots=True)
class CompleteTask:
    """The task finished for good with these results."""
    entry: TaskEntry
    results: list


@dataclass(slots=True)
class FailTask:
    """The task finished for good with this error as each of its results."""
    entry: TaskEntry
    error: BaseException


@dataclass(slots=True)
class CancelRunning:
    """Tell the lease's worker to cancel a task it holds."""
    lease: Lease
    task_id: bytes
    force: bool
    recursive: bool


@dataclass(slots=True)
class KillWorker:
    """Ask the lease's node manager to kill its worker (a running task cancelled with force)."""
    lease: Lease
    reason: str


# ---------------------------------------------------------------------- state


class Lease:
    __slots__ = ("lease_id", "address", "worker_id", "info", "in_flight", "key", "last_used", "node_manager",
                 "stealing")

    def __init__(self, lease_id, address, worker_id, info, key, node_manager, now: float):
        self.lease_id = lease_id
        self.address = address
        self.worker_id = worker_id
        self.info = info
        self.in_flight: dict[bytes, None] = {}  # in push order: the first one is running
        self.key = key
        self.last_used = now
        self.node_manager = node_manager
        self.stealing = False  # asked the worker to hand back tasks it has not started


class KeyState:
    __slots__ = ("key", "request", "queue", "leases", "pending_requests", "max_calls", "retriable", "spread")

    def __init__(self, key, request, max_calls: int = 0, retriable: bool = True):
        self.key = key
        self.retriable = retriable  # max_retries != 0: the node's memory monitor kills these first
        self.max_calls = max_calls  # workers exit after this many calls: push one task at a time
        self.request = request  # (resources, runtime_env, strategy)
        # SPREAD: one task per leased worker, so the tasks spread over the nodes' workers.
        self.spread = request[2] == "SPREAD"
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.leases: dict[Any, Lease] = {}
        self.pending_requests: dict[int, str] = {}  # request id -> the node manager asked


def scheduling_key(resources: dict, runtime_env: dict | None, strategy: Any, max_calls: int = 0,
                   retriable: bool = True) -> tuple:
    env_key = json.dumps(runtime_env, sort_keys=True) if runtime_env else None
    return (tuple(sorted(resources.items())), env_key, repr(strategy) if strategy is not None else None,
            max_calls, retriable)


_RETRY_CAUSE = {"oom": "OUT_OF_MEMORY", "node_died": "NODE_DIED"}


class TaskScheduling:
    """Leases, queues and retries of one owner's normal tasks. ``config`` is read for
    max_tasks_in_flight_per_worker, max_pending_lease_requests and lease_idle_s; ``home`` is
    the address of the owner's own node manager."""

    def __init__(self, config: Any, home: str):
        self.config = config
        self.home = home
        # Every task the owner tracks until it finished for good (ActorSubmitter registers its calls here too).
        self.entries: dict[bytes, TaskEntry] = {}
        self.keys: dict[tuple, KeyState] = {}
        self.leases: dict[Any, Lease] = {}
        self._req_ids = itertools.count(1)
        self._waiting_deps: dict[bytes, int] = {}
        self._dead_node_managers: set[str] = set()  # of nodes that died: a late spillback there goes home

    # ------------------------------------------------------------------ submission
    def add(self, entry: TaskEntry, resources: dict, runtime_env: dict | None, strategy: Any,
            max_calls: int) -> None:
        """Track a submitted task under its scheduling key (not queued yet: see enqueue)."""
        retriable = entry.retries_left != 0
        key = scheduling_key(resources, runtime_env, strategy, max_calls, retriable)
        ks = self.keys.get(key)
        if ks is None:
            ks = self.keys[key] = KeyState(key, (resources, runtime_env, strategy), max_calls, retriable)
        entry.key = ks.key  # the key's one tuple: entries share it (and task events pickle it once)
        self.entries[entry.task_id] = entry

    def wait_for_deps(self, task_id: bytes, count: int) -> None:
        """The task waits for ``count`` of its owner's values to be ready before it is queued."""
        self._waiting_deps[task_id] = count

    def dep_ready(self, task_id: bytes) -> TaskEntry | None:
        """One of the values the task waits for is ready: the task, when that was its last one."""
        left = self._waiting_deps.get(task_id)
        if left is None:
            return None
        if left > 1:
            self._waiting_deps[task_id] = left - 1
            return None
        del self._waiting_deps[task_id]
        entry = self.entries.get(task_id)
        return entry if entry is not None and not entry.cancelled else None

    def enqueue(self, entry: TaskEntry, now: float) -> list:
        """Queue a task whose arguments are ready; it is pushed at once if a lease has room."""
        ks = self.keys[entry.key]
        ks.queue.append(entry)
        out: list = []
        self._dispatch(ks, now, out)
        return out

    def _enqueue(self, entry: TaskEntry, now: float, out: list) -> None:
        ks = self.keys[entry.key]
        ks.queue.append(entry)
        self._dispatch(ks, now, out)

    def _dispatch(self, ks: KeyState, now: float, out: list) -> None:
        limit = 1 if ks.max_calls or ks.spread else self.config.max_tasks_in_flight_per_worker
        queue = ks.queue
        while queue:
            best = None
            for lease in ks.leases.values():
                n = len(lease.in_flight)
                if n < limit and (best is None or n < len(best.in_flight)):
                    best = lease
                    if n == 0:
                        break
            if best is None:
                break
            entry = queue.popleft()
            if entry.cancelled:
                continue
            entry.lease_id = best.lease_id
            entry.pushed = True
            best.in_flight[entry.task_id] = None
            best.last_used = now
            out.append(PushTask(entry, best))
        # Tasks queued behind a running one on a leased worker still want a worker
        # of their own: pipelining must never cost parallelism.
        waiting = len(queue) + sum(max(0, len(lease.in_flight) - 1) for lease in ks.leases.values())
        if waiting:
            want = min(self.config.max_pending_lease_requests, math.ceil(waiting / limit))
            while len(ks.pending_requests) < want:
                self._request_lease(ks, out)
        elif ks.pending_requests:
            for rid, node_manager in ks.pending_requests.items():
                out.append(CancelLeaseRequest(node_manager, rid))
        if not queue:
            self._steal_for_idle(ks, out)

    def _steal_for_idle(self, ks: KeyState, out: list) -> None:
        """An idle lease while another holds unstarted tasks: ask for those back."""
        if not any(not lease.in_flight for lease in ks.leases.values()):
            return
        donor = max(ks.leases.values(), key=lambda lease: len(lease.in_flight))
        if len(donor.in_flight) > 1 and not donor.stealing:
            donor.stealing = True
            out.append(StealTasks(donor))

    def tasks_stolen(self, lease_id: Any, task_ids: list, now: float) -> list:
        """A leased worker handed back tasks it had not started: run them elsewhere."""
        out: list = []
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.stealing = False
        for task_id in reversed(task_ids):
            entry = self.entries.get(task_id)
            if entry is None or entry.lease_id != lease_id or not entry.pushed:
                continue
            if lease is not None:
                lease.in_flight.pop(task_id, None)
            entry.pushed = False
            entry.lease_id = None
            ks = self.keys.get(entry.key)
            if entry.cancelled or ks is None:
                out.append(FailTask(entry, exc.TaskCancelledError(task_id.hex())))
            else:
                ks.queue.appendleft(entry)
        if lease is not None:
            ks = self.keys.get(lease.key)
            if ks is not None:
                self._dispatch(ks, now, out)
            if not lease.in_flight:
                out.append(CheckIdleLater(lease_id))
        return out

    # ------------------------------------------------------------------ leases
    def _request_lease(self, ks: KeyState, out: list, node_manager: str | None = None, hops: int = 0) -> None:
        """Ask the home node manager for a lease (or, after a spillback, the one it named)."""
        rid = next(self._req_ids)
        if node_manager is None or node_manager in self._dead_node_managers:
            node_manager, hops = self.home, 0  # a spillback to a node that died since: start over
        ks.pending_requests[rid] = node_manager
        out.append(RequestLease(ks, rid, node_manager, hops, ks.queue[0] if ks.queue else None))

    def lease_reply(self, ks: KeyState, rid: int, ok: bool, value: Any, hops: int, now: float) -> list:
        """The node manager's answer to a RequestLease: a grant (lease_id, address, worker_id,
        gpu_ids, resources, node_manager), a spillback ("spillback", node_id, address), None when
        the request was cancelled, or an error (``ok`` False)."""
        out: list = []
        ks.pending_requests.pop(rid, None)
        if ok and value is not None and value[0] == "spillback":
            # The node's limit on hops (MAX_HOPS in runtime/node/cluster_policy.py) ends a chain of these.
            if ks.queue or any(len(lease.in_flight) > 1 for lease in ks.leases.values()):
                self._request_lease(ks, out, value[2], hops + 1)
            return out
        if not ok:
            error = value if isinstance(value, BaseException) else exc.RaySystemError(str(value))
            while ks.queue:
                out.append(FailTask(ks.queue.popleft(), error))
            return out
        if value is None:  # request cancelled before it was granted
            # Tasks may have queued behind a busy worker while this request counted as pending:
            # dispatch asks for the leases they still want.
            self._dispatch(ks, now, out)
            return out
        lease_id, address, worker_id, gpu_ids, resources, node_manager = value
        lease = Lease(lease_id, address, worker_id, (lease_id, gpu_ids, resources), ks.key, node_manager, now)
        ks.leases[lease_id] = lease
        self.leases[lease_id] = lease
        self._dispatch(ks, now, out)
        if not lease.in_flight:
            if any(other.stealing for other in ks.leases.values()):
                out.append(CheckIdleLater(lease_id))
            else:
                self._return_lease(lease, out)
        return out

    def _forget_lease(self, lease: Lease) -> None:
        ks = self.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease.lease_id, None)
        self.leases.pop(lease.lease_id, None)

    def _return_lease(self, lease: Lease, out: list) -> None:
        self._forget_lease(lease)
        out.append(ReturnLease(lease))

    def idle_timer(self, lease_id: Any, now: float) -> list:
        """A CheckIdleLater came due: return the lease if it has stayed idle for lease_idle_s."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.in_flight:
            return []
        ks = self.keys.get(lease.key)
        if ks is not None and ks.queue:
            return []
        if now - lease.last_used < self.config.lease_idle_s * 0.9:
            return [CheckIdleLater(lease_id)]
        out: list = []
        self._return_lease(lease, out)
        return out

    # ------------------------------------------------------------------ results
    def task_result(self, entry: TaskEntry, results: list, retryable: bool, worker_exiting: bool,
                    now: float) -> list:
        """A normal task's worker replied. ``retryable``: the worker found the error one that
        retry_exceptions allows; ``worker_exiting``: the worker reached max_calls and exits
        (its node frees the lease)."""
        out: list = []
        lease = self.leases.get(entry.lease_id)
        if lease is not None:
            if worker_exiting:
                self._forget_lease(lease)
                lease = None
            else:
                lease.in_flight.pop(entry.task_id, None)
                lease.last_used = now
        if retryable and entry.retries_left != 0 and not entry.cancelled:
            entry.retries_left -= 1
            entry.pushed = False
            out.append(RetryTask(entry, "TASK_EXECUTION_EXCEPTION", "the task raised an exception it is retried for",
                                 None))
            self._enqueue(entry, now, out)
        else:
            out.append(CompleteTask(entry, results))
        ks = self.keys.get(entry.key)
        if ks is not None:
            self._dispatch(ks, now, out)
        if lease is not None and not lease.in_flight:
            out.append(CheckIdleLater(lease.lease_id))
        return out

    # ------------------------------------------------------------------ failures
    def running_stream(self, lease_id: Any) -> bytes | None:
        """The lease's running task when it is a streaming task that could be retried: whether it
        is depends on the items it yielded already, which the caller knows (worker_died's ``yielded``)."""
        lease = self.leases.get(lease_id)
        if lease is None or not lease.in_flight:
            return None
        task_id = next(iter(lease.in_flight))
        entry = self.entries.get(task_id)
        if entry is None or entry.cancelled or not entry.streaming or entry.retries_left == 0:
            return None
        return task_id

    def worker_died(self, lease_id: Any, reason: str, kind: str | None, yielded: int, now: float) -> list:
        """A leased worker died; ``kind`` is "oom" when the node's memory monitor killed it,
        "node_died" when its whole node died; ``yielded``: items its running streaming task sent."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return []
        ks = self.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease_id, None)
        out: list = []
        requeue = []
        for position, task_id in enumerate(lease.in_flight):
            entry = self.entries.get(task_id)
            if entry is None:
                continue
            if entry.cancelled:
                out.append(FailTask(entry, exc.TaskCancelledError(task_id.hex())))
            elif position > 0:  # queued behind the task that was running: it never started
                entry.pushed = False
                requeue.append(entry)
            elif entry.retries_left != 0 and not (entry.streaming and yielded):
                warning = None
                if kind == "oom":
                    left = "infinitely many" if entry.retries_left < 0 else entry.retries_left - 1
                    warning = (f"Task {entry.name} was killed due to memory use: {reason}. "
                               f"Retrying it ({left} retries left after this one).")
                entry.retries_left -= 1
                entry.pushed = False
                out.append(RetryTask(entry, _RETRY_CAUSE.get(kind, "WORKER_DIED"), reason, warning))
                requeue.append(entry)
            else:
                out.append(FailTask(entry, _death_error(entry, reason, kind)))
        if ks is not None:
            ks.queue.extendleft(reversed(requeue))
            self._dispatch(ks, now, out)
        return out

    def node_died(self, node_manager: str) -> list[Lease]:
        """A node died: a late spillback to it goes home instead. Returns its leases, each to be
        handled as a dead worker (worker_died), before lease_requests_lost."""
        self._dead_node_managers.add(node_manager)
        return [lease for lease in self.leases.values() if lease.node_manager == node_manager]

    def lease_requests_lost(self, node_manager: str, now: float) -> list:
        """Lease requests waiting at a dead node are asked again (at home)."""
        out: list = []
        for ks in self.keys.values():
            lost = [rid for rid, target in ks.pending_requests.items() if target == node_manager]
            for rid in lost:
                del ks.pending_requests[rid]
            if lost:
                self._dispatch(ks, now, out)
        return out

    # ------------------------------------------------------------------ cancel
    def cancel(self, entry: TaskEntry, force: bool, recursive: bool) -> list:
        """Cancel a normal task: one not pushed yet fails at once; a pushed one is cancelled by its
        worker (force: the worker is killed if the task is running, not queued behind another)."""
        entry.cancelled = True
        entry.force_cancelled = force
        task_id = entry.task_id
        if not entry.pushed:
            self._waiting_deps.pop(task_id, None)
            ks = self.keys.get(entry.key)
            if ks is not None:
                try:
                    ks.queue.remove(entry)
                except ValueError:
                    pass
            return [FailTask(entry, exc.TaskCancelledError(task_id.hex()))]
        lease = self.leases.get(entry.lease_id)
        if lease is None:
            return []
        out: list = [CancelRunning(lease, task_id, force, recursive)]
        if force and next(iter(lease.in_flight), None) == task_id:
            # Only the first task in flight runs; one queued behind it is simply dropped.
            out.append(KillWorker(lease, "the task was cancelled with force=True"))
        return out


def _death_error(entry: TaskEntry, reason: str, kind: str | None) -> BaseException:
    """The error of a task whose worker died and that has no retries left."""
    if kind == "node_died":
        return exc.NodeDiedError(
            f"Task {entry.name} was running on a node that died ({reason}). The task was not "
            "retried further (max_retries exhausted); set max_retries to retry it on another node.")
    if kind == "oom":
        return exc.OutOfMemoryError(
            f"Task {entry.name} was killed due to memory use and was not retried further "
            f"(max_retries exhausted): {reason}.")
    return exc.WorkerCrashedError(
        f"The worker running task {entry.name} died unexpectedly ({reason}). "
        "The task was not retried further (max_retries exhausted).")
