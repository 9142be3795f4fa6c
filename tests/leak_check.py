"""The teardown leak check of the cluster fixtures, scoped to what this test run started.

Other Juno clusters may run on the same machine while the suite runs (a notebook, a second
checkout, a benchmark): the check must never blame the test for them. So it counts only

* processes that descend from pytest or carry this run's marker ($PYTEST_JUNO_RUN_ID, which
  every process the run starts inherits), and
* /dev/shm/juno-{session}-{node} stores of sessions this run created. The run gets a temp
  folder of its own ($TMPDIR, set by :func:`isolate_run` before juno is imported), so its
  clusters' session folders are made in a root no neighbour uses; :class:`SessionLog` records
  every session folder made there (inotify: one that lives a moment still counts), so a store
  is attributed to this run even after its session folder is gone.

Nothing here imports juno, so tests/unit (no cluster) imports it even while the runtime is broken.
"""
from __future__ import annotations

import ctypes
import errno
import glob
import os
import shutil
import struct
import sys
import tempfile
import uuid

import psutil
import pytest

from helpers import process_alive, wait_for_condition

SHM_ROOT = "/dev/shm"
# How long a test's processes and stores get to go after its shutdown. A run that tests the check
# itself (tests/integration/test_leak_check.py) shortens it: its leaks are on purpose.
LEAK_WAIT_S = float(os.environ.get("PYTEST_JUNO_LEAK_WAIT_S", 10))
# Every process started by this pytest run inherits this marker (unless the runtime replaces its
# environment), which lets the leak check find processes re-parented away from pytest when their
# parent died. Not JUNO_*: that prefix is runtime config.
RUN_MARKER = "PYTEST_JUNO_RUN_ID"
# What a user may have exported for their own cluster; a test run must not connect to it
# (juno.init() honours $JUNO_ADDRESS), adopt its token, or read and replace its cluster file.
NEIGHBOUR_ENV = ("JUNO_ADDRESS", "RAY_ADDRESS", "JUNO_CLUSTER_FILE", "JUNO_CLUSTER_TOKEN")
RUN_TMPDIR = "PYTEST_JUNO_RUN_TMPDIR"  # this run's temp folder (also its $TMPDIR)
# The system temp folder this run was started with (tests that start an "unrelated" cluster use it).
SYSTEM_TMPDIR = tempfile.gettempdir()
RUN_OWNER_FILE = "pytest.owner"  # in the run's folder: the pid and start time of the pytest that made it


def isolate_run() -> str:
    """Give this pytest run (and every process it starts) a temp folder of its own and drop the
    neighbour's address settings; returns the folder that will be juno's TEMP_ROOT. Call it once,
    before juno is imported (TEMP_ROOT is fixed at import)."""
    if "juno" in sys.modules:
        raise RuntimeError("leak_check.isolate_run() must run before juno is imported")
    os.environ.setdefault(RUN_MARKER, uuid.uuid4().hex)
    for name in NEIGHBOUR_ENV:
        os.environ.pop(name, None)
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", SYSTEM_TMPDIR)  # pytest's tmp_path stays where it was
    remove_stale_run_tmpdirs()
    run_tmp = tempfile.mkdtemp(prefix="juno-run-", dir=SYSTEM_TMPDIR)  # short: ipc socket paths live here
    with open(os.path.join(run_tmp, RUN_OWNER_FILE), "w") as f:
        f.write(f"{os.getpid()} {psutil.Process().create_time()}\n")
    os.environ["TMPDIR"] = os.environ[RUN_TMPDIR] = run_tmp
    tempfile.tempdir = None  # gettempdir() reads $TMPDIR again
    return os.path.join(run_tmp, "juno-clusters")


def _run_owner_alive(run_tmp: str) -> bool:
    """Whether the pytest that made ``run_tmp`` still runs (its pid, with the same start time)."""
    try:
        with open(os.path.join(run_tmp, RUN_OWNER_FILE)) as f:
            pid, started = f.read().split()
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 1.0
    except FileNotFoundError:
        return True  # made a moment ago, its owner file not written yet: not ours to judge
    except (OSError, ValueError, psutil.Error):
        return False


def remove_stale_run_tmpdirs(root: str = SYSTEM_TMPDIR) -> None:
    """Remove the temp folders of earlier runs that were killed before their own clean-up (a CI
    timeout, a ^C at the wrong moment); a folder whose run still goes on is left alone."""
    for path in glob.glob(os.path.join(root, "juno-run-*")):
        if os.path.isdir(path) and not _run_owner_alive(path):
            shutil.rmtree(path, ignore_errors=True)


def remove_run_tmpdir() -> None:
    """At the end of the run: remove its temp folder (its clusters are gone by then)."""
    path = os.environ.get(RUN_TMPDIR)
    if path and os.path.basename(path).startswith("juno-run-"):
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------
# The sessions this run created
# --------------------------------------------------------------------------------

