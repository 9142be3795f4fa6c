"""ObjectRef: a future naming an immutable object and the process that owns it."""
from __future__ import annotations

import asyncio
import concurrent.futures

from juno import serialization


def _worker():
    from juno.core_worker import global_worker

    return global_worker()


class ObjectRef:
    """A reference to a (possibly future) object; counted by its owner while alive."""

    __slots__ = ("_id", "_owner", "_counted", "__weakref__")

    def __init__(self, object_id: bytes, owner: str, *, _count: bool = True):
        self._id = object_id
        self._owner = owner
        self._counted = False
        if _count:
            cw = _worker()
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
        if self._counted:
            try:
                cw = _worker()
                if cw is not None:
                    cw.refs.remove_local(self._id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __reduce__(self):
        if serialization.before_refs_leave is not None:
            serialization.before_refs_leave()
        refs = serialization.recording_refs()
        if refs is not None:
            refs.append(self)
        if serialization.in_transit():
            return _rebuild_ref, (self._id, self._owner, 1)
        return _rebuild_ref, (self._id, self._owner)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # futures
    def future(self) -> concurrent.futures.Future:
        """A concurrent.futures.Future that completes with the object's value."""
        return _worker().value_future(self)

    def __await__(self):
        return asyncio.wrap_future(self.future()).__await__()

    def as_future(self) -> "asyncio.Future":
        return asyncio.wrap_future(self.future())


def _rebuild_ref(object_id: bytes, owner: str, claims: int = 0) -> ObjectRef:
    """Unpickling a ref makes this process a borrower (and redeems its in-transit hold)."""
    cw = _worker()
    ref = ObjectRef(object_id, owner)
    if cw is not None:
        cw.refs.note_borrowed(object_id, owner, claims)
    return ref


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
