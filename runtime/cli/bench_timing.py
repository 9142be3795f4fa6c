"""How a microbenchmark row is timed and printed, shared by Juno's side and Ray's side.

This module imports neither juno nor ray: ``juno microbenchmark`` uses it for its own
rows, and ``runtime/cli/microbenchmark_ray.py`` loads it by file path inside Ray's
virtual environment, so both columns of a comparison are timed by the same code.
"""
from __future__ import annotations

import os
import re
import statistics
import time

# Printed before a row starts, so a supervisor can give each row its own timeout.
ROW_START = "row-start:"
# Ray's result line: "<name> per second <mean> +- <std>".
RESULT_LINE = re.compile(r"^(?P<name>.+?) per second (?P<mean>[-+0-9.eE]+) \+- (?P<std>[-+0-9.eE]+)\s*$")


class Bench:
    """Ray's ``timeit``: warm up, then time several trials of ``fn``.

    One trial counts calls of ``fn`` for ``trial_s`` seconds (checking the clock
    every ``step`` calls) and records ``multiplier * calls / elapsed``.  The row
    reports the mean and (population) standard deviation over the trials.
    ``rows``: the names to run (None: every row).
    """

    def __init__(self, duration: float, trials: int, rows: set[str] | None = None, settle_s: float = 0.0):
        self.trials = max(1, trials)
        self.trial_s = duration / self.trials
        self.warmup_s = min(1.0, self.trial_s)
        self.rows = rows
        self.settle_s = settle_s
        self.results: dict[str, tuple[float, float]] = {}

    def wants(self, name: str) -> bool:
        return self.rows is None or name in self.rows

    def start(self, name: str) -> None:
        """Announce a row (for the supervisor's per-row timeout), after the settle pause."""
        print(ROW_START, name, flush=True)
        if self.settle_s:
            time.sleep(self.settle_s)

    def timeit(self, name: str, fn, multiplier: float = 1) -> None:
        if not self.wants(name):
            return
        self.start(name)
        start, count = time.perf_counter(), 0
        while True:  # warm-up: at least one call
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= self.warmup_s:
                break
        step = max(1, int(count / elapsed * self.trial_s / 20))
        stats = []
        for _ in range(self.trials):
            start, count = time.perf_counter(), 0
            while time.perf_counter() - start < self.trial_s:
                for _ in range(step):
                    fn()
                count += step
            stats.append(multiplier * count / (time.perf_counter() - start))
        self.record(name, stats)

    def record(self, name: str, samples: list[float]) -> None:
        """A row timed by its own loop (one sample per trial)."""
        mean = statistics.fmean(samples)
        std = statistics.pstdev(samples) if len(samples) > 1 else 0.0
        print(name, "per second", round(mean, 2), "+-", round(std, 2), flush=True)
        self.results[name] = (mean, std)


def parse_result(line: str) -> tuple[str, float, float] | None:
    """``(name, mean, std)`` from a ``<name> per second <mean> +- <std>`` line, else None."""
    m = RESULT_LINE.match(line.strip())
    if m is None:
        return None
    try:
        return m["name"], float(m["mean"]), float(m["std"])
    except ValueError:
        return None


def memcpy_gbps(nbytes: int, repeats: int = 5) -> tuple[float, float]:
    """A plain numpy copy of ``nbytes`` on this machine, GB/s: (into fresh pages, into mapped pages)."""
    import numpy as np

    src = np.ones(nbytes, dtype=np.uint8)
    cold, warm = [], []
    for _ in range(repeats):
        dst = np.empty_like(src)
        for rates in (cold, warm):  # fresh pages (faulted in by the copy), then the same pages
            start = time.perf_counter()
            np.copyto(dst, src)
            rates.append(nbytes / (time.perf_counter() - start) / 1e9)
        del dst
    return statistics.median(cold), statistics.median(warm)



# --- rows that both sides run with the same code ------------------------------
# Ray's microbenchmark has no row that moves a value through the shared-memory store
# and back, or hands a task a ref to one; these are timed the same way on both sides,
# given the side's put, get and a remote function returning its argument's nbytes.

PUT_GET_1MIB = "single client put and get calls (1 MiB array)"
GET_100MIB = "single client get gigabytes (100 MiB array, zero-copy)"
TASK_1MIB_ARG = "single client tasks async with a 1 MiB ref argument"
STORE_ROWS = [PUT_GET_1MIB, GET_100MIB, TASK_1MIB_ARG]


TRANSFER_CHUNKED = "cross-node object transfer (GB/s, chunked over sockets)"


def transfer_bytes() -> int:
    """1 GiB per object where the machine has room for it three times over, else 256 MiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return (1 << 30) if memory >= 16 << 30 else (256 << 20)


def bench_transfer(b: Bench, name: str, put, get, reader, size: int) -> None:
    """A numpy array put on the driver's node, read by ``reader`` (an actor on the other node whose
    ``nbytes(arr)`` returns ``arr.nbytes``): each trial a new object, timed from the call to its
    answer (the pull is most of it)."""
    import numpy as np

    b.start(name)
    arr = np.ones(size // 8, dtype=np.int64)
    get(reader.nbytes.remote(put(arr)), timeout=300)  # warm-up: worker, store pages
    rates = []
    for _ in range(max(b.trials, 3)):
        ref = put(arr)
        start = time.perf_counter()
        assert get(reader.nbytes.remote(ref), timeout=300) == arr.nbytes
        rates.append(size / (time.perf_counter() - start) / 1e9)
        del ref
    b.record(name, rates)
    print(f"  ({size >> 20} MiB per object)", flush=True)


def bench_store_rows(b: Bench, put, get, nbytes_task) -> None:
    """The three store rows: ``put``/``get`` are ``juno.put``/``juno.get`` or Ray's, ``nbytes_task``
    a remote function ``f(array) -> array.nbytes``."""
    import numpy as np

    mib = np.ones(1 << 20, dtype=np.uint8)
    b.timeit(PUT_GET_1MIB, lambda: get(put(mib)))
    if b.wants(GET_100MIB):
        big = put(np.ones(100 << 20, dtype=np.uint8))
        b.timeit(GET_100MIB, lambda: get(big), (100 << 20) / 1e9)
        del big
    if b.wants(TASK_1MIB_ARG):
        arg = put(mib)
        b.timeit(TASK_1MIB_ARG, lambda: get([nbytes_task.remote(arg) for _ in range(100)]), 100)
