"""Starting and stopping the processes of a cluster on this machine.

Used by ``juno.init()`` (a private cluster that dies with the driver) and by
``juno start`` (a daemon cluster that outlives the CLI). Each process reports
readiness with one line on a pipe, so start-up never polls or sleeps.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from juno.comm import auth
from juno.config import Config
from juno.cluster.processes import LIFELINE_ENV, owner_lifeline
from juno.store.shm import store_dir_for

# Not "juno": a folder of that name on sys.path would shadow the package (namespace import).
TEMP_ROOT = os.path.join(tempfile.gettempdir(), "juno-clusters")
# Where `juno start` records the address of the cluster it started, for init(address="auto");
# $JUNO_CLUSTER_FILE overrides it (tests use a private file so they never race each other).
CURRENT_CLUSTER_FILE = os.path.join(TEMP_ROOT, "juno_current_cluster")
CLUSTER_FILE_ENV = "JUNO_CLUSTER_FILE"
# Beside the current-cluster file: one 0600 file per cluster started on this machine, named by its
# GCS address and holding its token, so local clients (juno.init(address=...), the CLI) find it.
TOKEN_DIR_NAME = "juno_cluster_tokens"
# In a session folder: the cluster's token, for processes started later (nodes, a restarted GCS).
SESSION_TOKEN_FILE = "cluster_token"


@dataclass
class ClusterProcesses:
    session_name: str
    session_dir: str
    gcs_address: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    token: str = field(default="", repr=False)


def new_session() -> tuple[str, str]:
    name = f"s{time.strftime('%m%d%H%M%S')}{secrets.token_hex(3)}"
    session_dir = os.path.join(TEMP_ROOT, name)
    _make_session_dir(session_dir, fresh=True)
    return name, session_dir


def _make_session_dir(session_dir: str, fresh: bool) -> None:
    """A session folder under TEMP_ROOT, private (logs, the token), with its logs/ and its sock/
    (0700: it protects the ipc sockets). ``fresh``: it must not exist yet."""
    os.makedirs(TEMP_ROOT, exist_ok=True)
    if fresh:
        os.mkdir(session_dir, 0o700)
    else:
        os.makedirs(session_dir, mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(session_dir, "logs"), exist_ok=True)
    os.makedirs(os.path.join(session_dir, "sock"), mode=0o700, exist_ok=True)


def spawn_process(cmd: list[str], *, log_path: str, token: str | None = None,
                  env: dict[str, str] | None = None, lifeline: bool = False,
                  stdin_pipe: bool = False) -> tuple[subprocess.Popen, int]:
    """Start ``cmd`` in a session of its own, its output appended to ``log_path``, with a pipe it
    reports readiness on ($JUNO_READY_FD); returns it and the pipe's read end (for
    :func:`read_ready_line`; the caller closes it). ``lifeline``: it gets this process's lifeline
    (processes.owner_lifeline, $JUNO_LIFELINE_FD) and stops the moment this process dies.
    ``stdin_pipe``: its stdin is a pipe (``proc.stdin``) instead of /dev/null."""
    r, w = os.pipe()
    full_env = {**os.environ, **(env or {}), "JUNO_READY_FD": str(w)}
    full_env.pop(LIFELINE_ENV, None)
    pass_fds = [w]
    if lifeline:
        pass_fds.append(owner_lifeline())
        full_env[LIFELINE_ENV] = str(pass_fds[-1])
    if token:
        full_env[auth.TOKEN_ENV] = token  # the environment, never the command line (ps shows that)
    log = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(cmd, env=full_env, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds, start_new_session=True,
                                close_fds=True)
    except BaseException:
        os.close(r)
        raise
    finally:
        log.close()
        os.close(w)
    return proc, r


@dataclass
class StartingProcess:
    """A runtime process started but not yet ready: its ready pipe is still to be read."""
    proc: subprocess.Popen
    ready_fd: int
    what: str
    log_path: str
    store_dir: str | None = None  # a node's object store, removed if it fails

    def wait_ready(self, config: Config) -> str:
        """Its ready line; on failure it is stopped (its store removed) and the error raised."""
        try:
            return read_ready_line(self.ready_fd, config.process_start_timeout_s, self.proc, self.what,
                                   self.log_path)
        except BaseException:
            self.abort(config)
            raise
        finally:
            self._close_fd()

    def send_address(self, gcs_address: str) -> None:
        """Hand a node started with ``--gcs-address -`` its GCS's address (one line on its stdin).
        A node that died already is not an error here: :meth:`wait_ready` reports it."""
        try:
            self.proc.stdin.write(gcs_address.encode() + b"\n")
            self.proc.stdin.close()
        except OSError:
            pass

    def abort(self, config: Config) -> None:
        """Stop it and leave nothing of it behind (its store in /dev/shm included)."""
        self._close_fd()
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        stop_processes([self.proc], config.shutdown_grace_s)
        if self.store_dir:
            # It may have created its store before failing: leave nothing in /dev/shm.
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def _close_fd(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1


def _launch(cmd: list[str], *, log_path: str, config: Config, what: str, token: str | None = None,
            owner_pid: int | None = None, stdin_pipe: bool = False, store_dir: str | None = None) -> StartingProcess:
    """Start a runtime process without waiting for it; one whose owner is this process holds its lifeline too."""
    proc, r = spawn_process(cmd, log_path=log_path, token=token, env={"JUNO_SYSTEM_CONFIG": config.to_env()},
                            lifeline=owner_pid == os.getpid(), stdin_pipe=stdin_pipe)
    return StartingProcess(proc, r, what, log_path, store_dir)


def read_ready_line(fd: int, timeout: float, proc: subprocess.Popen, what: str, log_path: str) -> str:
    """The first line a starting process writes to its ready pipe; TimeoutError or RuntimeError
    (with the end of its log) when it does not come."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            proc.wait(5)
            raise TimeoutError(f"The {what} did not start within {timeout:.0f} s; see {log_path}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc.wait(5)
            raise RuntimeError(f"The {what} exited during start-up (code {proc.returncode}); "
                               f"its log {log_path} ends with:\n{_tail(log_path)}")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def local_session_dir(cluster_session_dir: str) -> str:
    """The folder a node on this machine uses for a cluster whose session folder is
    ``cluster_session_dir`` on the head's machine: that folder if it is here, else one of the
    same name under this machine's TEMP_ROOT (created)."""
    if os.path.isdir(cluster_session_dir):
        return cluster_session_dir
    session_dir = os.path.join(TEMP_ROOT, os.path.basename(cluster_session_dir.rstrip("/")))
    _make_session_dir(session_dir, fresh=False)
    return session_dir


def start_gcs(session_dir: str, config: Config, *, host: str = "127.0.0.1", port: int = 0,
              owner_pid: int | None = None, token: str | None = None,
              owner_linger_s: float = 0.0) -> tuple[subprocess.Popen, str]:
    """Start the GCS of the cluster whose session folder is ``session_dir``. Its token is ``token``,
    else the session's (a restarted GCS), else $JUNO_CLUSTER_TOKEN, else a new one; it is kept in
    the session folder and, by address, where local clients look (:func:`read_cluster_token`)."""
    gcs, token = _launch_gcs(session_dir, config, host=host, port=port, owner_pid=owner_pid, token=token,
                             owner_linger_s=owner_linger_s)
    address = gcs.wait_ready(config)
    write_cluster_token(address, token)
    return gcs.proc, address


def _launch_gcs(session_dir: str, config: Config, *, host: str, port: int, owner_pid: int | None,
                token: str | None, owner_linger_s: float) -> tuple[StartingProcess, str]:
    token = token or read_session_token(session_dir) or auth.token_for_new_cluster()
    write_session_token(session_dir, token)
    cmd = [sys.executable, "-m", "juno.gcs", "--host", host, "--port", str(port), "--session-dir", session_dir]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
        if owner_linger_s > 0:
            cmd += ["--owner-linger-s", str(owner_linger_s)]
    gcs = _launch(cmd, log_path=os.path.join(session_dir, "logs", "gcs.log"), config=config, what="GCS",
                  token=token, owner_pid=owner_pid)
    return gcs, token


def start_node(session_name: str, session_dir: str, gcs_address: str, config: Config, *,
               num_cpus: float | None = None, num_gpus: float | None = None, resources: dict | None = None,
               object_store_memory: int | None = None, owner_pid: int | None = None, head: bool = False,
               token: str | None = None, node_ip_address: str | None = None) -> tuple[subprocess.Popen, dict]:
    """Start a node manager. Its token is ``token``, else the session's (a cluster started on this
    machine), else the one :func:`juno.comm.auth.resolve_token` finds for ``gcs_address``. It listens on
    ipc sockets, or with ``node_ip_address`` not loopback, on TCP on that address (CURVE)."""
    token = token or read_session_token(session_dir) or auth.resolve_token(gcs_address)[0]
    node = launch_node(session_name, session_dir, gcs_address, config, num_cpus=num_cpus, num_gpus=num_gpus,
                        resources=resources, object_store_memory=object_store_memory, owner_pid=owner_pid,
                        head=head, token=token, node_ip_address=node_ip_address)
    return node.proc, json.loads(node.wait_ready(config))


def launch_node(session_name: str, session_dir: str, gcs_address: str | None, config: Config, *,
                num_cpus: float | None = None, num_gpus: float | None = None, resources: dict | None = None,
                object_store_memory: int | None = None, owner_pid: int | None = None, head: bool = False,
                token: str, node_ip_address: str | None = None) -> StartingProcess:
    """Start a node manager without waiting; ``gcs_address`` None: it reads it on its stdin
    (:meth:`StartingProcess.send_address`) once it has imported everything."""
    node_id = secrets.token_hex(14)
    store_dir = store_dir_for(session_name, node_id[:8])
    cmd = [sys.executable, "-m", "juno.node", "--node-id", node_id, "--session-dir", session_dir,
           "--gcs-address", gcs_address or "-", "--store-dir", store_dir, "--resources", json.dumps(resources or {})]
    if num_cpus is not None:
        cmd += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        cmd += ["--num-gpus", str(num_gpus)]
    if object_store_memory:
        cmd += ["--object-store-memory", str(int(object_store_memory))]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
    if head:
        cmd.append("--head")
    if node_ip_address:
        cmd += ["--node-ip-address", node_ip_address]
    return _launch(cmd, log_path=os.path.join(session_dir, "logs", f"node-{node_id[:8]}.log"), config=config,
                   what="node manager", token=token, owner_pid=owner_pid, stdin_pipe=gcs_address is None,
                   store_dir=store_dir)


def start_gcs_and_head(session_name: str, session_dir: str, config: Config, *, host: str = "127.0.0.1",
                       port: int = 0, owner_pid: int | None = None, token: str | None = None,
                       owner_linger_s: float = 0.0, **node_args) -> tuple[subprocess.Popen, str, subprocess.Popen, dict]:
    """Start a GCS (as :func:`start_gcs`) and its head node manager side by side: the node's Python
    start-up and imports (half of start-up) overlap the GCS's, and it gets the GCS's address on its
    stdin once the GCS is ready. With ``owner_linger_s`` the node's owner is the GCS. Returns the
    GCS's process and address, the node's process and info. On any failure both are stopped, the
    node's store and the stored token are removed (the caller removes the session folder), and
    the error of the process that failed is raised."""
    gcs, token = _launch_gcs(session_dir, config, host=host, port=port, owner_pid=owner_pid, token=token,
                             owner_linger_s=owner_linger_s)
    try:
        node = launch_node(session_name, session_dir, None, config, token=token, head=True,
                            owner_pid=gcs.proc.pid if owner_linger_s > 0 else owner_pid, **node_args)
    except BaseException:
        gcs.abort(config)
        raise
    try:
        address = gcs.wait_ready(config)
    except BaseException:
        node.abort(config)
        raise
    try:
        write_cluster_token(address, token)
        node.send_address(address)
        info = json.loads(node.wait_ready(config))
    except BaseException:
        node.abort(config)
        gcs.abort(config)
        forget_cluster_token(address, token)
        raise
    return gcs.proc, address, node.proc, info


def start_local_cluster(config: Config, *, num_cpus=None, num_gpus=None, resources=None,
                        object_store_memory=None, owner_pid: int | None = None, port: int = 0,
                        host: str = "127.0.0.1", token: str | None = None,
                        node_ip_address: str | None = None, owner_linger_s: float = 0.0) -> ClusterProcesses:
    """A GCS and a head node; the token is ``token``, else $JUNO_CLUSTER_TOKEN, else a new one.
    ``owner_linger_s``: the GCS outlives ``owner_pid`` that long, waiting to be claimed (a notebook
    kernel's cluster, runtime/cluster/kernel_cluster.py); the head node then lives as long as the GCS."""
    name, session_dir = new_session()
    token = token or auth.token_for_new_cluster()
    try:
        gcs_proc, gcs_address, node_proc, node = start_gcs_and_head(
            name, session_dir, config, host=host, port=port, owner_pid=owner_pid, token=token,
            owner_linger_s=owner_linger_s, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
            object_store_memory=object_store_memory, node_ip_address=node_ip_address)
    except BaseException:
        shutil.rmtree(session_dir, ignore_errors=True)
        raise
    return ClusterProcesses(name, session_dir, gcs_address, [gcs_proc, node_proc], [node], token=token)


def forget_cluster(session_dir: str, gcs_address: str, token: str | None) -> None:
    """What a cluster whose owner died leaves behind on this machine: its session folder (logs,
    sockets, the token), its stored token, and the current-cluster record if it names it. Its
    node managers remove their stores themselves (runtime/node/store_janitor.py)."""
    shutil.rmtree(session_dir, ignore_errors=True)
    forget_cluster_token(gcs_address, token)
    recorded = read_current_cluster()
    try:
        if recorded and normalize_address(recorded) == normalize_address(gcs_address):
            clear_current_cluster()
    except ValueError:
        pass


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now; TIME_WAIT does not count as busy, as
    for ZeroMQ and tornado. Errors other than "in use" (a host not on this machine) raise."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def stop_processes(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL: nothing is left behind."""
    for proc in reversed(procs):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in reversed(procs):
        try:
            proc.wait(max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def current_cluster_file() -> str:
    """The file naming the cluster `juno start` started: $JUNO_CLUSTER_FILE, else the default."""
    return os.environ.get(CLUSTER_FILE_ENV) or CURRENT_CLUSTER_FILE


def write_current_cluster(gcs_address: str) -> None:
    path = current_cluster_file()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(gcs_address)
    os.replace(tmp, path)  # readers never see a half-written address


def read_current_cluster() -> str | None:
    try:
        with open(current_cluster_file()) as f:
            return f.read().strip() or None
    except OSError:
        return None


def clear_current_cluster() -> None:
    try:
        os.unlink(current_cluster_file())
    except OSError:
        pass


def normalize_address(address: str) -> str:
    """'host:port' or 'tcp://host:port' -> 'tcp://host:port'."""
    if address.startswith("tcp://"):
        return address
    if address.startswith("juno://") or address.startswith("ray://"):
        address = address.split("://", 1)[1]
    if ":" not in address:
        raise ValueError(f"Cluster address {address!r} must look like 'host:port'.")
    return "tcp://" + address


def connection_refused(address: str, timeout: float = 1.0) -> bool:
    """Whether ``host:port`` (or tcp://host:port) refuses a TCP connection: nothing listens there.
    Only a refusal counts; a timeout or any other error is not proof that the cluster is gone."""
    host, _, port = normalize_address(address)[len("tcp://"):].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False


# ============================================================================ cluster tokens
def token_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(current_cluster_file())), TOKEN_DIR_NAME)


