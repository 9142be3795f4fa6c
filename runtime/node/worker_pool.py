"""Worker processes of one node: starting them, reusing idle ones, reaping dead ones.

Workers are keyed by runtime env: a worker started with one set of env vars or
working dir only ever serves that env. Idle workers are reused (process start
is the slowest thing in the system) and stopped when surplus for a while. New workers
are forked from the node's zygote where their runtime env allows (runtime/node/zygote.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from juno import ids
from juno.job_config import CODE_SEARCH_PATH_KEY
from juno.node.zygote import ForkedProcess, Zygote, forkable

DEFAULT_ENV_KEY = ""


def env_key(runtime_env: dict | None) -> str:
    if not runtime_env:
        return DEFAULT_ENV_KEY
    return json.dumps(runtime_env, sort_keys=True)


class WorkerProcess:
    __slots__ = ("worker_id", "proc", "env_key", "address", "pid", "lease_id", "idle_since",
                 "log_path", "kill_reason", "kill_kind", "registered", "actor_id")

    def __init__(self, worker_id: bytes, proc: subprocess.Popen | ForkedProcess, env_key_: str, log_path: str):
        self.worker_id = worker_id
        self.proc = proc
        self.env_key = env_key_
        self.address: str | None = None
        self.pid = proc.pid
        self.lease_id: Any = None
        self.idle_since = time.monotonic()
        self.log_path = log_path
        self.kill_reason: str | None = None
        self.kill_kind: str | None = None  # why, for the owner: e.g. "oom" (memory monitor)
        self.registered = False
        self.actor_id: bytes | None = None


class WorkerPool:
    def __init__(self, *, session_dir: str, node: dict, gcs_address: str, config_env: str, log_dir: str):
        self.session_dir = session_dir
        self.node = node
        self.gcs_address = gcs_address
        self.config_env = config_env
        self.log_dir = log_dir
        self.workers: dict[bytes, WorkerProcess] = {}
        self.idle: dict[str, list[bytes]] = {}
        self.starting: dict[str, int] = {}
        self.failed_starts: dict[str, int] = {}
        self.zygote: Zygote | None = None  # the worker fork server, when on (start_zygote)

    # ---- starting ----
    def start_worker(self, runtime_env: dict | None) -> WorkerProcess:
        """Start a worker for ``runtime_env``: forked by the zygote where it can be, else spawned."""
        key = env_key(runtime_env)
        worker_id = ids.random_id(16)
        env, cwd = self.worker_env(runtime_env)
        env["JUNO_WORKER_INFO"] = json.dumps({
            "worker_id": worker_id.hex(), "node": self.node, "gcs_address": self.gcs_address,
            "session_dir": self.session_dir,
        })
        log_path = os.path.join(self.log_dir, f"worker-{worker_id.hex()[:12]}.log")
        proc = None
        if self.zygote is not None and forkable(runtime_env):
            proc = self.zygote.fork(env, cwd, log_path)
        if proc is None:
            with open(log_path, "ab", buffering=0) as log:
                proc = subprocess.Popen([sys.executable, "-m", "juno.worker"], env=env, cwd=cwd,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        worker = WorkerProcess(worker_id, proc, key, log_path)
        self.workers[worker_id] = worker
        self.starting[key] = self.starting.get(key, 0) + 1
        return worker

    def worker_env(self, runtime_env: dict | None) -> tuple[dict, str]:
        """The environment and working directory of a worker for ``runtime_env``."""
        env = os.environ.copy()
        env.pop("JUNO_READY_FD", None)
        cwd = os.getcwd()
        python_path = [cwd]
        if runtime_env:
            for name, value in (runtime_env.get("env_vars") or {}).items():
                env[name] = str(value)
            if runtime_env.get("working_dir"):
                cwd = self._materialize_working_dir(runtime_env["working_dir"])
                python_path.insert(0, cwd)
            for module_path in runtime_env.get("py_modules") or []:
                python_path.append(os.path.dirname(os.path.abspath(module_path)) if os.path.isfile(module_path)
                                   else os.path.dirname(os.path.abspath(module_path.rstrip("/"))))
            python_path.extend(runtime_env.get(CODE_SEARCH_PATH_KEY) or [])  # JobConfig(code_search_path=...)
        if env.get("PYTHONPATH"):
            python_path.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        env["JUNO_SYSTEM_CONFIG"] = self.config_env
        return env, cwd

    def start_zygote(self) -> None:
        """Fork workers from now on (runtime/node/zygote.py); the node manager is a subreaper."""
        env, cwd = self.worker_env(None)
        # `juno stop` finds a worker's cluster by this variable (a forked worker shows the zygote's)
        env["JUNO_WORKER_INFO"] = json.dumps({"session_dir": self.session_dir, "zygote": True})
        self.zygote = Zygote(env, cwd, os.path.join(self.log_dir, "worker-zygote.log"))
        self.zygote.start()

    def _materialize_working_dir(self, path: str) -> str:
        """Copy a working_dir into the session once per content version; workers run in the copy."""
        digest = hashlib.sha1()
        for root, dirs, files in sorted(os.walk(path)):
            dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
            for name in sorted(files):
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                digest.update(f"{os.path.relpath(full, path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        target = os.path.join(self.session_dir, "runtime_resources", "working_dir", digest.hexdigest()[:16])
        if not os.path.isdir(target):
            tmp = target + f".tmp{os.getpid()}"
            shutil.copytree(path, tmp, ignore=shutil.ignore_patterns(".git", "__pycache__"), dirs_exist_ok=True)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.rename(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def on_registered(self, worker_id: bytes, address: str) -> WorkerProcess | None:
        worker = self.workers.get(worker_id)
        if worker is None:
            return None
        worker.address = address
        worker.registered = True
        self.starting[worker.env_key] = max(0, self.starting.get(worker.env_key, 1) - 1)
        self.failed_starts.pop(worker.env_key, None)
        self.push_idle(worker)
        return worker

    # ---- idle pool ----
    def push_idle(self, worker: WorkerProcess) -> None:
        worker.lease_id = None
        worker.idle_since = time.monotonic()
        self.idle.setdefault(worker.env_key, []).append(worker.worker_id)

    def pop_idle(self, key: str) -> WorkerProcess | None:
        pool = self.idle.get(key)
        while pool:
            worker = self.workers.get(pool.pop())
            if worker is not None and worker.proc.poll() is None:
                return worker
        return None

    def num_idle(self, key: str) -> int:
        return len(self.idle.get(key, ()))

    def surplus_idle(self, keep_default: int, idle_s: float) -> list[WorkerProcess]:
        """Idle workers to stop: those beyond ``keep_default`` default ones, idle for ``idle_s``."""
        now = time.monotonic()
        out = []
        for key, pool in self.idle.items():
            keep = keep_default if key == DEFAULT_ENV_KEY else 0
            for wid in list(pool)[: max(0, len(pool) - keep)]:
                worker = self.workers.get(wid)
                if worker is not None and now - worker.idle_since >= idle_s:
                    pool.remove(wid)
                    out.append(worker)
        return out

    # ---- death ----
    def reap(self) -> list[tuple[WorkerProcess, str]]:
        """Workers that exited since the last call, each with a human reason."""
        dead = []
        for worker in list(self.workers.values()):
            code = worker.proc.poll()
            if code is None:
                continue
            del self.workers[worker.worker_id]
            pool = self.idle.get(worker.env_key)
            if pool and worker.worker_id in pool:
                pool.remove(worker.worker_id)
            if not worker.registered:
                self.starting[worker.env_key] = max(0, self.starting.get(worker.env_key, 1) - 1)
                self.failed_starts[worker.env_key] = self.failed_starts.get(worker.env_key, 0) + 1
            dead.append((worker, self.describe_exit(worker, code)))
        return dead

    def describe_exit(self, worker: WorkerProcess, code: int) -> str:
        if worker.kill_reason:
            return worker.kill_reason
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            text = f"worker process {worker.pid} was killed by signal {name}"
            if -code == signal.SIGKILL:
                text += " (possibly by the kernel's out-of-memory killer, or a kill -9)"
        else:
            text = f"worker process {worker.pid} exited with code {code}"
        tail = self.log_tail(worker)
        return f"{text}; last log lines:\n{tail}" if tail else text

    def log_tail(self, worker: WorkerProcess, lines: int = 15) -> str:
        try:
            with open(worker.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def kill(self, worker: WorkerProcess, reason: str, sig: int = signal.SIGKILL, kind: str | None = None) -> None:
        if worker.kill_reason is None:
            worker.kill_kind = kind
        worker.kill_reason = worker.kill_reason or reason
        try:
            worker.proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass

    def stop_all(self, grace_s: float) -> None:
        for worker in self.workers.values():
            try:
                worker.proc.terminate()
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        for worker in self.workers.values():
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                try:
                    worker.proc.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        self.workers.clear()
        self.idle.clear()
        if self.zygote is not None:
            self.zygote.stop(grace_s)