_IN_CREATE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x100, 0x80, 0x4000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class SessionLog:
    """Names of the session folders ever made in ``root`` (this run's juno TEMP_ROOT).

    A folder can be made and removed between two looks (a cluster started and stopped inside one
    test), so besides listing ``root`` it reads inotify's record of what was created there;
    without inotify (not Linux) listings alone, taken at every :meth:`names` call."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.seen: set[str] = set()
        os.makedirs(root, exist_ok=True)
        self._fd = self._watch(root)

    @staticmethod
    def _watch(root: str) -> int | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(root), _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return None
        return fd

    def _drain(self) -> None:
        while self._fd is not None:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            pos = 0
            while pos < len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                pos += _EVENT.size
                name = data[pos:pos + length].split(b"\0", 1)[0]
                pos += length
                if mask & _IN_Q_OVERFLOW:
                    print("leak_check: inotify queue overflowed; sessions are attributed by listing only",
                          file=sys.stderr)
                elif name:
                    self.seen.add(os.fsdecode(name))

    def names(self) -> set[str]:
        self._drain()
        try:
            self.seen.update(os.listdir(self.root))
        except OSError:
            pass
        return self.seen


_session_log: SessionLog | None = None


def start_session_log(root: str) -> None:
    global _session_log
    _session_log = SessionLog(root)


def run_sessions() -> set[str]:
    """The sessions this run created so far (empty before :func:`start_session_log`)."""
    return _session_log.names() if _session_log is not None else set()


def shm_session(path: str) -> str:
    """The session a store folder /dev/shm/juno-{session}-{node} belongs to."""
    return os.path.basename(path)[len("juno-"):].rsplit("-", 1)[0]


def run_shm_entries() -> set[str]:
    """/dev/shm/juno-* entries of sessions this run created."""
    ours = run_sessions()
    return {p for p in glob.glob(os.path.join(SHM_ROOT, "juno-*")) if shm_session(p) in ours}


# --------------------------------------------------------------------------------
# The processes this run started
# --------------------------------------------------------------------------------

def _key(proc: psutil.Process):
    try:
        return (proc.pid, proc.create_time())
    except psutil.Error:
        return None


def _is_juno_process(proc: psutil.Process) -> bool:
    try:
        return "juno" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} [{proc.status()}]: {' '.join(proc.cmdline())}"
    except psutil.Error:
        return f"pid {proc.pid}: <gone>"


def run_juno_processes() -> dict:
    """juno processes that descend from pytest, or carry this run's marker."""
    found = {}
    me = psutil.Process()
    try:
        children = me.children(recursive=True)
    except psutil.Error:
        children = []
    for proc in children:
        if _is_juno_process(proc):
            key = _key(proc)
            if key is not None:
                found[key] = proc
    marker = os.environ[RUN_MARKER]
    for proc in psutil.process_iter():
        if proc.pid == me.pid:
            continue
        try:
            if proc.environ().get(RUN_MARKER) != marker:
                continue
        except psutil.Error:
            continue
        if _is_juno_process(proc):
            key = _key(proc)
            if key is not None:
                found.setdefault(key, proc)
    return found


class LeakGuard:
    """Snapshot before the test; after shutdown, wait for what the test started."""

    def __init__(self) -> None:
        self.procs_before = set(run_juno_processes())
        self.shm_before = run_shm_entries()
        self.seen: dict = {}

    def note_processes(self) -> None:
        """Remember the current process tree (called just before shutdown, while
        workers are still children of pytest)."""
        run_sessions()  # also look at the session folders while they are there
        for key, proc in run_juno_processes().items():
            if key not in self.procs_before:
                self.seen.setdefault(key, proc)

    def leftover_processes(self) -> list:
        self.note_processes()
        return [p for p in self.seen.values() if process_alive(p)]

    def leftover_shm(self) -> list:
        return sorted(run_shm_entries() - self.shm_before)

    def check(self) -> None:
        problems = []
        try:  # one deadline for both: a leaking test waits LEAK_WAIT_S once, not twice
            wait_for_condition(lambda: not self.leftover_processes() and not self.leftover_shm(),
                               timeout=LEAK_WAIT_S)
        except RuntimeError:
            pass
        procs = self.leftover_processes()
        if procs:
            problems.append(
                f"{len(procs)} juno process(es) started by this test still alive "
                f"{LEAK_WAIT_S:g}s after shutdown:\n"
                + "\n".join("    " + describe(p) for p in procs)
            )
            # Clean up (only processes this test started) so the next test
            # is not blamed for them.
            for proc in procs:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=5)
        paths = self.leftover_shm()
        if paths:
            problems.append(
                "shared memory left behind in /dev/shm by this test:\n"
                + "\n".join("    " + p for p in paths)
            )
        if problems:
            pytest.fail("leak check failed:\n" + "\n".join(problems), pytrace=False)
