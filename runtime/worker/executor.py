"""Runs tasks and actor calls inside a worker process.

Normal tasks and calls on plain actors run on the main thread (so cancel can
interrupt them with SIGINT, as in Ray); threaded actors run calls on a thread
pool per concurrency group; async actors run them as coroutines on an asyncio
loop in its own thread. Results go straight back to the caller.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle

from juno import exceptions as exc
from juno import ids
from juno.comm import messages
from juno.owner import serialization
from juno.owner import task_spec as ts
from juno.owner.task_spec import TaskSpec
from juno.actor import EXITED_BY_CALL, TERMINATE_METHOD, TERMINATED_BY_CALL
from juno.actor import ActorExit as _ExitActor
from juno.owner.core_worker import CoreWorker, TaskContext, current_task
from juno.object_ref import ObjectRef
from juno.observability.task_events import attempt_of
from juno.worker.argument_gate import ArgumentGate
from juno.worker.output import install_output_capture

logger = logging.getLogger(__name__)
_now = time.time


class _DepError(Exception):
    def __init__(self, error: BaseException):
        self.error = error


class TaskExecutor:
    def __init__(self, cw: CoreWorker):
        self.cw = cw
        self.functions: dict[bytes, Any] = {}
        self.main_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.running_task: bytes | None = None
        self.cancel_requested: set[bytes] = set()
        self.actor = None
        self.actor_id: bytes | None = None
        self.actor_name = ""  # the class name (log prefixes, errors)
        self.registered_name = ""  # the name=... it was created with, if any
        self.actor_mode = "sync"
        self.actor_pools: dict[str, ThreadPoolExecutor] = {}
        self.actor_semaphores: dict[str, asyncio.Semaphore] = {}
        self.method_groups: dict[str, str] = {}
        self.async_loop: asyncio.AbstractEventLoop | None = None
        self.async_tasks: dict[bytes, asyncio.Task] = {}
        self.num_restarts = 0
        self.exiting = False
        self.terminating = False  # a graceful stop is under way: calls that arrive now are refused
        self.exit_reason = EXITED_BY_CALL  # what callers refused after the exit are told
        self.call_counts: dict[bytes, int] = {}
        # Actor calls wait for their ObjectRef arguments here, not on the actor's thread.
        self.argument_gate = ArgumentGate(self._wait_for_args, self._queue_actor_call)
        self._arg_pins: dict[bytes, list] = {}  # task id -> refs keeping its fetched arguments local
        # Task events (runtime/observability/task_events.py): run start/end of what this worker executes.
        self.ev = cw.task_events
        self._run_start = 0.0
        self._run_attempt = 0
        self._running: dict[bytes, tuple[int, float]] = {}  # concurrent actor calls, actor creation
        if self.ev is not None:
            self.ev.running_probe = self._running_now
        h = cw.loop.handlers
        h["push_task"] = self.on_push_task
        h["cancel_task"] = self.on_cancel_task
        h["steal_tasks"] = self.on_steal_tasks
        h["actor_create"] = self.on_actor_create
        h["exit_worker"] = lambda *a: self.main_queue.put(None)
        h["terminate_actor"] = self.on_terminate_actor
        signal.signal(signal.SIGINT, self._on_sigint)
        self.output = install_output_capture(cw)

    # ------------------------------------------------------------------ IO thread
    def on_push_task(self, spec: tuple, lease_info) -> None:
        spec = TaskSpec(spec)  # it travels as a plain tuple (see TaskSpec)
        if spec.kind == ts.KIND_ACTOR_CALL:
            if self._refused_after_exit(spec, self.terminating):
                return
            self.argument_gate.submit(spec)
            return
        self.main_queue.put((spec, lease_info))

    def _queue_actor_call(self, spec: TaskSpec, pins: list | None) -> None:
        """An actor call whose arguments are here: run it (ArgumentGate decided when)."""
        if pins is not None:
            self._arg_pins[spec.task_id] = pins
        if self._refused_after_exit(spec, self.terminating):
            return
        if spec.function == TERMINATE_METHOD:  # behind its caller's earlier calls, as Ray orders it
            self._terminate(spec, TERMINATED_BY_CALL)
            return
        if self.actor_mode != "sync":
            self._dispatch_concurrent(spec)
            return
        self.main_queue.put((spec, None))

    def _wait_for_args(self, deps: list, done) -> None:
        """Fetch a call's ObjectRef arguments from their owners; ``done(refs)`` on the IO
        thread once all are local (the refs keep them here until the call has run)."""
        cw = self.cw
        refs = [ObjectRef(d[1], d[2]) for d in deps]
        remaining = [len(refs)]

        def ready(_oid: bytes, _value: tuple) -> None:
            if not cw.loop.in_loop_thread():  # stored by a user thread (juno.put in the actor)
                cw.loop.call_soon(ready, _oid, _value)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                done(refs)

        for ref in refs:
            if not cw.owned.on_ready(ref._id, ready):
                cw.ensure_fetch(ref)

    def _take_queued(self, pick) -> list[TaskSpec]:
        """Remove the queued (not started) tasks ``pick(spec, lease_info)`` selects; IO thread."""
        kept, taken = [], []
        while True:
            try:
                item = self.main_queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and len(item) == 2 and pick(*item):
                taken.append(item[0])
            else:
                kept.append(item)
        for item in kept:  # only this (IO) thread adds tasks, so their order is kept
            self.main_queue.put(item)
        return taken

    def on_steal_tasks(self, lease_id, reply_to: str) -> None:
        """Hand back the tasks of ``lease_id`` not started yet, so an idle worker can run them."""
        stolen = self._take_queued(lambda spec, info: info is not None and info[0] == lease_id)
        self.cw.loop.send(reply_to, ("tasks_stolen", lease_id, [spec.task_id for spec in stolen]))

    def _drop_queued(self, task_id: bytes) -> bool:
        """Cancel a task still waiting in this worker's queue: it fails now, never runs."""
        dropped = self._take_queued(lambda spec, info: spec.task_id == task_id)
        for spec in dropped:
            self._reply(spec, self._error_results(spec, exc.TaskCancelledError(task_id.hex())), False)
        return bool(dropped)

    def on_cancel_task(self, task_id: bytes, force: bool, recursive: bool) -> None:
        if self.running_task != task_id and self._drop_queued(task_id):
            return
        held = self.argument_gate.cancel(task_id)  # still waiting for its arguments
        if held is not None:
            self._reply(held, self._error_results(held, exc.TaskCancelledError(task_id.hex())), False)
            return
        self.cancel_requested.add(task_id)
        if self.running_task == task_id and threading.main_thread().is_alive():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        if task_id in self.async_tasks and self.async_loop is not None:
            self.async_loop.call_soon_threadsafe(self._cancel_async, task_id)
        if recursive:
            for child in list(self._children_of.get(task_id, ())):
                self.cw.tasks.cancel(child, force, recursive)

    _children_of: dict[bytes, list[bytes]] = {}

    def _cancel_async(self, task_id: bytes) -> None:
        """On the actor's event loop: cancel a call whose method is still being awaited (looked
        up there, so a call that has finished meanwhile is left alone)."""
        task = self.async_tasks.get(task_id)
        if task is not None:
            task.cancel()

    def on_terminate_actor(self, reason: str) -> None:
        """The GCS stops this actor gracefully (its handles are all gone)."""
        if not (self.terminating or self.exiting):
            self._terminate(None, reason)

    def _terminate(self, spec: TaskSpec | None, reason: str) -> None:
        """Stop the actor as Ray's ``__ray_terminate__`` does (``spec``: that call; None when the
        GCS asks): the calls that reached it before run first, later ones are refused, then it
        exits as with exit_actor() (exit handlers run, no restart). IO thread."""
        self.terminating = True
        self.exit_reason = reason
        if self.actor_mode == "sync":  # the main thread runs what is queued before it, in order
            self.main_queue.put((spec, None) if spec is not None else None)
        else:
            threading.Thread(target=self._exit_when_calls_done, args=(spec, reason),
                             name="juno-actor-exit", daemon=True).start()

    def _exit_when_calls_done(self, spec: TaskSpec | None, reason: str) -> None:
        """Threaded and async actors: wait for the calls dispatched before the stop, then exit."""
        if self.actor_mode == "threaded":
            for pool in self.actor_pools.values():
                pool.shutdown(wait=True)
        else:
            asyncio.run_coroutine_threadsafe(_calls_done(), self.async_loop).result()
        self.exiting = True
        self._announce_exit(reason)
        if spec is not None:
            self._reply(spec, self._exit_results(spec), False)
        self.main_queue.put(None)

    def on_actor_create(self, spec: tuple, gpu_ids: list, resources: dict, num_restarts: int,
                        options: dict) -> None:
        self.num_restarts = num_restarts
        self.main_queue.put((TaskSpec(spec), (None, gpu_ids, resources), options))

    def _on_sigint(self, signum, frame) -> None:
        if self.running_task is not None and self.running_task in self.cancel_requested:
            raise KeyboardInterrupt("task cancelled")

    # ------------------------------------------------------------------ main thread
    def run(self) -> None:
        while not self.exiting:
            item = self.main_queue.get()
            if item is None:
                break
            if len(item) == 3:
                self.create_actor(*item)
            else:
                spec, lease_info = item
                self.execute(spec, lease_info)

    def execute(self, spec: TaskSpec, lease_info) -> None:
        task_id = spec.task_id
        if task_id in self.cancel_requested:
            self.cancel_requested.discard(task_id)
            self._reply(spec, self._error_results(spec, exc.TaskCancelledError(task_id.hex())), False)
            return
        ev = self.ev
        if ev is not None:
            extra = spec.extra
            self._run_attempt = extra.get("attempt", 0) if extra else 0
            self._run_start = _now()
        self.running_task = task_id
        try:
            results, retryable = self._run(spec, lease_info)
        except KeyboardInterrupt:
            results, retryable = self._error_results(spec, exc.TaskCancelledError(task_id.hex())), False
        finally:
            self.running_task = None
            self.cancel_requested.discard(task_id)
            self._children_of.pop(task_id, None)
        if results is not None:
            # The run's start and end travel with the result; the owner reports them.
            run = (self._run_start, _now()) if ev is not None else None
            self._reply(spec, results, retryable, self._reached_max_calls(spec), run)

    def _running_now(self) -> list:
        """(task id, attempt, start) of what runs right now (the IO thread reports them as RUNNING)."""
        out = [(tid, attempt, start) for tid, (attempt, start) in list(self._running.items())]
        tid = self.running_task
        if tid is not None:
            out.append((tid, self._run_attempt, self._run_start))
        return out

    def _run_started(self, task_id: bytes, attempt: int) -> float:
        start = _now()
        self._running[task_id] = (attempt, start)
        return start

    def _run_ended(self, task_id: bytes) -> None:
        attempt, start = self._running.pop(task_id, (0, None))
        if start is not None:
            self.ev.ran(task_id, attempt, start, _now())

    def _reached_max_calls(self, spec: TaskSpec) -> bool:
        """Count calls of functions declared with max_calls; True when this worker must exit."""
        max_calls = (spec.extra or {}).get("max_calls") if spec.kind == ts.KIND_TASK else None
        if not max_calls:
            return False
        fid = spec.function
        self.call_counts[fid] = self.call_counts.get(fid, 0) + 1
        if self.call_counts[fid] < max_calls:
            return False
        self.exiting = True
        return True

    def _context(self, spec: TaskSpec, lease_info) -> TaskContext:
        gpu_ids, resources = (lease_info[1], lease_info[2]) if lease_info else (self._actor_gpus, self._actor_resources)
        return TaskContext(task_id=spec.task_id, job_id=spec.job_id, log_to=spec.log_to,
                           actor_id=spec.actor_id, name=self._display_name(spec), gpu_ids=gpu_ids,
                           resources=resources, runtime_env=spec.runtime_env,
                           namespace=(spec.extra or {}).get("namespace") or self.cw.default_context.namespace,
                           placement_group=(spec.extra or {}).get("pg") or self._actor_pg,
                           root=(spec.extra or {}).get("root"))

    _actor_gpus: list = []
    _actor_resources: dict = {}
    _actor_pg: tuple | None = None  # the actor's placement group (juno.util.placement_group)

    def _display_name(self, spec: TaskSpec) -> str:
        if spec.kind == ts.KIND_ACTOR_CALL:
            return self.actor_name or spec.name
        return spec.name

    def _run(self, spec: TaskSpec, lease_info) -> tuple[list | None, bool]:
        ctx = self._context(spec, lease_info)
        self._children_of[spec.task_id] = ctx.children
        token = current_task.set(ctx)
        if lease_info is not None:
            _set_visible_gpus(ctx.gpu_ids)
        try:
            try:
                fn = self._callable(spec)
                args, kwargs = self.resolve_args(spec)
            except _DepError as d:
                return self._error_results(spec, d.error, wrap=False), False
            if spec.num_returns == ts.STREAMING:
                return self._run_streaming(spec, fn, args, kwargs)
            value = fn(*args, **kwargs)
            if inspect.iscoroutine(value):
                value = asyncio.run(value)
            return self.encode_returns(spec, value), False
        except KeyboardInterrupt:
            raise
        except _ExitActor as e:
            self.exiting = True
            self._announce_exit(e.reason)
            return self._exit_results(spec), False
        except Exception as e:  # noqa: BLE001 - user code failure travels to the owner
            return self._error_results(spec, e), self._retryable(spec, e)
        finally:
            current_task.reset(token)

    def _callable(self, spec: TaskSpec):
        if spec.kind == ts.KIND_ACTOR_CALL:
            if self.actor is None:
                raise exc.RaySystemError("this worker hosts no actor")
            if spec.function == TERMINATE_METHOD:  # a sync actor's, in its place in the queue
                return _terminate_call
            return getattr(self.actor, spec.function)
        return self.load_function(spec.function)

    def load_function(self, function_id: bytes):
        fn = self.functions.get(function_id)
        if fn is None:
            blob = self.cw.gcs_call("kv_get", "fn", function_id)
            if blob is None:
                raise exc.RaySystemError(f"function {function_id.hex()} was never exported to the GCS")
            fn = self.functions[function_id] = cloudpickle.loads(blob)
        return fn

    def resolve_args(self, spec: TaskSpec) -> tuple[list, dict]:
        """Deserialize the arguments; refs nested in them make this worker a borrower, registered
        with their owners before the task can reply (see CoreWorker.register_arg_borrows)."""
        deferred = self.cw.defer_arg_borrows()
        try:
            return self._resolve_args(spec)
        finally:
            self.cw.register_arg_borrows(deferred, spec.owner)

    def _resolve_args(self, spec: TaskSpec) -> tuple[list, dict]:
        cw = self.cw
        args_value = spec.args
        if args_value[0] == "v":
            args, kwargs = serialization.deserialize_bytes(args_value[1])[0]
        else:
            args, kwargs = serialization.deserialize_view(cw.read_shared_object(args_value[1], args_value[2]))[0]
        deps = spec.deps
        if not deps:
            return args, kwargs
        values = []
        fetch = [(i, d) for i, d in enumerate(deps) if d[0] == "r"]
        fetched = {}
        if fetch:
            refs = [ObjectRef(d[1], d[2]) for _, d in fetch]
            for (i, _), v in zip(fetch, cw.wait_values(refs, None)):
                fetched[i] = v
        # Arguments held by other nodes are pulled together, not one after another.
        remote = [(d[1], d[2]) for d in deps if d[0] == "s" and d[2] != cw.node_id]
        remote += [(deps[i][1], v[1]) for i, v in fetched.items() if v[0] == "s" and v[1] != cw.node_id]
        pulled = cw.shm.pull_many(remote) if len(remote) > 1 else None  # noqa: F841 - pinned while decoding
        for i, dep in enumerate(deps):
            if dep[0] == "v":
                value = ("v", dep[1])
                oid = b""
            elif dep[0] == "s":
                value, oid = ("s", dep[2]), dep[1]
            else:
                value, oid = fetched[i], dep[1]
            obj, is_error = cw.decode_value(oid, value)
            if is_error:
                raise _DepError(obj)
            values.append(obj)
        args = [values[a.index] if type(a) is ts.DepMarker else a for a in args]
        kwargs = {k: values[v.index] if type(v) is ts.DepMarker else v for k, v in kwargs.items()}
        return args, kwargs

    def encode_returns(self, spec: TaskSpec, value: Any) -> list:
        n = spec.num_returns
        task_id = spec.task_id
        if n == 0:
            return []
        if n == 1:
            values = [value]
        else:
            if inspect.isgenerator(value):
                value = list(value)
            try:
                values = list(value)
            except TypeError:
                raise ValueError(f"{spec.name} declares num_returns={n} but returned a non-iterable "
                                 f"{type(value).__name__}") from None
            if len(values) != n:
                raise ValueError(f"{spec.name} declares num_returns={n} but returned {len(values)} values")
        out = []
        for i, v in enumerate(values):
            oid = ids.object_id(task_id, i + 1)
            try:
                serialized = serialization.serialize(v)
            except Exception as e:  # noqa: BLE001
                raise TypeError(serialization.describe_unpicklable(v, f"return value {i} of {spec.name}")
                                or str(e)) from e
            out.append(self.cw.encode_value(oid, serialized, spec.owner))
        return out

    def _run_streaming(self, spec: TaskSpec, fn, args, kwargs) -> tuple[list, bool]:
        task_id = spec.task_id
        owner = spec.owner
        gen = fn(*args, **kwargs)
        index = 0
        try:
            if inspect.isasyncgen(gen):
                gen = _drain_async_gen(gen)
            for item in gen:
                oid = ids.object_id(task_id, index + 1)
                value = self.cw.encode_value(oid, serialization.serialize(item), owner)
                self.cw.send_any_thread(owner, messages.gen_item(task_id, index, value))
                index += 1
        except KeyboardInterrupt:  # cancelled: the error follows the items sent (index None)
            blob = serialization.serialize(exc.TaskCancelledError(task_id.hex()), error=True).to_bytes()
            self.cw.send_any_thread(owner, messages.gen_item(task_id, None, ("v", blob)))
        except Exception as e:  # noqa: BLE001
            blob = serialization.serialize(self._task_error(spec, e), error=True).to_bytes()
            self.cw.send_any_thread(owner, messages.gen_item(task_id, index, ("v", blob)))
        return [], False

    def _task_error(self, spec: TaskSpec, e: BaseException) -> BaseException:
        name = self._display_name(spec)
        if spec.kind == ts.KIND_ACTOR_CALL:
            name = f"{self.actor_name}.{spec.function}"
        cause = e
        if isinstance(e, exc.RayTaskError):
            # A task this one waited for failed: keep its original cause, as Ray does, so
            # callers still catch the user's exception type (the traceback keeps both).
            cause = e.cause if e.cause is not None else e.to_plain()
        err = exc.RayTaskError(name, exc.format_remote_traceback(e), cause, pid=os.getpid(),
                               ip=self.cw.node.get("ip"), actor_id=self.actor_id.hex() if self.actor_id else None)
        try:
            serialization.serialize(err)
        except Exception:  # noqa: BLE001 - the cause itself can't travel
            err = exc.RayTaskError(name, err.traceback_str, None, pid=os.getpid(), ip=self.cw.node.get("ip"))
        if self.ev is not None:
            self.ev.worker_error(spec, err)
        return err

    def _error_results(self, spec: TaskSpec, e: BaseException, wrap: bool = True) -> list:
        error = self._task_error(spec, e) if wrap else e
        if not wrap and self.ev is not None:
            self.ev.worker_error(spec, error)
        try:
            blob = serialization.serialize(error, error=True).to_bytes()
        except Exception as e2:  # noqa: BLE001 - the caller must hear of the failure in any case
            text = f"{type(error).__name__}: {error}"
            blob = serialization.serialize(exc.RaySystemError(
                f"{spec.name} failed, and its error could not be sent ({type(e2).__name__}: {e2}); it was: "
                f"{text}"), error=True).to_bytes()
        n = spec.num_returns
        if n == ts.STREAMING:
            self.cw.send_any_thread(spec.owner, messages.gen_item(spec.task_id, None, ("v", blob)))
            return []
        return [("v", blob)] * n

    def _announce_exit(self, reason: str = EXITED_BY_CALL) -> None:
        """Tell the GCS (and wait until it knows) that the actor exits on purpose, so
        the death that follows is final rather than a crash to restart from."""
        self.exit_reason = reason
        try:
            self.cw.gcs_call("actor_exiting", self.actor_id, reason, timeout=10.0)
        except Exception:  # noqa: BLE001 - the GCS is gone: nothing would restart us anyway
            logger.warning("could not tell the GCS that the actor exits", exc_info=True)

    def _refused_after_exit(self, spec: TaskSpec, terminating: bool = False) -> bool:
        """exit_actor() already ran (or, with ``terminating``, a graceful stop began before this
        call arrived): answer the actor call ``spec`` with the exit's ActorDiedError, as Ray does,
        rather than run it on an actor its caller was told is gone."""
        if not (self.exiting or terminating):
            return False
        self._reply(spec, self._exit_results(spec), False)
        return True

    def _exit_results(self, spec: TaskSpec) -> list:
        return self._error_results(spec, exc.ActorDiedError(
            self.actor_id.hex() if self.actor_id else None, self.exit_reason), wrap=False)

    def _retryable(self, spec: TaskSpec, e: BaseException) -> bool:
        rule = spec.retry_exc
        if not rule:
            return False
        if rule is True:
            return True
        return isinstance(e, cloudpickle.loads(rule))

    def _reply(self, spec: TaskSpec, results: list, retryable: bool, exiting: bool = False,
               run: tuple | None = None) -> None:
        """Send a task's result to its owner from the thread that has it (no hand-off to the IO
        thread), behind what that thread sent before: the argument borrows registered with the
        owner, the streamed items, and the lines the task printed."""
        if self._arg_pins:
            self._arg_pins.pop(spec.task_id, None)
        self.output.flush()
        self.cw.send_any_thread(spec.owner, messages.task_result(spec.task_id, results, retryable,
                                                                 self.cw.worker_id, exiting, run))

    # ------------------------------------------------------------------ actors
    def create_actor(self, spec: TaskSpec, lease_info, options: dict) -> None:
        self.actor_id = spec.actor_id
        self._actor_gpus = list(lease_info[1] or [])
        self._actor_resources = lease_info[2] or {}
        self._actor_pg = (spec.extra or {}).get("pg")
        _set_visible_gpus(self._actor_gpus)
        ctx = self._context(spec, lease_info)
        token = current_task.set(ctx)
        error = None
        if self.ev is not None:
            self.ev.actor_attempt = self.num_restarts
            self._run_started(spec.task_id, self.num_restarts)
        try:
            cls = self.load_function(spec.function)
            self.actor_name = cls.__name__
            self.registered_name = (spec.extra or {}).get("name") or ""
            ctx.name = self.actor_name
            args, kwargs = self.resolve_args(spec)
            self._setup_concurrency(cls, options)
            self.actor = cls(*args, **kwargs)
            self.cw.default_context = TaskContext(job_id=spec.job_id, log_to=spec.log_to, actor_id=self.actor_id,
                                                  name=self.actor_name, gpu_ids=self._actor_gpus,
                                                  resources=self._actor_resources,
                                                  namespace=(spec.extra or {}).get("namespace"),
                                                  placement_group=self._actor_pg)
        except _DepError as d:
            error = d.error
        except _ExitActor:  # exit_actor() in the constructor: end for good, never created
            self.exiting = True
            self._announce_exit()
            return
        except Exception as e:  # noqa: BLE001
            error = self._task_error(spec, e)
        finally:
            current_task.reset(token)
            if self.ev is not None:
                self._run_ended(spec.task_id)
        blob = serialization.serialize(error, error=True).to_bytes() if error is not None else None
        # Sent again if the GCS restarts before it answers (runtime/gcs/client.py).
        self.cw.gcs.notify("actor_created", self.actor_id, self.cw.worker_id, self.cw.address, blob, os.getpid())

    def _setup_concurrency(self, cls, options: dict) -> None:
        is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                       for _, m in inspect.getmembers(cls, predicate=inspect.isfunction))
        groups = dict(options.get("concurrency_groups") or {})
        max_conc = options.get("max_concurrency")
        for name, member in inspect.getmembers(cls, predicate=inspect.isfunction):
            group = getattr(member, "__juno_method_options__", {}).get("concurrency_group")
            if group:
                if group not in groups:
                    raise ValueError(f"method {name} uses concurrency group {group!r} which the actor "
                                     f"does not declare; declared: {sorted(groups)}")
                self.method_groups[name] = group
        if is_async or (max_conc or 1) > 1 or groups:
            self.argument_gate.ordered = False  # Ray runs these actors' calls out of order
        if is_async:
            self.actor_mode = "async"
            default = max_conc or 1000
            self.async_loop = asyncio.new_event_loop()
            threading.Thread(target=self.async_loop.run_forever, name="juno-actor-async", daemon=True).start()

            def make_semaphores():
                self.actor_semaphores = {"_default": asyncio.Semaphore(default)}
                for g, n in groups.items():
                    self.actor_semaphores[g] = asyncio.Semaphore(n)

            asyncio.run_coroutine_threadsafe(_call_async(make_semaphores), self.async_loop).result()
        elif (max_conc or 1) > 1 or groups:
            self.actor_mode = "threaded"
            self.actor_pools = {"_default": ThreadPoolExecutor(max_conc or 1, thread_name_prefix="juno-actor")}
            for g, n in groups.items():
                self.actor_pools[g] = ThreadPoolExecutor(n, thread_name_prefix=f"juno-actor-{g}")

    def _dispatch_concurrent(self, spec: TaskSpec) -> None:
        extra = spec.extra or {}
        group = extra.get("concurrency_group") or self.method_groups.get(spec.function) or "_default"
        if self.actor_mode == "threaded":
            pool = self.actor_pools.get(group) or self.actor_pools["_default"]
            pool.submit(self._execute_threaded, spec)
        else:
            self.async_loop.call_soon_threadsafe(self._start_async, spec, group)

    def _start_async(self, spec: TaskSpec, group: str) -> None:
        """On the actor's event loop: run an async actor's call as a task of its own."""
        task = self.async_loop.create_task(self._execute_async(spec, group))
        task.add_done_callback(_retrieve_exception)

    def _execute_threaded(self, spec: TaskSpec) -> None:
        if self._refused_after_exit(spec):  # queued in the pool before another call ran exit_actor()
            return
        if self.ev is not None:
            self._run_started(spec.task_id, attempt_of(spec.extra))
        try:
            results, retryable = self._run(spec, None)
        except KeyboardInterrupt:
            results, retryable = self._error_results(spec, exc.TaskCancelledError(spec.task_id.hex())), False
        finally:
            if self.ev is not None:
                self._run_ended(spec.task_id)
        self._reply(spec, results, retryable)
        if self.exiting:
            self.main_queue.put(None)

    async def _execute_async(self, spec: TaskSpec, group: str) -> None:
        task_id = spec.task_id
        sem = self.actor_semaphores.get(group) or self.actor_semaphores["_default"]
        async with sem:
            if self._refused_after_exit(spec):  # waited on the semaphore while another call exited
                return
            if task_id in self.cancel_requested:
                self._reply(spec, self._error_results(spec, exc.TaskCancelledError(task_id.hex())), False)
                return
            ctx = self._context(spec, None)
            token = current_task.set(ctx)
            if self.ev is not None:
                self._run_started(task_id, attempt_of(spec.extra))
            try:
                method = self._callable(spec)
                if spec.deps or spec.args[0] != "v":
                    args, kwargs = await asyncio.get_running_loop().run_in_executor(None, self.resolve_args, spec)
                else:
                    args, kwargs = await self._resolve_inline_args(spec)
                if inspect.iscoroutinefunction(method):
                    # Awaited in this task (no task of its own): cancelling this one cancels it.
                    self.async_tasks[task_id] = asyncio.current_task()
                    try:
                        value = await method(*args, **kwargs)
                    finally:
                        self.async_tasks.pop(task_id, None)
                elif inspect.isasyncgenfunction(method) and spec.num_returns == ts.STREAMING:
                    task = asyncio.ensure_future(self._stream_async(spec, method(*args, **kwargs)))
                    self.async_tasks[task_id] = task
                    self._reply(spec, *await task)
                    return
                elif inspect.isasyncgenfunction(method):
                    value = [v async for v in method(*args, **kwargs)]
                else:
                    value = method(*args, **kwargs)
                if spec.num_returns == ts.STREAMING:
                    results, retryable = self._run_streaming(spec, lambda *a, **k: value, args, kwargs)
                else:
                    results, retryable = self.encode_returns(spec, value), False
            except _DepError as d:
                results, retryable = self._error_results(spec, d.error, wrap=False), False
            except asyncio.CancelledError:
                results, retryable = self._error_results(spec, exc.TaskCancelledError(task_id.hex())), False
            except _ExitActor as e:
                self.exiting = True
                await asyncio.get_running_loop().run_in_executor(None, self._announce_exit, e.reason)
                results, retryable = self._exit_results(spec), False
                self.main_queue.put(None)
            except Exception as e:  # noqa: BLE001
                results, retryable = self._error_results(spec, e), self._retryable(spec, e)
            finally:
                self.async_tasks.pop(task_id, None)
                current_task.reset(token)
                if self.ev is not None:
                    self._run_ended(task_id)
            self._reply(spec, results, retryable)


    async def _resolve_inline_args(self, spec: TaskSpec) -> tuple[list, dict]:
        """An async call's arguments when they all came with it: unpickled on the event loop (a
        thread hand-off there and back costs more than that), and only borrows of refs owned by
        others than the caller, which wait for their owners' answers, registered on a thread."""
        deferred = self.cw.defer_arg_borrows()
        try:
            return self._resolve_args(spec)
        finally:  # also when unpickling failed: what it borrowed so far is registered, as resolve_args does
            updates = self.cw.end_arg_borrows(deferred, spec.owner)
            if updates:
                await asyncio.get_running_loop().run_in_executor(None, self.cw.register_borrows_sync, updates)
            elif updates is not None:
                self.cw.flush_borrows()  # only the caller's: ahead of the result, on this thread

    async def _stream_async(self, spec: TaskSpec, agen) -> tuple[list, bool]:
        """Stream an async generator method's items as it yields them, driving it on the
        actor's own event loop (it shares state and asyncio objects with the other calls)."""
        task_id, owner = spec.task_id, spec.owner
        index = 0
        try:
            async for item in agen:
                value = self.cw.encode_value(ids.object_id(task_id, index + 1), serialization.serialize(item), owner)
                self.cw.send_any_thread(owner, messages.gen_item(task_id, index, value))
                index += 1
        except asyncio.CancelledError:  # cancelled: the error takes the next item's place
            error: BaseException = exc.TaskCancelledError(task_id.hex())
        except Exception as e:  # noqa: BLE001
            error = self._task_error(spec, e)
        else:
            return [], False
        blob = serialization.serialize(error, error=True).to_bytes()
        self.cw.send_any_thread(owner, messages.gen_item(task_id, index, ("v", blob)))
        return [], False


async def _call_async(fn):
    return fn()


def _retrieve_exception(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # _execute_async reports its errors to the caller; don't log them again


def _terminate_call():
    """What a sync actor's ``__ray_terminate__`` call runs when its turn comes."""
    raise _ExitActor(TERMINATED_BY_CALL)


async def _calls_done() -> None:
    """On an async actor's loop: wait for the actor calls already dispatched to it (not for
    other tasks the actor's code started)."""
    current = asyncio.current_task()
    calls = [t for t in asyncio.all_tasks() if t is not current
             and getattr(t.get_coro(), "cr_code", None) is TaskExecutor._execute_async.__code__]
    await asyncio.gather(*calls, return_exceptions=True)


def _drain_async_gen(agen):
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()


_ORIGINAL_VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES")


def _set_visible_gpus(gpu_ids: list) -> None:
    """GPU tasks see exactly their GPUs; others see what the worker started with."""
    if gpu_ids:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
    elif _ORIGINAL_VISIBLE is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = _ORIGINAL_VISIBLE
