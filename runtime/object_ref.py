"""ObjectRef: a future naming an immutable object and the process that owns it."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from juno.owner import serialization


_cw = None  # this process's core worker (core_worker.set_global_worker keeps it): read per ref


def set_worker(worker) -> None:
    global _cw
    _cw = worker


# ObjectRef._counted for a borrowed ref unpickled here: counted, and its drop is queued for the IO
# thread (ReferenceCounter.remove_local_later), so a dropped list of refs is released in one pass.
_LATER = 2


class RefBatch(threading.local):
    """The refs this thread unpickles between ``open`` and ``close``, counted together at
    ``close``: one lock and one pass for a list of 10,000 refs (ReferenceCounter.add_borrowed_refs).
    The refs wait in the batch, so none can be dropped before it is counted. The lists come with
    the first ref: a value with none costs the opening and closing only."""

    pending: list = None  # None: no batch; (): open, no ref yet; then the refs

    def open(self) -> list | None:
        """Returns what to pass to ``close``."""
        outer = self.pending
        self.pending = ()
        return outer

    def close(self, outer: list | None, counter) -> None:
        pending = self.pending
        self.pending = outer
        if pending:
            counter.add_borrowed_refs(pending)


batch = RefBatch()


class ObjectRef:
    """A reference to a (possibly future) object; counted by its owner while alive."""

    __slots__ = ("_id", "_owner", "_counted", "__weakref__")

    def __init__(self, object_id: bytes, owner: str, *, _count: bool = True):
        self._id = object_id
        self._owner = owner
        self._counted = False
        if _count:
            cw = _cw
            if cw is not None:
                cw.refs.add_local(object_id, owner)
                self._counted = True

    # identity
    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    @property
    def owner_address(self) -> str:
        return self._owner

    def task_id(self) -> bytes:
        return self._id[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def _repr_html_(self) -> str:
        from juno.widgets.reprs import object_ref_html
        return object_ref_html(self)

    def __del__(self):
        counted = self._counted
        if counted:
            try:
                cw = _cw
                if cw is not None:
                    if counted is _LATER:
                        cw.refs.remove_local_later(self._id)
                    else:
                        cw.refs.remove_local(self._id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __reduce__(self):
        if serialization.before_refs_leave is not None:
            serialization.before_refs_leave()
        refs = serialization.recording_refs()
        if refs is not None:
            refs.append(self)
        return _rebuild_ref, (self._id, self._owner)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # futures
    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future that completes with the object's value."""
        return _cw.value_future(self)

    def _on_completed(self, py_callback) -> None:
        """Ray's completion callback: ``py_callback(result)`` once the object is ready, ``result``
        being its value or the exception ``get`` would raise; it runs on a Juno thread, so keep
        it quick. (``juno.util.notebook.on_completed`` says only whether it failed, unread.)"""
        def done(fut: concurrent.futures.Future) -> None:
            error = fut.exception()
            py_callback(error if error is not None else fut.result())

        self.future().add_done_callback(done)

    def __await__(self):
        return asyncio.wrap_future(self.future()).__await__()

    def as_future(self) -> "asyncio.Future":
        return asyncio.wrap_future(self.future())


def _rebuild_ref(object_id: bytes, owner: str) -> ObjectRef:
    """Unpickling a ref makes this process a borrower (a ref inside a task result was borrowed
    already, when the result arrived: CoreWorker.take_contents). Once per ref of a get, so it
    counts and borrows in one call (ObjectRef.__init__'s work)."""
    ref = _new_ref(ObjectRef)
    ref._id = object_id
    ref._owner = owner
    cw = _cw
    if cw is None:
        ref._counted = False
        return ref
    ref._counted = True if owner == cw.address else _LATER
    pending = batch.pending
    if pending is None:
        cw.refs.add_borrowed_refs((ref,))
        return ref
    if not pending:
        pending = batch.pending = []
    pending.append(ref)
    return ref


_new_ref = object.__new__


class ObjectRefGenerator:
    """The refs a streaming generator task yields, in order, as they are produced.

    Iterating blocks until the next item exists; ``StopIteration`` when the task
    finished; if the task raised, the ref after the last item holds the error.
    """

    def __init__(self, task_id: bytes, owner: str, worker):
        self._task_id = task_id
        self._owner = owner
        self._worker = worker
        self._next_index = 0

    def __iter__(self):
        return self

    def __next__(self) -> ObjectRef:
        ref = self._worker.next_generator_item(self._task_id, self._next_index, timeout=None)
        if ref is None:
            raise StopIteration
        self._next_index += 1
        return ref

    def __aiter__(self):
        return self

    async def __anext__(self) -> ObjectRef:
        fut = self._worker.generator_item_future(self._task_id, self._next_index)
        ref = await asyncio.wrap_future(fut)
        if ref is None:
            raise StopAsyncIteration
        self._next_index += 1
        return ref

    def _next_sync(self, timeout_s: float | None = None) -> ObjectRef:
        """Like next() but with a timeout (Ray's name); raises GetTimeoutError."""
        ref = self._worker.next_generator_item(self._task_id, self._next_index, timeout=timeout_s)
        if ref is None:
            raise StopIteration
        self._next_index += 1
        return ref

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator task has finished."""
        return self._worker.generator_completion_ref(self._task_id)

    def is_finished(self) -> bool:
        return self._worker.generator_finished(self._task_id, self._next_index)

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id.hex()})"

    def __del__(self):
        try:
            self._worker.release_generator(self._task_id)
        except Exception:  # noqa: BLE001
            pass

    def __reduce__(self):
        raise TypeError(
            "An ObjectRefGenerator can't be passed to other tasks or actors; "
            "iterate it here and pass the ObjectRefs it yields instead."
        )


# Ray's older name for the streaming generator handle.
StreamingObjectRefGenerator = ObjectRefGenerator
