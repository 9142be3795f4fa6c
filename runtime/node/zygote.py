"""The node manager's side of the worker fork server (runtime/worker/zygote.py).

A worker forked by the zygote skips Python's start and Juno's imports (most of the time a
new actor waits for its worker). The zygote forks it through a middle process that exits,
so the worker is re-parented to the node manager, which made itself a child subreaper:
the node manager waits for it, gets SIGCHLD when it dies and signals it as it does a worker
it spawned (:class:`ForkedProcess` has the Popen calls the worker pool uses).

Workers whose runtime env changes what a process does before its first line of Python
(a working_dir, py_modules, pip, an interpreter, PYTHONPATH or LD_* variables) are
spawned as before (:func:`forkable`). A zygote that dies or stops answering is replaced;
meanwhile, and while a new one imports, workers are spawned.
"""
from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time

from juno.cluster.processes import pid_alive

logger = logging.getLogger(__name__)

# Environment variables read when a process starts (by the interpreter or the dynamic loader),
# which a fork of an already started zygote would ignore: a runtime env that sets one is spawned.
STARTUP_ENV_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_TUNABLES")
# How long the node manager waits for the zygote to answer a fork request.
FORK_REPLY_TIMEOUT_S = 5.0
# Zygotes started (the first included) before the node gives up on forking and only spawns.
MAX_ZYGOTE_STARTS = 5


def forkable(runtime_env: dict | None) -> bool:
    """Whether a worker for ``runtime_env`` may be a fork of the zygote: no runtime env, or only
    env_vars that take effect after the interpreter started."""
    if not runtime_env:
        return True
    if set(runtime_env) - {"env_vars"}:
        return False
    return not any(str(name).upper().startswith(STARTUP_ENV_PREFIXES)
                   for name in (runtime_env.get("env_vars") or {}))


class ForkedProcess:
    """A forked worker, re-parented to this node manager: the part of Popen the pool uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.args = ["juno.worker (forked)", str(pid)]

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # not our child after all (never re-parented): watch the pid
                if not pid_alive(self.pid):
                    self.returncode = 1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.005)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # never signal a pid that was reaped (and may be reused)
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        import signal
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        import signal
        self.send_signal(signal.SIGKILL)


class Zygote:
    """One node's fork server: started, asked to fork, replaced when it dies, stopped."""

    def __init__(self, env: dict, cwd: str, log_path: str):
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.starts = 0
        self._buffer = b""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start a zygote (it imports for a while; until it says it is ready, workers are spawned)."""
        self.starts += 1
        self.ready = False
        self._buffer = b""
        with open(self.log_path, "ab", buffering=0) as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "juno.worker", "--zygote", str(os.getpid())],
                                         env=self.env, cwd=self.cwd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def fork(self, env: dict, cwd: str, log_path: str) -> ForkedProcess | None:
        """A worker forked with this env, cwd and log; None when the caller must spawn it."""
        if not self.poll_ready():
            return None
        request = json.dumps({"env": env, "cwd": cwd, "log_path": log_path}).encode() + b"\n"
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
            reply = self._read_reply(FORK_REPLY_TIMEOUT_S)
        except (OSError, ValueError) as e:
            self._discard(f"the worker fork server failed ({e}); spawning workers until it is replaced")
            return None
        if reply is None:
            self._discard("the worker fork server did not answer; spawning workers until it is replaced")
            return None
        if "pid" not in reply:
            logger.warning("the worker fork server could not fork (%s); spawning the worker",
                           reply.get("error"))
            return None
        return ForkedProcess(int(reply["pid"]))

    def poll_ready(self) -> bool:
        """Whether it forks now (without waiting); a zygote that exited is replaced."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                logger.warning("the worker fork server exited (code %s); spawning workers until it is replaced",
                               self.proc.returncode)
                self.proc = None
            if self.starts < MAX_ZYGOTE_STARTS:
                self.start()
            return False
        if not self.ready:
            reply = self._read_reply(0.0)
            self.ready = bool(reply and reply.get("ready"))
        return self.ready

    def _read_reply(self, timeout_s: float) -> dict | None:
        """The zygote's next JSON line, waiting up to ``timeout_s``; None if none came."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if not select.select([fd], [], [], max(0.0, left))[0]:
                return None
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise OSError("the worker fork server closed its pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _discard(self, why: str) -> None:
        logger.warning("%s", why)
        self.stop(0.0)

    def stop(self, grace_s: float) -> None:
        """Close its pipe and terminate it: it holds nothing worth a graceful exit (its workers are not
        its children), and a zygote still importing would read the EOF only once done, which made
        every shutdown soon after a start wait for its imports. Killed if still there after ``grace_s``."""
        proc, self.proc, self.ready = self.proc, None, False
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            proc.terminate()
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                pass


def reap_orphans(known_pids: set[int]) -> None:
    """Wait for exited children this node manager did not start (as a subreaper it adopts the
    orphaned descendants of its workers); children in ``known_pids`` are left to their owners."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in known_pids:
            return
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return
