"""Owner-side submission of normal tasks through worker leases.

Tasks with the same resource shape, runtime env and strategy share a
scheduling key. For each key the owner asks its node manager for worker
leases, pushes tasks straight to leased workers (a few in flight each, so the
round trip is hidden), and hands a lease back once its queue has stayed empty
for a moment. The node manager decides placement; it never relays tasks.
Everything here runs on the IO thread.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import time
from typing import Any

from juno import exceptions as exc
from juno.comm import messages
from juno.owner import serialization
from juno.owner import task_spec as ts
from juno.node.cluster_policy import locality_node
from juno.owner.task_spec import TaskEntry

logger = logging.getLogger(__name__)


class _Lease:
    __slots__ = ("lease_id", "address", "worker_id", "info", "in_flight", "key", "last_used", "node_manager",
                 "stealing")

    def __init__(self, lease_id, address, worker_id, info, key, node_manager):
        self.lease_id = lease_id
        self.address = address
        self.worker_id = worker_id
        self.info = info
        self.in_flight: dict[bytes, None] = {}  # in push order: the first one is running
        self.key = key
        self.last_used = time.monotonic()
        self.node_manager = node_manager
        self.stealing = False  # asked the worker to hand back tasks it has not started


class _KeyState:
    __slots__ = ("key", "request", "queue", "leases", "pending_requests", "max_calls", "retriable", "spread")

    def __init__(self, key, request, max_calls: int = 0, retriable: bool = True):
        self.key = key
        self.retriable = retriable  # max_retries != 0: the node's memory monitor kills these first
        self.max_calls = max_calls  # workers exit after this many calls: push one task at a time
        self.request = request  # (resources, runtime_env, strategy)
        # SPREAD: one task per leased worker, so the tasks spread over the nodes' workers.
        self.spread = request[2] == "SPREAD"
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.leases: dict[Any, _Lease] = {}
        self.pending_requests: dict[int, str] = {}  # request id -> the node manager asked


def scheduling_key(resources: dict, runtime_env: dict | None, strategy: Any, max_calls: int = 0,
                   retriable: bool = True) -> tuple:
    env_key = json.dumps(runtime_env, sort_keys=True) if runtime_env else None
    return (tuple(sorted(resources.items())), env_key, repr(strategy) if strategy is not None else None,
            max_calls, retriable)


class TaskSubmitter:
    def __init__(self, cw):
        self.cw = cw
        self.entries: dict[bytes, TaskEntry] = {}
        self.keys: dict[tuple, _KeyState] = {}
        self.leases: dict[Any, _Lease] = {}
        self._req_ids = itertools.count(1)
        self._waiting_deps: dict[bytes, int] = {}
        self._dead_node_managers: set[str] = set()  # of nodes that died (on_node_died)
        self.ev = cw.task_events  # task state events for the GCS, or None (runtime/observability/task_events.py)

    # ------------------------------------------------------------------ submission
    def submit(self, entry: TaskEntry, resources: dict, runtime_env: dict | None, strategy: Any,
               max_calls: int = 0) -> None:
        """Any thread: register the task and hand it to the IO thread."""
        self.cw.note_submit(entry)
        self.cw.loop.call_soon(self._submit, entry, resources, runtime_env, strategy, max_calls)

    def _submit(self, entry: TaskEntry, resources: dict, runtime_env, strategy, max_calls: int) -> None:
        retriable = entry.retries_left != 0
        key = scheduling_key(resources, runtime_env, strategy, max_calls, retriable)
        ks = self.keys.get(key)
        if ks is None:
            ks = self.keys[key] = _KeyState(key, (resources, runtime_env, strategy), max_calls, retriable)
        entry.key = ks.key  # the key's one tuple: entries share it (and task events pickle it once)
        self.entries[entry.task_id] = entry
        if self.ev is not None:
            self.ev.created(entry)
        self._resolve_deps(entry)

    def _resolve_deps(self, entry: TaskEntry) -> None:
        cw = self.cw
        owned_pending = []
        for dep in entry.spec[ts.DEPS]:
            if dep[0] == "r" and dep[2] == cw.address and not cw.owned.contains(dep[1]):
                owned_pending.append(dep[1])
        if not owned_pending:
            self._enqueue(entry)
            return
        self._waiting_deps[entry.task_id] = len(set(owned_pending))
        if self.ev is not None:
            self.ev.waiting_for_args(entry)
        seen = set()
        for oid in owned_pending:
            if oid in seen:
                continue
            seen.add(oid)
            cw.owned.on_ready(oid, lambda _oid, _v, tid=entry.task_id: self._dep_ready_any_thread(tid))

    def _dep_ready_any_thread(self, task_id: bytes) -> None:
        if self.cw.loop.in_loop_thread():
            self._dep_ready(task_id)
        else:
            self.cw.loop.call_soon(self._dep_ready, task_id)

    def _dep_ready(self, task_id: bytes) -> None:
        left = self._waiting_deps.get(task_id)
        if left is None:
            return
        if left > 1:
            self._waiting_deps[task_id] = left - 1
            return
        del self._waiting_deps[task_id]
        entry = self.entries.get(task_id)
        if entry is not None and not entry.cancelled:
            if self.ev is not None:
                self.ev.ready(entry)
            self._enqueue(entry)

    def inline_deps(self, entry: TaskEntry) -> tuple:
        """Replace owned, ready dependencies by their values so the worker needn't ask."""
        cw = self.cw
        deps = entry.spec[ts.DEPS]
        if not deps:
            return entry.spec
        out = []
        for dep in deps:
            if dep[0] == "r" and dep[2] == cw.address:
                value = cw.owned.get(dep[1])
                if value is not None:
                    dep = ("v", value[1]) if value[0] == "v" else ("s", dep[1], value[1])
            out.append(dep)
        return entry.spec.replace(deps=out)

    def _enqueue(self, entry: TaskEntry) -> None:
        ks = self.keys[entry.key]
        ks.queue.append(entry)
        self._dispatch(ks)

    def _dispatch(self, ks: _KeyState) -> None:
        cw = self.cw
        limit = 1 if ks.max_calls or ks.spread else cw.config.max_tasks_in_flight_per_worker
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
            self._push(entry, best)
        # Tasks queued behind a running one on a leased worker still want a worker
        # of their own: pipelining must never cost parallelism.
        waiting = len(queue) + sum(max(0, len(lease.in_flight) - 1) for lease in ks.leases.values())
        if waiting:
            want = min(cw.config.max_pending_lease_requests, math.ceil(waiting / limit))
            while len(ks.pending_requests) < want:
                self._request_lease(ks)
        elif ks.pending_requests:
            for rid, node_manager in list(ks.pending_requests.items()):
                cw.notify(node_manager, "cancel_lease_request", cw.address, rid)
        if not queue:
            self._steal_for_idle(ks)

    def _steal_for_idle(self, ks: _KeyState) -> None:
        """An idle lease while another holds unstarted tasks: ask for those back."""
        if not any(not lease.in_flight for lease in ks.leases.values()):
            return
        donor = max(ks.leases.values(), key=lambda lease: len(lease.in_flight))
        if len(donor.in_flight) > 1 and not donor.stealing:
            donor.stealing = True
            self.cw.loop.send(donor.address, ("steal_tasks", donor.lease_id, self.cw.address))

    def on_tasks_stolen(self, lease_id: Any, task_ids: list) -> None:
        """A leased worker handed back tasks it had not started: run them elsewhere."""
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
                self.fail(entry, exc.TaskCancelledError(task_id.hex()))
            else:
                ks.queue.appendleft(entry)
        if lease is not None:
            ks = self.keys.get(lease.key)
            if ks is not None:
                self._dispatch(ks)
            if not lease.in_flight:
                self.cw.loop.call_later(self.cw.config.lease_idle_s, self._maybe_return_idle, lease_id)

    def _push(self, entry: TaskEntry, lease: _Lease) -> None:
        spec = self.inline_deps(entry)
        entry.lease_id = lease.lease_id
        entry.pushed = True
        lease.in_flight[entry.task_id] = None
        lease.last_used = time.monotonic()
        if self.ev is not None:
            self.ev.pushed(entry)
            entry.ev[9] = lease.worker_id  # known now: a worker that dies mid-task still shows in its row
        self.cw.loop.send(lease.address, messages.push_task(spec, lease.info))

    def _request_lease(self, ks: _KeyState, node_manager: str | None = None, hops: int = 0) -> None:
        """Ask the local node manager for a lease (or, after a spillback, the one it named)."""
        cw = self.cw
        rid = next(self._req_ids)
        if node_manager is None or node_manager in self._dead_node_managers:
            node_manager, hops = cw.node_manager, 0  # a spillback to a node that died since: start over
        ks.pending_requests[rid] = node_manager
        resources, runtime_env, strategy = ks.request
        head = ks.queue[0] if ks.queue else None
        name = head.name if head is not None else ""
        args = (cw.address, rid, resources, runtime_env, strategy, name, None, ks.retriable)
        prefer = self._locality_node(head) if head is not None and head.dep_ids and not hops else None
        if hops or prefer:
            args += (hops, prefer)
        cw.call(node_manager, "request_lease", *args,
                callback=lambda ok, value: self._on_lease_reply(ks, rid, ok, value, hops))

    def _locality_node(self, entry: TaskEntry) -> str | None:
        """The node holding most of the task's large arguments (objects in a node's store)."""
        cw = self.cw
        counts: dict[str, int] = {}
        args = entry.spec[ts.ARGS]
        if args[0] == "s":
            counts[args[2]] = 1
        for dep in entry.spec[ts.DEPS]:
            if dep[0] == "r" and dep[2] == cw.address:
                value = cw.owned.get(dep[1])
                if value is not None and value[0] == "s":
                    counts[value[1]] = counts.get(value[1], 0) + 1
        return locality_node(counts, cw.node_id)

    def _on_lease_reply(self, ks: _KeyState, rid: int, ok: bool, value: Any, hops: int = 0) -> None:
        ks.pending_requests.pop(rid, None)
        if ok and value is not None and value[0] == "spillback":
            # The node manager sent us to another node (value: "spillback", node_id, address).
            if ks.queue or any(len(lease.in_flight) > 1 for lease in ks.leases.values()):
                self._request_lease(ks, value[2], hops + 1)
            return
        if not ok:
            error = value if isinstance(value, BaseException) else exc.RaySystemError(str(value))
            while ks.queue:
                self.fail(ks.queue.popleft(), error)
            return
        if value is None:  # request cancelled before it was granted
            # Tasks may have queued behind a busy worker while this request counted as pending:
            # dispatch asks for the leases they still want.
            self._dispatch(ks)
            return
        lease_id, address, worker_id, gpu_ids, resources, node_manager = value
        lease = _Lease(lease_id, address, worker_id, (lease_id, gpu_ids, resources), ks.key, node_manager)
        ks.leases[lease_id] = lease
        self.leases[lease_id] = lease
        self._dispatch(ks)
        if not lease.in_flight:
            if any(other.stealing for other in ks.leases.values()):
                self.cw.loop.call_later(self.cw.config.lease_idle_s, self._maybe_return_idle, lease_id)
            else:
                self._return_lease(lease)

    def _return_lease(self, lease: _Lease) -> None:
        ks = self.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease.lease_id, None)
        self.leases.pop(lease.lease_id, None)
        self.cw.notify(lease.node_manager, "return_lease", lease.lease_id)

    def _maybe_return_idle(self, lease_id: Any) -> None:
        lease = self.leases.get(lease_id)
        if lease is None or lease.in_flight:
            return
        ks = self.keys.get(lease.key)
        if ks is not None and ks.queue:
            return
        if time.monotonic() - lease.last_used < self.cw.config.lease_idle_s * 0.9:
            self.cw.loop.call_later(self.cw.config.lease_idle_s, self._maybe_return_idle, lease_id)
            return
        self._return_lease(lease)

    # ------------------------------------------------------------------ results
    def on_task_result(self, task_id: bytes, results: list, retryable: bool, worker_id: bytes,
                       worker_exiting: bool = False, run: tuple | None = None) -> None:
        entry = self.entries.get(task_id)
        if worker_exiting and entry is not None and entry.lease_id in self.leases:
            # The worker reached max_calls and exits: forget the lease; its node frees it.
            lease = self.leases.pop(entry.lease_id)
            ks = self.keys.get(lease.key)
            if ks is not None:
                ks.leases.pop(lease.lease_id, None)
        if entry is None:
            self._discard_results(task_id, results)
            return
        if run is not None and entry.ev is not None:  # task events: the run, from the worker
            ev = entry.ev
            ev[7], ev[8] = run
            ev[9] = worker_id
        lease = self.leases.get(entry.lease_id)
        if lease is not None:
            lease.in_flight.pop(task_id, None)
            lease.last_used = time.monotonic()
        if retryable and entry.retries_left != 0 and not entry.cancelled:
            entry.retries_left -= 1
            entry.pushed = False
            if self.ev is not None:
                self.ev.retry(entry, "TASK_EXECUTION_EXCEPTION", "the task raised an exception it is retried for")
            self._enqueue(entry)
        else:
            self.complete(entry, results)
        ks = self.keys.get(entry.key)
        if ks is not None:
            self._dispatch(ks)
        if lease is not None and not lease.in_flight:
            self.cw.loop.call_later(self.cw.config.lease_idle_s, self._maybe_return_idle, lease.lease_id)

    def on_generator_item(self, task_id: bytes, index: int, value: tuple) -> None:
        if task_id in self.entries:
            if index is None:  # a final error: it comes after every item sent before it
                index = self.cw.generator_state(task_id).count
            self.cw.generator_push(task_id, index, value)

    def complete(self, entry: TaskEntry, results: list) -> None:
        cw = self.cw
        if self.ev is not None:
            self.ev.finished(entry, results)
        self.entries.pop(entry.task_id, None)
        results = [cw.take_contents(oid, value) for oid, value in zip(entry.return_ids, results)]
        for oid, value in zip(entry.return_ids, results):
            if cw.refs.owns(oid):
                cw.owned.put(oid, value)
            elif value[0] == "s":
                cw.shm.delete(oid, value[1])
        if entry.streaming:
            cw.generator_finish(entry.task_id)
        cw.lineage.task_finished(entry, results)  # before its arguments go: lineage may keep them
        if entry.dep_ids:
            cw.refs.remove_submitted(entry.dep_ids)

    def fail(self, entry: TaskEntry, error: BaseException) -> None:
        if self.ev is not None:
            self.ev.failed(entry, error)
        blob = serialization.serialize(error, error=True).to_bytes()
        if entry.streaming:
            state = self.cw.generator_state(entry.task_id)
            self.cw.generator_push(entry.task_id, state.count, ("v", blob))
        self.complete(entry, [("v", blob)] * len(entry.return_ids))

    def _discard_results(self, task_id: bytes, results: list) -> None:
        """Results of a task no longer tracked: their objects and the refs inside them go."""
        from juno import ids
        for i, value in enumerate(results):
            if value:
                oid = ids.object_id(task_id, i + 1)
                self.cw.take_contents(oid, value, keep=False)
                if value[0] == "s":
                    self.cw.shm.delete(oid, value[1])

    # ------------------------------------------------------------------ failures
    def on_worker_died(self, lease_id: Any, worker_id: bytes, reason: str, kind: str | None = None) -> None:
        """A leased worker died; ``kind`` is "oom" when the node's memory monitor killed it,
        "node_died" when its whole node died."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        ks = self.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease_id, None)
        requeue = []
        for position, task_id in enumerate(lease.in_flight):
            entry = self.entries.get(task_id)
            if entry is None:
                continue
            if entry.cancelled:
                self.fail(entry, exc.TaskCancelledError(task_id.hex()))
            elif position > 0:  # queued behind the task that was running: it never started
                entry.pushed = False
                requeue.append(entry)
            elif entry.retries_left != 0 and not (entry.streaming and self.cw.generator_state(task_id).count):
                if kind == "oom":
                    left = "infinitely many" if entry.retries_left < 0 else entry.retries_left - 1
                    self.cw._on_warning(f"Task {entry.name} was killed due to memory use: {reason}. "
                                        f"Retrying it ({left} retries left after this one).")
                entry.retries_left -= 1
                entry.pushed = False
                if self.ev is not None:
                    self.ev.retry(entry, {"oom": "OUT_OF_MEMORY", "node_died": "NODE_DIED"}.get(kind, "WORKER_DIED"),
                                  reason)
                requeue.append(entry)
            elif kind == "node_died":
                self.fail(entry, exc.NodeDiedError(
                    f"Task {entry.name} was running on a node that died ({reason}). The task was not "
                    "retried further (max_retries exhausted); set max_retries to retry it on another node."))
            elif kind == "oom":
                self.fail(entry, exc.OutOfMemoryError(
                    f"Task {entry.name} was killed due to memory use and was not retried further "
                    f"(max_retries exhausted): {reason}."))
            else:
                self.fail(entry, exc.WorkerCrashedError(
                    f"The worker running task {entry.name} died unexpectedly ({reason}). "
                    "The task was not retried further (max_retries exhausted)."))
        if ks is not None:
            ks.queue.extendleft(reversed(requeue))
            self._dispatch(ks)

    def on_node_died(self, node_manager: str, reason: str) -> None:
        """A node died: its leases are lost like dead workers (tasks retried elsewhere or failed
        with NodeDiedError), and lease requests waiting there are asked again elsewhere."""
        self._dead_node_managers.add(node_manager)  # a late spillback to it goes home instead
        for lease in [lease for lease in self.leases.values() if lease.node_manager == node_manager]:
            self.on_worker_died(lease.lease_id, lease.worker_id, reason, "node_died")
        for ks in self.keys.values():
            lost = [rid for rid, target in ks.pending_requests.items() if target == node_manager]
            for rid in lost:
                del ks.pending_requests[rid]
            if lost:
                self._dispatch(ks)

    # ------------------------------------------------------------------ cancel
    def cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        entry = self.entries.get(task_id)
        if entry is None:
            return
        if entry.actor_id is not None:
            self.cw.actors.cancel(entry, force)
            return
        entry.cancelled = True
        entry.force_cancelled = force
        if not entry.pushed:
            self._waiting_deps.pop(task_id, None)
            ks = self.keys.get(entry.key)
            if ks is not None:
                try:
                    ks.queue.remove(entry)
                except ValueError:
                    pass
            self.fail(entry, exc.TaskCancelledError(task_id.hex()))
            return
        lease = self.leases.get(entry.lease_id)
        if lease is None:
            return
        self.cw.loop.send(lease.address, messages.cancel_task(task_id, force, recursive))
        if force and next(iter(lease.in_flight), None) == task_id:
            # Only the first task in flight runs; one queued behind it is simply dropped.
            self.cw.notify(lease.node_manager, "kill_worker", lease.worker_id, "the task was cancelled with force=True")

    def pending_count(self) -> int:
        return len(self.entries)

    def resubmit(self, entry: TaskEntry, key: tuple) -> None:
        """IO thread: run a finished task again with the settings of ``key``, its earlier run's
        scheduling key (lineage reconstruction: runtime/owner/object_recovery.py)."""
        ks = self.keys[key]
        resources, runtime_env, strategy = ks.request
        self._submit(entry, resources, runtime_env, strategy, ks.max_calls)