def token_path(gcs_address: str) -> str:
    host, _, port = normalize_address(gcs_address)[len("tcp://"):].rpartition(":")
    if host == "localhost":
        host = "127.0.0.1"
    return os.path.join(token_dir(), f"{host}_{port}")


def _private_dir(path: str, create: bool) -> bool:
    """True if ``path`` is a folder of ours that no one else may use (created 0700 if asked);
    auth.ClusterAuthError if it exists but another user could read or replace what is in it."""
    if create:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise auth.ClusterAuthError(
            f"{path} must be a folder of yours that only you can use (mode 0700) to hold cluster tokens; "
            f"it is not (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}). Remove it, or point "
            f"${CLUSTER_FILE_ENV} at a file in a private folder.")
    return True


def _write_private(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_private(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise auth.ClusterAuthError(f"the cluster token file {path} is readable by other users or not yours "
                                        f"(mode {stat.filemode(st.st_mode)}); remove it.")
        return f.read().strip() or None


def write_cluster_token(gcs_address: str, token: str) -> None:
    """Keep ``token`` for local clients of the cluster at ``gcs_address`` (a 0600 file)."""
    _private_dir(token_dir(), create=True)
    _write_private(token_path(gcs_address), token)


def read_cluster_token(gcs_address: str) -> str | None:
    if not _private_dir(token_dir(), create=False):
        return None
    return _read_private(token_path(gcs_address))


def forget_cluster_token(gcs_address: str, token: str | None = None) -> None:
    """Remove the stored token of ``gcs_address`` (only if it is ``token``: a newer cluster on the
    same port keeps its own)."""
    try:
        if token is not None and read_cluster_token(gcs_address) != token:
            return
        os.unlink(token_path(gcs_address))
    except (OSError, auth.ClusterAuthError):
        pass


def write_session_token(session_dir: str, token: str) -> None:
    _write_private(os.path.join(session_dir, SESSION_TOKEN_FILE), token)


def read_session_token(session_dir: str) -> str | None:
    try:
        return _read_private(os.path.join(session_dir, SESSION_TOKEN_FILE))
    except auth.ClusterAuthError:
        return None
