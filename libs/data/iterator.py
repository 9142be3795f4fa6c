"""``DataIterator``: how a dataset's output is consumed (Ray's ``ray.data.DataIterator``).

A ``DataIterator`` wraps a function that streams ``RefBundle``s (a dataset's execution, or the
share of a ``streaming_split`` a consumer asks a coordinator for) and turns the blocks into
batches, rows or torch tensors. While the user works on one batch, a background thread pulls the
next bundles and fetches their blocks into this process (``juno.wait(fetch_local=True)``, then a
zero-copy ``get``), up to ``prefetch_batches`` batches ahead; it stops as soon as the loop ends,
breaks or raises. Cutting blocks into batches is ``Batcher``'s job (juno.data.batcher).
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pyarrow as pa

import juno
from juno.data.batcher import DEFAULT_BATCH_SIZE, Batcher, check_batch_args
from juno.data.block import BATCH_FORMATS, RefBundle, to_batch, to_rows

_POLL_S = 0.1  # how often a wait checks whether the consumer has gone
_JOIN_S = 5.0  # how long closing waits for the prefetch thread to leave (it exits on its own after)


@dataclass
class IterStats:
    """Where one pass over the data spent its time (``DataIterator.stats()``)."""

    batches: int = 0
    rows: int = 0
    blocks: int = 0
    blocked_s: float = 0.0  # the consumer waited for a block
    fetch_s: float = 0.0  # waiting for blocks to be ready and local, and reading them
    format_s: float = 0.0  # cutting batches and converting them to the asked format
    user_s: float = 0.0  # the user's code between batches
    total_s: float = 0.0

    def summary(self, name: str) -> str:
        def line(label, seconds):
            return f"* {label}: {seconds:.3f}s"
        return "\n".join([
            f"DataIterator{f' ({name})' if name else ''}: {self.batches} batches, {self.rows} rows, "
            f"{self.blocks} blocks",
            line("Total time overall", self.total_s),
            line("Time the user's loop was blocked waiting for data", self.blocked_s),
            line("Time in the user's code between batches", self.user_s),
            line("Time fetching blocks (juno.wait + juno.get, in the prefetch thread when prefetching)",
                 self.fetch_s),
            line("Time making and formatting batches", self.format_s),
        ])


class DataIterator:
    """Batches, rows or torch tensors from a stream of ``RefBundle``s; pickles (to actors and tasks)
    when ``bundles_fn`` and ``schema_fn`` do."""

    def __init__(self, bundles_fn: Callable[[], Iterator[RefBundle]], schema_fn: Callable[[], Any] | None = None,
                 name: str = ""):
        if not callable(bundles_fn):
            raise TypeError(f"DataIterator needs a function that returns an iterator of RefBundles, got {bundles_fn!r}")
        self._bundles_fn = bundles_fn
        self._schema_fn = schema_fn
        self._name = name
        self._stats = IterStats()

    def __getstate__(self):
        return {"_bundles_fn": self._bundles_fn, "_schema_fn": self._schema_fn, "_name": self._name}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._stats = IterStats()

    def __repr__(self) -> str:
        return f"DataIterator({self._name or self._bundles_fn!r})"

    # ------------------------------------------------------------------ the public API
    def iter_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = DEFAULT_BATCH_SIZE,
                     batch_format: str | None = "default", drop_last: bool = False,
                     local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """Batches of ``batch_size`` rows (``None``: one per block) in ``batch_format``: "default" or
        "numpy" (dict of column -> ndarray), "pandas" or "pyarrow"."""
        check_batch_args(batch_size, drop_last, local_shuffle_buffer_size, local_shuffle_seed)
        _check_prefetch(prefetch_batches)
        if batch_format not in BATCH_FORMATS and batch_format is not None:
            raise ValueError(f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))}, "
                             f"got {batch_format!r}")
        batcher = Batcher(batch_size, drop_last=drop_last, local_shuffle_buffer_size=local_shuffle_buffer_size,
                          local_shuffle_seed=local_shuffle_seed)
        rows_ahead = prefetch_batches * (batch_size or 1)
        return self._iterate(batcher, lambda table: to_batch(table, batch_format), prefetch_batches, rows_ahead)

    def iter_rows(self, *, prefetch_batches: int = 1) -> Iterator[dict]:
        """Rows as dicts (tensor columns as ndarrays), streamed block by block."""
        _check_prefetch(prefetch_batches)
        for table in self._iterate(Batcher(None), lambda t: t, prefetch_batches, 0, count_batches=False):
            yield from to_rows(table)

    def iter_torch_batches(self, *, prefetch_batches: int = 1, batch_size: int | None = DEFAULT_BATCH_SIZE,
                           dtypes=None, device: Any = "auto", collate_fn: Callable | None = None,
                           drop_last: bool = False, local_shuffle_buffer_size: int | None = None,
                           local_shuffle_seed: int | None = None) -> Iterator[Any]:
        """Batches as dicts of torch tensors (tensor columns keep their shape). ``dtypes`` is one
        torch dtype or a dict column -> dtype; ``device`` "auto" is this worker's GPU when it has one;
        ``collate_fn`` turns each numpy batch into whatever the training loop wants instead."""
        from juno.data.torch_batches import TorchConverter

        converter = TorchConverter(dtypes, device, collate_fn)
        for batch in self.iter_batches(prefetch_batches=prefetch_batches, batch_size=batch_size,
                                       batch_format="numpy", drop_last=drop_last,
                                       local_shuffle_buffer_size=local_shuffle_buffer_size,
                                       local_shuffle_seed=local_shuffle_seed):
            yield converter(batch)

    def schema(self):
        """The schema of the data (None when this iterator was made without a way to know it)."""
        return self._schema_fn() if self._schema_fn is not None else None

    def stats(self) -> str:
        """Where the last pass over the data spent its time."""
        return self._stats.summary(self._name)

    # ------------------------------------------------------------------ the shell around Batcher
    def _iterate(self, batcher: Batcher, convert: Callable[[pa.Table], Any], prefetch_batches: int,
                 rows_ahead: int, count_batches: bool = True) -> Iterator[Any]:
        stats = self._stats = IterStats()
        started = time.perf_counter()
        source = (_PrefetchThread(self._bundles_fn, rows_ahead, prefetch_batches, stats, self._name)
                  if prefetch_batches > 0 else None)
        tables = source if source is not None else _fetch_in_order(self._bundles_fn, stats)
        try:
            while True:
                t0 = time.perf_counter()
                table = next(tables, None)
                t1 = time.perf_counter()
                stats.blocked_s += t1 - t0
                ready = list(batcher.add(table)) if table is not None else list(batcher.finish())
                stats.format_s += time.perf_counter() - t1
                for out in ready:
                    t2 = time.perf_counter()
                    value = convert(out)
                    stats.format_s += time.perf_counter() - t2
                    stats.batches += count_batches
                    stats.rows += out.num_rows
                    t3 = time.perf_counter()
                    yield value
                    stats.user_s += time.perf_counter() - t3
                if table is None:
                    return
        finally:
            if source is not None:
                source.close()
            stats.total_s = time.perf_counter() - started


def _check_prefetch(prefetch_batches) -> None:
    if isinstance(prefetch_batches, bool) or not isinstance(prefetch_batches, int) or prefetch_batches < 0:
        raise ValueError(f"prefetch_batches must be an int >= 0 (0: no prefetching), got {prefetch_batches!r}")


def _fetch(ref, stop: threading.Event | None = None) -> pa.Table | None:
    """The block behind ``ref``, once it is ready and in this node's store; None if ``stop`` is set first."""
    while True:
        ready, _ = juno.wait([ref], num_returns=1, timeout=_POLL_S, fetch_local=True)
        if ready:
            return juno.get(ref)
        if stop is not None and stop.is_set():
            return None


