"""``@serve.batch``: callers pass one item each and get one result; the function sees lists.

Works in any asyncio loop, on plain functions and on methods (one queue per instance and loop),
for async and sync functions (sync ones run in a thread, off the loop) and for async and sync
generators (each yield is a list with one item per caller; ``StopIteration`` in a caller's
place ends that caller's stream). A batch is sent when ``max_batch_size`` items wait or
``batch_wait_timeout_s`` has passed since its first item arrived, with at most
``max_concurrent_batches`` running at once. Ray Serve's names, defaults and semantics.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections import deque
from typing import Any, Callable

_QUEUE_ATTR = "_serve_batch_queues"  # on an instance: {function's qualname: _BatchQueue}
_END = object()  # ends a caller's stream


def _check_max_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {value!r}.")
    return value


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"batch_wait_timeout_s must be a number >= 0 (seconds), got {value!r}.")
    return float(value)


def _check_max_concurrent(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_concurrent_batches must be an integer >= 1, got {value!r}.")
    return value


class _Settings:
    """One decorated function's settings, read by its queues at each decision (so the setters
    take effect at once, e.g. from ``reconfigure``)."""

    def __init__(self, max_batch_size: int, batch_wait_timeout_s: float, max_concurrent_batches: int):
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.max_concurrent_batches = max_concurrent_batches


class _Item:
    __slots__ = ("args", "kwargs", "shape", "arrived", "out")

    def __init__(self, args: tuple, kwargs: dict, out: Any, arrived: float):
        self.args = args
        self.kwargs = kwargs
        self.shape = (len(args), tuple(sorted(kwargs)))
        self.arrived = arrived
        self.out = out  # an asyncio.Future (unary) or an asyncio.Queue (generator)

    def gone(self) -> bool:
        """Its caller stopped waiting (cancelled): no need to compute it."""
        return isinstance(self.out, asyncio.Future) and self.out.done()


class _BatchQueue:
    """The items waiting for one function (and instance) in one loop, and the batches running."""

    def __init__(self, call: Callable, settings: _Settings, generator: bool, loop: asyncio.AbstractEventLoop):
        self._call = call  # takes the batched args (lists), returns a list, or an iterator of lists
        self._settings = settings
        self._generator = generator
        self.loop = loop
        self._items: deque[_Item] = deque()
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None

    def put(self, item: _Item) -> None:
        self._items.append(item)
        self._flush()

    def _flush(self) -> None:
        """Start every batch that is due (full, or its first item waited long enough), as far as
        max_concurrent_batches allows; else make sure a timer will look again."""
        settings = self._settings
        items = self._items
        while items and items[0].gone():
            items.popleft()
        while items and self._running < settings.max_concurrent_batches:
            wait_left = items[0].arrived + settings.batch_wait_timeout_s - time.monotonic()
            if len(items) < settings.max_batch_size and wait_left > 0:
                if self._timer is None:
                    self._timer = self.loop.call_later(wait_left, self._timer_fired)
                return
            batch = self._take(settings.max_batch_size)
            if batch:
                self._running += 1
                self.loop.create_task(self._run(batch))

    def _timer_fired(self) -> None:
        self._timer = None
        self._flush()

    def _take(self, size: int) -> list[_Item]:
        """Up to ``size`` live items of the first one's shape (same arguments given); the others keep
        their place for the next batch."""
        shape = self._items[0].shape
        batch, skipped = [], []
        while self._items and len(batch) < size:
            item = self._items.popleft()
            if item.gone():
                continue
            (batch if item.shape == shape else skipped).append(item)
        self._items.extendleft(reversed(skipped))
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        try:
            n_args, kw_names = batch[0].shape
            args = [[item.args[i] for item in batch] for i in range(n_args)]
            kwargs = {name: [item.kwargs[name] for item in batch] for name in kw_names}
            if self._generator:
                await self._run_generator(batch, args, kwargs)
            else:
                results = await self._call(*args, **kwargs)
                _check_length(results, len(batch))
                for item, result in zip(batch, results):
                    if not item.out.done():
                        item.out.set_result(result)
        except BaseException as err:  # noqa: BLE001 - every caller of this batch gets it, the next batch runs
            for item in batch:
                _fail(item, err)
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._running -= 1
            self._flush()

    async def _run_generator(self, batch: list[_Item], args: list, kwargs: dict) -> None:
        open_items = list(batch)
        async for results in self._call(*args, **kwargs):
            _check_length(results, len(batch))
            for item, result in zip(batch, results):
                if item in open_items:
                    if result is StopIteration or isinstance(result, StopIteration):
                        open_items.remove(item)
                        item.out.put_nowait(_END)
                    else:
                        item.out.put_nowait(result)
        for item in open_items:
            item.out.put_nowait(_END)


def _check_length(results: Any, expected: int) -> None:
    try:
        got = len(results)
    except TypeError:
        raise TypeError(f"A @serve.batch function must return (or yield) a list with one result per input; "
                        f"it gave a {type(results).__name__} for a batch of {expected}.") from None
    if got != expected:
        raise ValueError(f"A @serve.batch function must return (or yield) one result per input: the batch had "
                         f"{expected} inputs but the function gave {got} results.")


def _fail(item: _Item, err: BaseException) -> None:
    if isinstance(item.out, asyncio.Future):
        if not item.out.done():
            item.out.set_exception(err)
    else:
        item.out.put_nowait(err)


def _async_call(fn: Callable, kind: str) -> Callable:
    """The batched function as the queue calls it: a coroutine, or an async iterator of lists;
    sync code runs in the loop's default executor so the loop stays free."""
    if kind == "async":
        return fn
    if kind == "async_gen":
        return fn
    if kind == "sync":
        async def call_sync(*args, **kwargs):
            return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))
        return call_sync

    async def call_sync_gen(*args, **kwargs):
        loop = asyncio.get_running_loop()
        iterator = fn(*args, **kwargs)
        done = object()
        while True:
            value = await loop.run_in_executor(None, next, iterator, done)
            if value is done:
                return
            yield value
    return call_sync_gen


