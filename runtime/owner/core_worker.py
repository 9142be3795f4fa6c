"""The core worker: the part of every driver and worker process that owns objects.

It submits tasks (through leased workers) and actor calls, keeps the values of
objects it owns, answers borrowers, and implements get/put/wait. All socket work
happens on one IO thread (``self.loop``); user threads hand it work with
``loop.call_soon`` and wait on events.
"""
from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import os
import sys
import threading
import time
from typing import Any, Callable

from juno import exceptions as exc
from juno import ids, object_ref
from juno.owner import serialization
from juno.owner.actor_submitter import ActorSubmitter
from juno.config import Config
from juno.gcs.client import GcsClient
from juno.owner.object_recovery import ObjectRecovery
from juno.owner.owned_values import OwnedValues
from juno.object_ref import ObjectRef
from juno.owner.object_wait import ReadyCounter, split_ready, wait_values
from juno.owner.reference_counter import UNBORROW, ReferenceCounter
from juno.comm.rpc import RpcNode
from juno.store.client import StoreClient
from juno.observability.task_events import new_recorder, note_call_site
from juno.owner.task_submitter import TaskSubmitter
from juno.comm.transport import EventLoop, listen_address

logger = logging.getLogger(__name__)

_global_worker: "CoreWorker | None" = None

MODE_DRIVER = "driver"
MODE_WORKER = "worker"


def global_worker() -> "CoreWorker | None":
    return _global_worker


def set_global_worker(worker: "CoreWorker | None") -> None:
    global _global_worker
    _global_worker = worker
    object_ref.set_worker(worker)


class TaskContext:
    """What the code running right now belongs to (task, actor, job, resources)."""

    __slots__ = ("task_id", "job_id", "log_to", "actor_id", "name", "gpu_ids", "resources",
                 "runtime_env", "children", "namespace", "placement_group", "root")

    def __init__(self, task_id=None, job_id=None, log_to=None, actor_id=None, name="",
                 gpu_ids=(), resources=None, runtime_env=None, namespace=None, placement_group=None,
                 root=None):
        self.task_id = task_id
        self.job_id = job_id
        self.log_to = log_to
        self.actor_id = actor_id
        self.name = name
        self.gpu_ids = list(gpu_ids)
        self.resources = resources or {}
        self.runtime_env = runtime_env
        self.children: list[bytes] = []
        self.namespace = namespace
        # (group id, bundle index, capture_child_tasks, bundles) when it runs in a placement group
        self.placement_group = placement_group
        # The task the driver submitted that this one descends from (None: this one is it); a
        # notebook routes nested tasks' output to the cell that launched that root.
        self.root = root


current_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("juno_task", default=None)