def _fetch_in_order(bundles_fn, stats: IterStats) -> Iterator[pa.Table]:
    """No prefetching: fetch each block when the consumer asks for it."""
    bundles = bundles_fn()
    try:
        for bundle in bundles:
            for ref, meta in bundle.blocks:
                if meta.num_rows == 0:
                    continue
                t0 = time.perf_counter()
                table = _fetch(ref)
                stats.fetch_s += time.perf_counter() - t0
                stats.blocks += 1
                yield table
    finally:
        close = getattr(bundles, "close", None)
        if close is not None:
            close()


_END = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class _PrefetchThread:
    """Runs the bundle stream in a background thread and fetches blocks ahead of the consumer:
    at most ``rows_ahead`` rows (or ``blocks_ahead`` blocks when that is larger), always at least one."""

    def __init__(self, bundles_fn, rows_ahead: int, blocks_ahead: int, stats: IterStats, name: str):
        self._bundles_fn = bundles_fn
        self._rows_ahead, self._blocks_ahead = rows_ahead, blocks_ahead
        self._stats = stats
        self._queue: collections.deque = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"juno-data-prefetch{f'-{name}' if name else ''}",
                                        daemon=True)
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self) -> pa.Table:
        with self._cond:
            while not self._queue:
                if not self._thread.is_alive() and not self._queue:
                    raise RuntimeError("the data prefetch thread ended without a result (see the log above)")
                self._cond.wait(_POLL_S)
            item = self._queue.popleft()
            if isinstance(item, pa.Table):
                self._queued_rows -= item.num_rows
            self._cond.notify_all()
        if item is _END:
            self._queue.append(_END)  # the end stays the end if asked again
            raise StopIteration
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        """Stop fetching; wait a little for the thread to leave (it leaves by itself after a block
        it is waiting on arrives, when the stream's own wait does not return sooner)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)
        self._queue.clear()

    def _has_room(self) -> bool:
        return (not self._queue or self._queued_rows < self._rows_ahead
                or len(self._queue) < self._blocks_ahead)

    def _push(self, item) -> None:
        with self._cond:
            self._queue.append(item)
            if isinstance(item, pa.Table):
                self._queued_rows += item.num_rows
            self._cond.notify_all()

    def _run(self) -> None:
        stop, bundles = self._stop, None
        try:
            bundles = self._bundles_fn()
            for bundle in bundles:
                for ref, meta in bundle.blocks:
                    if meta.num_rows == 0:
                        continue
                    with self._cond:
                        while not self._has_room() and not stop.is_set():
                            self._cond.wait(_POLL_S)
                    if stop.is_set():
                        return
                    t0 = time.perf_counter()
                    table = _fetch(ref, stop)
                    self._stats.fetch_s += time.perf_counter() - t0
                    if table is None:
                        return
                    self._stats.blocks += 1
                    self._push(table)
                if stop.is_set():
                    return
            self._push(_END)
        except BaseException as e:  # the consumer re-raises it, with its remote traceback
            self._push(_Failed(e))
        finally:
            close = getattr(bundles, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:  # closing a stream must not hide the result the consumer gets
                    self._push(_Failed(e))


def dataset_iterator(ds) -> DataIterator:
    """``ds.iterator()``: each pass over it runs ``ds``'s execution anew (Ray's ``Dataset.iterator``)."""
    return DataIterator(ds.iter_internal_ref_bundles, schema_fn=ds.schema, name=ds._op.name)