def _kind(fn: Callable) -> str:
    if inspect.isasyncgenfunction(fn):
        return "async_gen"
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "sync_gen"
    return "sync"


def _make_batched(fn: Callable, settings: _Settings) -> Callable:
    kind = _kind(fn)
    generator = kind.endswith("gen")
    key = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    plain_queues: dict[asyncio.AbstractEventLoop, _BatchQueue] = {}

    def queue_for(args: tuple) -> tuple[_BatchQueue, tuple]:
        loop = asyncio.get_running_loop()
        owner = None
        if args and _is_self(args[0], fn.__name__, wrapper):
            owner, args = args[0], args[1:]
        if owner is None:
            queues = plain_queues
            call = _async_call(fn, kind)
        else:
            queues = owner.__dict__.setdefault(_QUEUE_ATTR, {}).setdefault(key, {})
            call = _async_call(functools.partial(fn, owner), kind)
        queue = queues.get(loop)
        if queue is None:
            for old in [k for k in queues if k.is_closed()]:
                del queues[old]
            queue = queues[loop] = _BatchQueue(call, settings, generator, loop)
        return queue, args

    if generator:
        async def wrapper(*args, **kwargs):
            queue, args = queue_for(args)
            out: asyncio.Queue = asyncio.Queue()
            queue.put(_Item(args, kwargs, out, time.monotonic()))
            while True:
                value = await out.get()
                if value is _END:
                    return
                if isinstance(value, BaseException):
                    raise value
                yield value
    else:
        async def wrapper(*args, **kwargs):
            queue, args = queue_for(args)
            out = queue.loop.create_future()
            queue.put(_Item(args, kwargs, out, time.monotonic()))
            return await out

    functools.update_wrapper(wrapper, fn)
    wrapper._serve_batch_settings = settings

    def set_max_batch_size(value: int) -> None:
        """Change the batch size at run time (e.g. in ``reconfigure``)."""
        settings.max_batch_size = _check_max_batch_size(value)

    def set_batch_wait_timeout_s(value: float) -> None:
        """Change how long a batch waits to fill at run time."""
        settings.batch_wait_timeout_s = _check_timeout(value)

    wrapper.set_max_batch_size = set_max_batch_size
    wrapper.set_batch_wait_timeout_s = set_batch_wait_timeout_s
    wrapper._get_curr_max_batch_size = lambda: settings.max_batch_size
    wrapper._get_curr_batch_wait_timeout_s = lambda: settings.batch_wait_timeout_s
    return wrapper


def _is_self(candidate: Any, name: str, wrapper: Callable) -> bool:
    """Whether a call's first argument is the instance the wrapper is a method of."""
    try:
        bound = getattr(candidate, name, None)
    except Exception:  # noqa: BLE001 - an odd object's __getattr__: not our instance
        return False
    return getattr(bound, "__func__", None) is wrapper


def batch(_func: Callable | None = None, max_batch_size: int = 10, batch_wait_timeout_s: float = 0.01,
          max_concurrent_batches: int = 1) -> Callable:
    """Batch calls to a function or method: bare (``@serve.batch``) or with arguments.

    The decorated function takes lists (one per argument) and returns a list of the same length;
    each caller awaits its own result (``await self.f(x)``), or iterates its own stream for a
    generator (``async for y in self.f(x)``)."""
    settings = _Settings(_check_max_batch_size(max_batch_size), _check_timeout(batch_wait_timeout_s),
                         _check_max_concurrent(max_concurrent_batches))
    if _func is not None:
        if not callable(_func):
            raise TypeError(f"@serve.batch decorates a function or method; got {_func!r}. Pass its settings by "
                            f"name: @serve.batch(max_batch_size=..., batch_wait_timeout_s=...).")
        return _make_batched(_func, settings)
    return lambda fn: _make_batched(fn, settings)


__all__ = ["batch"]