class CoreWorker(RpcNode):
    def __init__(self, *, mode: str, worker_id: bytes, session_dir: str, node: dict,
                 gcs_address: str, config: Config, job_id: int | None = None,
                 namespace: str | None = None, log_to_driver: bool = True, token: str | None = None):
        self.mode = mode
        self.worker_id = worker_id
        self.session_dir = session_dir
        self.node = node
        self.node_id: str = node["node_id"]
        self.node_manager: str = node["address"]
        self.gcs_address = gcs_address
        self.config = config
        self.job_id = job_id
        self.namespace = namespace
        self.pid = os.getpid()
        sock_name = f"{'d' if mode == MODE_DRIVER else 'w'}-{worker_id.hex()[:12]}"
        self.loop = EventLoop(listen_address(node.get("ip", "127.0.0.1"), node["socket_dir"], sock_name),
                              name=f"juno-{mode}", token=token, max_message_bytes=config.max_message_bytes)
        self.address = self.loop.address
        self.install_rpc(self.loop)
        self.gcs = GcsClient(self, gcs_address, config.gcs_reconnect_timeout_s, session_dir)  # rides out restarts
        self.owned = OwnedValues()
        self.shm = StoreClient(self, node["store_dir"])
        self.refs = ReferenceCounter(self.address, self._free_owned, on_pending=self._schedule_borrow_flush)
        self._borrow_flush_lock = threading.Lock()  # a flush's messages are sent before it returns
        self._watched: set[str] = set()
        self._dead_processes: set[str] = set()
        self.ids = ids.IdGenerator()
        self._put_index = 0
        # Observability: where refs were made (record_ref_creation_sites) and task events for the GCS.
        self.call_sites: dict[bytes, str] | None = {} if config.record_ref_creation_sites else None
        self.task_events = new_recorder(self)
        self.tasks = TaskSubmitter(self)
        self.actors = ActorSubmitter(self)
        self.lineage = ObjectRecovery(self)  # lost objects: lineage reconstruction (runtime/owner/object_recovery.py)
        self._function_exports: set[bytes] = set()
        self._fetching: dict[bytes, str] = {}  # borrowed object -> owner asked for it
        self._generators: dict[bytes, "_GeneratorState"] = {}
        # Re-entrant: ObjectRefGenerator.__del__ runs release_generator, and the garbage collector may
        # run it on a thread that holds this lock already (an allocation inside generator_state).
        self._gen_lock = threading.RLock()
        self._blocked_depth = 0
        self.lease_for_blocking: bool = mode == MODE_WORKER
        self.log_to_driver = log_to_driver
        self.default_context = TaskContext(job_id=job_id, log_to=self.address if (mode == MODE_DRIVER and log_to_driver) else None,
                                           namespace=namespace)
        self.shutting_down = False
        self.job_runtime_env: dict | None = None
        self.job_actor_lifetimes: dict = {}  # job id -> its JobConfig's default_actor_lifetime (job_config.py)
        self.executor = None
        # Notebook hooks (juno.kernel_ext.output): called with each TaskEntry on the submitting thread,
        # and, when set, given the driver's worker output entries instead of printing them.
        self.submit_hooks: list[Callable[[Any], None]] = []
        self.log_router: Callable[[list], None] | None = None
        h = self.loop.handlers
        h["task_result"] = self._on_task_result
        h["gen_item"] = self.tasks.on_generator_item
        h["lease_worker_died"] = self.tasks.on_worker_died
        h["tasks_stolen"] = self.tasks.on_tasks_stolen
        h["actor_update"] = self.actors.on_actor_update
        h["get_object"] = self._on_get_object
        h["object_value"] = self._on_object_value
        h["log"] = self._on_log
        h["warning"] = self.show_warning
        h["process_died"] = self._on_process_died
        h["node_died"] = self._on_node_died

    # ------------------------------------------------------------------ context
    def context(self) -> TaskContext:
        return current_task.get() or self.default_context

    def start(self) -> None:
        self.loop.start_thread()
        if self.mode == MODE_DRIVER and "ipykernel" in sys.modules:
            try:  # a driver inside a Jupyter kernel: route output to cells, cancel on interrupt
                from juno.kernel_ext import output, interrupts

                output.attach(self)
                interrupts.attach(self)
            except Exception:  # noqa: BLE001 - never let the notebook layer break init
                logger.debug("could not attach the notebook output routing", exc_info=True)

    def note_submit(self, entry: Any) -> None:
        """Any thread, as a task or actor call is submitted: let the notebook layer see it."""
        for hook in self.submit_hooks:
            try:
                hook(entry)
            except Exception:  # noqa: BLE001
                logger.debug("submit hook failed", exc_info=True)

    def stop(self) -> None:
        self.shutting_down = True
        if self.task_events is not None:
            self.loop.call_soon(self.task_events.flush, True)
        self.loop.stop()
        self.loop.join(timeout=5)
        self.close_direct_sockets()

    def rpc_object_refs(self, reply) -> dict:
        """This process's reference table, for the state API (list_objects, `juno memory`)."""
        from juno.owner.object_listing import reference_table

        return reference_table(self)

    # ------------------------------------------------------------------ control plane
    def gcs_call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """A GCS request from a user thread; across a GCS restart it waits (and is sent again) for up
        to ``timeout`` (default ``gcs_reconnect_timeout_s``), then raises GcsUnavailableError."""
        return self.gcs.call_sync(method, *args, timeout=timeout)

    def node_call(self, method: str, *args: Any, address: str | None = None) -> Any:
        return self.call_sync(address or self.node_manager, method, *args,
                              timeout=self.config.rpc_timeout_s, what="the node manager")

    def export_function(self, function_id: bytes, blob: bytes) -> None:
        """Store a pickled function or class in the GCS once, keyed by content hash."""
        if function_id in self._function_exports:
            return
        self.gcs_call("kv_put", "fn", function_id, blob, False)
        self._function_exports.add(function_id)

    # ------------------------------------------------------------------ put
    def put_object(self, value: Any, *, owner_address: str | None = None) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling put() on an ObjectRef is not allowed; pass the ObjectRef itself "
                "(or wrap it in a list to nest it)."
            )
        if owner_address not in (None, self.address):
            raise ValueError("Juno only supports put() owned by the calling process for now (_owner=None).")
        self._put_index += 1
        object_id = self.ids.task_id() + b"\xff\xff\xff\xff"
        serialized = self._serialize_or_explain(value, "the value passed to put()")
        self.refs.add_owned(object_id)
        self.store_serialized(object_id, serialized)
        if self.call_sites is not None:
            note_call_site(self, [object_id], "put object")
        return ObjectRef(object_id, self.address)

    def _serialize_or_explain(self, value: Any, label: str) -> serialization.SerializedObject:
        try:
            return serialization.serialize(value)
        except Exception as e:  # noqa: BLE001
            raise TypeError(serialization.describe_unpicklable(value, label) or str(e)) from e

    def store_serialized(self, object_id: bytes, serialized: serialization.SerializedObject) -> tuple:
        """Keep a value this process owns: inline when small, in shared memory otherwise."""
        if serialized.contained_refs:
            # Refs inside a stored value live at least as long as the value does.
            self.refs.add_captured(object_id, [r.binary() for r in serialized.contained_refs])
        if serialized.total_bytes <= self.config.max_inline_object_bytes:
            value = ("v", serialized.to_bytes())
        else:
            self.shm.write(object_id, serialized.flags, serialized.data, serialized.buffers)
            value = ("s", self.node_id)
        self.owned.put(object_id, value)
        return value

    def encode_value(self, object_id: bytes, serialized: serialization.SerializedObject, owner: str) -> tuple:
        """The wire value for an object ``owner`` owns (task results).

        Refs inside it are held in transit until the owner registers as their borrower
        (``take_contents``): here for refs we own, at their owner for refs we borrowed. They
        travel beside the value, as a third item ``(object ids, owners)``, so that the owner
        knows them without reading the value.
        """
        refs = serialized.contained_refs
        if serialized.total_bytes <= self.config.max_inline_object_bytes:
            value = ("v", serialized.to_bytes())
        else:
            self.shm.write(object_id, serialized.flags, serialized.data, serialized.buffers, owner)
            value = ("s", self.node_id)
        if not refs:
            return value
        self.hold_in_transit(refs)
        return value + (([r._id for r in refs], [r._owner for r in refs]),)

    def take_contents(self, object_id: bytes, value: tuple, keep: bool = True) -> tuple:
        """A task result ``value`` for ``object_id`` arrived here, its owner: the refs traveling
        beside it are kept while the object lives (and their in-transit holds redeemed once:
        reading the value borrows nothing more); released at once if not ``keep`` (a value
        discarded). Returns the value without them."""
        if len(value) <= 2:
            return value
        self.refs.adopt_contents(object_id, *value[2], keep)
        return value[:2]

    # ------------------------------------------------------------------ get
    def get_objects(self, refs: list[ObjectRef], timeout: float | None) -> list[Any]:
        values = self.wait_values(refs, timeout)
        remote = [(r._id, v[1]) for r, v in zip(refs, values) if v[0] == "s" and v[1] != self.node_id]
        pulled = self.shm.pull_many(remote) if len(remote) > 1 else None  # noqa: F841 - pinned while decoding
        out = []
        for ref, value in zip(refs, values):
            obj, is_error = self.decode_value(ref.binary(), value)
            if is_error and isinstance(obj, exc.ObjectLostError):  # rebuilt from its lineage if it can be
                obj, is_error = self.lineage.get_rebuilt(ref, value, obj, timeout)
            if is_error:
                raise _as_raisable(obj)
            out.append(obj)
        return out

    def decode_value(self, object_id: bytes, value: tuple) -> tuple[Any, bool]:
        if value[0] == "v":
            if len(value[1]) <= _FEW_REFS_BYTES:
                return serialization.deserialize_bytes(value[1])
            return self._counted_together(serialization.deserialize_bytes, value[1])
        if value[0] == "s":
            try:
                view = self.read_shared_object(object_id, value[1])
            except exc.ObjectLostError as e:
                return e, True
            return self._counted_together(serialization.deserialize_view, view)
        if value[0] == "e":
            return value[1], True
        raise ValueError(f"unknown object value kind {value[0]!r}")

    def _counted_together(self, deserialize: Callable, data: Any) -> tuple[Any, bool]:
        """Deserialize a value that may hold many refs: they are counted (and registered with
        their owners) together, in one pass and one message per owner (object_ref.RefBatch)."""
        batch = object_ref.batch
        outer = batch.open()
        try:
            return deserialize(data)
        finally:
            batch.close(outer, self.refs)

    def read_shared_object(self, object_id: bytes, node_id: str) -> memoryview:
        """The bytes of an object in a node's shared-memory store, pulled to this node first when
        ``node_id`` is another node. The one place a read finds an object lost: it raises
        ObjectLostError (ObjectFetchTimedOutError when the pull timed out), with ``.reason``."""
        return self.shm.read(object_id, node_id)

    def wait_values(self, refs: list[ObjectRef], timeout: float | None) -> list[tuple]:
        """The stored values of ``refs`` (not decoded), waiting for those not here yet and asking
        the owners of borrowed ones; GetTimeoutError after ``timeout``. Not on the IO thread."""
        return wait_values(self.owned, refs, timeout, self.ensure_fetch, self._notify_blocked)

    def ensure_fetch(self, ref: ObjectRef) -> None:
        """Ask a borrowed object's owner for its value (once); fail fast if the owner is gone."""
        oid = ref.binary()
        owner = ref.owner_address
        if owner == self.address or oid in self._fetching:
            return
        self._fetching[oid] = owner
        if owner in self._dead_processes:
            self._owner_died_value(oid, owner)
            return
        self._watch(owner)
        self.loop.call_soon(self.loop.send, owner, ("get_object", oid, self.address))

    def on_value_ready(self, ref: ObjectRef, ready: Callable[[bytes, tuple], None]) -> None:
        """Call ``ready(object_id, value)`` once the value is here, asking a borrowed one's owner
        for it: juno.util.notebook's completion callbacks (progress widgets) without a get."""
        if not self.owned.on_ready(ref.binary(), ready):
            self.ensure_fetch(ref)

    def forget_fetched(self, object_id: bytes) -> None:
        """A borrowed object's copy went (its node died): the next wait asks its owner again."""
        self._fetching.pop(object_id, None)

    def _notify_blocked(self, blocked: bool) -> None:
        """Lend this worker's CPUs back while it waits, so nested tasks can run."""
        if not self.lease_for_blocking or current_task.get() is None:
            return
        if blocked:
            self._blocked_depth += 1
            if self._blocked_depth == 1:
                self.loop.call_soon(self.notify, self.node_manager, "worker_blocked", self.worker_id)
        else:
            self._blocked_depth -= 1
            if self._blocked_depth == 0:
                self.loop.call_soon(self.notify, self.node_manager, "worker_unblocked", self.worker_id)

    def value_future(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def resolve(object_id: bytes, value: tuple) -> None:
            if fut.done():
                return
            try:
                obj, is_error = self.decode_value(object_id, value)
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)
                return
            if is_error:
                fut.set_exception(_as_raisable(obj))
            else:
                fut.set_result(obj)

        def ready(object_id: bytes, value: tuple) -> None:
            if value[0] == "s":
                # Reading shared memory asks the node manager: never on the IO thread.
                _decode_pool().submit(resolve, object_id, value)
            else:
                resolve(object_id, value)

        fut._juno_ref = ref  # keep the ref (and so the object) alive until done
        if not self.owned.on_ready(ref.binary(), ready):
            self.ensure_fetch(ref)
        return fut

    # ------------------------------------------------------------------ wait
    def wait(self, refs: list[ObjectRef], ids: set[bytes], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """wait() of distinct ``refs``, ``ids`` the set of their ids."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ready, not_ready = self._wait_ready(refs, ids, num_returns, timeout)
        if fetch_local:
            ready, not_ready = self._fetch_to_this_node(ready, not_ready, deadline)
        return ready, not_ready

    def _fetch_to_this_node(self, ready: list[ObjectRef], not_ready: list[ObjectRef],
                            deadline: float | None) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """wait(fetch_local=True): an object on another node is ready once a copy is on this node
        (pulled in parallel); one that is lost counts as ready (get raises the error)."""
        remote = {}
        for r in ready:
            value = self.owned.get(r._id)
            if value is not None and value[0] == "s" and value[1] != self.node_id and r._id not in remote:
                remote[r._id] = _decode_pool().submit(self._prefetch, r._id, value[1])
        if not remote:
            return ready, not_ready
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = concurrent.futures.wait(list(remote.values()), timeout=left)
        late = {oid for oid, fut in remote.items() if fut not in done}
        if not late:
            return ready, not_ready
        order = {id(r): i for i, r in enumerate(ready + not_ready)}
        moved = [r for r in ready if r._id in late]
        return [r for r in ready if r._id not in late], sorted(not_ready + moved, key=lambda r: order[id(r)])

    def _prefetch(self, object_id: bytes, node_id: str) -> None:
        try:
            self.read_shared_object(object_id, node_id)  # the copy stays on this node once unpinned
        except exc.RayError:
            pass

    def _wait_ready(self, refs: list[ObjectRef], ids: set[bytes], num_returns: int,
                    timeout: float | None) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """The first ``num_returns`` ready refs in input order, and the rest.

        A wait() loop over n refs calls this n times, so each call scans the ids with set
        operations at C speed and registers one watch for all refs, not one per ref.
        """
        target = min(num_returns, len(refs))
        ready = self.owned.ready_among(ids)
        if len(ready) < target and timeout != 0:
            ready = self._block_until_ready(refs, ids, target, timeout)
        else:
            self._fetch_borrowed(refs, ids, ready)
        return split_ready(refs, ready, num_returns)

    def _block_until_ready(self, refs: list[ObjectRef], ids: set[bytes], target: int,
                           timeout: float | None) -> set[bytes]:
        counter = ReadyCounter()
        ready = self.owned.watch(ids, counter)
        counter.expect(target - len(ready))
        try:
            self._fetch_borrowed(refs, ids, ready)
            if not counter.event.is_set():
                self._notify_blocked(True)
                try:
                    counter.event.wait(timeout)
                finally:
                    self._notify_blocked(False)
        finally:
            self.owned.unwatch(counter)
        return self.owned.ready_among(ids)

    def _fetch_borrowed(self, refs: list[ObjectRef], ids: set[bytes], ready: set[bytes]) -> None:
        """Ask the owners of the borrowed refs not ready here for their values (once each)."""
        if self.refs.owns_all(ids):
            return  # all ours: their values arrive without asking
        for r in refs:
            if r._owner != self.address and r._id not in ready:
                self.ensure_fetch(r)

    # ------------------------------------------------------------------ freeing
    def _free_owned(self, object_id: bytes) -> None:
        if len(object_id) == ids.ACTOR_ID_LEN:  # the last handle to an actor we created went
            self.actors.out_of_scope(object_id)
            return
        self.lineage.object_freed(object_id)
        value = self.owned.delete(object_id)
        if value is not None and value[0] == "s":
            self.shm.delete(object_id, value[1])  # forwarded to the node holding it; copies go too

    # ------------------------------------------------------------------ borrowing protocol
    def hold_in_transit(self, refs: list[ObjectRef]) -> None:
        """Keep refs alive for a receiver that hasn't registered yet (sync for foreign owners)."""
        mine, foreign = [], {}
        for r in refs:
            if r._owner == self.address:
                mine.append(r._id)
            else:
                foreign.setdefault(r._owner, []).append(r._id)
        if mine:
            self.refs.add_in_transit(mine)
        for owner, oids in foreign.items():
            try:
                self.call_sync(owner, "hold_in_transit", oids, timeout=self.config.rpc_timeout_s, what="an owner")
            except Exception:  # noqa: BLE001 - a dead owner: the receiver will see OwnerDiedError
                logger.debug("could not hold refs at %s", owner, exc_info=True)

    def _schedule_borrow_flush(self) -> None:
        """Borrow updates wait, or borrowed refs were dropped: the IO thread flushes them (never
        at once, even on the IO thread: the counter calls this with its lock held, mid-update)."""
        self.loop.call_soon(self.flush_borrows)

    def defer_arg_borrows(self) -> tuple:
        """Executor thread, before deserializing a task's arguments: count the refs in them
        together, and hold the borrow registrations they make for ``register_arg_borrows``,
        where no flush on another thread can take them. Returns what to pass to it."""
        return self.refs.defer_borrow_updates(), object_ref.batch.open()

    def end_arg_borrows(self, deferred: tuple, except_owner: str) -> dict | None:
        """After deserializing a task's arguments (``deferred``: from ``defer_arg_borrows``): None
        when they borrowed nothing; else the registrations with owners other than the task's
        owner, which must be sent and answered before the task can reply (the submitter may drop
        its own borrow as soon as the result arrives, and nothing orders that message after ours:
        ``register_borrows_sync``). The task's owner's stay queued: ``flush_borrows`` on the thread
        that sends the result puts them ahead of it, on the same connection."""
        refs = self.refs
        outer, batch_outer = deferred
        object_ref.batch.close(batch_outer, refs)
        with refs.lock:
            if not refs.undefer_borrow_updates(outer) or outer is not None:
                return None
            return refs.take_borrow_updates(keep_owner=except_owner)  # with those queued before

    def register_arg_borrows(self, deferred: tuple, except_owner: str) -> None:
        """``end_arg_borrows``, then what it found sent: the executor thread, before the result."""
        updates = self.end_arg_borrows(deferred, except_owner)
        if updates is not None:
            self.register_borrows_sync(updates)

    def register_borrows_sync(self, updates: dict) -> None:
        """Send borrow updates to their owners, waiting for each answer; then flush the rest (the
        task's owner's) from this thread, which also waits out a flush under way elsewhere that
        may hold ours."""
        for owner, (oids, claims) in updates.items():
            try:
                self.call_sync(owner, "update_borrowers", oids, claims, self.address,
                               timeout=self.config.rpc_timeout_s, what="an owner")
            except Exception:  # noqa: BLE001 - a dead owner: get() will report it
                logger.debug("could not register borrows with %s", owner, exc_info=True)
        self.flush_borrows()

    def flush_borrows(self) -> None:
        """One message per owner for everything borrowed and released since the last flush, in
        order; and the cached values of released borrowed objects go. Any thread: what a flush
        takes is sent (on the connections every thread shares) before another flush starts, so
        once a thread's flush returns, the updates it queued are ahead of what it sends next,
        even those an earlier flush on another thread took."""
        with self._borrow_flush_lock:
            updates = self.refs.take_borrow_updates()  # applies the dropped refs first
            with self.refs.lock:  # no new borrow of one of them (and get of its cached value) meanwhile
                gone = self.refs.take_released()
                if gone:
                    self.owned.delete_many(gone)
                    fetching = self._fetching
                    for oid in gone:
                        fetching.pop(oid, None)
            for owner, (oids, claims) in updates.items():
                if max(claims) != UNBORROW:
                    self._watch(owner)
                self.notify_any_thread(owner, "update_borrowers", oids, claims, self.address)

    def rpc_update_borrowers(self, reply, object_ids: list, claims: list, borrower: str):
        """A borrower's registrations and releases, in its order (ReferenceCounter.update_borrowers)."""
        self.refs.update_borrowers(object_ids, claims, borrower)
        if borrower != self.address and max(claims, default=UNBORROW) != UNBORROW:
            self._watch(borrower)
        return True

    def rpc_hold_in_transit(self, reply, object_ids: list):
        self.refs.add_in_transit(object_ids)
        return True

    def _watch(self, address: str) -> None:
        """Ask the node to tell us when ``address`` (an owner or borrower of ours) dies."""
        if address in self._watched or address == self.address:
            return
        self._watched.add(address)
        if self.loop.in_loop_thread():
            self.notify(self.node_manager, "watch_process", address, self.address)
        else:
            self.loop.call_soon(self.notify, self.node_manager, "watch_process", address, self.address)

    def _on_process_died(self, address: str) -> None:
        """A process we borrow from or lend to died: drop its borrows, fail fetches from it."""
        self._dead_processes.add(address)
        self._watched.discard(address)
        self.refs.remove_process(address)
        for oid, owner in list(self._fetching.items()):
            if owner == address:
                self._owner_died_value(oid, owner)

    def _on_node_died(self, node_id: str, node_manager: str, reason: str) -> None:
        """Relayed by our node manager from the GCS: leases there are lost, objects there too."""
        self.tasks.on_node_died(node_manager, f"node {node_id[:12]} died: {reason}")
        self.lineage.on_node_died(node_id, reason)

    def _owner_died_value(self, object_id: bytes, owner: str) -> None:
        err = serialization.serialize(exc.OwnerDiedError(object_id.hex(), owner, ""), error=True)
        self._fetching.pop(object_id, None)
        self.owned.put(object_id, ("v", err.to_bytes()))

    # ------------------------------------------------------------------ handlers (IO thread)
    def _on_task_result(self, task_id: bytes, results: list, retryable: bool, worker_id: bytes,
                        worker_exiting: bool = False, run: tuple | None = None) -> None:
        """A result's one route: an actor call's to the actor submitter, any other to the task submitter."""
        entry = self.tasks.entries.get(task_id)
        if entry is not None and entry.actor_id is not None:
            self.actors.on_call_result(entry, results, retryable, worker_id, run)
        else:
            self.tasks.on_task_result(task_id, results, retryable, worker_id, worker_exiting, run)

    def _on_get_object(self, object_id: bytes, reply_to: str) -> None:
        if not self.refs.owns(object_id) and not self.owned.contains(object_id):
            err = serialization.serialize(
                exc.ObjectLostError(object_id.hex(), self.address, ""), error=True)
            self.loop.send(reply_to, ("object_value", object_id, ("v", err.to_bytes())))
            return

        def ready(oid: bytes, value: tuple) -> None:
            if self.loop.in_loop_thread():
                self.loop.send(reply_to, ("object_value", oid, value))
            else:
                self.loop.call_soon(self.loop.send, reply_to, ("object_value", oid, value))

        self.owned.on_ready(object_id, ready)

    def _on_object_value(self, object_id: bytes, value: tuple) -> None:
        self._fetching.pop(object_id, None)
        self.owned.put(object_id, value)

    def _on_log(self, entries: list) -> None:
        router = self.log_router
        if router is not None:
            try:
                router(entries)
                return
            except Exception:  # noqa: BLE001 - fall back to plain printing
                logger.debug("log router failed", exc_info=True)
        for prefix, is_err, line, *_ids in entries:
            stream = sys.stderr if is_err else sys.stdout
            try:
                stream.write(f"({prefix}) {line}\n")
            except Exception:  # noqa: BLE001 - closed stream at exit
                return
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass

    def show_warning(self, text: str) -> None:
        """Tell the user what they should know about (a node's warning, a task retried after OOM)."""
        # Shown once, on stderr; logged below WARNING so logging's last-resort handler doesn't repeat it.
        logger.info(text)
        try:
            sys.stderr.write(f"juno: warning: {text}\n")
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ generators
    def generator_state(self, task_id: bytes) -> "_GeneratorState":
        with self._gen_lock:
            state = self._generators.get(task_id)
            if state is None:
                state = self._generators[task_id] = _GeneratorState()
            return state

    def next_generator_item(self, task_id: bytes, index: int, timeout: float | None) -> ObjectRef | None:
        state = self.generator_state(task_id)
        with state.cond:
            if not state.cond.wait_for(lambda: index < state.count or state.finished, timeout):
                raise exc.GetTimeoutError(f"No generator item within {timeout} s.")
            if index < state.count:
                return ObjectRef(ids.object_id(task_id, index + 1), self.address)
            return None

    def generator_item_future(self, task_id: bytes, index: int) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        state = self.generator_state(task_id)

        def check() -> bool:
            if index < state.count:
                fut.set_result(ObjectRef(ids.object_id(task_id, index + 1), self.address))
                return True
            if state.finished:
                fut.set_result(None)
                return True
            return False

        with state.cond:
            if not check():
                state.listeners.append(check)
        return fut

    def generator_finished(self, task_id: bytes, index: int) -> bool:
        state = self.generator_state(task_id)
        return state.finished and index >= state.count

    def generator_completion_ref(self, task_id: bytes) -> ObjectRef:
        """A ref that becomes ready (holding None) when the generator task ends."""
        oid = ids.object_id(task_id, 0)
        self.refs.add_owned(oid)
        ref = ObjectRef(oid, self.address)
        if self.generator_state(task_id).finished:
            self.owned.put(oid, _NONE_VALUE)
        return ref

    def release_generator(self, task_id: bytes) -> None:
        """The user dropped a generator: free items never taken, and any that still arrive."""
        with self._gen_lock:
            state = self._generators.get(task_id)
            if state is None or self.shutting_down:
                return
            state.released = True
            if state.finished:
                del self._generators[task_id]
        for i in range(state.count):
            self.refs.release_if_unreferenced(ids.object_id(task_id, i + 1))

    def generator_push(self, task_id: bytes, index: int, value: tuple) -> None:
        state = self.generator_state(task_id)
        oid = ids.object_id(task_id, index + 1)
        if state.released:
            self.take_contents(oid, value, keep=False)
            if value[0] == "s":
                self.shm.delete(oid, value[1])
            return
        self.refs.add_owned(oid)
        value = self.take_contents(oid, value)
        self.owned.put(oid, value)
        with state.cond:
            state.count = max(state.count, index + 1)
            state.cond.notify_all()
            state.listeners = [cb for cb in state.listeners if not cb()]

    def generator_finish(self, task_id: bytes) -> None:
        state = self.generator_state(task_id)
        with state.cond:
            state.finished = True
            state.cond.notify_all()
            state.listeners = [cb for cb in state.listeners if not cb()]
        oid = ids.object_id(task_id, 0)
        if self.refs.owns(oid):
            self.owned.put(oid, _NONE_VALUE)
        if state.released:
            with self._gen_lock:
                self._generators.pop(task_id, None)


# An inline value this small holds a few refs at most: counted one by one, without a batch's cost.
_FEW_REFS_BYTES = 1024
_NONE_VALUE = ("v", serialization.serialize(None).to_bytes())


class _GeneratorState:
    __slots__ = ("count", "finished", "cond", "listeners", "released")

    def __init__(self) -> None:
        self.count = 0
        self.finished = False
        self.cond = threading.Condition()
        self.listeners: list = []
        self.released = False


_DECODE_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _decode_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _DECODE_POOL
    if _DECODE_POOL is None:
        _DECODE_POOL = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="juno-decode")
    return _DECODE_POOL


def _as_raisable(obj: Any) -> BaseException:
    if isinstance(obj, exc.RayTaskError):
        return obj.as_instanceof_cause()
    if isinstance(obj, BaseException):
        return obj
    return exc.RaySystemError(f"object holds a non-exception error value: {obj!r}")
