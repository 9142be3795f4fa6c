"""The worker fork server ("zygote"): a template process that forks ready-imported workers.

Starting a worker with ``python -m juno.worker`` spends most of its time importing Juno.
A node manager starts one zygote (``python -m juno.worker --zygote``), which imports
everything a worker imports and then waits; each new worker is a fork of it, so it skips
the imports. The zygote never creates a zmq context, a socket or a thread (forking a
process with threads can deadlock the child), and refuses to fork if it finds one.

Protocol, one JSON line each way: the node manager writes ``{"env", "cwd", "log_path"}``
on the zygote's stdin and reads ``{"pid": ...}`` (or ``{"error": ...}``) from its stdout.
The worker is forked twice (zygote -> short-lived middle process -> worker) so that it is
re-parented to the node manager, a child subreaper: the node manager waits for it, is sent
SIGCHLD when it dies and signals it exactly as it does a worker it spawned itself
(runtime/node/zygote.py), and the zygote dying takes no worker with it.
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time

# What every worker imports at start (juno.worker.__main__ pulls in the core worker, the
# executor, the transport and pyzmq), imported once here. numpy stays out: importing it
# starts OpenBLAS's threads.
import cloudpickle  # noqa: F401 - imported for the forked workers
import zmq  # noqa: F401 - imported for the forked workers (no context is created)

from juno.cluster.processes import FORK_SERVER_PROCESS_NAME, die_with_parent, process_name, set_process_name
from juno.worker.__main__ import main as worker_main

# How long a forked worker waits to be re-parented to its node manager (it is at once,
# when the middle process exits; longer means the node manager died meanwhile).
REPARENT_TIMEOUT_S = 5.0

_worker_process_name = ""


def thread_count() -> int:
    """Threads of this process as the kernel counts them (native ones included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading
        return threading.active_count()


def serve(node_pid: int) -> int:
    """Answer fork requests on stdin until it closes (the node manager stopped or gave up on us)."""
    if not die_with_parent(node_pid):
        return 1
    global _worker_process_name
    _worker_process_name = process_name()  # what a spawned worker is called; forked ones take it back
    set_process_name(FORK_SERVER_PROCESS_NAME)
    requests = os.fdopen(0, "rb")
    replies = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to the zygote's log, not into the replies
    # Everything imported so far goes to the collector's permanent generation: a forked worker's
    # collections would otherwise walk (and so copy) every page of it that it shares with us.
    gc.freeze()
    os.write(replies, b'{"ready": true}\n')
    while True:
        line = requests.readline()
        if not line:
            return 0
        try:
            reply = {"pid": fork_worker(json.loads(line), node_pid)}
        except Exception as e:  # noqa: BLE001 - the node manager spawns the worker instead
            reply = {"error": f"{type(e).__name__}: {e}"}
        os.write(replies, json.dumps(reply).encode() + b"\n")


def fork_worker(request: dict, node_pid: int) -> int:
    """Fork a worker for ``request``; its pid once it is the node manager's child's child's child."""
    threads = thread_count()
    if threads != 1:
        raise RuntimeError(f"the zygote has {threads} threads; forking it is unsafe")
    sys.stdout.flush()
    sys.stderr.flush()
    pid_r, pid_w = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle process: fork the worker, say its pid, exit (re-parenting it)
        try:
            os.close(pid_r)
            middle_pid = os.getpid()  # before the fork: the worker's getppid() may already be past it
            worker = os.fork()
            if worker == 0:
                os.close(pid_w)
                _become_worker(request, node_pid, middle_pid)
            os.write(pid_w, str(worker).encode())
        finally:
            os._exit(0)
    os.close(pid_w)
    try:
        data = b""
        while chunk := os.read(pid_r, 64):
            data += chunk
    finally:
        os.close(pid_r)
        os.waitpid(middle, 0)
    if not data:
        raise RuntimeError("the middle process exited without forking a worker")
    return int(data)


def _become_worker(request: dict, node_pid: int, middle_pid: int) -> None:
    """In the forked worker: take the env, stdio and cwd a spawned worker gets, then run it. Never returns."""
    code = 1
    try:
        # Wait to be re-parented to the node manager before asking for its death signal
        # (asked while the middle process is the parent, the signal would come when it exits).
        deadline = time.monotonic() + REPARENT_TIMEOUT_S
        while os.getppid() == middle_pid and time.monotonic() < deadline:
            time.sleep(0.0002)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        log = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        _close_inherited_fds()  # the zygote's pipes: a worker holds none of them
        if _worker_process_name:
            set_process_name(_worker_process_name)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = sys.argv[:1]
        code = worker_main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - a worker's crash goes to its log, as a spawned one's does
        import traceback
        traceback.print_exc()
    finally:
        try:  # what an interpreter does at exit: a spawned worker runs its atexit hooks too
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _close_inherited_fds() -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
