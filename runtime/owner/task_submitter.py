"""Owner-side submission of normal tasks through worker leases: the I/O around the decisions.

What to do with each task and lease (lease requests, pipelining, retries,
stealing, returning idle leases, cancel) is decided by
:class:`juno.owner.task_scheduling.TaskScheduling`, with no I/O. This shell
turns the owner's messages into its events and carries out the actions it
returns: lease requests and pushes to workers, completing and failing tasks,
task state events. The node manager decides placement; it never relays tasks.
Everything here runs on the IO thread.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from juno.comm import messages
from juno.owner import serialization
from juno.owner import task_scheduling as sched
from juno.owner import task_spec as ts
from juno.node.cluster_policy import locality_node
from juno.owner.task_spec import TaskEntry

logger = logging.getLogger(__name__)


class TaskSubmitter:
    def __init__(self, cw):
        self.cw = cw
        self.state = sched.TaskScheduling(cw.config, cw.node_manager)
        self.entries: dict[bytes, TaskEntry] = self.state.entries  # also read by ActorSubmitter and the API
        self.keys = self.state.keys  # read by object recovery to re-run a task with its key's request
        self.leases = self.state.leases
        self.ev = cw.task_events  # task state events for the GCS, or None (runtime/observability/task_events.py)
        self._appliers = {
            sched.RequestLease: self._request_lease,
            sched.CancelLeaseRequest: self._cancel_lease_request,
            sched.PushTask: self._push,
            sched.StealTasks: self._steal_tasks,
            sched.ReturnLease: self._return_lease,
            sched.CheckIdleLater: self._check_idle_later,
            sched.RetryTask: self._retried,
            sched.CompleteTask: self._complete_action,
            sched.FailTask: self._fail_action,
            sched.CancelRunning: self._cancel_running,
            sched.KillWorker: self._kill_worker,
        }

    def _apply(self, actions: list) -> None:
        appliers = self._appliers
        for action in actions:
            appliers[type(action)](action)

    # ------------------------------------------------------------------ submission
    def submit(self, entry: TaskEntry, resources: dict, runtime_env: dict | None, strategy: Any,
               max_calls: int = 0) -> None:
        """Any thread: register the task and hand it to the IO thread."""
        self.cw.note_submit(entry)
        self.cw.loop.call_soon(self._submit, entry, resources, runtime_env, strategy, max_calls)

    def _submit(self, entry: TaskEntry, resources: dict, runtime_env, strategy, max_calls: int) -> None:
        self.state.add(entry, resources, runtime_env, strategy, max_calls)
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
            self._apply(self.state.enqueue(entry, time.monotonic()))
            return
        self.state.wait_for_deps(entry.task_id, len(set(owned_pending)))
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
        entry = self.state.dep_ready(task_id)
        if entry is not None:
            if self.ev is not None:
                self.ev.ready(entry)
            self._apply(self.state.enqueue(entry, time.monotonic()))

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

    def on_tasks_stolen(self, lease_id: Any, task_ids: list) -> None:
        """A leased worker handed back tasks it had not started: run them elsewhere."""
        self._apply(self.state.tasks_stolen(lease_id, task_ids, time.monotonic()))

    # ------------------------------------------------------------------ actions
    def _push(self, action: sched.PushTask) -> None:
        entry, lease = action.entry, action.lease
        spec = self.inline_deps(entry)
        if self.ev is not None:
            self.ev.pushed(entry)
            entry.ev[9] = lease.worker_id  # known now: a worker that dies mid-task still shows in its row
        self.cw.loop.send(lease.address, messages.push_task(spec, lease.info))

    def _request_lease(self, action: sched.RequestLease) -> None:
        ks, rid, hops, head = action.key_state, action.rid, action.hops, action.head
        cw = self.cw
        resources, runtime_env, strategy = ks.request
        name = head.name if head is not None else ""
        args = (cw.address, rid, resources, runtime_env, strategy, name, None, ks.retriable)
        prefer = self._locality_node(head) if head is not None and head.dep_ids and not hops else None
        if hops or prefer:
            args += (hops, prefer)
        cw.call(action.node_manager, "request_lease", *args,
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

    def _on_lease_reply(self, ks: sched.KeyState, rid: int, ok: bool, value: Any, hops: int = 0) -> None:
        self._apply(self.state.lease_reply(ks, rid, ok, value, hops, time.monotonic()))

    def _cancel_lease_request(self, action: sched.CancelLeaseRequest) -> None:
        self.cw.notify(action.node_manager, "cancel_lease_request", self.cw.address, action.rid)

    def _steal_tasks(self, action: sched.StealTasks) -> None:
        lease = action.lease
        self.cw.loop.send(lease.address, ("steal_tasks", lease.lease_id, self.cw.address))

    def _return_lease(self, action: sched.ReturnLease) -> None:
        lease = action.lease
        self.cw.notify(lease.node_manager, "return_lease", lease.lease_id)

    def _check_idle_later(self, action: sched.CheckIdleLater) -> None:
        self.cw.loop.call_later(self.cw.config.lease_idle_s, self._maybe_return_idle, action.lease_id)

    def _maybe_return_idle(self, lease_id: Any) -> None:
        self._apply(self.state.idle_timer(lease_id, time.monotonic()))

    def _retried(self, action: sched.RetryTask) -> None:
        if action.warning is not None:
            self.cw.show_warning(action.warning)
        if self.ev is not None:
            self.ev.retry(action.entry, action.cause, action.reason)

    def _complete_action(self, action: sched.CompleteTask) -> None:
        self.complete(action.entry, action.results)

    def _fail_action(self, action: sched.FailTask) -> None:
        self.fail(action.entry, action.error)

    def _cancel_running(self, action: sched.CancelRunning) -> None:
        self.cw.loop.send(action.lease.address, messages.cancel_task(action.task_id, action.force, action.recursive))

    def _kill_worker(self, action: sched.KillWorker) -> None:
        lease = action.lease
        self.cw.notify(lease.node_manager, "kill_worker", lease.worker_id, action.reason)

    # ------------------------------------------------------------------ results
    def on_task_result(self, task_id: bytes, results: list, retryable: bool, worker_id: bytes,
                       worker_exiting: bool = False, run: tuple | None = None) -> None:
        entry = self.entries.get(task_id)
        if entry is None:
            self._discard_results(task_id, results)
            return
        if run is not None and entry.ev is not None:  # task events: the run, from the worker
            ev = entry.ev
            ev[7], ev[8] = run
            ev[9] = worker_id
        self._apply(self.state.task_result(entry, results, retryable, worker_exiting, time.monotonic()))

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
        stream = self.state.running_stream(lease_id)
        yielded = self.cw.generator_state(stream).count if stream is not None else 0
        self._apply(self.state.worker_died(lease_id, reason, kind, yielded, time.monotonic()))

    def on_node_died(self, node_manager: str, reason: str) -> None:
        """A node died: its leases are lost like dead workers (tasks retried elsewhere or failed
        with NodeDiedError), and lease requests waiting there are asked again elsewhere."""
        for lease in self.state.node_died(node_manager):
            self.on_worker_died(lease.lease_id, lease.worker_id, reason, "node_died")
        self._apply(self.state.lease_requests_lost(node_manager, time.monotonic()))

    # ------------------------------------------------------------------ cancel
    def cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        entry = self.entries.get(task_id)
        if entry is None:
            return
        if entry.actor_id is not None:
            self.cw.actors.cancel(entry, force)
            return
        self._apply(self.state.cancel(entry, force, recursive))

    def pending_count(self) -> int:
        return len(self.entries)

    def resubmit(self, entry: TaskEntry, key: tuple) -> None:
        """IO thread: run a finished task again with the settings of ``key``, its earlier run's
        scheduling key (lineage reconstruction: runtime/owner/object_recovery.py)."""
        ks = self.keys[key]
        resources, runtime_env, strategy = ks.request
        self._submit(entry, resources, runtime_env, strategy, ks.max_calls)
