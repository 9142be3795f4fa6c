"""Process helpers shared by every runtime process: parent death (the parent-death signal and
lifeline pipes), readiness, liveness, stopping."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36

# The process name (Linux's comm, what ps and top show) of a node's worker fork server: its forked
# workers keep its command line, so `juno stop` tells it from them by this name.
FORK_SERVER_PROCESS_NAME = "juno-fork-srv"


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that started it exits (the
    parent-death signal: a SIGKILLed parent included). False if ``parent_pid`` is gone already:
    it died before the request was made, so the signal will never come (the caller exits).

    The signal follows the parent *thread*: spawn from a thread that lives as long as the parent
    (a node manager starts its workers from its main thread)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return os.getppid() == parent_pid  # reparented already: the parent died before we asked


def become_subreaper() -> bool:
    """Make this process the parent of its descendants' orphans (Linux's child subreaper), so a
    process forked by a child of ours becomes our child when that child exits. False if the
    system cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_name() -> str:
    """This process's name as the kernel keeps it (Linux's comm); "" where there is none."""
    try:
        with open("/proc/self/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def set_process_name(name: str) -> bool:
    """Set this process's name (Linux's comm, at most 15 bytes); False if the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# The environment variable that names the read end of a lifeline pipe (below) in a child.
LIFELINE_ENV = "JUNO_LIFELINE_FD"
_lifeline: tuple[int, int] | None = None


def owner_lifeline() -> int:
    """The read end of this process's lifeline pipe, for children that must die with it.

    This process holds the only write end (close-on-exec: no exec'd child inherits it) for its
    whole life and never writes; the children hold the read end, which reads EOF the moment this
    process dies, however it dies. One pipe serves every child (a GCS and its nodes alike)."""
    global _lifeline
    if _lifeline is None:
        _lifeline = os.pipe()
    return _lifeline[0]


def take_lifeline() -> int | None:
    """In a child: the lifeline fd its owner passed (:func:`owner_lifeline`), removed from the
    environment so the processes it starts in turn don't inherit a stale number; None if none."""
    value = os.environ.pop(LIFELINE_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        os.set_blocking(fd, False)
    except OSError:
        return None  # not open: the owner passed none after all
    return fd


def watch_lifeline(loop, fd: int, on_owner_gone) -> None:
    """Call ``on_owner_gone()`` in ``loop`` (a juno.comm.transport.EventLoop) once the lifeline ``fd``
    reads EOF: the owner died. If it died already (before this process got this far), the loop's
    first poll says so: a pipe with no writer left polls as hung up."""
    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:  # an owner never writes; ignore it
            return
        loop.remove_reader(fd)
        os.close(fd)
        on_owner_gone()

    loop.add_reader(fd, readable)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def report_ready(line: str) -> None:
    """Tell the starting process we are up: one line on fd 3-less stdout, then detach it."""
    fd = int(os.environ.pop("JUNO_READY_FD", "-1"))
    if fd >= 0:
        os.write(fd, (line + "\n").encode())
        os.close(fd)


def terminate(procs: list, grace_s: float, force: bool = False) -> list:
    """SIGTERM ``procs`` (psutil.Process, signalled in the order given; SIGKILL at once with
    ``force``), then SIGKILL what is left after ``grace_s``. Returns the survivors."""
    import psutil

    def alive(proc) -> bool:
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def send(items: list, sig: int) -> None:
        for proc in items:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass

    def wait(items: list, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        left = [p for p in items if alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [p for p in left if alive(p)]
        return left

    if not procs:
        return []
    if force:
        send(procs, signal.SIGKILL)
        return wait(procs, 5.0)
    send(procs, signal.SIGTERM)
    left = wait(procs, grace_s)
    if left:
        send(left, signal.SIGKILL)
        left = wait(left, 5.0)
    return left
